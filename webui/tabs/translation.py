"""The Translation tab: a text from one language into another."""

from __future__ import annotations

import gradio as gr

from llmdemo import prompts
from llmdemo.presets import TASK_MODELS

from ..base import HandlerBase
from ..controls import LANG_CHOICES, Decoding, decoding_controls, takes_decoding
from ..errors import friendly
from ..i18n import lang_of, t
from ..stats import stats_line
from .context import TabContext, examples

TRANSLATION_EXAMPLES = [
    ["Please book a table for four people at eight o'clock tonight.", "en", "zh"],
    ["Please book a table for four people at eight o'clock tonight.", "en", "fr"],
    ["The library opens at nine o'clock every morning.", "en", "zh"],
    ["Where is the nearest train station?", "en", "de"],
    ["Le musée est fermé le lundi.", "fr", "en"],
]


class TranslationHandlers(HandlerBase):
    """The Translation tab's run and its language swap."""

    @friendly
    @takes_decoding
    def translate(self, text: str, source: str = "en", target: str = "fr", decoding: Decoding = Decoding(),
                  model=None, request: gr.Request = None):
        """Translate text from the source to the target language (codes or names). Streams text.

        ``model``: one of the bundled models (default: the multilingual one, see ``task_models``)."""
        cfg = self.config("translation", decoding)
        lm = self.task_lm("translation", model)
        p = prompts.translation_prompt(lm, self.check_length(text), source, target, cfg.max_new_tokens)
        out, stats, lang = "", None, lang_of(request)
        for out, stats in self._stream(p, cfg, lang, "translation", request, lm=lm):
            yield out.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield prompts.postprocess("translation", out), stats_line(stats, cfg=cfg, lang=lang)

    @staticmethod
    def swap(source: str, target: str, text: str, translation: str):
        """Swap the languages; the translation (if there is one) becomes the new text, and the output and its
        stats line are cleared (the line described an output no longer shown)."""
        return target, source, (translation if (translation or "").strip() else text), "", ""


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    with gr.Tab(t("tab_translation"), id="translation", elem_id="tab-translation") as tab:
        with gr.Row():
            t_src = gr.Dropdown(LANG_CHOICES, value="en", label=t("from"), elem_id="tr-src")
            t_swap = gr.Button(t("swap"), scale=0, min_width=80, elem_id="tr-swap")
            t_tgt = gr.Dropdown(LANG_CHOICES, value="fr", label=t("to"), elem_id="tr-tgt")
        # the tab's own model (the multilingual bundled one by default), and why: said on the page
        offered, default = h.task_models("translation")
        with gr.Row():  # side by side on a desktop; on a phone the note goes under the picker (min widths)
            t_model = gr.Dropdown(offered, value=default, label=t("tr_model"), scale=1, min_width=260,
                                  elem_id="tr-model")
            with gr.Column(scale=2, min_width=300):
                gr.Markdown(t("tr_model_note" if default == TASK_MODELS["translation"] else "tr_model_missing"),
                            elem_id="tr-model-note")
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
        ctx.export_row("tr", lambda a, b, c, fmt: h.export_output("translation", a, b, c, fmt),
                       [t_in, t_out, t_stats])
        ctx.inputs.update({"tr-in": t_in, "tr-src": t_src, "tr-tgt": t_tgt})  # an Evaluation row is sent here
        t_dec = decoding_controls("translation", settings)
        examples(TRANSLATION_EXAMPLES, [t_in, t_src, t_tgt])
        t_swap.click(h.swap, [t_src, t_tgt, t_in, t_out], [t_src, t_tgt, t_in, t_out, t_stats], **ctx.private,
                     queue=False)
        t_evs = ctx.page_event([t_go.click, t_in.submit], h.translate, [t_in, t_src, t_tgt, *t_dec, t_model],
                               [t_out, t_stats], "translation", t_go, t_stop)
        ctx.api_endpoint(h.translate, [t_in, t_src, t_tgt, *t_dec, t_model], [t_out, t_stats], "translate")
        ctx.stop_button("translation", t_stop, t_go, t_stats, t_evs)
        ctx.counter(t_in, t_count)
    return tab
