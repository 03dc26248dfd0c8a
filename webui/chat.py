"""The Dialogue tab's handlers: a chat turn, Retry, an edited message, Undo, the saved chat, export.

The history comes back from the page as it was shown (escaped by webui/safety.py): it is unescaped
before it reaches the prompt, and escaped again before it is shown, so a hand-written history is as
safe as one of ours and our own escapes never double.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.config import GenerationConfig

from .base import HandlerBase
from .errors import friendly
from .files import _export_file
from .i18n import lang_of, text as msg
from .safety import plain_text, safe_markdown
from .stats import stats_line

MAX_HISTORY_MESSAGES = 1000  # a chat longer than this is refused before any work (trimming is linear anyway)


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


class ChatHandlers(HandlerBase):
    """One chat turn and the Dialogue tab's buttons; the whole conversation is checked before any work."""

    def check_chat(self, history: Any, *texts: Any) -> None:
        """The whole conversation (history, system prompt, message) against the input limit, before any work.

        One pass over the raw history, counting characters without copying or normalising them.
        """
        if history is None:
            history = []
        if not isinstance(history, (list, tuple)):
            raise prompts.InputError("input.history_type")
        if len(history) > MAX_HISTORY_MESSAGES:
            raise prompts.InputError("input.history_long", n=len(history), limit=MAX_HISTORY_MESSAGES)
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
            raise prompts.InputError("input.conversation_long", limit=limit)

    def _chat_stream(self, message: str, history: list, system: str, cfg: GenerationConfig, lang: str = "en",
                     keep_box: bool = False, request: gr.Request | None = None, on_stream=None, on_prompt=None):
        """(history, message box, stats) as the reply streams.

        The message box is emptied once, when the turn starts; with ``keep_box`` later updates leave it
        alone (``gr.skip()``), so a message typed while the reply streams stays in the box.
        ``on_prompt(prompt)`` and ``on_stream(stream)`` let the token probabilities (webui/tokenprobs.py)
        see the turn's prompt and the model's Stream.
        """
        shown = _shown_history(prompts.normalise_history(history))
        p = prompts.dialogue_prompt(self.host.lm, self.check_length(message, "message"), _plain_history(shown), system,
                                    cfg.max_new_tokens)
        if on_prompt is not None:
            on_prompt(p)
        shown += [{"role": "user", "content": safe_markdown(message)}, {"role": "assistant", "content": ""}]
        yield shown, "", msg("starting", lang)
        box = gr.skip() if keep_box else ""
        stats = None
        for text, stats in self._stream(p, cfg, lang, "dialogue", request, on_stream=on_stream):
            shown[-1]["content"] = safe_markdown(text.strip())
            yield shown, box, stats_line(stats, cfg=cfg, lang=lang, done=False)
        yield shown, box, stats_line(stats, cfg=cfg, lang=lang)

    @friendly
    def chat(self, message: str, history: list | None = None, system: str = prompts.DEFAULT_SYSTEM_PROMPT,
             max_new_tokens=None, temperature=None, top_p=None, top_k=None, repetition_penalty=None, seed=None,
             request: gr.Request = None):
        """One chat turn: returns the history with the new user message and the streamed reply."""
        self.check_chat(history, message, system)
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from self._chat_stream(message, list(history or []), system, cfg, lang_of(request), request=request)

    @friendly
    def chat_ui(self, message: str, history: list | None = None, system: str = prompts.DEFAULT_SYSTEM_PROMPT,
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
        last, history = self.retry_turn(history)
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        for shown, _box, stats in self._chat_stream(last, history, system, cfg, lang_of(request), request=request):
            yield shown, gr.skip(), stats

    @staticmethod
    def retry_turn(history: list | None) -> tuple[str, list[dict]]:
        """What Retry answers again: the last user message, and the conversation before it."""
        history = prompts.normalise_history(history)
        while history and history[-1]["role"] == "assistant":
            history.pop()
        if not history:
            raise prompts.InputError("input.no_retry")
        return plain_text(history.pop()["content"]), history

    @staticmethod
    def edit_turn(history: list | None, edit: gr.EditData | None) -> tuple[str, list[dict]]:
        """What an edit answers: the edited user message, and the conversation before it."""
        history = prompts.normalise_history(history)
        index = edit.index if edit is not None else len(history) - 1
        index = index[0] if isinstance(index, (list, tuple)) else index
        if not 0 <= index < len(history) or history[index]["role"] != "user":
            raise prompts.InputError("input.edit_own")
        message = plain_text(_block_text(edit.value if edit is not None else history[index]["content"]))
        if not message.strip():
            raise prompts.InputError("input.edit_empty")
        return message, history[:index]

    @friendly
    def edit(self, history: list | None, system: str, max_new_tokens=None, temperature=None, top_p=None,
             top_k=None, repetition_penalty=None, seed=None, edit: gr.EditData = None, request: gr.Request = None):
        """A user message edited in the chat: the conversation is cut there and answered again from the new text."""
        self.check_chat(history, system)
        message, before = self.edit_turn(history, edit)
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        for shown, _box, stats in self._chat_stream(message, before, system, cfg, lang_of(request),
                                                    request=request):
            yield shown, gr.skip(), stats

    def saved_chat(self, history: Any) -> list[dict]:
        """A conversation to keep in (or put back from) the browser: checked and escaped like any history,
        so a hand-edited storage entry is as safe as one of ours; one that is not a chat becomes empty."""
        try:
            self.check_chat(history)
            return _shown_history(prompts.normalise_history(history))
        except Exception:  # noqa: BLE001 - a broken saved entry is dropped, not shown
            return []

    @staticmethod
    def edit_undone(history: list | None = None, edit: gr.EditData = None, **_arguments):
        """The chat after a failed edit: as it was before it (the page already shows the edited text)."""
        try:
            shown = _shown_history(prompts.normalise_history(history))
        except Exception:  # noqa: BLE001 - a history too broken to show is left as it is
            return gr.skip(), gr.skip(), gr.skip()
        index = edit.index if edit is not None else None
        index = index[0] if isinstance(index, (list, tuple)) else index
        if isinstance(index, int) and 0 <= index < len(shown) and shown[index]["role"] == "user":
            shown[index]["content"] = safe_markdown(plain_text(_block_text(edit.previous_value)))
        return shown, gr.skip(), gr.skip()

    @staticmethod
    def export_chat(history: list | None, system: str, fmt: str) -> str:
        """The conversation as a Markdown or JSON file to download."""
        msgs = _plain_history(prompts.normalise_history(history)) if history else []
        if not msgs:
            raise prompts.InputError("input.nothing_to_export")
        if fmt == "json":
            return _export_file("conversation.json", json.dumps(
                {"system": system, "messages": msgs}, ensure_ascii=False, indent=2))
        lines = ["# Conversation", "", f"*System prompt:* {system}", ""]
        for m in msgs:
            lines += [f"**{m['role']}**", "", m["content"], ""]
        return _export_file("conversation.md", "\n".join(lines))

    @friendly
    def undo(self, history: list | None, request: gr.Request = None):
        """Remove the last exchange and put its message back in the textbox."""
        self.check_chat(history)
        history = prompts.normalise_history(history)
        while history and history[-1]["role"] == "assistant":
            history.pop()
        last = plain_text(history.pop()["content"]) if history else ""
        return _shown_history(history), last
