"""The one-shot text tasks' handlers: Generation, Translation and Summarization.

Each builds its task's prompt (llmdemo/prompts.py), streams the model's text through
:meth:`HandlerBase._stream` and yields (text so far, stats line); the last yield is the finished text.
"""

from __future__ import annotations

import json

import gradio as gr

from llmdemo import prompts

from .base import HandlerBase
from .errors import friendly
from .files import _export_file
from .i18n import lang_of, text as msg
from .stats import is_running, stats_line


class TextTaskHandlers(HandlerBase):
    """Generate, translate, summarize; export one output; swap the translation's languages."""

    @friendly
    def generate(self, prompt: str, max_new_tokens=None, temperature=None, top_p=None, top_k=None,
                 repetition_penalty=None, seed=None, request: gr.Request = None):
        """Continue a text (base models) or answer an instruction (chat models). Streams text."""
        cfg = self.config("generation", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = prompts.generation_prompt(self.host.lm, self.check_length(prompt), cfg.max_new_tokens)
        lang, text, stats = lang_of(request), "", None
        for text, stats in self._stream(p, cfg, lang, "generation", request):
            yield text.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield text.lstrip(), stats_line(stats, cfg=cfg, lang=lang)

    @friendly
    def translate(self, text: str, source: str = "en", target: str = "fr", max_new_tokens=None, temperature=None,
                  top_p=None, top_k=None, repetition_penalty=None, seed=None, model=None, request: gr.Request = None):
        """Translate text from the source to the target language (codes or names). Streams text.

        ``model``: one of the bundled models (default: the multilingual one, see ``task_models``)."""
        cfg = self.config("translation", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        lm = self.task_lm("translation", model)
        p = prompts.translation_prompt(lm, self.check_length(text), source, target, cfg.max_new_tokens)
        out, stats, lang = "", None, lang_of(request)
        for out, stats in self._stream(p, cfg, lang, "translation", request, lm=lm):
            yield out.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield prompts.postprocess("translation", out), stats_line(stats, cfg=cfg, lang=lang)

    @friendly
    def summarize(self, document: str, length: str = "short", max_new_tokens=None, temperature=None, top_p=None,
                  top_k=None, repetition_penalty=None, seed=None, request: gr.Request = None):
        """Summarize a document; length is short, medium or long. Streams text."""
        if max_new_tokens in (None, "") and length in prompts.SUMMARY_LENGTHS:
            max_new_tokens = prompts.SUMMARY_LENGTHS[length][1]
        cfg = self.config("summarization", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
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

    @staticmethod
    def swap(source: str, target: str, text: str, translation: str):
        """Swap the languages; the translation (if there is one) becomes the new text, and the output and its
        stats line are cleared (the line described an output no longer shown)."""
        return target, source, (translation if (translation or "").strip() else text), "", ""
