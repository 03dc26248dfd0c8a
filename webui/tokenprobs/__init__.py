""""Why this word" in the Generation tab: the answer's tokens coloured by probability, the alternatives
at a clicked token, and a branch from a clicked alternative (the numbers: llmdemo/tokenprobs.py).

Two ``gr.HTML`` blocks whose ``js_on_load`` turns a click into an event with data (Gradio 6's
``trigger('click', {...})``, read as ``gr.EventData``): the tokens (a click shows that token's
alternatives) and the alternatives (a click regenerates from there). What the page needs to branch is
kept in a ``gr.State`` on the server (prompt ids, settings, tokens); the page sends only positions.
Every text is HTML-escaped; the colours are CSS classes with ``.dark`` variants (``CSS``).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.config import GenerationConfig
from llmdemo.tokenprobs import TokenInfo, branch_ids

from ..controls import Decoding, takes_decoding
from ..errors import friendly
from ..i18n import lang_of
from ..i18n import text as msg
from ..safety import plain_text, safe_markdown, shown_history
from ..stats import stats_line

from .render import (CSS, DETAIL_JS, TOKENS_JS, TOP, _esc, kind_of, render_detail,  # noqa: F401
                     render_tokens)


def _index(value: Any, n: int) -> int:
    """A position sent by the page, checked: a whole number in [0, n)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 0 <= value < n:
        raise prompts.InputError("input.token_gone")
    return int(value)


def _reply(history: list) -> str:
    """The conversation's last answer as plain text (what a Dialogue branch checks it still branches from)."""
    msgs = prompts.normalise_history(history)
    return plain_text(msgs[-1]["content"]).strip() if msgs and msgs[-1]["role"] == "assistant" else ""


class TokenProbHandlers:
    """The token probabilities of the Generation and Dialogue tabs, over the app's :class:`~webui.handlers.Handlers`."""

    def __init__(self, h):
        self.h = h

    def _state(self, lm, ids: list[int], cfg: GenerationConfig, infos: list[TokenInfo], kind: str) -> dict:
        return {"model": lm.name, "prompt": ids, "config": cfg.to_dict(), "kind": kind,
                "info": [i.to_dict() for i in infos]}

    def _setup(self, task: str, decoding: Decoding) -> tuple[GenerationConfig, str]:
        """The run's settings (recording ``TOP`` alternatives when the backend has any) and the backend's kind."""
        kind = kind_of(self.h.host.lm)
        cfg = self.h.config(task, decoding)
        return (cfg.replace(logprobs=TOP) if kind != "none" else cfg), kind

    def _run(self, p: prompts.TaskPrompt, cfg: GenerationConfig, lang: str, request, head: list[TokenInfo],
             prompt_ids: list[int], kind: str, extra: str = "", selected: int | None = None, tab: str = "generation",
             frame=None):
        """Stream ``p`` with probabilities: (*frame(text, stats line), tokens, detail, state), ``head`` before
        its tokens. ``frame`` makes the tab's own outputs (Generation: the text; Dialogue: the conversation)."""
        frame = frame or (lambda full, line: (full.lstrip(), line))
        lm = self.h.host.lm
        holder: list = []
        infos, text, stats = list(head), "", None
        lead = "".join(i.text for i in head)
        backend = lm.info().get("backend", "") if kind == "none" else ""
        for text, stats in self.h._stream(p, cfg, lang, tab, request, on_stream=holder.append):
            infos = head + (list(holder[0].token_info) if holder else [])
            yield (*frame(lead + text, stats_line(stats, extra, cfg=cfg, lang=lang, done=False)),
                   render_tokens(infos, selected, lang, kind, backend), gr.skip(), gr.skip())
        infos = head + (list(holder[0].token_info) if holder else [])
        state = self._state(lm, prompt_ids, p.config(cfg), infos, kind) if kind != "none" else None
        yield (*frame(lead + text, stats_line(stats, extra, cfg=cfg, lang=lang)),
               render_tokens(infos, selected, lang, kind, backend),
               render_detail(infos, selected, lang, kind == "full"), state)

    # ------------------------------------------------------------------ Generation
    @friendly
    @takes_decoding
    def generate(self, prompt: str, decoding: Decoding = Decoding(), show: bool = False, request: gr.Request = None):
        """The Generation tab's run: as ``Handlers.generate``, with the tokens' probabilities when ``show``."""
        if not show:  # exactly the tab's own handler; the token panels are emptied
            for out, line in self.h.generate(prompt, **decoding.fields(), request=request):
                yield out, line, "", "", None
            return
        h, lm, lang = self.h, self.h.host.lm, lang_of(request)
        cfg, kind = self._setup("generation", decoding)
        p = prompts.generation_prompt(lm, h.check_length(prompt), cfg.max_new_tokens)
        ids = lm.encode(p.input) if kind == "full" else []
        yield from self._run(p, cfg, lang, request, [], ids, kind)

    def show(self, state: dict | None, evt: gr.EventData = None, request: gr.Request = None):
        """A token clicked: the tokens with it marked, and its alternatives."""
        lang = lang_of(request)
        if not state or not state.get("info"):
            return gr.skip(), gr.skip()
        infos = [TokenInfo.from_dict(d) for d in state["info"]]
        try:
            i = _index(getattr(evt, "_data", {}).get("index") if evt is not None else None, len(infos))
        except prompts.InputError:
            return gr.skip(), gr.skip()
        return (render_tokens(infos, i, lang, state.get("kind", "full")),
                render_detail(infos, i, lang, state.get("kind") == "full"))

    def _branch(self, state: dict | None, evt, lang: str, request, tab: str, frame):
        """An alternative clicked: the answer again from that token, with it, under the same settings."""
        lm = self.h.host.lm
        if not state or not state.get("info") or state.get("kind") != "full":
            raise prompts.InputError("input.probs_first")
        if state.get("model") != lm.name:
            raise prompts.InputError("input.model_changed")
        infos = [TokenInfo.from_dict(d) for d in state["info"]]
        data = getattr(evt, "_data", None) or {}
        i = _index(data.get("index"), len(infos))
        alt = data.get("alt")
        if not any(a.id == alt for a in infos[i].alternatives) or isinstance(alt, bool):
            raise prompts.InputError("input.alt_gone")
        alt = int(alt)
        cfg = GenerationConfig.from_dict(state["config"])
        head = infos[:i] + [infos[i].chosen(alt)]
        ids, bcfg = branch_ids(lm, state["prompt"], [t.id for t in infos], i, alt, cfg)
        extra = msg("tp_branched", lang, i=i + 1)
        if bcfg is None or alt in getattr(lm, "eos_ids", ()):  # nothing after it: the limit, or end of text chosen
            new_state = self._state(lm, state["prompt"], cfg, head, "full")
            yield (*frame("".join(t.text for t in head), extra), render_tokens(head, i, lang),
                   render_detail(head, i, lang), new_state)
            return
        # the branch's prompt is ids: no template, no stop strings or caps of its own (cfg has the task's already)
        p = prompts.TaskPrompt(tab, ids)
        for out in self._run(p, bcfg, lang, request, head, state["prompt"], "full", extra, selected=i, tab=tab,
                             frame=frame):
            *shown, st = out
            if isinstance(st, dict):  # the final state keeps the original settings and token limit
                st["config"] = cfg.to_dict()
            yield (*shown, st)

    @friendly
    def branch(self, state: dict | None, evt: gr.EventData = None, request: gr.Request = None):
        """The Generation tab's branch: the output box gets the new answer."""
        yield from self._branch(state, evt, lang_of(request), request, "generation", None)

    # ------------------------------------------------------------------ Dialogue
    def _chat_turn(self, turn, cfg: GenerationConfig, kind: str, lang: str, empties_box: bool = True):
        """A Dialogue turn (``turn(on_stream, on_prompt)`` is ChatHandlers._chat_stream) with its tokens:
        (conversation, message box, stats, tokens, detail, state). The message box is emptied by the first
        update of a sent message and left alone after it (a message typed meanwhile stays); Retry and an
        edit (``empties_box=False``) never touch it, as without the probabilities."""
        lm = self.h.host.lm
        holder, prompt = [], []
        backend = lm.info().get("backend", "") if kind == "none" else ""
        shown, box, line, infos = None, "", "", []
        for k, (shown, box, line) in enumerate(turn(holder.append, prompt.append)):
            box = box if empties_box and k == 0 else gr.skip()
            infos = list(holder[0].token_info) if holder else []
            # the first update empties the detail and forgets the last answer's state (a branch needs this one)
            yield (shown, box, line, render_tokens(infos, None, lang, kind, backend),
                   "" if k == 0 else gr.skip(), None if k == 0 else gr.skip())
        state = None
        if kind != "none" and prompt:
            ids = lm.encode(prompt[0].input) if kind == "full" else []
            state = self._state(lm, ids, prompt[0].config(cfg), infos, kind)
            state["reply"] = _reply(shown)
        yield (shown, gr.skip(), line,
               render_tokens(infos, None, lang, kind, backend), "", state)

    @friendly
    @takes_decoding
    def chat(self, message: str, history: list | None = None, system: str = prompts.DEFAULT_SYSTEM_PROMPT,
             decoding: Decoding = Decoding(), show: bool = False, request: gr.Request = None):
        """The Dialogue tab's turn: as ``Handlers.chat_ui``, with the reply's token probabilities when ``show``."""
        h = self.h
        if not show:
            for out in h.chat_ui(message, history, system, **decoding.fields(), request=request):
                yield (*out, "", "", None)
            return
        h.check_chat(history, message, system)
        cfg, kind = self._setup("dialogue", decoding)
        lang = lang_of(request)
        yield from self._chat_turn(lambda on_s, on_p: h._chat_stream(
            message, list(history or []), system, cfg, lang, keep_box=True, request=request, on_stream=on_s,
            on_prompt=on_p), cfg, kind, lang)

    @friendly
    @takes_decoding
    def retry(self, history: list | None, system: str, decoding: Decoding = Decoding(), show: bool = False,
              request: gr.Request = None):
        """Retry, with the new reply's token probabilities when ``show``."""
        h = self.h
        if not show:
            for out in h.retry(history, system, **decoding.fields(), request=request):
                yield (*out, "", "", None)
            return
        h.check_chat(history, system)
        last, before = h.retry_turn(history)
        cfg, kind = self._setup("dialogue", decoding)
        lang = lang_of(request)
        yield from self._chat_turn(lambda on_s, on_p: h._chat_stream(
            last, before, system, cfg, lang, request=request, on_stream=on_s, on_prompt=on_p),
            cfg, kind, lang, empties_box=False)

    @friendly
    @takes_decoding
    def edit(self, history: list | None, system: str, decoding: Decoding = Decoding(), show: bool = False,
             edit: gr.EditData = None, request: gr.Request = None):
        """An edited message answered again, with the reply's token probabilities when ``show``."""
        h = self.h
        if not show:
            for out in h.edit(history, system, **decoding.fields(), edit=edit, request=request):
                yield (*out, "", "", None)
            return
        h.check_chat(history, system)
        message, before = h.edit_turn(history, edit)
        cfg, kind = self._setup("dialogue", decoding)
        lang = lang_of(request)
        yield from self._chat_turn(lambda on_s, on_p: h._chat_stream(
            message, before, system, cfg, lang, request=request, on_stream=on_s, on_prompt=on_p),
            cfg, kind, lang, empties_box=False)

    def edit_undone(self, **named):
        """A failed edit: the conversation as it was (ChatHandlers.edit_undone); the panels as they were."""
        return (*self.h.edit_undone(**named), gr.skip(), gr.skip(), gr.skip())

    @friendly
    def chat_branch(self, state: dict | None, history: list | None, evt: gr.EventData = None,
                    request: gr.Request = None):
        """A Dialogue alternative clicked: the last reply again from that token, the conversation before it kept."""
        self.h.check_chat(history)
        shown = shown_history(prompts.normalise_history(history))
        if state and (not shown or shown[-1]["role"] != "assistant" or _reply(shown) != state.get("reply")):
            raise prompts.InputError("input.reply_changed")  # Undo, Clear, an edit or a reload since that reply

        def frame(full: str, line: str):
            shown[-1] = {"role": "assistant", "content": safe_markdown(full.strip())}
            return shown, line

        for out in self._branch(state, evt, lang_of(request), request, "dialogue", frame):
            if isinstance(out[-1], dict):
                out[-1]["reply"] = _reply(shown)
            yield out

    @friendly
    @takes_decoding
    def generate_json(self, prompt: str, decoding: Decoding = Decoding(), request: gr.Request = None) -> dict:
        """``/generate_with_probs``: the text, the stats line and every token with its probabilities (JSON)."""
        h, lm = self.h, self.h.host.lm
        kind = kind_of(lm)
        cfg = h.config("generation", decoding)
        cfg = cfg.replace(logprobs=TOP) if kind != "none" else cfg
        p = prompts.generation_prompt(lm, h.check_length(prompt), cfg.max_new_tokens)
        holder: list = []
        text, stats = "", None
        for text, stats in h._stream(p, cfg, "en", "generation-api", request, on_stream=holder.append):
            pass
        infos = list(holder[0].token_info) if holder else []
        return {"text": text.lstrip(), "stats": stats_line(stats, cfg=cfg), "probabilities": kind,
                "entropy_unit": "nats", "tokens": [i.to_dict() for i in infos],
                "note": {"full": "p_before: softmax of the raw logits; p_after: the distribution sampled from "
                                 "(repetition penalty, temperature, top-k, top-p applied)",
                         "server": "as the server reports them (before the sampling settings); p_after and entropy "
                                   "are not known",
                         "none": "this backend gives no token probabilities"}[kind]}


def switch(prefix: str = "gen") -> gr.Checkbox:
    """A tab's "show token probabilities" switch (``prefix``: the tab's elem_id prefix, gen or chat)."""
    from ..i18n import t

    return gr.Checkbox(False, label=t("tp_show"), info=t("tp_show_info"), elem_id=f"{prefix}-tp-show")


def panels(prefix: str, show: gr.Checkbox, tp: TokenProbHandlers, light_events: dict):
    """A tab's token panels (placed where this is called): the tokens, a token's alternatives, and the
    server-side state a branch needs; shown while ``show`` is on. A click on a token shows its alternatives."""
    tokens = gr.HTML("", js_on_load=TOKENS_JS, elem_id=f"{prefix}-tp-tokens", visible=False)
    detail = gr.HTML("", js_on_load=DETAIL_JS, elem_id=f"{prefix}-tp-detail", visible=False)
    state = gr.State(None)
    show.change(lambda on: (gr.update(visible=on), gr.update(visible=on)), [show], [tokens, detail],
                queue=False, api_visibility="private")
    tokens.click(tp.show, [state], [tokens, detail], api_visibility="private", **light_events)
    return tokens, detail, state


def build(h, show, g_out, g_stats, page_event, light_events: dict):
    """The Generation tab's token panels (placed where this is called) and their events.

    ``page_event(triggers, fn, inputs, outputs)`` registers a run of the tab (Go/Stop, toasts). Returns the
    handlers, the outputs of a run with probabilities (the tab's Go uses them too) and the branch's events
    (for the tab's Stop)."""
    tp = TokenProbHandlers(h)
    tokens, detail, state = panels("gen", show, tp, light_events)
    outs = [g_out, g_stats, tokens, detail, state]
    events = page_event([detail.click], tp.branch, [state], outs)
    return tp, outs, events
