"""The page: the header, then the tabs in order (webui/tabs/), over one shared model; its CSS and launch options.

``build_demo(host, settings)`` is what app.py serves and the tests launch; each tab is placed and wired by
its own module's ``build(ctx)``, with the shared pieces in one :class:`~webui.tabs.context.TabContext`.
"""

from __future__ import annotations

import gradio as gr

from llmdemo.host import ModelHost

from . import clients, tokenprobs
from .clients import cap_queue_per_client
from .handlers import Handlers
from .i18n import I18N, lang_of, t
from .i18n import text as msg
from .settings import AppSettings
from .tabs import compare as compare_tab
from .tabs.compare.render import CSS as COMPARE_CSS
from .tabs import dialogue, evaluation, generation, inside, model, summarization, translation
from .tabs.context import TabContext

# the tab bar, in order: each module's build(ctx) places its tab (the name's i18n key is "tab_" + its id)
TABS = [generation, translation, dialogue, summarization, compare_tab, model, evaluation, inside]
TAB_KEYS = ["tab_generation", "tab_translation", "tab_dialogue", "tab_summarization", "tab_compare",
            "tab_model", "tab_evaluation", "tab_inside"]

# Chip colours: pastel backgrounds with dark text in light mode, deep backgrounds with light text in dark
# mode (Gradio puts .dark on the page's root). The chips wrap (flex-wrap); they used to run off the page.
_LIGHT = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f2f7", "#fce1c8", "#e0f0d0"]
_DARK = ["#6d2833", "#1f4a3d", "#263f7a", "#6b5512", "#4b2f6e", "#1b5561", "#6e3f17", "#35561f"]
CSS = """
.stats {font-size: 0.85em; opacity: 0.8}
.chips {display: flex; flex-wrap: wrap; gap: 4px; line-height: 1.6em; max-width: 100%}
.chip {padding: 2px 5px; border-radius: 4px; font-family: monospace; white-space: pre; color: #1f2937}
.chip sub {opacity: 0.65; font-size: 0.7em; margin-left: 2px}
.dark .chip {color: #f3f4f6}
#lang-switch {justify-content: flex-end; gap: 4px}
#lang-switch button {flex: 0 0 auto; min-width: 0; padding: 2px 10px}
#lang-switch button.lang-active {font-weight: 700; outline: 2px solid var(--color-accent); outline-offset: -2px}
/* every tab's name stays visible on a phone: Gradio moves the tabs that do not fit on one line behind an
   unlabelled "..." (measured on a hidden copy of the bar); the copy's buttons are made tiny so all tabs
   count as fitting, and the real bar wraps onto a second line instead */
.tab-container.visually-hidden button {padding: 0 !important; font-size: 1px !important; min-width: 0 !important}
.tab-wrapper {height: auto !important}
.tab-container[role=tablist] {flex-wrap: wrap !important; height: auto !important; row-gap: 2px}
/* the metrics plot is drawn light on the server: in dark mode it is shown inverted (hues kept) */
.dark #eval-plot img {filter: invert(0.9) hue-rotate(180deg)}
#eval-upload {min-height: 150px}
/* a phone: the results table drops the reference column (it is in the report and the downloads), so the
   input, the prediction and the score keep readable widths; no header breaks inside a word */
@media (max-width: 640px) {
  /* the intro takes the phone's width, the language switch goes under it (the intro was a 150 px column) */
  #header {flex-wrap: wrap !important}
  #intro {flex: 1 1 100% !important; min-width: 100% !important}
  #lang-switch {margin-left: auto}
  /* Gradio 6 draws the rows as div.body-cell (the th/td are its hidden sizing copy): both are hidden, and
     both given the same shares, or four headers stood over five columns */
  #eval-table th:nth-child(3), #eval-table td:nth-child(3), #eval-table .body-cell:nth-child(3) {display: none}
  #eval-table th:nth-child(1), #eval-table .body-cell:nth-child(1) {width: 13% !important; min-width: 13% !important}
  #eval-table th:nth-child(2), #eval-table .body-cell:nth-child(2) {width: 35% !important; min-width: 35% !important}
  #eval-table th:nth-child(4), #eval-table .body-cell:nth-child(4) {width: 35% !important; min-width: 35% !important}
  #eval-table th:nth-child(5), #eval-table .body-cell:nth-child(5) {width: 17% !important; min-width: 17% !important}
  #eval-table th, #eval-table td, #eval-table .body-cell {font-size: 12px; word-break: normal !important;
    overflow-wrap: break-word; hyphens: auto}
}
""" + "".join(f".chip.c{i} {{background: {c}}}\n" for i, c in enumerate(_LIGHT)) \
    + "".join(f".dark .chip.c{i} {{background: {c}}}\n" for i, c in enumerate(_DARK))

# Ctrl+Enter (Cmd+Enter on a Mac) runs the open tab, Esc stops it: the visible primary / Stop button of the
# tab shown. Caught before the text box sees it (a one-line box would also submit on Enter itself).
KEYS_JS = """() => {
  document.addEventListener('keydown', (ev) => {
    const run = ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey), stop = ev.key === 'Escape';
    if (!run && !stop) return;
    const shown = (el) => el && el.offsetParent !== null;
    const panel = [...document.querySelectorAll('[role=tabpanel]')].find(shown);
    if (!panel) return;
    const button = [...panel.querySelectorAll(run ? 'button.primary' : 'button.stop')].find(shown);
    if (!button || button.disabled) return;
    ev.preventDefault(); ev.stopPropagation();
    button.click();
  }, true);
}"""


def launch_options(settings: AppSettings) -> dict:
    """Keyword arguments for ``demo.launch`` shared by app.py and the tests."""
    # eval runs are written to the output folder, which is never served: results reach a visitor as
    # private copies (webui/files.py)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    # show_error: Gradio's own input checks (e.g. "Expected a float") reach the user; our handlers
    # already turn every other exception into a short message without a traceback
    from starlette.middleware import Middleware

    from .clients import OpenStreams
    from .limits import BodyLimit, LoginLimit, UploadLimit

    middleware = [Middleware(BodyLimit, limit=settings.max_request_kb * 1024, read_s=settings.body_read_s),
                  Middleware(UploadLimit, per_request=settings.max_upload_mb * (1 << 20) + (64 << 10),
                             per_hour=settings.upload_mb_per_hour << 20, trusted_proxies=settings.trusted_proxies),
                  Middleware(LoginLimit, trusted_proxies=settings.trusted_proxies), Middleware(OpenStreams)]
    return {"css": CSS + tokenprobs.CSS + COMPARE_CSS, "js": KEYS_JS, "show_error": True,
            "max_file_size": f"{settings.max_upload_mb}mb", "i18n": I18N, "app_kwargs": {"middleware": middleware},
            "state_session_capacity": settings.max_sessions}


def build_demo(host: ModelHost, settings: AppSettings | None = None, votes=None) -> gr.Blocks:
    settings = settings or AppSettings()
    h = Handlers(host, settings)
    # Gradio lets up to `concurrency` generation events run at once; they all hand their requests to the
    # model's scheduler, which batches them (at most max_running rows per step) and queues the rest
    host.configure(max_running=settings.max_running)

    def model_line_text(request: gr.Request = None) -> str:
        return msg("model_line", lang_of(request), name=host.lm.name, device=host.lm.device)

    # uploads and files handed out are deleted after settings.keep_files_s (an hour), checked as often
    with gr.Blocks(title="llmdemo", delete_cache=(settings.keep_files_s, settings.keep_files_s)) as demo:
        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown(t("intro"), elem_id="intro")
            with gr.Row(elem_id="lang-switch", scale=0):
                lang_en = gr.Button("English", size="sm", elem_id="lang-en")
                lang_zh = gr.Button("中文", size="sm", elem_id="lang-zh")
        model_line = gr.Markdown(model_line_text(), elem_classes="stats", elem_id="model-line")
        with gr.Accordion(t("limitations"), open=False, elem_id="limitations"):
            gr.Markdown(t("limitations_text"))

        with gr.Tabs() as tabs:
            ctx = TabContext(host, settings, h, demo, tabs, (lang_en, lang_zh), model_line, model_line_text, votes)
            tab_blocks = [tab.build(ctx) for tab in TABS]

        # the language switch (and a remembered choice at load) re-sends every tab's name: Gradio's tab bar
        # translates a name when it receives it, so after changeLocale only the open tab's name changed
        def relabel():
            return [gr.update(label=t(k)) for k in TAB_KEYS]

        # a button a run's update touched keeps the label it showed then (Gradio translates a label when it
        # receives it), so Generate stayed English after a run and a switch to 中文: send them again
        buttons = list(ctx.relabel)

        def relabel_buttons():
            return [gr.update(value=b.value) for b in buttons]

        for ev in ctx.lang_events:
            ev.then(relabel, None, tab_blocks, queue=False, show_progress="hidden", **ctx.private)
            ev.then(model_line_text, None, [model_line], queue=False, show_progress="hidden", **ctx.private)
            ev.then(relabel_buttons, None, buttons, queue=False, show_progress="hidden", **ctx.private)
            for box, out in ctx.counters:  # the token counts, in the new language (off the queue: at page
                # load these five would take five of the address's queue places at once)
                ev.then(h.count_tokens, [box], [out], queue=False, show_progress="hidden", **ctx.private)

        demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
        # events of sessions that never opened their stream are dropped (OpenStreams, in launch_options)
        cap_queue_per_client(demo._queue, settings.events_per_client, settings.trusted_proxies,
                             per_group={"eval": settings.eval_runs})
        clients.TRUSTED_PROXIES = settings.trusted_proxies  # the engine's rows are shared by the same key
    return demo
