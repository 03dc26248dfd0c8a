"""The Gradio Blocks: one tab per task over one shared model."""

from __future__ import annotations

import gradio as gr

from eval.tasks import TASKS as EVAL_TASKS
from llmdemo import tasks
from llmdemo.host import ModelHost
from llmdemo.presets import DEFAULT_MODEL

from . import compare, tokenprobs
from .controls import LANG_CHOICES, decoding_controls
from .errors import in_lang
from .evaluation import EvalHandlers
from .handlers import Handlers
from .inside import InsideHandlers
from .streaming import page_run
from .i18n import EN, I18N, lang_of, switch_js, t
from .i18n import text as msg
from .settings import AppSettings

GENERATION_EXAMPLES = [
    ["Explain in two sentences why the sky is blue."],
    ["Write a short poem about autumn leaves."],
    ["Give me three tips for learning a new language."],
]
TRANSLATION_EXAMPLES = [
    ["The weather is nice today.", "en", "fr"],
    ["The library opens at nine o'clock every morning.", "en", "zh"],
    ["Where is the nearest train station?", "en", "de"],
    ["Le musée est fermé le lundi.", "fr", "en"],
]
CHAT_EXAMPLES = ["Hello, who are you?", "What is the capital of France?", "Can you suggest a name for a cat?"]
SUMMARY_EXAMPLES = [[
    "The city council voted on Tuesday to approve a new bridge across the river, ending a debate that lasted "
    "more than ten years. The bridge will cost about 20 million dollars and is expected to take three years to "
    "build. Supporters say it will cut commuting times in half for people living on the east bank, while "
    "opponents worry about noise and the loss of a park near the water. Construction is planned to start next "
    "spring, and the council promised to plant new trees to replace those that are removed.",
    "short",
]]


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
  #eval-table th:nth-child(3), #eval-table td:nth-child(3) {display: none}
  #eval-table th, #eval-table td {font-size: 12px; word-break: normal !important; hyphens: auto}
}
""" + "".join(f".chip.c{i} {{background: {c}}}\n" for i, c in enumerate(_LIGHT)) \
    + "".join(f".dark .chip.c{i} {{background: {c}}}\n" for i, c in enumerate(_DARK))

# the page's theme, read in the browser and handed to the Inside tab's plot (the server cannot know it)
THEME_JS = "(...a) => [...a.slice(0, -1), document.body.classList.contains('dark') || " \
           "document.documentElement.classList.contains('dark') ? 'dark' : 'light']"


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

    from .limits import BodyLimit

    return {"css": CSS + tokenprobs.CSS + compare.CSS, "js": KEYS_JS, "show_error": True, "max_file_size": f"{settings.max_upload_mb}mb", "i18n": I18N,
            "app_kwargs": {"middleware": [Middleware(BodyLimit, limit=settings.max_request_kb * 1024)]}}


def export_row(name: str, fn, inputs: list, settings_light: dict):
    """Export buttons (Markdown, JSON) and the file they make."""
    with gr.Row():
        md = gr.Button(t("export_md"), size="sm", scale=0, min_width=120, elem_id=f"{name}-export-md")
        js = gr.Button(t("export_json"), size="sm", scale=0, min_width=120, elem_id=f"{name}-export-json")
    f = gr.File(label=t("download"), visible=False, interactive=False, elem_id=f"{name}-export")
    for btn, fmt in ((md, "md"), (js, "json")):
        btn.click(_exporter(fn, fmt, len(inputs)), inputs, [f], api_visibility="private", **settings_light)
    return md, js, f


def _exporter(fn, fmt: str, n_inputs: int):
    """An export button's handler: the file, or "nothing to export yet" in the page's language."""
    def run(args, request):
        try:
            return gr.update(value=fn(*args, fmt), visible=True)
        except gr.Error as e:
            said = in_lang(e, lang_of(request))
            if said is e:
                raise
            raise said from None

    if n_inputs == 2:
        def export(a, b, request: gr.Request = None):
            return run((a, b), request)
    else:
        def export(a, b, c, request: gr.Request = None):
            return run((a, b, c), request)
    return export


def examples(data: list, inputs: list) -> gr.Examples:
    """gr.Examples without column headers: Gradio takes them from the inputs' labels, and does not translate
    them (a translated label showed as raw ``__i18n__{...}`` there)."""
    ex = gr.Examples(data, inputs, label=t("examples"))
    ex.dataset.headers = []
    return ex


def build_demo(host: ModelHost, settings: AppSettings | None = None, votes=None) -> gr.Blocks:
    settings = settings or AppSettings()
    h = Handlers(host, settings)
    # Gradio lets up to `concurrency` generation events run at once; they all hand their requests to the
    # model's scheduler, which batches them (at most max_running rows per step) and queues the rest
    host.configure(max_running=settings.max_running)
    model_events = dict(concurrency_id="model", concurrency_limit=settings.concurrency)
    # cheap handlers that do no model work still go through the queue, so sizes are checked within its limits
    light_events = dict(concurrency_id="light", concurrency_limit=4)
    private = dict(api_visibility="private")

    def counter(box, out):  # the input's length in tokens, as the visitor types
        box.change(h.count_tokens, [box], [out], trigger_mode="always_last", show_progress="hidden", **private,
                   **light_events)

    def error_title(request):
        return msg("error_title", lang_of(request))

    def page_event(triggers, fn, inputs, outputs, tab, go, stop, on_error=None):
        """The page's run of a streaming handler: Go/Stop swap, a failure is a toast (see streaming.page_run)."""
        run = page_run(fn, len(outputs), h.live, tab, error_title, on_error)
        return [trigger(run, inputs, [*outputs, go, stop], **private, **model_events) for trigger in triggers]

    def api_endpoint(fn, inputs, outputs, name):  # the API's endpoint: the handler itself, errors raised
        gr.Button(visible=False).click(fn, inputs, outputs, api_name=name, **model_events)

    def stop_button(tab, btn, go, stats, events):
        """Stop ends the visitor's run at the model and waits for its last update, then says "stopped";
        only then are the events cancelled (one still queued): a cancel first would kill the handler while an
        update of its was on the way, which then landed after "stopped" (9 of 10 Stops before)."""
        def stop(line, request: gr.Request):
            return h.stop(tab, line, request), gr.update(visible=True), gr.update(visible=False)

        btn.click(stop, [stats], [stats, go, btn], queue=False, **private).then(
            None, None, None, cancels=events, queue=False, **private)

    # uploads and files handed out are deleted after an hour (checked every hour)
    with gr.Blocks(title="llmdemo", delete_cache=(3600, 3600)) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(t("intro"), elem_id="intro")
            with gr.Row(elem_id="lang-switch", scale=0):
                lang_en = gr.Button("English", size="sm", elem_id="lang-en")
                lang_zh = gr.Button("中文", size="sm", elem_id="lang-zh")
        def model_line_text(request: gr.Request = None) -> str:
            return msg("model_line", lang_of(request), name=host.lm.name, device=host.lm.device)

        model_line = gr.Markdown(model_line_text(), elem_classes="stats", elem_id="model-line")
        with gr.Accordion(t("limitations"), open=False, elem_id="limitations"):
            gr.Markdown(t("limitations_text"))

        with gr.Tabs() as tabs:
            with gr.Tab(t("tab_generation"), id="generation", elem_id="tab-generation") as tab_generation:
                g_in = gr.Textbox(label=t("prompt"), lines=4, placeholder=t("prompt_ph"), info=t("prompt_info"),
                                  elem_id="gen-in")
                g_count = gr.Markdown(elem_classes="stats", elem_id="gen-count")
                g_tp_show = tokenprobs.switch()  # token probabilities ("why this word"): webui/tokenprobs.py
                with gr.Row():
                    g_go = gr.Button(t("generate"), variant="primary", elem_id="gen-go")
                    g_stop = gr.Button(t("stop"), variant="stop", elem_id="gen-stop", visible=False)
                g_out = gr.Textbox(label=t("output"), lines=8, buttons=["copy"], elem_id="gen-out")
                g_stats = gr.Markdown(elem_classes="stats", elem_id="gen-stats")
                # --- token probabilities: the panels under the output, a click's events (webui/tokenprobs.py)
                g_tp, g_tp_outs, g_tp_evs = tokenprobs.build(
                    h, g_tp_show, g_out, g_stats,
                    lambda trig, fn, ins, outs: page_event(trig, fn, ins, outs, "generation", g_go, g_stop),
                    light_events)
                export_row("gen", lambda a, b, c, fmt: h.export_output("generation", a, b, c, fmt),
                           [g_in, g_out, g_stats], light_events)
                g_dec = decoding_controls("generation", settings)
                examples(GENERATION_EXAMPLES, [g_in])
                # the page's run: Handlers.generate itself when the token probabilities are off (tokenprobs.py)
                g_evs = page_event([g_go.click, g_in.submit], g_tp.generate, [g_in, *g_dec, g_tp_show], g_tp_outs,
                                   "generation", g_go, g_stop) + g_tp_evs
                api_endpoint(h.generate, [g_in, *g_dec], [g_out, g_stats], "generate")
                api_endpoint(g_tp.generate_json, [g_in, *g_dec], [gr.JSON(visible=False)], "generate_with_probs")
                stop_button("generation", g_stop, g_go, g_stats, g_evs)
                counter(g_in, g_count)

            with gr.Tab(t("tab_translation"), id="translation", elem_id="tab-translation") as tab_translation:
                with gr.Row():
                    t_src = gr.Dropdown(LANG_CHOICES, value="en", label=t("from"), elem_id="tr-src")
                    t_swap = gr.Button(t("swap"), scale=0, min_width=80, elem_id="tr-swap")
                    t_tgt = gr.Dropdown(LANG_CHOICES, value="fr", label=t("to"), elem_id="tr-tgt")
                # the default model cannot write Chinese: said whenever Chinese is one of the two languages
                t_note = gr.Markdown(t("zh_note"), visible=False, elem_id="tr-zh-note")
                with gr.Row():
                    with gr.Column():
                        t_in = gr.Textbox(label=t("text"), lines=6, placeholder=t("text_ph"), info=t("text_info"),
                                          elem_id="tr-in")
                        t_count = gr.Markdown(elem_classes="stats", elem_id="tr-count")
                    t_out = gr.Textbox(label=t("translation"), lines=6, buttons=["copy"], elem_id="tr-out")
                with gr.Row():
                    t_go = gr.Button(t("translate"), variant="primary", elem_id="tr-go")
                    t_stop = gr.Button(t("stop"), variant="stop", elem_id="tr-stop", visible=False)
                t_stats = gr.Markdown(elem_classes="stats", elem_id="tr-stats")
                export_row("tr", lambda a, b, c, fmt: h.export_output("translation", a, b, c, fmt),
                           [t_in, t_out, t_stats], light_events)
                t_dec = decoding_controls("translation", settings)
                examples(TRANSLATION_EXAMPLES, [t_in, t_src, t_tgt])
                for dd in (t_src, t_tgt):
                    dd.change(lambda a, b: gr.update(visible="zh" in (a, b)), [t_src, t_tgt], [t_note],
                              queue=False, show_progress="hidden", **private)
                t_swap.click(h.swap, [t_src, t_tgt, t_in, t_out], [t_src, t_tgt, t_in, t_out], **private, queue=False)
                t_evs = page_event([t_go.click, t_in.submit], h.translate, [t_in, t_src, t_tgt, *t_dec],
                                   [t_out, t_stats], "translation", t_go, t_stop)
                api_endpoint(h.translate, [t_in, t_src, t_tgt, *t_dec], [t_out, t_stats], "translate")
                stop_button("translation", t_stop, t_go, t_stats, t_evs)
                counter(t_in, t_count)

            with gr.Tab(t("tab_dialogue"), id="dialogue", elem_id="tab-dialogue") as tab_dialogue:
                c_system = gr.Textbox(tasks.DEFAULT_SYSTEM_PROMPT, label=t("system"), lines=1)
                c_bot = gr.Chatbot(label=t("chat"), height=380, sanitize_html=True, buttons=["copy"], editable="user",
                                   elem_id="chat-bot")
                with gr.Row(equal_height=True):
                    c_in = gr.Textbox(label=t("message"), placeholder=t("message_ph"), info=t("message_info"),
                                      scale=4, elem_id="chat-in")
                    # Send becomes Stop while a reply runs
                    c_go = gr.Button(t("send"), variant="primary", scale=1, min_width=80, elem_id="chat-send")
                    c_stop = gr.Button(t("stop"), variant="stop", scale=1, min_width=80, visible=False,
                                       elem_id="chat-stop")
                c_count = gr.Markdown(elem_classes="stats", elem_id="chat-count")
                with gr.Row():
                    c_retry = gr.Button(t("retry"), elem_id="chat-retry")
                    c_undo = gr.Button(t("undo"), elem_id="chat-undo")
                    c_clear = gr.Button(t("clear"), elem_id="chat-clear")
                c_stats = gr.Markdown(elem_classes="stats", elem_id="chat-stats")
                export_row("chat", h.export_chat, [c_bot, c_system], light_events)
                c_dec = decoding_controls("dialogue", settings)
                examples([[e] for e in CHAT_EXAMPLES], [c_in])
                turn_in = [c_bot, c_system, *c_dec]
                turn_out = [c_bot, c_in, c_stats]
                # each turn is the first step of its event (an edit's data reaches only that step), and ends idle
                c_events = page_event([c_go.click, c_in.submit], h.chat_ui, [c_in, *turn_in], turn_out, "dialogue",
                                      c_go, c_stop)
                c_events += page_event([c_retry.click], h.retry, turn_in, turn_out, "dialogue", c_go, c_stop)
                # a failed edit puts the conversation back as it was (the page shows the edited text already)
                c_events += page_event([c_bot.edit], h.edit, turn_in, turn_out, "dialogue", c_go, c_stop,
                                       on_error=h.edit_undone)
                # the API's /chat: the whole turn, message box emptied (the page uses chat_ui)
                api_endpoint(h.chat, [c_in, *turn_in], turn_out, "chat")
                stop_button("dialogue", c_stop, c_go, c_stats, c_events)
                c_undo_ev = c_undo.click(h.undo, [c_bot], [c_bot, c_in], **private, **light_events)
                c_clear_ev = c_clear.click(lambda: ([], "", ""), None, [c_bot, c_in, c_stats], **private, queue=False)
                # the conversation survives a reload: kept in this browser's own storage (never on the server),
                # saved when a turn, Undo or Clear ends, put back when the page loads
                save_js = "(h) => { try { localStorage.setItem('llmdemo-chat', JSON.stringify(h || [])); } " \
                          "catch (e) { console.warn(e); } return [h]; }"
                for ev in [*c_events, c_undo_ev, c_clear_ev]:
                    ev.then(None, [c_bot], None, js=save_js, queue=False, **private)
                # what comes back is checked and escaped on the server like any history (saved_chat)
                load_js = "() => { try { return [JSON.parse(localStorage.getItem('llmdemo-chat') || '[]')]; } " \
                          "catch (e) { return [[]]; } }"
                demo.load(h.saved_chat, [c_bot], [c_bot], js=load_js, queue=False, show_progress="hidden", **private)
                counter(c_in, c_count)

            with gr.Tab(t("tab_summarization"), id="summarization", elem_id="tab-summarization") as tab_summarization:
                s_in = gr.Textbox(label=t("document"), lines=10, placeholder=t("document_ph"),
                                  info=t("document_info"), elem_id="sum-in")
                s_count = gr.Markdown(elem_classes="stats", elem_id="sum-count")
                s_len = gr.Radio(list(tasks.SUMMARY_LENGTHS), value="short", label=t("length"))
                with gr.Row():
                    s_go = gr.Button(t("summarize"), variant="primary", elem_id="sum-go")
                    s_stop = gr.Button(t("stop"), variant="stop", elem_id="sum-stop", visible=False)
                s_out = gr.Textbox(label=t("summary"), lines=5, buttons=["copy"], elem_id="sum-out")
                s_stats = gr.Markdown(elem_classes="stats", elem_id="sum-stats")
                export_row("sum", lambda a, b, c, fmt: h.export_output("summarization", a, b, c, fmt),
                           [s_in, s_out, s_stats], light_events)
                s_dec = decoding_controls("summarization", settings, tasks.SUMMARY_LENGTHS["short"][1])
                # each length has its own token budget; choosing a length sets it
                s_len.change(lambda n: gr.update(value=tasks.SUMMARY_LENGTHS[n][1]), [s_len], [s_dec[0]],
                             **private, queue=False)
                examples(SUMMARY_EXAMPLES, [s_in, s_len])
                s_evs = page_event([s_go.click, s_in.submit], h.summarize, [s_in, s_len, *s_dec], [s_out, s_stats],
                                   "summarization", s_go, s_stop)
                api_endpoint(h.summarize, [s_in, s_len, *s_dec], [s_out, s_stats], "summarize")
                stop_button("summarization", s_stop, s_go, s_stats, s_evs)
                counter(s_in, s_count)

            with gr.Tab(t("tab_compare"), id="compare", elem_id="tab-compare") as tab_compare:
                compare.build(host, settings, h.live, votes, light_events, model_events, private, error_title)

            with gr.Tab(t("tab_model"), id="model", elem_id="tab-model") as tab_model:
                m_info = gr.Markdown(h.model_info(), elem_id="model-info")
                # the server's text in the visitor's language: at load, and when the switch is used (its JS sets
                # the cookie the handler reads, before the request goes out)
                lang_events = [
                    demo.load(h.model_info, None, [m_info], js=switch_js(None), queue=False, **private),
                    lang_en.click(h.model_info, None, [m_info], js=switch_js("en"), queue=False, **private),
                    lang_zh.click(h.model_info, None, [m_info], js=switch_js("zh-CN"), queue=False, **private)]
                # on a hosted app the operator chose the model: visitors see it, and cannot swap it for everyone
                m_preset = gr.Dropdown(h.preset_choices(), value=host.lm.name if host.lm.name in dict(
                    (v, k) for k, v in h.preset_choices()) else DEFAULT_MODEL, label=t("preset"),
                    visible=not settings.hosted, elem_id="model-preset")
                m_custom = gr.Textbox(label=t("custom"), placeholder=t("custom_ph"), visible=not settings.hosted,
                                      elem_id="model-custom")
                m_go = gr.Button(t("load"), variant="primary", visible=not settings.hosted, elem_id="model-load")
                gr.Markdown(t("hosted_note") if settings.hosted else t("load_note"), elem_classes="stats")
                # choosing a preset means that preset: the box (which wins when filled in) is emptied
                m_preset.change(lambda: "", None, [m_custom], queue=False, **private)
                # the box is emptied as loading starts (the name is in the progress and in any error message),
                # so a failed name never stays to win over the next preset chosen
                m_name = gr.State("")
                m_go.click(lambda c: ("", c), [m_custom], [m_custom, m_name], queue=False, **private).then(
                    h.load_model, [m_preset, m_name], [m_info], **private,
                    concurrency_id="load", concurrency_limit=1).then(
                    model_line_text, None, [model_line], **private, queue=False)

            with gr.Tab(t("tab_evaluation"), id="evaluation", elem_id="tab-evaluation") as tab_evaluation:
                e = EvalHandlers(host, settings, h.live)
                gr.Markdown(t("eval_intro"), elem_classes="stats")
                with gr.Row():
                    e_task = gr.Dropdown(list(EVAL_TASKS), value="translation", label=t("task"), elem_id="eval-task")
                    e_file = gr.Dropdown(e.benchmarks("translation"), value=e.default("translation"),
                                         label=t("bench_file"), elem_id="eval-file", min_width=280)
                    e_limit = gr.Number(10, precision=0, label=t("limit"), minimum=1,
                                        maximum=settings.eval_examples_cap, elem_id="eval-limit")
                e_help = gr.Markdown(e.help("translation"), elem_classes="stats", elem_id="eval-help")
                e_upload = gr.File(label=t("upload"), file_types=[".jsonl", ".txt"], type="filepath", height=120,
                                   elem_id="eval-upload")
                with gr.Row():
                    e_go = gr.Button(t("run_eval"), variant="primary", elem_id="eval-go")
                    e_stop = gr.Button(t("stop"), variant="stop", elem_id="eval-stop", visible=False)
                e_status = gr.Markdown(elem_id="eval-status")
                with gr.Row():  # side by side on a desktop, one above the other on a phone
                    with gr.Column(min_width=320):
                        e_metrics = gr.Markdown(elem_id="eval-metrics")
                    with gr.Column(min_width=320):
                        e_plot = gr.Image(label=t("metrics"), type="filepath", height=260, elem_id="eval-plot")
                e_table = gr.Dataframe(headers=["row", "input", "reference", "prediction", "score"], label=t("rows"),
                                       wrap=True, max_height=400, column_widths=["11%", "29%", "24%", "24%", "12%"],
                                       elem_id="eval-table")
                with gr.Row():
                    e_index = gr.Number(0, precision=0, label=t("row"), minimum=0, elem_id="eval-row")
                    e_send = gr.Button(t("send_example"), interactive=False, elem_id="eval-send")
                with gr.Accordion(t("report"), open=False, elem_id="eval-report"):
                    e_report = gr.Markdown()
                e_files = gr.File(label=t("report_files"), file_count="multiple")
                e_rows = gr.State([])
                # every run this visitor can see in one table (eval/leaderboard.py), and two of them side by side
                with gr.Accordion(t("board"), open=False, elem_id="eval-board"):
                    e_board_go = gr.Button(t("board_refresh"), size="sm", elem_id="eval-board-refresh")
                    e_board = gr.Markdown(elem_id="eval-board-table")
                    with gr.Row():
                        e_da = gr.Dropdown([], label=t("diff_a"), elem_id="eval-diff-a")
                        e_db = gr.Dropdown([], label=t("diff_b"), elem_id="eval-diff-b")
                    e_diff_go = gr.Button(t("diff_go"), size="sm", elem_id="eval-diff-go")
                    e_diff = gr.Dataframe(headers=["id", "input", "A", "B", "score A", "score B", "changed"],
                                          wrap=True, max_height=400, elem_id="eval-diff")
                e_board_go.click(e.leaderboard, None, [e_board, e_da, e_db], **private, **light_events)
                e_diff_go.click(e.diff, [e_da, e_db], [e_diff], **private, **light_events)

                def help_line(task, request: gr.Request = None):
                    return e.help(task, lang_of(request))

                def task_changed(task, request: gr.Request = None):
                    return e.choices(task), help_line(task, request)

                e_task.change(task_changed, [e_task], [e_file, e_help], **private, queue=False)
                for ev in lang_events:  # the help line in the visitor's language, once the cookie is set
                    ev.then(help_line, [e_task], [e_help], queue=False, **private)
                # one evaluation at a time; it runs at batch priority, so visitors' requests go first. Progress
                # shows in one place (the status line), not over every output
                def eval_failed(request: gr.Request = None, **_arguments):  # the status line says it did not finish
                    return msg("eval_failed", lang_of(request)), *[gr.skip()] * 7

                e_run = page_run(e.run_ui, 8, h.live, "evaluation", error_title, eval_failed)
                e_ev = e_go.click(e_run, [e_task, e_file, e_upload, e_limit],
                                  [e_status, e_metrics, e_plot, e_table, e_files, e_rows, e_report, e_send, e_go, e_stop],
                                  **private, show_progress_on=[e_status], concurrency_id="eval", concurrency_limit=1)
                stop_button("evaluation", e_stop, e_go, e_status, [e_ev])
                e_ev.then(e.leaderboard, None, [e_board, e_da, e_db], **private, **light_events)
                e_send.click(e.send_to_tab, [e_rows, e_index, e_task, e_file], [tabs, t_in, s_in, c_in, t_src, t_tgt],
                             **private, **light_events)

            with gr.Tab(t("tab_inside"), id="inside", elem_id="tab-inside") as tab_inside:
                ins = InsideHandlers(host, settings)
                from llmdemo.internals import layer_head_counts

                try:
                    n_layers, n_heads = layer_head_counts(host.lm)
                except AttributeError:  # a backend without the model's internals (llama.cpp, a server)
                    n_layers, n_heads = 2, 2  # placeholders: the tab's handlers refuse with a message
                gr.Markdown(t("inside_intro"), elem_classes="stats")
                i_text = gr.Textbox("The capital of France is", label=t("text"), lines=2, elem_id="inside-in")
                with gr.Row():
                    i_layer = gr.Slider(0, n_layers - 1, value=n_layers - 1, step=1, label=t("att_layer"))
                    i_head = gr.Slider(-1, n_heads - 1, value=-1, step=1, label=t("att_head"))
                i_go = gr.Button(t("analyze"), variant="primary", elem_id="inside-go")
                i_chips = gr.HTML(elem_id="inside-tokens")
                i_summary = gr.Markdown(elem_classes="stats")
                with gr.Row():
                    i_next = gr.Label(label=t("next_probs"), num_top_classes=10)
                    with gr.Column():
                        i_choice = gr.Radio([], label=t("append_cand"))
                        with gr.Row():
                            i_add = gr.Button(t("append_chosen"))
                            i_greedy = gr.Button(t("greedy_step"), elem_id="inside-greedy")
                            i_sample = gr.Button(t("sampled_step"))
                i_heat = gr.HighlightedText(label=t("surprisal"), show_legend=False, elem_id="inside-heat")
                i_att = gr.Plot(label=t("attention"), elem_id="inside-att")
                i_theme = gr.Textbox("light", visible=False)
                i_out = [i_chips, i_summary, i_next, i_choice, i_heat, i_att]
                i_in = [i_text, i_layer, i_head, i_theme]
                i_go.click(ins.analyze, i_in, i_out, js=THEME_JS, **private, **model_events)

                def stepper(mode):
                    def step(text, choice, request: gr.Request = None):
                        return ins.step(text, choice, mode, request=request)
                    return step

                for btn, mode in ((i_add, "chosen"), (i_greedy, "greedy"), (i_sample, "sampled")):
                    btn.click(stepper(mode), [i_text, i_choice], [i_text],
                              **private, **model_events).then(
                        ins.analyze, i_in, i_out, js=THEME_JS, **private, **model_events)

        # the language switch (and a remembered choice at load) re-sends every tab's name: Gradio's tab bar
        # translates a name when it receives it, so after changeLocale only the open tab's name changed
        tab_blocks = [tab_generation, tab_translation, tab_dialogue, tab_summarization, tab_compare, tab_model,
                      tab_evaluation, tab_inside]
        tab_keys = ["tab_generation", "tab_translation", "tab_dialogue", "tab_summarization", "tab_compare",
                    "tab_model", "tab_evaluation", "tab_inside"]

        def relabel():
            return [gr.update(label=t(k)) for k in tab_keys]

        for ev in lang_events:
            ev.then(relabel, None, tab_blocks, queue=False, show_progress="hidden", **private)
            ev.then(model_line_text, None, [model_line], queue=False, show_progress="hidden", **private)

        demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    return demo
