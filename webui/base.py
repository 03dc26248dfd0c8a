"""What every handler group shares: the model host, the settings, the live runs, and the one stream loop.

Each task tab's handlers are a :class:`HandlerBase` in the tab's own module (webui/tabs/generation.py,
translation.py, summarization.py, dialogue.py, model.py), joined into one ``Handlers`` object in
webui/handlers.py. Generation runs in the model's scheduler
(llmdemo/engine/scheduler.py); :meth:`HandlerBase._stream` submits a request and yields its text as
tokens arrive. Stop sets the request's stop event (webui/streaming.py) and a closed browser tab
closes the handler's generator; either way the row leaves the batch before the next step. While a
request waits for the model the handler still yields every half second, so Gradio can close it at
any time and the visitor sees that it waits.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import gradio as gr

from llmdemo import prompts
from llmdemo.config import GenerationConfig
from llmdemo.host import ModelHost
from llmdemo.presets import BUNDLED, TASK_MODELS, installed_bundled

from .controls import Decoding
from .errors import warn
from .files import _export_file
from .i18n import lang_of, text as msg
from .safety import check_length
from .settings import AppSettings
from .stats import _Starting, _Waiting, is_running, stopped_line
from .streaming import HEARTBEAT_S, LiveRuns


class HandlerBase:
    """The host and settings every handler uses; ``live`` holds the runs in progress (every tab's Stop)."""

    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings
        self.live = LiveRuns()
        # models loaded beside the host's own, within the app's memory budget: a tab's own model (the
        # Translation tab's multilingual one) and the Compare tab's contestants share them
        host.configure(companion_budget_mb=settings.compare_memory_mb)
        self.companions = host.companions

    def task_models(self, task: str) -> tuple[list[str], str]:
        """The models a task tab offers (the loaded one and the bundled ones installed) and its default: the
        task's preferred bundled model (``presets.TASK_MODELS``) when the app runs a bundled model and that one
        is installed; a model the operator chose (``--model``) stays every tab's default."""
        loaded = self.host.lm.name
        offered = installed_bundled()
        if loaded not in offered:
            offered.insert(0, loaded)
        best = TASK_MODELS.get(task)
        return offered, (best if best in offered and loaded in BUNDLED else loaded)

    def task_lm(self, task: str, name: Any):
        """The model a task tab's run uses: one it offers (anything else is refused, whatever a client sends)."""
        offered, default = self.task_models(task)
        name = name.strip() if isinstance(name, str) and name.strip() else default
        if name not in offered:
            raise prompts.InputError("input.task_model", name=str(name)[:80], choices=", ".join(offered))
        if name == self.host.lm.name:
            return self.host.lm
        return self.companions.get(name, trusted=True)  # a bundled preset: offered in hosted mode too

    def config(self, task: str, decoding: Decoding) -> GenerationConfig:
        """The decoding fields' values as ``task``'s settings, within this server's limits."""
        return decoding.config(task, self.settings)

    def check_length(self, text: Any, what: str = "text") -> str:
        return check_length(text, self.settings.max_input_chars, what)

    @staticmethod
    def export_output(task: str, source: str, output: str, stats: str, fmt: str) -> str:
        """One generation (input, output, stats line) as a Markdown or JSON file to download."""
        if not (output or "").strip():
            raise prompts.InputError("input.nothing_to_export")
        if is_running(stats):  # half an output, saved as if it were whole: wait for it or Stop it first
            raise prompts.InputError("input.export_running")
        if fmt == "json":
            return _export_file(f"{task}.json", json.dumps(
                {"task": task, "input": source, "output": output, "stats": stats}, ensure_ascii=False, indent=2))
        return _export_file(f"{task}.md", f"# {task}\n\n## Input\n\n{source}\n\n## Output\n\n{output}\n\n"
                                          f"---\n{stats}\n")

    def _stream(self, prompt: prompts.TaskPrompt, cfg: GenerationConfig, lang: str = "en", tab: str = "",
                request: gr.Request | None = None, on_stream=None, lm=None) -> Iterator[tuple[str, Any]]:
        """(text so far, stats); the first yield is empty text, so a new run clears the last one's output.

        A page's run (registered under the visitor's session and ``tab`` by ``streaming.page_run``) ends
        at the model when the tab's Stop is pressed (:meth:`stop`); this loop then ends by itself.
        ``on_stream(stream)`` is called once the model's Stream exists (webui/tokenprobs.py reads its
        ``token_info``). ``lm``: the model the prompt was built for (default: the host's)."""
        if prompt.notice:
            warn(prompt.notice, lang)
        yield "", _Starting()
        lm = lm or self.host.lm
        stop_event = self.live.stop_event(getattr(request, "session_hash", None), tab)
        stream = lm.stream(prompt.input, prompt.config(cfg), heartbeat=HEARTBEAT_S, stop_event=stop_event)
        if on_stream is not None:
            on_stream(stream)
        text = ""
        try:
            for chunk in stream:
                if not chunk:  # no token yet: say that it waits (the generator stays closable)
                    if not text:
                        yield text, _Waiting(lm, stream)
                    continue
                text += chunk
                self.host.count(1)
                yield text, stream.stats
        finally:
            stream.close()
        yield text, stream.stats

    def stop(self, tab: str, line: str | None, request: gr.Request | None = None) -> str:
        """Stop: the visitor's run in ``tab`` ends at the model now; the stats line says "stopped"."""
        said = self.live.stop(getattr(request, "session_hash", None), tab)
        return said if said is not None else stopped_line(line, request)

    def count_tokens(self, text: Any, request: gr.Request = None) -> str:
        """The input's length in the model's tokens (the first max_input_chars characters)."""
        if not isinstance(text, str) or not text:
            return ""
        try:
            n = self.host.lm.count_tokens(text[: self.settings.max_input_chars])
        except Exception:  # noqa: BLE001 - a backend that cannot count: no counter
            return ""
        return msg("tokens_count", lang_of(request), n=f"{n:,}")
