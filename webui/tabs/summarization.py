"""The Summarization tab: a document in a short, medium or long summary."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from llmdemo import prompts

from ..base import HandlerBase
from ..controls import Decoding, decoding_controls, takes_decoding
from ..errors import friendly
from ..i18n import lang_of, t
from ..i18n import text as msg
from ..stats import stats_line
from .context import TabContext, examples

SUMMARY_EXAMPLES = [[
    "The city council voted on Tuesday to approve a new bridge across the river, ending a debate that lasted "
    "more than ten years. The bridge will cost about 20 million dollars and is expected to take three years to "
    "build. Supporters say it will cut commuting times in half for people living on the east bank, while "
    "opponents worry about noise and the loss of a park near the water. Construction is planned to start next "
    "spring, and the council promised to plant new trees to replace those that are removed.",
]]  # the text only: gr.Examples shows a translated choice's raw marker (__i18n__...) for the length


class SummarizationHandlers(HandlerBase):
    """The Summarization tab's run: cut at its last whole sentence when its budget ran out."""

    @friendly
    @takes_decoding
    def summarize(self, document: str, length: str = "short", decoding: Decoding = Decoding(),
                  request: gr.Request = None):
        """Summarize a document; length is short, medium or long. Streams text."""
        if decoding.max_new_tokens in (None, "") and length in prompts.SUMMARY_LENGTHS:
            decoding = replace(decoding, max_new_tokens=prompts.SUMMARY_LENGTHS[length][1])
        cfg = self.config("summarization", decoding)
        p = prompts.summarization_prompt(self.host.lm, self.check_length(document, "document"), length,
                                         cfg.max_new_tokens)
        out, stats, lang = "", None, lang_of(request)
        n_doc = len(document.split())
        for out, stats in self._stream(p, cfg, lang, "summarization", request):
            yield out.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        out = prompts.postprocess("summarization", out)
        notes = []
        if getattr(stats, "finish_reason", None) == "length" and prompts.whole_sentences(out) != out:
            out = prompts.whole_sentences(out)  # cut mid-sentence by its budget: shown up to its last full stop
            notes.append(msg("sum_cut", lang))
        n_sum = max(1, len(out.split()))
        notes.append(msg("compression", lang, x=n_doc / n_sum, a=n_doc, b=len(out.split())))
        yield out, stats_line(stats, " · ".join(notes), cfg=cfg, lang=lang)


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    with gr.Tab(t("tab_summarization"), id="summarization", elem_id="tab-summarization") as tab:
        s_in = gr.Textbox(label=t("document"), lines=10, placeholder=t("document_ph"),
                          info=t("document_info"), elem_id="sum-in")
        s_count = gr.Markdown(elem_classes="stats", elem_id="sum-count")
        # shown in the page's language (Gradio 6.31 translates choices' labels); the value stays the key
        s_len = gr.Radio([(t(f"len_{k}"), k) for k in prompts.SUMMARY_LENGTHS], value="short", label=t("length"))
        with gr.Row():
            s_go = gr.Button(t("summarize"), variant="primary", elem_id="sum-go")
            s_stop = gr.Button(t("stop"), variant="stop", elem_id="sum-stop", visible=False)
        s_out = gr.Textbox(label=t("summary"), lines=5, buttons=["copy"], elem_id="sum-out")
        s_stats = gr.Markdown(elem_classes="stats", elem_id="sum-stats")
        gr.Markdown(t("sum_caveat"), elem_classes="stats", elem_id="sum-caveat")  # next to the output, always
        ctx.export_row("sum", lambda a, b, c, fmt: h.export_output("summarization", a, b, c, fmt),
                       [s_in, s_out, s_stats])
        ctx.inputs["sum-in"] = s_in  # an Evaluation row is sent here
        s_dec = decoding_controls("summarization", settings, prompts.SUMMARY_LENGTHS["short"][1])
        # each length has its own token budget; choosing a length sets it
        s_len.change(lambda n: gr.update(value=prompts.SUMMARY_LENGTHS[n][1]), [s_len], [s_dec[0]],
                     **ctx.private, queue=False)
        examples(SUMMARY_EXAMPLES, [s_in])
        s_evs = ctx.page_event([s_go.click, s_in.submit], h.summarize, [s_in, s_len, *s_dec], [s_out, s_stats],
                               "summarization", s_go, s_stop)
        ctx.api_endpoint(h.summarize, [s_in, s_len, *s_dec], [s_out, s_stats], "summarize")
        ctx.stop_button("summarization", s_stop, s_go, s_stats, s_evs)
        ctx.counter(s_in, s_count)
    return tab
