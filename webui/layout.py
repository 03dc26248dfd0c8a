"""The Gradio Blocks: one tab per task over one shared model."""

from __future__ import annotations

import gradio as gr

from eval.tasks import TASKS as EVAL_TASKS
from llmdemo import tasks
from llmdemo.config import TASK_DEFAULTS
from llmdemo.host import ModelHost
from llmdemo.presets import DEFAULT_MODEL

from .handlers import EvalHandlers, Handlers, InsideHandlers
from .settings import AppSettings

LANG_CHOICES = [(f"{name} ({code})", code) for code, name in tasks.LANGUAGES.items()]

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

LIMITATIONS = (
    "- The default model is small (135M parameters): it barely translates (FLORES en-fr BLEU about 1.4), "
    "cannot write Chinese, and its facts and summaries are often wrong. Check anything that matters.\n"
    "- Outputs can be biased or offensive: on CrowS-Pairs the model prefers the more stereotyping sentence of a "
    "pair more often than not (50% would be unbiased). Run the **bias** task in the Evaluation tab, or see "
    "\"Bias\" in the README, for the figures by bias type.\n"
    "- Nothing here is filtered for safety; do not use it for decisions about people.")

CSS = """
.stats {font-size: 0.85em; opacity: 0.8}
.chips {line-height: 2.2em}
.chip {padding: 2px 4px; margin: 1px; border-radius: 4px; font-family: monospace; white-space: pre}
.chip sub {opacity: 0.55; font-size: 0.7em; margin-left: 2px}
"""


def launch_options(settings: AppSettings) -> dict:
    """Keyword arguments for ``demo.launch`` shared by app.py and the tests."""
    # eval runs are written to the output folder, which is never served: results reach a visitor as
    # private copies (handlers.py)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    # show_error: Gradio's own input checks (e.g. "Expected a float") reach the user; our handlers
    # already turn every other exception into a short message without a traceback
    from starlette.middleware import Middleware

    from .limits import BodyLimit

    return {"css": CSS, "show_error": True, "max_file_size": f"{settings.max_upload_mb}mb",
            "app_kwargs": {"middleware": [Middleware(BodyLimit, limit=settings.max_request_kb * 1024)]}}


def decoding_controls(task: str, settings: AppSettings, max_new_tokens: int | None = None) -> list:
    """The collapsible panel of decoding settings, with this task's defaults."""
    d = TASK_DEFAULTS[task].replace(max_new_tokens=max_new_tokens)
    with gr.Accordion("Decoding settings", open=False):
        with gr.Row():
            max_new = gr.Slider(1, settings.max_new_tokens, value=min(d.max_new_tokens, settings.max_new_tokens),
                                step=1, label="Max new tokens")
            temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.05, label="Top-p")
        with gr.Row():
            top_k = gr.Slider(0, 200, value=d.top_k, step=1, label="Top-k (0 = off)")
            rep = gr.Slider(1.0, 2.0, value=d.repetition_penalty, step=0.05, label="Repetition penalty")
            seed = gr.Number(value=None, precision=0, label="Seed (empty = random)")
    return [max_new, temperature, top_p, top_k, rep, seed]


def build_demo(host: ModelHost, settings: AppSettings | None = None) -> gr.Blocks:
    settings = settings or AppSettings()
    h = Handlers(host, settings)
    # Gradio lets up to `concurrency` generation events run at once; they all hand their requests to the
    # model's scheduler, which batches them (at most max_running rows per step) and queues the rest
    host.configure(max_running=settings.max_running)
    model_events = dict(concurrency_id="model", concurrency_limit=settings.concurrency)
    # cheap handlers that do no model work still go through the queue, so sizes are checked within its limits
    light_events = dict(concurrency_id="light", concurrency_limit=4)

    # uploads and files handed out are deleted after an hour (checked every hour)
    with gr.Blocks(title="llmdemo", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# llmdemo\nTry a language model in your browser. Every output streams; **Stop** ends it at once.")
        model_line = gr.Markdown(f"Model: **{host.lm.name}** on {host.lm.device}", elem_classes="stats")
        with gr.Accordion("Limitations", open=False, elem_id="limitations"):
            gr.Markdown(LIMITATIONS)

        with gr.Tabs() as tabs:
            with gr.Tab("Generation", id="generation"):
                g_in = gr.Textbox(label="Prompt", lines=4, placeholder="Ask something, or start a text to continue")
                with gr.Row():
                    g_go = gr.Button("Generate", variant="primary")
                    g_stop = gr.Button("Stop", variant="stop")
                g_out = gr.Textbox(label="Output", lines=8, buttons=["copy"], elem_id="gen-out")
                g_stats = gr.Markdown(elem_classes="stats", elem_id="gen-stats")
                g_dec = decoding_controls("generation", settings)
                gr.Examples(GENERATION_EXAMPLES, [g_in])
                g_ev = g_go.click(h.generate, [g_in, *g_dec], [g_out, g_stats], api_name="generate", **model_events)
                g_ev2 = g_in.submit(h.generate, [g_in, *g_dec], [g_out, g_stats], api_visibility="private",
                                    **model_events)
                g_stop.click(None, cancels=[g_ev, g_ev2])

            with gr.Tab("Translation", id="translation"):
                with gr.Row():
                    t_src = gr.Dropdown(LANG_CHOICES, value="en", label="From")
                    t_swap = gr.Button("⇄ Swap", scale=0, min_width=80)
                    t_tgt = gr.Dropdown(LANG_CHOICES, value="fr", label="To")
                with gr.Row():
                    t_in = gr.Textbox(label="Text", lines=6, placeholder="Text to translate")
                    t_out = gr.Textbox(label="Translation", lines=6, buttons=["copy"], elem_id="tr-out")
                with gr.Row():
                    t_go = gr.Button("Translate", variant="primary")
                    t_stop = gr.Button("Stop", variant="stop")
                t_stats = gr.Markdown(elem_classes="stats")
                t_dec = decoding_controls("translation", settings)
                gr.Examples(TRANSLATION_EXAMPLES, [t_in, t_src, t_tgt])
                t_swap.click(lambda a, b, x, y: (b, a, y, x), [t_src, t_tgt, t_in, t_out], [t_src, t_tgt, t_in, t_out],
                             api_visibility="private", queue=False)
                t_ev = t_go.click(h.translate, [t_in, t_src, t_tgt, *t_dec], [t_out, t_stats], api_name="translate",
                                  **model_events)
                t_stop.click(None, cancels=[t_ev])

            with gr.Tab("Dialogue", id="dialogue"):
                c_system = gr.Textbox(tasks.DEFAULT_SYSTEM_PROMPT, label="System prompt", lines=1)
                c_bot = gr.Chatbot(label="Chat", height=380, sanitize_html=True, buttons=["copy"])
                with gr.Row():
                    c_in = gr.Textbox(label="Message", placeholder="Type a message and press Enter", scale=4, elem_id="chat-in")
                    c_go = gr.Button("Send", variant="primary", scale=1)
                with gr.Row():
                    c_stop = gr.Button("Stop", variant="stop")
                    c_retry = gr.Button("Retry")
                    c_undo = gr.Button("Undo")
                    c_clear = gr.Button("Clear")
                c_stats = gr.Markdown(elem_classes="stats")
                c_dec = decoding_controls("dialogue", settings)
                gr.Examples([[e] for e in CHAT_EXAMPLES], [c_in])
                c_ev = c_go.click(h.chat, [c_in, c_bot, c_system, *c_dec], [c_bot, c_in, c_stats], api_name="chat",
                                  **model_events)
                c_ev2 = c_in.submit(h.chat, [c_in, c_bot, c_system, *c_dec], [c_bot, c_in, c_stats],
                                    api_visibility="private", **model_events)
                c_ev3 = c_retry.click(h.retry, [c_bot, c_system, *c_dec], [c_bot, c_in, c_stats],
                                      api_visibility="private", **model_events)
                c_stop.click(None, cancels=[c_ev, c_ev2, c_ev3])
                c_undo.click(h.undo, [c_bot], [c_bot, c_in], api_visibility="private", **light_events)
                c_clear.click(lambda: ([], "", ""), None, [c_bot, c_in, c_stats], api_visibility="private", queue=False)

            with gr.Tab("Summarization", id="summarization"):
                s_in = gr.Textbox(label="Document", lines=10, placeholder="Paste an article")
                s_len = gr.Radio(list(tasks.SUMMARY_LENGTHS), value="short", label="Length")
                with gr.Row():
                    s_go = gr.Button("Summarize", variant="primary")
                    s_stop = gr.Button("Stop", variant="stop")
                s_out = gr.Textbox(label="Summary", lines=5, buttons=["copy"], elem_id="sum-out")
                s_stats = gr.Markdown(elem_classes="stats")
                s_dec = decoding_controls("summarization", settings, tasks.SUMMARY_LENGTHS["short"][1])
                # each length has its own token budget; choosing a length sets it
                s_len.change(lambda n: gr.update(value=tasks.SUMMARY_LENGTHS[n][1]), [s_len], [s_dec[0]],
                             api_visibility="private", queue=False)
                gr.Examples(SUMMARY_EXAMPLES, [s_in, s_len])
                s_ev = s_go.click(h.summarize, [s_in, s_len, *s_dec], [s_out, s_stats], api_name="summarize",
                                  **model_events)
                s_stop.click(None, cancels=[s_ev])

            with gr.Tab("Model", id="model"):
                m_info = gr.Markdown(h.model_info())
                # on a hosted app the operator chose the model: visitors see it, and cannot swap it for everyone
                m_preset = gr.Dropdown(h.preset_choices(), value=host.lm.name if host.lm.name in dict(
                    (v, k) for k, v in h.preset_choices()) else DEFAULT_MODEL, label="Preset",
                    visible=not settings.hosted)
                m_custom = gr.Textbox(label="Or a hub id / local path", placeholder="e.g. Helsinki-NLP/opus-mt-en-de",
                                      visible=not settings.hosted)
                m_go = gr.Button("Load model", variant="primary", visible=not settings.hosted)
                gr.Markdown("The model is chosen by the operator of this server." if settings.hosted else
                            "Loading frees the previous model. If loading fails, the previous model stays. "
                            "Hub models need internet access; the bundled default works offline.",
                            elem_classes="stats")
                m_go.click(h.load_model, [m_preset, m_custom], [m_info], api_visibility="private",
                           concurrency_id="load", concurrency_limit=1).then(
                    lambda: f"Model: **{host.lm.name}** on {host.lm.device}", None, [model_line],
                    api_visibility="private", queue=False)

            with gr.Tab("Evaluation", id="evaluation"):
                e = EvalHandlers(host, settings)
                gr.Markdown("Score the loaded model with the app's own prompts on a benchmark file (the slices "
                            "shipped with llmdemo, or your own JSONL upload of at most "
                            f"{settings.max_upload_mb} MB). Greedy decoding; BLEU/chrF by sacrebleu, ROUGE by "
                            "rouge-score, bias on CrowS-Pairs. For long runs use `python -m eval`.",
                            elem_classes="stats")
                with gr.Row():
                    e_task = gr.Dropdown(list(EVAL_TASKS), value="translation",
                                         label="Task")
                    e_file = gr.Dropdown(e.benchmarks("translation"), value=e.default("translation"),
                                         label="Benchmark file")
                    e_upload = gr.File(label="…or upload a JSONL file", file_types=[".jsonl", ".txt"], type="filepath")
                    e_limit = gr.Number(10, precision=0, label="Examples (limit)", minimum=1,
                                        maximum=settings.eval_examples_cap)
                with gr.Row():
                    e_go = gr.Button("Run evaluation", variant="primary")
                    e_stop = gr.Button("Stop", variant="stop")
                with gr.Row():
                    e_metrics = gr.Markdown()
                    e_plot = gr.Image(label="Metrics", type="filepath", height=260)
                e_table = gr.Dataframe(headers=["id", "input", "reference", "prediction", "score"], label="Examples",
                                       wrap=True, max_height=400)
                e_files = gr.File(label="Report and data", file_count="multiple")
                e_rows = gr.State([])
                with gr.Row():
                    e_index = gr.Number(0, precision=0, label="Row (0 = first)")
                    e_send = gr.Button("Open this example in its task tab")
                e_task.change(e.choices, [e_task], [e_file], api_visibility="private", queue=False)
                # one evaluation at a time; it runs at batch priority, so visitors' requests go first
                e_ev = e_go.click(e.run, [e_task, e_file, e_upload, e_limit],
                                  [e_metrics, e_plot, e_table, e_files, e_rows], api_visibility="private",
                                  concurrency_id="eval", concurrency_limit=1)
                e_stop.click(None, cancels=[e_ev])
                e_send.click(e.send, [e_rows, e_index, e_task], [tabs, t_in, s_in, c_in], api_visibility="private",
                             queue=False)

            with gr.Tab("Inside the model", id="inside"):
                ins = InsideHandlers(host, settings)
                from llmdemo.internals import layer_head_counts

                try:
                    n_layers, n_heads = layer_head_counts(host.lm)
                except AttributeError:  # a backend without the model's internals (llama.cpp, a server)
                    n_layers, n_heads = 2, 2  # placeholders: the tab's handlers refuse with a message
                gr.Markdown("What the model does with a text: the tokens it sees, the probability of each possible "
                            "next token, how surprising each actual token was, and where attention goes.",
                            elem_classes="stats")
                i_text = gr.Textbox("The capital of France is", label="Text", lines=2, elem_id="inside-in")
                with gr.Row():
                    i_layer = gr.Slider(0, n_layers - 1, value=n_layers - 1, step=1, label="Attention layer")
                    i_head = gr.Slider(-1, n_heads - 1, value=-1, step=1, label="Head (-1 = average)")
                i_go = gr.Button("Analyze", variant="primary")
                i_chips = gr.HTML(elem_id="inside-tokens")
                i_summary = gr.Markdown(elem_classes="stats")
                with gr.Row():
                    i_next = gr.Label(label="Next-token probabilities (top 10)", num_top_classes=10)
                    with gr.Column():
                        i_choice = gr.Radio([], label="Append a candidate")
                        with gr.Row():
                            i_add = gr.Button("Append chosen")
                            i_greedy = gr.Button("Greedy step")
                            i_sample = gr.Button("Sampled step")
                i_heat = gr.HighlightedText(label="Surprisal (deeper red = the model found the token more surprising)",
                                            show_legend=False)
                i_att = gr.Plot(label="Attention")
                i_out = [i_chips, i_summary, i_next, i_choice, i_heat, i_att]
                i_in = [i_text, i_layer, i_head]
                i_go.click(ins.analyze, i_in, i_out, api_visibility="private", **model_events)
                for btn, mode in ((i_add, "chosen"), (i_greedy, "greedy"), (i_sample, "sampled")):
                    btn.click(lambda t, c, m=mode: ins.step(t, c, m), [i_text, i_choice], [i_text],
                              api_visibility="private", **model_events).then(
                        ins.analyze, i_in, i_out, api_visibility="private", **model_events)

        demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    return demo
