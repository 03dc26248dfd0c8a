"""Gradio event handlers: build inputs, call the core, yield accumulated text.

Generation runs in the model's scheduler (llmdemo/engine/scheduler.py); a streaming handler submits a
request and yields its text as tokens arrive. Stop sets the request's stop event (webui/streaming.py)
and a closed browser tab closes the handler's generator; either way the row leaves the batch before
the next step. While a request waits for the model the handler still yields every half second, so
Gradio can close it at any time and the visitor sees that it waits.
"""

from __future__ import annotations

import functools
import html
import json
import secrets
import inspect
import logging
import re
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from llmdemo import tasks
from llmdemo.config import TASK_DEFAULTS, ConfigError, GenerationConfig
from llmdemo.host import ModelHost
from llmdemo.interface import INSIDE, require
from llmdemo.generation import ContextOverflowError
from llmdemo.errors import ModelLoadError
from llmdemo.presets import DEFAULT_MODEL, PRESETS, UnknownModelError
from llmdemo.backends.openai import LogprobsUnreliable, ServerError
from llmdemo.engine.scheduler import RequestAborted, SchedulerBusy
from llmdemo.tuning import describe as describe_forward

from .i18n import error_text, lang_of, text as msg
from .settings import AppSettings
from .streaming import LiveRuns

log = logging.getLogger("llmdemo.app")

USER_ERRORS = (ConfigError, tasks.InputError, ContextOverflowError, UnknownModelError, ModelLoadError, ValueError,
               TypeError, SchedulerBusy, RequestAborted, ServerError, LogprobsUnreliable)


def _as_gr_error(e: Exception, lang: str = "en") -> gr.Error:
    if isinstance(e, USER_ERRORS):
        return gr.Error(error_text(e, lang))
    # not the visitor's mistake: a bug or an outage, logged whole under an id they can report
    error_id = secrets.token_hex(4)
    log.error("unexpected error [%s]: %s", error_id, traceback.format_exc())
    return gr.Error(msg("internal_error", lang, kind=type(e).__name__, id=error_id))


def in_lang(err: gr.Error, lang: str) -> gr.Error:
    """A handler's own ``gr.Error`` in the page's language (English: the error itself)."""
    if lang != "zh" or not isinstance(getattr(err, "message", None), str):
        return err
    return gr.Error(error_text(err.message, lang), duration=err.duration, visible=err.visible, title=err.title,
                    print_exception=getattr(err, "print_exception", True))


def _request_lang(fn, args, kwargs) -> str:
    """The page's language for a call of ``fn`` (its ``request`` argument; English when it has none)."""
    try:
        request = inspect.signature(fn).bind_partial(*args, **kwargs).arguments.get("request")
    except TypeError:
        request = kwargs.get("request")
    return lang_of(request)


def warn(message: str, lang: str = "en") -> None:
    """A notice (``gr.Warning``) in the page's language."""
    gr.Warning(error_text(message, lang, lead="注意："))


def friendly(fn):
    """Turn user errors into a clear message in the UI; never a stack trace, never a dead server.

    The message is in the page's language (the handler's ``request``), keeping the English detail."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as e:
                said = in_lang(e, _request_lang(fn, args, kwargs))
                if said is e:
                    raise
                raise said from None
            except Exception as e:  # noqa: BLE001 - every error becomes a message
                raise _as_gr_error(e, _request_lang(fn, args, kwargs)) from None
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            said = in_lang(e, _request_lang(fn, args, kwargs))
            if said is e:
                raise
            raise said from None
        except Exception as e:  # noqa: BLE001
            raise _as_gr_error(e, _request_lang(fn, args, kwargs)) from None
    return plain


_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]*)\)")


def safe_markdown(text: str) -> str:
    """Chat text for display: nothing in it loads by itself. Inline Markdown images become links,
    any other ``![`` (reference-style images) is escaped, and ``<`` is shown as text, so no HTML tag
    (``<img>``, ``<picture>``, ``<video poster>``, ...) reaches the page. Scripts never ran anyway:
    Gradio's Chatbot sanitizes HTML; this stops remote fetches, which it lets through."""
    # lone surrogates cannot be sent to the browser at all (Gradio's event stream fails on them)
    text = tasks.clean_text(text) if text.strip() else text
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _REMOTE_IMAGE.sub(lambda m: f"[image: {m.group(1) or 'link'}]({m.group(2)})", text)
    return text.replace("![", "!\\[")


def plain_text(shown: str) -> str:
    """The text behind :func:`safe_markdown`'s escapes (chat history comes back from the page escaped)."""
    return shown.replace("!\\[", "![").replace("&lt;", "<").replace("&amp;", "&")


def _shown_history(history: list[dict]) -> list[dict]:
    """History as the page shows it: unescaped and escaped again, so a hand-written one is as safe as ours
    and our own escapes do not double."""
    return [{"role": m["role"], "content": safe_markdown(plain_text(m["content"]))} for m in history]


def _block_text(value: Any) -> str:
    """A message's text, whether a string or Gradio's text blocks."""
    if isinstance(value, (list, tuple)):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in value)
    return "" if value is None else str(value)


def _plain_history(history: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": plain_text(m["content"])} for m in history]


def check_length(text: Any, limit: int, what: str = "text") -> Any:
    """Refuse text longer than the server's input limit, with a message that says the limit."""
    if isinstance(text, str) and len(text) > limit:
        raise tasks.InputError("input.too_long", what=what, n=len(text), limit=limit)
    return text


INSIDE_MAX_TOKENS = 512  # what the Inside-the-model tab computes over (one uninterrupted call on the model)
MAX_HISTORY_MESSAGES = 1000  # a chat longer than this is refused before any work (trimming is linear anyway)
HEARTBEAT_S = 0.5  # how often a waiting handler yields (Gradio can only close a generator between yields)


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
               done: bool = True) -> str:
    """Speed and notices; the seed used (or greedy); while running "generating…", at the end why it ended."""
    if isinstance(stats, (_Waiting, _Starting)):
        return stats.line(lang)
    state = (_ending(stats, lang) or "") if done else msg("generating", lang)
    ttft = f"{stats.ttft_s * 1000:.0f} ms" if stats.ttft_s is not None else "n/a"
    speed = msg("speed", lang, n=stats.new_tokens, tps=stats.tokens_per_s, ttft=ttft)
    parts = [speed] + stats.notices + [p for p in (extra, _seed_part(stats, cfg, lang), state) if p]
    return " · ".join(parts)


def stopped_line(line: str | None, request: gr.Request | None = None) -> str:
    """The stats line after Stop: a running output's "generating…" becomes "stopped" (a finished one stays)."""
    line, lang = line or "", lang_of(request)
    for mark in _RUNNING_MARKS:
        if mark in line:
            return line.replace(mark, msg("ended_stopped", lang)) if line.endswith(mark) and " · " in line \
                else msg("ended_stopped", lang)
    return line


MODEL_INFO_ZH = {"Model": "模型", "Source": "来源", "Backend": "后端", "Parameters": "参数量",
                 "Device / dtype": "设备 / 数据类型", "Generation forward": "生成所用前向", "Context length": "上下文长度",
                 "Load time": "加载时间", "File sha256 / revision": "文件 sha256 / 版本"}


class Handlers:
    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings
        self.live = LiveRuns()

    # ------------------------------------------------------------ helpers
    def config(self, task: str, max_new_tokens: Any, temperature: Any, top_p: Any, top_k: Any,
               repetition_penalty: Any, seed: Any) -> GenerationConfig:
        if isinstance(seed, str):  # the seed box is text: empty means random, and nothing turns it into 0
            seed = seed.strip() or None
            if seed is not None:
                try:
                    seed = int(seed)
                except ValueError:
                    raise ConfigError("config.whole", name="seed", value=seed) from None
        cfg = TASK_DEFAULTS[task].replace(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                          top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
        if cfg.max_new_tokens > self.settings.max_new_tokens:
            raise ConfigError("config.range_server", name="max_new_tokens", range=f"[1, {self.settings.max_new_tokens}]",
                              value=cfg.max_new_tokens)
        return cfg

    def check_length(self, text: Any, what: str = "text") -> str:
        return check_length(text, self.settings.max_input_chars, what)

    def check_chat(self, history: Any, *texts: Any) -> None:
        """The whole conversation (history, system prompt, message) against the input limit, before any work.

        One pass over the raw history, counting characters without copying or normalising them.
        """
        if history is None:
            history = []
        if not isinstance(history, (list, tuple)):
            raise tasks.InputError("input.history_type")
        if len(history) > MAX_HISTORY_MESSAGES:
            raise tasks.InputError("input.history_long", n=len(history), limit=MAX_HISTORY_MESSAGES)
        limit = self.settings.max_input_chars
        total = sum(len(t) for t in texts if isinstance(t, str))
        for m in history:
            content = m.get("content", "") if isinstance(m, dict) else m
            blocks = content if isinstance(content, (list, tuple)) else [content]
            for b in blocks:
                b = b.get("text", "") if isinstance(b, dict) else b
                total += len(b) if isinstance(b, str) else 0
            if total > limit:
                break
        if total > limit:
            raise tasks.InputError("input.conversation_long", limit=limit)

    def _stream(self, prompt: tasks.TaskPrompt, cfg: GenerationConfig, lang: str = "en", tab: str = "",
                request: gr.Request | None = None, on_stream=None) -> Iterator[tuple[str, Any]]:
        """(text so far, stats); the first yield is empty text, so a new run clears the last one's output.

        A page's run (registered under the visitor's session and ``tab`` by ``streaming.page_run``) ends
        at the model when the tab's Stop is pressed (:meth:`stop`); this loop then ends by itself.
        ``on_stream(stream)`` is called once the model's Stream exists (webui/tokenprobs.py reads its
        ``token_info``)."""
        if prompt.notice:
            warn(prompt.notice, lang)
        yield "", _Starting()
        lm = self.host.lm
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

    # ------------------------------------------------------------ tabs
    @friendly
    def generate(self, prompt: str, max_new_tokens=None, temperature=None, top_p=None, top_k=None,
                 repetition_penalty=None, seed=None, request: gr.Request = None):
        """Continue a text (base models) or answer an instruction (chat models). Streams text."""
        cfg = self.config("generation", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = tasks.generation_prompt(self.host.lm, self.check_length(prompt), cfg.max_new_tokens)
        lang, text, stats = lang_of(request), "", None
        for text, stats in self._stream(p, cfg, lang, "generation", request):
            yield text.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield text.lstrip(), stats_line(stats, cfg=cfg, lang=lang)

    @friendly
    def translate(self, text: str, source: str = "en", target: str = "fr", max_new_tokens=None, temperature=None,
                  top_p=None, top_k=None, repetition_penalty=None, seed=None, request: gr.Request = None):
        """Translate text from the source to the target language (codes or names). Streams text."""
        cfg = self.config("translation", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = tasks.translation_prompt(self.host.lm, self.check_length(text), source, target, cfg.max_new_tokens)
        out, stats, lang = "", None, lang_of(request)
        for out, stats in self._stream(p, cfg, lang, "translation", request):
            yield out.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield tasks.postprocess("translation", out), stats_line(stats, cfg=cfg, lang=lang)

    @friendly
    def summarize(self, document: str, length: str = "short", max_new_tokens=None, temperature=None, top_p=None,
                  top_k=None, repetition_penalty=None, seed=None, request: gr.Request = None):
        """Summarize a document; length is short, medium or long. Streams text."""
        if max_new_tokens in (None, "") and length in tasks.SUMMARY_LENGTHS:
            max_new_tokens = tasks.SUMMARY_LENGTHS[length][1]
        cfg = self.config("summarization", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = tasks.summarization_prompt(self.host.lm, self.check_length(document, "document"), length,
                                       cfg.max_new_tokens)
        out, stats, lang = "", None, lang_of(request)
        n_doc = len(document.split())
        for out, stats in self._stream(p, cfg, lang, "summarization", request):
            yield out.lstrip(), stats_line(stats, cfg=cfg, lang=lang, done=False)
        out = tasks.postprocess("summarization", out)
        n_sum = max(1, len(out.split()))
        yield out, stats_line(stats, msg("compression", lang, x=n_doc / n_sum, a=n_doc, b=len(out.split())),
                              cfg=cfg, lang=lang)

    def _chat_stream(self, message: str, history: list, system: str, cfg: GenerationConfig, lang: str = "en",
                     keep_box: bool = False, request: gr.Request | None = None):
        """(history, message box, stats) as the reply streams.

        The message box is emptied once, when the turn starts; with ``keep_box`` later updates leave it
        alone (``gr.skip()``), so a message typed while the reply streams stays in the box.
        """
        shown = _shown_history(tasks.normalise_history(history))
        p = tasks.dialogue_prompt(self.host.lm, self.check_length(message, "message"), _plain_history(shown), system,
                                  cfg.max_new_tokens)
        shown += [{"role": "user", "content": safe_markdown(message)}, {"role": "assistant", "content": ""}]
        yield shown, "", msg("starting", lang)
        box = gr.skip() if keep_box else ""
        stats = None
        for text, stats in self._stream(p, cfg, lang, "dialogue", request):
            shown[-1]["content"] = safe_markdown(text.strip())
            yield shown, box, stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield shown, box, stats_line(stats, cfg=cfg, lang=lang)

    @friendly
    def chat(self, message: str, history: list | None = None, system: str = tasks.DEFAULT_SYSTEM_PROMPT,
             max_new_tokens=None, temperature=None, top_p=None, top_k=None, repetition_penalty=None, seed=None,
             request: gr.Request = None):
        """One chat turn: returns the history with the new user message and the streamed reply."""
        self.check_chat(history, message, system)
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from self._chat_stream(message, list(history or []), system, cfg, lang_of(request), request=request)

    @friendly
    def chat_ui(self, message: str, history: list | None = None, system: str = tasks.DEFAULT_SYSTEM_PROMPT,
                max_new_tokens=None, temperature=None, top_p=None, top_k=None, repetition_penalty=None, seed=None,
                request: gr.Request = None):
        """The page's chat turn: as :meth:`chat`, but the message box is emptied only when the turn starts."""
        self.check_chat(history, message, system)
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from self._chat_stream(message, list(history or []), system, cfg, lang_of(request), keep_box=True,
                                     request=request)

    @friendly
    def retry(self, history: list | None, system: str, max_new_tokens=None, temperature=None, top_p=None,
              top_k=None, repetition_penalty=None, seed=None, request: gr.Request = None):
        """Answer the last user message again."""
        self.check_chat(history, system)
        history = tasks.normalise_history(history)
        while history and history[-1]["role"] == "assistant":
            history.pop()
        if not history:
            raise tasks.InputError("input.no_retry")
        last = plain_text(history.pop()["content"])
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        for shown, _box, stats in self._chat_stream(last, history, system, cfg, lang_of(request), request=request):
            yield shown, gr.skip(), stats

    @friendly
    def edit(self, history: list | None, system: str, max_new_tokens=None, temperature=None, top_p=None,
             top_k=None, repetition_penalty=None, seed=None, edit: gr.EditData = None, request: gr.Request = None):
        """A user message edited in the chat: the conversation is cut there and answered again from the new text."""
        self.check_chat(history, system)
        history = tasks.normalise_history(history)
        index = edit.index if edit is not None else len(history) - 1
        index = index[0] if isinstance(index, (list, tuple)) else index
        if not 0 <= index < len(history) or history[index]["role"] != "user":
            raise tasks.InputError("input.edit_own")
        message = plain_text(_block_text(edit.value if edit is not None else history[index]["content"]))
        if not message.strip():
            raise tasks.InputError("input.edit_empty")
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        for shown, _box, stats in self._chat_stream(message, history[:index], system, cfg, lang_of(request),
                                                    request=request):
            yield shown, gr.skip(), stats

    def saved_chat(self, history: Any) -> list[dict]:
        """A conversation to keep in (or put back from) the browser: checked and escaped like any history,
        so a hand-edited storage entry is as safe as one of ours; one that is not a chat becomes empty."""
        try:
            self.check_chat(history)
            return _shown_history(tasks.normalise_history(history))
        except Exception:  # noqa: BLE001 - a broken saved entry is dropped, not shown
            return []

    @staticmethod
    def edit_undone(history: list | None = None, edit: gr.EditData = None, **_arguments):
        """The chat after a failed edit: as it was before it (the page already shows the edited text)."""
        try:
            shown = _shown_history(tasks.normalise_history(history))
        except Exception:  # noqa: BLE001 - a history too broken to show is left as it is
            return gr.skip(), gr.skip(), gr.skip()
        index = edit.index if edit is not None else None
        index = index[0] if isinstance(index, (list, tuple)) else index
        if isinstance(index, int) and 0 <= index < len(shown) and shown[index]["role"] == "user":
            shown[index]["content"] = safe_markdown(plain_text(_block_text(edit.previous_value)))
        return shown, gr.skip(), gr.skip()

    # ------------------------------------------------------------ small helpers of the page
    def count_tokens(self, text: Any, request: gr.Request = None) -> str:
        """The input's length in the model's tokens (the first max_input_chars characters)."""
        if not isinstance(text, str) or not text:
            return ""
        try:
            n = self.host.lm.count_tokens(text[: self.settings.max_input_chars])
        except Exception:  # noqa: BLE001 - a backend that cannot count: no counter
            return ""
        return msg("tokens_count", lang_of(request), n=f"{n:,}")

    @staticmethod
    def export_chat(history: list | None, system: str, fmt: str) -> str:
        """The conversation as a Markdown or JSON file to download."""
        msgs = _plain_history(tasks.normalise_history(history)) if history else []
        if not msgs:
            raise gr.Error("nothing to export yet")
        if fmt == "json":
            return _export_file("conversation.json", json.dumps(
                {"system": system, "messages": msgs}, ensure_ascii=False, indent=2))
        lines = ["# Conversation", "", f"*System prompt:* {system}", ""]
        for m in msgs:
            lines += [f"**{m['role']}**", "", m["content"], ""]
        return _export_file("conversation.md", "\n".join(lines))

    @staticmethod
    def export_output(task: str, source: str, output: str, stats: str, fmt: str) -> str:
        """One generation (input, output, stats line) as a Markdown or JSON file to download."""
        if not (output or "").strip():
            raise gr.Error("nothing to export yet")
        if fmt == "json":
            return _export_file(f"{task}.json", json.dumps(
                {"task": task, "input": source, "output": output, "stats": stats}, ensure_ascii=False, indent=2))
        return _export_file(f"{task}.md", f"# {task}\n\n## Input\n\n{source}\n\n## Output\n\n{output}\n\n"
                                          f"---\n{stats}\n")

    @staticmethod
    def swap(source: str, target: str, text: str, translation: str):
        """Swap the languages; the translation (if there is one) becomes the new text, and the output is cleared."""
        return target, source, (translation if (translation or "").strip() else text), ""

    @friendly
    def undo(self, history: list | None, request: gr.Request = None):
        """Remove the last exchange and put its message back in the textbox."""
        self.check_chat(history)
        history = tasks.normalise_history(history)
        while history and history[-1]["role"] == "assistant":
            history.pop()
        last = plain_text(history.pop()["content"]) if history else ""
        return _shown_history(history), last

    # ------------------------------------------------------------ model
    def model_info(self, request: gr.Request = None) -> str:
        info = self.host.lm.info()
        src = info.get("file_sha256") or info.get("revision") or ""
        rows = [
            ("Model", f"`{html.escape(info['name'])}` ({info.get('model_type')}, {info['style']} prompts)"),
            # the file or folder name only: no server path reaches a visitor
            ("Source", f"{info.get('kind')}: `{html.escape(_display_location(info))}`"),
            ("Backend", {"llamacpp": "llama.cpp (in-process)", "openai": f"OpenAI-compatible server "
                         f"(`{html.escape(str(info.get('served_model')))}`)"}.get(info.get("backend"), "transformers")),
            ("Parameters", f"{info['parameters'] / 1e6:,.1f} M" if info.get("parameters") else "n/a"),
            ("Device / dtype", f"{info['device']} / {info['dtype']} · {info['threads']} threads"),
            ("Generation forward", describe_forward(info)),
            *([("Scoring", html.escape(info["engine"]["scoring"]))] if info.get("engine") else []),
            ("Context length", f"{info['context_length']:,} tokens"),
            ("Load time", f"{info['load_s']:.1f} s" if info.get("load_s") is not None else "n/a"),
        ]
        if src:
            rows.append(("File sha256 / revision", f"`{src[:16]}…`"))
        # a list, not a table: a two-column table had an empty header row and, on a phone, one letter per line
        names = MODEL_INFO_ZH if lang_of(request) == "zh" else {}
        return "\n".join(f"- **{names.get(k, k)}**: {v}" for k, v in rows)

    def preset_choices(self) -> list[tuple[str, str]]:
        return [(f"{p.name}: {p.description}", p.name) for p in PRESETS.values()]

    @friendly
    def load_model(self, preset: str, custom: str = "", progress=gr.Progress(), request: gr.Request = None):
        """Load a preset (or, when not hosted, a hub id or local path); the previous model stays on failure.

        The box wins when filled in (its label says so); choosing a preset empties it, and the box is emptied
        after every attempt (layout.py), so a failed name never silently overrides the next preset.
        """
        name = (custom or "").strip() or preset or DEFAULT_MODEL
        if self.settings.hosted:  # one shared model, chosen by the operator: a visitor swapping it swaps everyone's
            raise tasks.InputError("input.operator_model")
        progress(0.05, desc=f"loading {name}…")
        try:
            self.host.swap(name, trust_remote_code=self.settings.trust_remote_code,
                           progress=lambda msg: progress(None, desc=msg))
        except Exception as e:
            raise gr.Error(f"could not load {name!r}: {e}. Still using {self.host.lm.name}.") from None
        progress(1.0, desc="ready")
        return self.model_info(request)


class EvalStopped(tasks.InputError):
    """An evaluation ended by Stop; what it finished is kept in its folder."""

    def __init__(self, done: int, total: int):
        super().__init__("input.eval_stopped", done=done, total=total)
        self.done, self.total = done, total


def progress_line(done: int, total: int, elapsed_s: float, lang: str = "en") -> str:
    """The Evaluation tab's status while a run goes: examples done, time so far, and an estimate once
    one example is done (from the pace so far; batches finish together, so it moves in steps)."""
    left = msg("eval_left", lang, left=_duration(elapsed_s / done * (total - done), lang)) if 0 < done < total else ""
    return msg("eval_running", lang, done=done, total=total, pct=f" ({100 * done / total:.0f}%)" if total else "",
               elapsed=_duration(elapsed_s, lang), left=left)


def _duration(s: float, lang: str = "en") -> str:
    s = int(round(s))
    if lang == "zh":
        return f"{s} 秒" if s < 60 else f"{s // 60} 分 {s % 60:02d} 秒"
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


class EvalHandlers:
    """The Evaluation tab: run eval/ on the shared model over a benchmark file, show and download the results."""

    # what a task needs comes from the registry (eval/tasks.py): file prefix, per-example score

    def __init__(self, host: ModelHost, settings: AppSettings, live: LiveRuns | None = None):
        self.host = host
        self.settings = settings
        self.live = live or LiveRuns()
        self._runs: dict[str, list] = {}  # run folders by visitor session (hosted: a visitor sees only theirs)

    def benchmarks(self, task: str) -> list[str]:
        """Benchmark files in the data folder for a task (names only: nothing outside that folder is offered)."""
        d = self.settings.data_dir
        if not d.is_dir():
            return []
        from eval.tasks import TASKS

        prefix = TASKS[task].data_prefix if task in TASKS else ""
        return sorted(p.name for p in d.iterdir() if p.is_file() and p.suffix in (".jsonl", ".txt")
                      and p.name.startswith(prefix))

    def default(self, task: str) -> str | None:
        names = self.benchmarks(task)
        preferred = [n for n in names if "flores200_devtest_en-fr" in n or "xsum" in n or n.endswith(".txt")
                     or "crowspairs" in n]
        return (preferred or names or [None])[0]

    def choices(self, task: str):
        return gr.update(choices=self.benchmarks(task), value=self.default(task))

    def _data_path(self, name: str | None, upload: str | None):
        from pathlib import Path

        if upload:
            return Path(upload)  # a file Gradio stored in its own upload folder
        if not name:
            raise tasks.InputError("input.no_benchmark_choice")
        base = self.settings.data_dir.resolve()
        path = (base / name).resolve()
        if path.parent != base or not path.is_file():  # no path traversal out of the data folder
            raise tasks.InputError("input.no_benchmark", name=name)
        return path

    @friendly
    def run(self, task: str, name: str | None, upload: str | None, limit: Any, stop_event=None, lang: str = "en",
            session: str | None = None, done: list | None = None):
        """Run an evaluation with the app's prompts on the loaded model; yields progress, then the results.
        ``done``, if given, is kept as [examples done, examples in all] while it runs.

        The run works in a thread of its own at batch priority (visitors' requests go first). Stop,
        or the client leaving, closes this generator, which stops the run at its next step; what it
        finished stays in its folder.
        """
        import json as _json
        import threading
        import time as _time

        from eval.runner import RunSpec, RunStopped, run

        from eval.tasks import TASKS

        if task not in TASKS:
            raise tasks.InputError("input.eval_task", task=task)
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise tasks.InputError("input.limit_whole") from None
        if not 1 <= limit <= 1000:
            raise tasks.InputError("input.limit_app")
        if limit > self.settings.eval_examples_cap:
            raise tasks.InputError("input.limit_server", n=self.settings.eval_examples_cap)
        path = self._data_path(name, upload)
        if upload:  # a visitor's file: the same size rules as the task tabs, before any work
            self._check_upload(path, task, limit)
        _remove_old_runs(self.settings.output_dir, self.settings.keep_runs_hours)
        stamp = _time.strftime("%Y%m%d-%H%M%S")
        # an unguessable name: run folders are never served as a folder, and no visitor can find another's
        out = self.settings.output_dir / f"{task}-{stamp}-{secrets.token_hex(8)}"
        lm = self.host.lm
        cfg = None
        if TASKS[task].kind == "generate":  # greedy, as python -m eval; leave room for the input in small contexts
            d = TASK_DEFAULTS[task]
            cfg = d.replace(temperature=0.0, max_new_tokens=min(d.max_new_tokens, lm.context_length // 4))
        spec = RunSpec(task=task, data=str(path), output=str(out), limit=limit, batch_size="auto", config=cfg,
                       max_length=min(1024, lm.context_length), stride=512)
        done = done if done is not None else [0, 0]
        done[:] = [0, limit]
        box: dict = {}
        stop = stop_event or threading.Event()

        def work():
            try:
                box["res"] = run(spec, lm, progress_cb=lambda d, t: done.__setitem__(slice(0, 2), [d, t]),
                                 stop_event=stop)
            except BaseException as e:  # noqa: BLE001 - handed to the handler's thread
                box["err"] = e

        worker = threading.Thread(target=work, name="eval-run", daemon=True)
        worker.start()
        t0 = _time.monotonic()
        try:
            while worker.is_alive():
                worker.join(HEARTBEAT_S)
                if stop.is_set():  # Stop's own answer says "Stopped": no progress line may land after it
                    continue
                yield (progress_line(done[0], done[1], _time.monotonic() - t0, lang), gr.skip(), gr.skip(), gr.skip(),
                       gr.skip())
        finally:
            stop.set()  # Stop pressed or the client left: the run ends at its next step
        if isinstance(box.get("err"), RunStopped):  # its message names a server path: say it plainly instead
            raise EvalStopped(done[0], done[1])
        if "err" in box:
            err = box["err"]
            if isinstance(err, (ValueError, RuntimeError)) and str(path) in str(err):  # no server path in messages
                raise tasks.InputError("input.data", detail=str(err).replace(str(path), "the uploaded file" if upload else name)) from None
            raise err
        res = box["res"]
        rows = _in_data_order([_json.loads(line) for line in open(out / "predictions.jsonl", encoding="utf-8")],
                              path, task, limit)
        key = TASKS[task].per_example
        # row number first (what "Row (0 = first)" counts), texts cut short: the table is read on a phone too
        table = [[i, _short(_row_input(r)), _short(_row_reference(r)), _short(_row_answer(r)),
                  round(r.get(key) or 0.0, 2)] for i, r in enumerate(rows)]
        self._runs.setdefault(session or "", []).append(out)
        metrics_md = "\n".join(["| metric | value | 95% CI |", "|---|---|---|"] + [
            f"| {k} | {v:,.2f} | {_ci(res, k)} |" for k, v in res["metrics"].items() if isinstance(v, (int, float))])
        # handed out as copies in a private temporary folder: Gradio moves them into its cache under a
        # content hash, served to this visitor's page only; the output folder itself is not served
        share = _private_copy(out, ["plot-1.png", "report.html", "report.md", "results.json", "predictions.jsonl"])
        plot = share.get("plot-1.png")
        files = [share[f] for f in ("report.html", "report.md", "results.json", "predictions.jsonl") if f in share]
        yield metrics_md, plot, table, files, rows

    def _check_upload(self, path, task: str, limit: int) -> None:
        from eval.datasets import DataError, load_records

        try:
            records = load_records(str(path), task, limit)
        except DataError as e:
            raise tasks.InputError("input.data", detail=str(e).replace(str(path), "the uploaded file")) from None
        cap = self.settings.max_input_chars
        for r in records:
            size = sum(len(v) if isinstance(v, str) else sum(len(x) for x in v if isinstance(x, str))
                       for k, v in r.items() if k != "id" and isinstance(v, (str, list)))
            if size > cap:
                raise tasks.InputError("input.example_long", id=str(r.get("id"))[:40], n=size, limit=cap)

    @friendly
    def run_ui(self, task: str, name: str | None, upload: str | None, limit: Any, request: gr.Request = None):
        """:meth:`run` for the page: one status line for the progress (not one per output), the report shown
        in the page, and the "open this example" button usable once there are rows."""
        import time as _time

        t0 = _time.time()
        lang = lang_of(request)
        yield (msg("eval_starting", lang), *[gr.skip()] * 7)
        result = None
        # the tab's Stop sets this (webui/streaming.py): the run ends at its next step and says so here
        session = getattr(request, "session_hash", None)
        stop_event = self.live.stop_event(session, "evaluation")
        # if the run's current step outlasts Stop's wait, Stop says this itself (and the run ends after it)
        done = [0, 0]
        self.live.when_stopped(session, "evaluation", lambda: msg("eval_stopped", lang, done=done[0], total=done[1]))
        stopped = [None]
        try:
            for result in self.run.__wrapped__(self, task, name, upload, limit, stop_event=stop_event, lang=lang,
                                               session=session, done=done):
                if _is_skip(result[1]):  # progress
                    yield (result[0], *[gr.skip()] * 7)
        except EvalStopped as e:  # Stop pressed: said in the status line, not as an error
            stopped[0] = e
        if stopped[0] is not None:
            yield (msg("eval_stopped", lang, done=stopped[0].done, total=stopped[0].total), *[gr.skip()] * 7)
            return
        md, plot, table, files, rows = result
        report = next((f for f in files if f.endswith("report.md")), None)
        report_md = _report_for_page(report) if report else ""
        yield (msg("eval_done", lang, n=len(rows), s=f"{_time.time() - t0:.0f}"), md, plot, table, files, rows,
               report_md, gr.update(interactive=bool(rows)))

    def visible_runs(self, request: gr.Request | None = None) -> list:
        """The run folders this visitor may compare: their own runs; on a local app every run in the folder."""
        own = list(self._runs.get(getattr(request, "session_hash", None) or "", []))
        if self.settings.hosted:
            return [d for d in own if (d / "results.json").exists()]
        folder = self.settings.output_dir
        every = sorted((d for d in folder.iterdir() if (d / "results.json").exists()), key=lambda d: d.name) \
            if folder.is_dir() else []
        return every

    @friendly
    def leaderboard(self, request: gr.Request = None):
        """The leaderboard of the runs this visitor can see (eval/leaderboard.py), and the runs to line up."""
        from eval.leaderboard import leaderboard_rows

        lang = lang_of(request)
        runs = self.visible_runs(request)
        rows = leaderboard_rows(runs)
        if not rows:
            return msg("board_empty", lang), gr.update(choices=[]), gr.update(choices=[])
        lines = ["| task | data | model | engine | n | metrics (95% CI) | date |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            cells = ", ".join(f"{k} {v:.3g} [{r['ci95'][k][0]:.3g}, {r['ci95'][k][1]:.3g}]" if r.get("ci95", {}).get(k)
                              else f"{k} {v:.3g}" for k, v in r["metrics"].items() if isinstance(v, (int, float)))
            lines.append("| " + " | ".join(html.escape(str(x)).replace("|", "\\|") for x in (
                r["task"], r["data"], r["model"], r.get("engine") or r.get("backend") or "", r["n"], cells,
                r["date"])) + " |")
        names = [(f"{Path(r['run']).name[:40]} ({r['task']})", Path(r["run"]).name) for r in rows]
        return "\n".join(lines), gr.update(choices=names, value=None), gr.update(choices=names, value=None)

    @friendly
    def diff(self, a: str | None, b: str | None, request: gr.Request = None):
        """Two of the visitor's runs side by side, example by example (changed ones first)."""
        from eval.leaderboard import diff_rows

        if not a or not b:
            raise tasks.InputError("input.runs_two")
        runs = {d.name: d for d in self.visible_runs(request)}
        if a not in runs or b not in runs:
            raise tasks.InputError("input.run_not_yours")
        key, rows = diff_rows(runs[a], runs[b])
        return [[_short(str(r.get("id")), 40), _short(str(r.get("input") or "")), _short(str(r.get("a") or "")),
                 _short(str(r.get("b") or "")), r.get("score_a"), r.get("score_b"), "✱" if r.get("changed") else ""]
                for r in rows]

    @friendly
    def send_to_tab(self, rows: list | None, index: Any, task: str, name: str | None = None,
                    request: gr.Request = None):
        """:meth:`send`, and for translation the example's languages in From/To (from the row, else the file name)."""
        out = self.send(rows, index, task)
        if task != "translation":
            return (*out, gr.skip(), gr.skip())
        r = rows[int(index)]
        m = re.search(r"([a-z]{2,3})-([a-z]{2,3})\.jsonl$", name or "")
        src = r.get("src_lang") or (m.group(1) if m else None)
        tgt = r.get("tgt_lang") or (m.group(2) if m else None)
        langs = set(tasks.LANGUAGES)
        return (*out, src if src in langs else gr.skip(), tgt if tgt in langs else gr.skip())

    @staticmethod
    def send(rows: list | None, index: Any, task: str):
        """Put example ``index`` (0-based row of the table) into its task tab, from the row's stored raw input.

        Returns (tabs, translation text, document, chat message); the fields of other tabs are left as they are.
        """
        try:
            i = int(index)
            r = (rows or [])[i]
        except (TypeError, ValueError, IndexError):
            raise gr.Error("run an evaluation first, then give a row number from the table") from None
        text = str(r.get("input") or r.get("source") or "")
        skip = gr.skip()  # the other tabs' fields keep what they hold (they were emptied before)
        if task == "translation":
            return gr.update(selected="translation"), text, skip, skip
        if task == "summarization":
            return gr.update(selected="summarization"), skip, text, skip
        if task == "dialogue":
            return gr.update(selected="dialogue"), skip, skip, text
        raise gr.Error(f"{task} examples have no task tab to open them in")

    def help(self, task: str, lang: str = "en") -> str:
        """What the tab offers for a task: the benchmark files, or why there are none, and the fields an upload needs.

        In Chinese the task's description stays English (it names the benchmark and its metric)."""
        from eval.tasks import TASKS

        t = TASKS.get(task)
        if t is None:
            return ""
        fields = ", ".join(f"`{f}`" for f in t.fields)
        lines = [f"**{task}**: {t.description}"]
        if not self.benchmarks(task):
            lines.append(msg("eval_help_none", lang, prefix=t.data_prefix))
        if t.kind == "perplexity":
            lines.append(msg("eval_help_txt", lang))
        else:
            lines.append(msg("eval_help_jsonl", lang, fields=fields))
        return "  \n".join(lines)


def _export_file(name: str, content: str) -> str:
    """A download: the file in a private temporary folder (Gradio copies it into its cache, removed after an hour)."""
    import tempfile
    import time as _time
    from pathlib import Path

    folder = tempfile.mkdtemp(prefix="llmdemo-export-")
    _SHARED.append((_time.time(), folder))
    path = Path(folder) / name
    path.write_text(content, encoding="utf-8")
    return str(path)


_SHARED: list[tuple[float, str]] = []  # (created, folder) of private copies, removed after an hour


def _private_copy(out, names: list[str]) -> dict[str, str]:
    import shutil
    import tempfile
    import time as _time
    from pathlib import Path

    now = _time.time()
    while _SHARED and now - _SHARED[0][0] > 3600:
        shutil.rmtree(_SHARED.pop(0)[1], ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="llmdemo-")
    _SHARED.append((now, folder))
    copies = {}
    for n in names:
        if (Path(out) / n).exists():
            copies[n] = str(shutil.copy(Path(out) / n, Path(folder) / n))
    return copies


def _remove_old_runs(folder, hours: float) -> None:
    """Visitors' run folders older than ``hours`` go (run folders only: nothing else in the folder is touched)."""
    import shutil
    import time as _time

    from eval.runfolder import is_run_file as _is_run_file

    if not folder.is_dir():
        return
    cutoff = _time.time() - hours * 3600
    for d in folder.iterdir():
        try:
            if d.is_dir() and not d.is_symlink() and d.stat().st_mtime < cutoff \
                    and all(_is_run_file(p.name) for p in d.iterdir()) and not (d / "run.lock").exists():
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


def _row_input(r: dict) -> str:
    return str(r.get("input") or r.get("source") or r.get("context") or "")


def _row_reference(r: dict) -> str:
    """The right answer: the reference text, the less stereotyping sentence, or the right choice."""
    if "reference" in r or "sent_less" in r:
        return str(r.get("reference", r.get("sent_less", "")))
    choices, gold = r.get("choices"), r.get("gold")
    if isinstance(choices, list) and isinstance(gold, list) and gold and isinstance(gold[0], int) \
            and 0 <= gold[0] < len(choices):
        return str(choices[gold[0]])
    return ""


def _row_answer(r: dict) -> str:
    """What the model answered: its text, its pick, or a pair's two log-likelihoods."""
    if "prediction" in r:
        return str(r["prediction"])
    if "chosen" in r:
        return str(r["chosen"])
    return f"{r.get('ll_more', 0):.2f} vs {r.get('ll_less', 0):.2f}"


def _is_skip(v) -> bool:
    return isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1


def _short(v: Any, n: int = 160) -> str:
    v = str(v)
    return v if len(v) <= n else v[: n - 1] + "…"


def _in_data_order(rows: list[dict], path, task: str, limit: int) -> list[dict]:
    """Rows in the benchmark's order (predictions.jsonl is in the order examples finished in a batch)."""
    try:
        from eval.datasets import load_records
        from eval.tasks import TASKS

        records = load_records(str(path), task, limit)
        if TASKS[task].prepare is not None:
            records = TASKS[task].prepare(records)
        pos = {str(r["id"]): i for i, r in enumerate(records)}
    except Exception:  # noqa: BLE001 - order is a nicety: the rows as written
        return rows
    for r in rows:  # the languages, for "open this example in its task tab" (rows store the target only)
        i = pos.get(str(r.get("id")))
        if i is not None:
            for k in ("src_lang", "tgt_lang"):
                if k in records[i] and k not in r:
                    r[k] = records[i][k]
    return sorted(rows, key=lambda r: pos.get(str(r.get("id")), len(pos)))


def _report_for_page(path: str) -> str:
    """report.md for a Markdown component: its images are files next to it, so they are left out (the plot is shown)."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    return re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)


def _display_location(info: dict) -> str:
    from pathlib import PurePath

    loc = str(info.get("location", ""))
    return PurePath(loc).name if info.get("kind") in ("gguf", "local") or loc.startswith("/") else loc


def _ci(res: dict, k: str) -> str:
    ci = res.get("ci95", {}).get(k)
    return f"{ci[0]:.2f} – {ci[1]:.2f}" if ci else ""


N_CHIP_COLOURS = 8  # chip colours come from CSS classes (layout.py), one set for light and one for dark mode


def token_chips(toks) -> str:
    """Tokens as coloured chips with their ids (HTML-escaped: a token is never markup). The chips wrap."""
    chips = []
    for i, t in enumerate(toks):
        shown = html.escape(t.text).replace(" ", "␣").replace("\n", "↵") or "∅"
        chips.append(f"<span class='chip c{i % N_CHIP_COLOURS}' title='id {t.id}'>{shown}<sub>{t.id}</sub></span>")
    return "<div class='chips'>" + " ".join(chips) + "</div>"


class InsideHandlers:
    """The "Inside the model" tab: thin wrappers over llmdemo.internals."""

    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings

    @friendly
    def analyze(self, text: str, layer: Any = -1, head: Any = -1, theme: str = "light", request: gr.Request = None):
        from llmdemo import internals

        lm = self.host.lm
        require(lm, INSIDE, "Looking inside the model")
        text = tasks.clean_text(check_length(text, self.settings.max_input_chars))
        toks = internals.tokens(lm, text)
        summary = f"{len(toks):,} tokens for {len(text):,} characters ({len(text) / max(1, len(toks)):.1f} characters per token)"
        if len(toks) > INSIDE_MAX_TOKENS:
            # each look is one uninterrupted call on the model's thread: a 20,000-character text held every
            # visitor up for ~40 s, so the model looks at the first INSIDE_MAX_TOKENS tokens only
            text = "".join(t.text for t in toks[:INSIDE_MAX_TOKENS])
            summary += f" · the model looks at the first {INSIDE_MAX_TOKENS} tokens"
        if lm.is_encoder_decoder:
            warn(f"{lm.name} is an encoder-decoder model: only the tokenization applies here", lang_of(request))
            return token_chips(toks), summary, {}, gr.update(choices=[]), [], None
        top, _ = internals.next_token_distribution(lm, text, k=10)
        labels = {f"{t.text!r} ({t.id})": p for t, p in top}
        scores = internals.surprisal(lm, text)
        hi = max((s for _, s in scores), default=1.0) or 1.0
        heat = [(t.text, s / hi) for t, s in scores]  # 0 = expected, 1 = most surprising in this text
        ppl = internals.perplexity_of(scores)
        summary += (f" · surprisal {sum(s for _, s in scores):.1f} nats in total, perplexity {ppl:.2f}"
                    " (the same number the Evaluation tab's perplexity would give for this text)")
        fig = self._heatmap(lm, text, layer, head, dark=theme == "dark", lang=lang_of(request))
        choices = [(f"{t.text!r} · {p:.1%}", t.id) for t, p in top]
        return (token_chips(toks), summary, labels, gr.update(choices=choices, value=choices[0][1]), heat, fig)

    def _heatmap(self, lm, text: str, layer: Any, head: Any, dark: bool = False, lang: str = "en"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from llmdemo import internals

        layer, head = int(layer), int(head)
        toks, att, notice = internals.attention(lm, text, layer=layer, head=None if head < 0 else head)
        if notice:
            warn(notice, lang)
        n = len(toks)
        # the page's theme (sent by the browser): a white figure in dark mode glared, light text on white was unreadable
        style = "dark_background" if dark else "default"
        with plt.style.context(style):
            fig, ax = plt.subplots(figsize=(min(12, 2 + n * 0.3), min(12, 2 + n * 0.3)))
            if dark:
                fig.patch.set_facecolor("#0b0f19")
                ax.set_facecolor("#0b0f19")
            self._draw(ax, toks, att, n, layer, head, lm)
            fig.tight_layout()
        return fig

    @staticmethod
    def _draw(ax, toks, att, n, layer, head, lm):
        from llmdemo import internals

        ax.imshow(att.numpy(), cmap="viridis", vmin=0)
        labels = [t.text.replace("\n", "↵") or "∅" for t in toks]
        if n <= 64:
            ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
            ax.set_yticks(range(n), labels, fontsize=8)
        ax.set_xlabel("attends to (earlier tokens)")
        ax.set_ylabel("token")
        ax.set_title(f"layer {layer if layer >= 0 else internals.layer_head_counts(lm)[0] + layer}, "
                     + ("average over heads" if head < 0 else f"head {head}"))

    @friendly
    def step(self, text: str, choice: Any, mode: str, seed: Any = None, request: gr.Request = None):
        """Append a token: the chosen candidate, the most likely one (greedy) or a sampled one."""
        from llmdemo import internals

        lm = self.host.lm
        require(lm, INSIDE, "Looking inside the model")
        text = tasks.clean_text(check_length(text, self.settings.max_input_chars))
        if lm.count_tokens(text) > INSIDE_MAX_TOKENS:
            raise tasks.InputError("input.step_long", n=INSIDE_MAX_TOKENS)
        if mode == "chosen":
            if choice in (None, ""):
                raise tasks.InputError("input.analyze_first")
            tok_id = int(choice)
        else:
            top, _ = internals.next_token_distribution(lm, text, k=50)
            if mode == "greedy":
                tok_id = top[0][0].id
            else:
                gen = torch_generator(seed)
                import torch

                probs = torch.tensor([p for _, p in top])
                tok_id = top[int(torch.multinomial(probs / probs.sum(), 1, generator=gen))][0].id
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"] + [tok_id]
        return lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


def torch_generator(seed: Any):
    import torch

    g = torch.Generator()
    if seed not in (None, ""):
        g.manual_seed(int(seed))
    else:
        g.seed()
    return g
