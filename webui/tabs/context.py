"""What the tabs share: :class:`TabContext`, handed to every tab's ``build(ctx)`` by webui/layout.py.

Its helpers wire an event the one way the page does it: a page's streaming run with its Go/Stop swap
(:meth:`TabContext.page_event`), the API's endpoint beside it (:meth:`TabContext.api_endpoint`), the
tab's Stop (:meth:`TabContext.stop_button`), the token counter, the export buttons; :func:`examples`
places a tab's examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr

from llmdemo.errors import UserError
from llmdemo.host import ModelHost

from ..i18n import error_text, lang_of, t
from ..i18n import text as msg
from ..settings import AppSettings
from ..streaming import page_run

if TYPE_CHECKING:  # webui/handlers.py joins the tabs' handlers: it imports the tabs
    from ..handlers import Handlers


@dataclass
class TabContext:
    host: ModelHost  # the one model every tab uses
    settings: AppSettings
    h: Handlers  # the task tabs' handlers; h.live holds every tab's runs in progress (what Stop stops)
    demo: gr.Blocks  # the page: events at page load (the saved chat, the page's language)
    tabs: gr.Tabs  # the tab bar (an Evaluation row opens its task's tab)
    lang_buttons: tuple[gr.Button, gr.Button]  # the header's English and 中文 buttons
    model_line: gr.Markdown  # the header's model line (renewed after a model loads, and on a language switch)
    model_line_text: Callable[..., str]  # that line's text in the page's language (an event's function)
    votes: Any = None  # the Compare tab's vote store (None: compare.open_store's default)
    # filled in by the tabs, for the tabs after them:
    # the task tabs' fields by elem_id (an Evaluation row is sent to them)
    inputs: dict[str, gr.Component] = field(default_factory=dict)
    lang_events: list = field(default_factory=list)  # the Model tab's language events (at load, on a switch)
    # what a language switch sends again (layout.py): buttons a run's updates touched (Gradio then keeps
    # the label it showed, in the old language) and the token counters (text made on the server)
    relabel: list = field(default_factory=list)
    counters: list = field(default_factory=list)

    @property
    def model_events(self) -> dict:
        """Settings of an event that runs the model: ``settings.concurrency`` of them at once."""
        return dict(concurrency_id="model", concurrency_limit=self.settings.concurrency)

    @property
    def light_events(self) -> dict:
        # cheap handlers that do no model work still go through the queue, so sizes are checked within its limits
        return dict(concurrency_id="light", concurrency_limit=4)

    @property
    def private(self) -> dict:
        """An event that is no API endpoint."""
        return dict(api_visibility="private")

    def counter(self, box, out):  # the input's length in tokens, as the visitor types
        self.counters.append((box, out))
        box.change(self.h.count_tokens, [box], [out], trigger_mode="always_last", show_progress="hidden",
                   **self.private, **self.light_events)

    @staticmethod
    def error_title(request):
        return msg("error_title", lang_of(request))

    def page_event(self, triggers, fn, inputs, outputs, tab, go, stop, on_error=None):
        """The page's run of a streaming handler: Go/Stop swap, a failure is a toast (see streaming.page_run)."""
        run = page_run(fn, len(outputs), self.h.live, tab, self.error_title, on_error)
        self.relabel += [b for b in (go, stop) if b not in self.relabel]
        return [trigger(run, inputs, [*outputs, go, stop], **self.private, **self.model_events)
                for trigger in triggers]

    def api_endpoint(self, fn, inputs, outputs, name):  # the API's endpoint: the handler itself, errors raised
        gr.Button(visible=False).click(fn, inputs, outputs, api_name=name, **self.model_events)

    def stop_button(self, tab, btn, go, stats, events):
        """Stop ends the visitor's run at the model and waits for its last update, then says "stopped";
        only then are the events cancelled (one still queued): a cancel first would kill the handler while an
        update of its was on the way, which then landed after "stopped" (9 of 10 Stops before)."""
        h = self.h

        def stop(line, request: gr.Request):
            return h.stop(tab, line, request), gr.update(visible=True), gr.update(visible=False)

        btn.click(stop, [stats], [stats, go, btn], queue=False, **self.private).then(
            None, None, None, cancels=events, queue=False, **self.private)

    def export_row(self, name: str, fn, inputs: list):
        """Export buttons (Markdown, JSON) and the file they make."""
        with gr.Row():
            md = gr.Button(t("export_md"), size="sm", scale=0, min_width=120, elem_id=f"{name}-export-md")
            js = gr.Button(t("export_json"), size="sm", scale=0, min_width=120, elem_id=f"{name}-export-json")
        f = gr.File(label=t("download"), visible=False, interactive=False, elem_id=f"{name}-export")
        for btn, fmt in ((md, "md"), (js, "json")):
            btn.click(_exporter(fn, fmt, len(inputs)), inputs, [f], api_visibility="private", **self.light_events)
        return md, js, f


def _exporter(fn, fmt: str, n_inputs: int):
    """An export button's handler: the file, or "nothing to export yet" in the page's language."""
    def run(args, request):
        try:
            return gr.update(value=fn(*args, fmt), visible=True)
        except UserError as e:  # "nothing to export yet"
            raise gr.Error(error_text(e, lang_of(request)), print_exception=False) from None

    if n_inputs == 2:
        def export(a, b, request: gr.Request = None):
            return run((a, b), request)
    else:
        def export(a, b, c, request: gr.Request = None):
            return run((a, b, c), request)
    return export


def examples(data: list, inputs: list, labels: list[str] | None = None) -> gr.Examples:
    """gr.Examples without column headers: Gradio takes them from the inputs' labels, and does not translate
    them (a translated label showed as raw ``__i18n__{...}`` there). ``labels``: one line per example
    instead of its columns."""
    ex = gr.Examples(data, inputs, label=t("examples"), example_labels=labels)
    ex.dataset.headers = []
    return ex
