"""The stats line under an output: speed, notices, the seed (or greedy), and why the output ended.

While a request waits for the model, or before it is submitted, a stand-in (:class:`_Waiting`,
:class:`_Starting`) takes the place of the model's Stats and the line says so.
"""

from __future__ import annotations

import gradio as gr

from llmdemo.config import GenerationConfig

from .i18n import error_text, lang_of, text as msg

class _Waiting:
    """Stands in for Stats while a request waits for the model: the stats line says so."""

    def __init__(self, lm, stream):
        self.lm, self.stream = lm, stream

    def line(self, lang: str = "en") -> str:
        req, sched = self.stream.request, getattr(self.lm, "scheduler", None)
        ahead = sched.queue_position(req) if req is not None and sched is not None else 0
        return msg("waiting", lang, n=ahead) if ahead else msg("reading", lang)


class _Starting:
    """Stands in for Stats before the request is submitted: the old output and stats are cleared at once."""

    def line(self, lang: str = "en") -> str:
        return msg("starting", lang)


_RUNNING_MARKS = tuple(msg(k, lang) for k in ("generating", "starting", "reading") for lang in ("en", "zh"))


def _seed_part(stats, cfg: GenerationConfig | None, lang: str) -> str:
    if cfg is not None and cfg.temperature == 0:
        return msg("greedy", lang)
    return msg("seed_used", lang, seed=stats.seed) if getattr(stats, "seed", None) is not None else ""


def _ending(stats, lang: str) -> str:
    """Why a finished output ended, in words (vLLM's finish_reason, said to a person)."""
    reason = getattr(stats, "finish_reason", None)
    if reason == "length":
        return msg("ended_length", lang, n=stats.new_tokens)
    return msg(f"ended_{reason}", lang) if reason in ("eos", "stop_string", "stopped") else ""


def stats_line(stats, extra: str = "", cfg: GenerationConfig | None = None, lang: str = "en",
               done: bool = True, identify: bool = True) -> str:
    """Speed and notices; the seed used (or greedy); while running "generating…", at the end why it ended.
    ``identify=False`` (a blind side) leaves out the seed and "greedy", which name the settings."""
    if isinstance(stats, (_Waiting, _Starting)):
        return stats.line(lang)
    state = (_ending(stats, lang) or "") if done else msg("generating", lang)
    ttft = f"{stats.ttft_s * 1000:.0f} ms" if stats.ttft_s is not None else "n/a"
    speed = msg("speed", lang, n=stats.new_tokens, tps=stats.tokens_per_s, ttft=ttft)
    notices = [error_text(n, lang, lead="") for n in stats.notices]  # "max new tokens lowered...": by code
    seed = _seed_part(stats, cfg, lang) if identify else ""
    parts = [speed] + notices + [p for p in (extra, seed, state) if p]
    return " · ".join(parts)


def is_running(line: str | None) -> bool:
    """Whether a stats line is that of an output still being made ("generating…", in either language)."""
    return any((line or "").rstrip().endswith(mark) for mark in _RUNNING_MARKS)


def stopped_line(line: str | None, request: gr.Request | None = None) -> str:
    """The stats line after Stop: a running output's "generating…" becomes "stopped" (a finished one stays)."""
    line, lang = line or "", lang_of(request)
    for mark in _RUNNING_MARKS:
        if mark in line:
            return line.replace(mark, msg("ended_stopped", lang)) if line.endswith(mark) and " · " in line \
                else msg("ended_stopped", lang)
    return line
