"""The Inside the model tab: the tokens, the next token's distribution, surprisal and attention."""

from __future__ import annotations

import gradio as gr

from ..i18n import t
from ..inside import InsideHandlers
from .context import TabContext

# the page's theme, read in the browser and handed to the Inside tab's plot (the server cannot know it)
THEME_JS = "(...a) => [...a.slice(0, -1), document.body.classList.contains('dark') || " \
           "document.documentElement.classList.contains('dark') ? 'dark' : 'light']"


def build(ctx: TabContext) -> gr.Tab:
    settings = ctx.settings
    with gr.Tab(t("tab_inside"), id="inside", elem_id="tab-inside") as tab:
        ins = InsideHandlers(ctx.host, settings)
        from llmdemo.internals import layer_head_counts

        try:
            n_layers, n_heads = layer_head_counts(ctx.host.lm)
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
        i_go.click(ins.analyze, i_in, i_out, js=THEME_JS, **ctx.private, **ctx.model_events)

        def stepper(mode):
            def step(text, choice, request: gr.Request = None):
                return ins.step(text, choice, mode, request=request)
            return step

        for btn, mode in ((i_add, "chosen"), (i_greedy, "greedy"), (i_sample, "sampled")):
            btn.click(stepper(mode), [i_text, i_choice], [i_text],
                      **ctx.private, **ctx.model_events).then(
                ins.analyze, i_in, i_out, js=THEME_JS, **ctx.private, **ctx.model_events)
    return tab
