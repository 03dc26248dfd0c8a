"""The Generation tab: continue a text or answer an instruction; the token probabilities on demand."""

from __future__ import annotations

import gradio as gr

from llmdemo import prompts

from .. import tokenprobs
from ..base import HandlerBase
from ..controls import Decoding, decoding_controls, takes_decoding
from ..errors import friendly
from ..i18n import lang_of, t
from ..stats import stats_line
from .context import TabContext, examples

GENERATION_EXAMPLES = [
    ["Explain in two sentences why the sky is blue."],
    ["Write a short poem about autumn leaves."],
    ["Give me three tips for learning a new language."],
]


class GenerationHandlers(HandlerBase):
    """The Generation tab's run."""

    @friendly
    @takes_decoding
    def generate(self, prompt: str, decoding: Decoding = Decoding(), request: gr.Request = None):
        """Continue a text (base models) or answer an instruction (chat models). Streams text."""
        cfg = self.config("generation", decoding)
        p = prompts.generation_prompt(self.host.lm, self.check_length(prompt), cfg.max_new_tokens)
        lang, text, stats = lang_of(request), "", None
        for text, stats in self._stream(p, cfg, lang, "generation", request):
            yield text.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield text.lstrip(), stats_line(stats, cfg=cfg, lang=lang)


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    with gr.Tab(t("tab_generation"), id="generation", elem_id="tab-generation") as tab:
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
            lambda trig, fn, ins, outs: ctx.page_event(trig, fn, ins, outs, "generation", g_go, g_stop),
            ctx.light_events)
        ctx.export_row("gen", lambda a, b, c, fmt: h.export_output("generation", a, b, c, fmt),
                       [g_in, g_out, g_stats])
        g_dec = decoding_controls("generation", settings)
        examples(GENERATION_EXAMPLES, [g_in])
        # the page's run: Handlers.generate itself when the token probabilities are off (tokenprobs.py)
        g_evs = ctx.page_event([g_go.click, g_in.submit], g_tp.generate, [g_in, *g_dec, g_tp_show], g_tp_outs,
                               "generation", g_go, g_stop) + g_tp_evs
        ctx.api_endpoint(h.generate, [g_in, *g_dec], [g_out, g_stats], "generate")
        ctx.api_endpoint(g_tp.generate_json, [g_in, *g_dec], [gr.JSON(visible=False)], "generate_with_probs")
        ctx.stop_button("generation", g_stop, g_go, g_stats, g_evs)
        ctx.counter(g_in, g_count)
    return tab
