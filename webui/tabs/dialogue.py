"""The Dialogue tab: a chat with the model, kept in the browser's own storage across reloads.

Its handlers (:class:`ChatHandlers`: a turn, Retry, an edited message, Undo, the saved chat, export) take
the history back from the page as it was shown (escaped by webui/safety.py): it is unescaped before it
reaches the prompt, and escaped again before it is shown, so a hand-written history is as safe as one of
ours and our own escapes never double.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.config import GenerationConfig

from .. import tokenprobs
from ..base import HandlerBase
from ..controls import Decoding, decoding_controls, takes_decoding
from ..errors import friendly
from ..files import _export_file
from ..i18n import lang_of, t
from ..i18n import text as msg
from ..safety import plain_text, safe_markdown, shown_history
from ..stats import stats_line
from .context import TabContext, examples

MAX_HISTORY_MESSAGES = 1000  # a chat longer than this is refused before any work (trimming is linear anyway)


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
        shown = shown_history(prompts.normalise_history(history))
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
    @takes_decoding
    def chat(self, message: str, history: list | None = None, system: str = prompts.DEFAULT_SYSTEM_PROMPT,
             decoding: Decoding = Decoding(), request: gr.Request = None):
        """One chat turn: returns the history with the new user message and the streamed reply."""
        self.check_chat(history, message, system)
        cfg = self.config("dialogue", decoding)
        yield from self._chat_stream(message, list(history or []), system, cfg, lang_of(request), request=request)

    @friendly
    @takes_decoding
    def chat_ui(self, message: str, history: list | None = None, system: str = prompts.DEFAULT_SYSTEM_PROMPT,
                decoding: Decoding = Decoding(), request: gr.Request = None):
        """The page's chat turn: as :meth:`chat`, but the message box is emptied only when the turn starts."""
        self.check_chat(history, message, system)
        cfg = self.config("dialogue", decoding)
        yield from self._chat_stream(message, list(history or []), system, cfg, lang_of(request), keep_box=True,
                                     request=request)

    @friendly
    @takes_decoding
    def retry(self, history: list | None, system: str, decoding: Decoding = Decoding(), request: gr.Request = None):
        """Answer the last user message again."""
        self.check_chat(history, system)
        last, history = self.retry_turn(history)
        cfg = self.config("dialogue", decoding)
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
    @takes_decoding
    def edit(self, history: list | None, system: str, decoding: Decoding = Decoding(), edit: gr.EditData = None,
             request: gr.Request = None):
        """A user message edited in the chat: the conversation is cut there and answered again from the new text."""
        self.check_chat(history, system)
        message, before = self.edit_turn(history, edit)
        cfg = self.config("dialogue", decoding)
        for shown, _box, stats in self._chat_stream(message, before, system, cfg, lang_of(request),
                                                    request=request):
            yield shown, gr.skip(), stats

    def saved_chat(self, history: Any) -> list[dict]:
        """A conversation to keep in (or put back from) the browser: checked and escaped like any history,
        so a hand-edited storage entry is as safe as one of ours; one that is not a chat becomes empty."""
        try:
            self.check_chat(history)
            return shown_history(prompts.normalise_history(history))
        except Exception:  # noqa: BLE001 - a broken saved entry is dropped, not shown
            return []

    @staticmethod
    def edit_undone(history: list | None = None, edit: gr.EditData = None, **_arguments):
        """The chat after a failed edit: as it was before it (the page already shows the edited text)."""
        try:
            shown = shown_history(prompts.normalise_history(history))
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
        return shown_history(history), last


CHAT_EXAMPLES = ["Hello, who are you?", "What is the capital of France?", "Can you suggest a name for a cat?"]


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    with gr.Tab(t("tab_dialogue"), id="dialogue", elem_id="tab-dialogue") as tab:
        c_system = gr.Textbox(prompts.DEFAULT_SYSTEM_PROMPT, label=t("system"), lines=1)
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
        c_tp_show = tokenprobs.switch("chat")  # the last reply's token probabilities: webui/tokenprobs.py
        with gr.Row():  # one row on a phone too (three full-width rows pushed the chat off the screen)
            c_retry = gr.Button(t("retry"), min_width=60, elem_id="chat-retry")
            c_undo = gr.Button(t("undo"), min_width=60, elem_id="chat-undo")
            c_clear = gr.Button(t("clear"), min_width=60, elem_id="chat-clear")
        c_stats = gr.Markdown(elem_classes="stats", elem_id="chat-stats")
        tp = tokenprobs.TokenProbHandlers(h)
        c_tokens, c_detail, c_tp_state = tokenprobs.panels("chat", c_tp_show, tp, ctx.light_events)
        ctx.export_row("chat", h.export_chat, [c_bot, c_system])
        ctx.inputs["chat-in"] = c_in  # an Evaluation row is sent here
        c_dec = decoding_controls("dialogue", settings)
        examples([[e] for e in CHAT_EXAMPLES], [c_in])
        turn_in = [c_bot, c_system, *c_dec]
        panels = [c_tokens, c_detail, c_tp_state]
        turn_out = [c_bot, c_in, c_stats, *panels]
        # each turn is the first step of its event (an edit's data reaches only that step), and ends idle;
        # the handlers are the tab's own (ChatHandlers, above) when the token probabilities are off
        c_events = ctx.page_event([c_go.click, c_in.submit], tp.chat, [c_in, *turn_in, c_tp_show], turn_out,
                                  "dialogue", c_go, c_stop)
        c_events += ctx.page_event([c_retry.click], tp.retry, [*turn_in, c_tp_show], turn_out, "dialogue", c_go,
                                   c_stop)
        # a failed edit puts the conversation back as it was (the page shows the edited text already)
        c_events += ctx.page_event([c_bot.edit], tp.edit, [*turn_in, c_tp_show], turn_out, "dialogue", c_go,
                                   c_stop, on_error=tp.edit_undone)
        # an alternative clicked: the last reply again from that token
        c_events += ctx.page_event([c_detail.click], tp.chat_branch, [c_tp_state, c_bot],
                                   [c_bot, c_stats, *panels], "dialogue", c_go, c_stop)
        # the API's /chat: the whole turn, message box emptied (the page uses chat_ui)
        ctx.api_endpoint(h.chat, [c_in, *turn_in], [c_bot, c_in, c_stats], "chat")
        ctx.stop_button("dialogue", c_stop, c_go, c_stats, c_events)
        c_undo_ev = c_undo.click(h.undo, [c_bot], [c_bot, c_in], **ctx.private, **ctx.light_events)
        c_clear_ev = c_clear.click(lambda: ([], "", ""), None, [c_bot, c_in, c_stats], **ctx.private, queue=False)
        for btn in (c_undo, c_clear):  # the panels and the stats line were of a reply that is gone
            btn.click(lambda: ("", "", None, ""), None, [*panels, c_stats], **ctx.private, queue=False)
        # the chat box's own trash icon is Clear too: the saved copy goes with it (it came back on reload)
        c_trash_ev = c_bot.clear(lambda: ("", "", "", None, ""), None, [c_in, *panels, c_stats], **ctx.private,
                                 queue=False)
        # the conversation survives a reload: kept in this browser's own storage (never on the server),
        # saved when a turn, Undo or Clear ends, put back when the page loads
        save_js = "(h) => { try { localStorage.setItem('llmdemo-chat', JSON.stringify(h || [])); } " \
                  "catch (e) { console.warn(e); } return [h]; }"
        for ev in [*c_events, c_undo_ev, c_clear_ev, c_trash_ev]:
            ev.then(None, [c_bot], None, js=save_js, queue=False, **ctx.private)
        # what comes back is checked and escaped on the server like any history (saved_chat)
        load_js = "() => { try { return [JSON.parse(localStorage.getItem('llmdemo-chat') || '[]')]; } " \
                  "catch (e) { return [[]]; } }"
        ctx.demo.load(h.saved_chat, [c_bot], [c_bot], js=load_js, queue=False, show_progress="hidden", **ctx.private)
        ctx.counter(c_in, c_count)
    return tab
