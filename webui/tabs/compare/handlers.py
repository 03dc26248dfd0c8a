"""The Compare tab: one prompt, two to four contestants streaming at once, a blind vote, the leaderboard.

Contestants are decoding-settings presets (``llmdemo/compare/contestants.py``) of the loaded model, whose
requests share its scheduler and are stepped in one batch, or of a model loaded beside it
(``llmdemo/compare/models.py``, within the app's memory budget), which steps its own. One handler consumes every
side's stream (a thread per stream feeds one queue, so a slow side never holds back the others);
each side has its own stop event, registered in ``LiveRuns`` as tab ``compare-A``, ``compare-B``...,
so each side's Stop ends that side alone. The comparison (what the visitor was shown) is written to
the vote store only once every side has ended; the page keeps just its id and the visitor's session
id in a ``gr.State``, which Gradio holds on the server (a client cannot send one), and a vote names a
side letter only. ``VoteStore.vote`` refuses a second vote, another session's comparison and any
choice the comparison did not offer.

Stored text is not escaped: outputs are shown in text boxes (never rendered), names and messages
that reach Markdown or a toast are escaped here. The tab's components and events are in
webui/tabs/compare/ui.py.
"""

from __future__ import annotations

import contextvars
import functools
import html
import math
import os
import queue
import random
import threading
from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.compare.board import BoardCache
from llmdemo.config import ConfigError
from llmdemo.compare.models import Companions
from llmdemo.compare.contestants import CONTESTANTS, DEFAULT_PAIR, contestant, split_entry
from llmdemo.presets import BUNDLED, installed_bundled
from llmdemo.compare.votes import SIDES, TASKS, VoteError, VoteStore, default_db_path, new_session_id

from ...clients import RateLimit, client_key
from ...errors import friendly
from ...i18n import error_text, lang_of
from ...i18n import text as msg
from ...safety import check_length
from ...stats import _Waiting
from ...streaming import HEARTBEAT_S
from .render import CSS, Progress, _label, _Side, render_leaderboard  # noqa: F401 (CSS: the page's)

MAX_SIDES = 4
BUNDLED_CONTESTANTS = ("greedy", "top-p 0.95")  # offered on each other bundled model
CHOICES = [*SIDES[:MAX_SIDES], "tie", "both_bad"]  # what the vote buttons send
LEADERBOARD_ROUNDS = 1000  # bootstrap rounds, as `python -m llmdemo votes leaderboard`
DEFAULT_MAX_NEW = 64
_DONE = object()
_shuffle = random.SystemRandom().shuffle  # the sides' order: not predictable from earlier comparisons

def open_store(path: str | os.PathLike | None = None, output_dir: str | os.PathLike | None = None) -> VoteStore:
    """The app's vote store: ``path``, else $LLMDEMO_VOTES_DB, else votes.sqlite3 in the app's output folder."""
    if path is None and not os.environ.get("LLMDEMO_VOTES_DB") and output_dir is not None:
        path = os.path.join(output_dir, "votes.sqlite3")
    return VoteStore(path if path is not None else default_db_path())


def _number(value: Any, what: str, k: int, kind=float):
    """A per-contestant override: empty is None (the preset's value)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError("config.contestant_number", name=what, k=k, value=str(value)[:40]) from None


class CompareHandlers:
    def __init__(self, host, settings, live, store: VoteStore, companions: Companions | None = None):
        self.host, self.settings, self.live, self.store = host, settings, live, store
        self.board = BoardCache(store, rounds=LEADERBOARD_ROUNDS, seed=0)
        self.votes_limit = RateLimit(settings.votes_per_10min, 600.0)
        # what visitors see of the operator's contestants: a local model path by its last part only
        labels = [_label(e) for e in settings.contestants]
        self.labels = {(lab if labels.count(lab) == 1 else e): e for lab, e in zip(labels, settings.contestants)}
        if companions is None:
            host.configure(companion_budget_mb=settings.compare_memory_mb)
            companions = host.companions
        self.companions = companions

    def choices(self) -> list[str]:
        """What the contestant pickers offer: the operator's list, else every preset on the loaded model and
        two on each other bundled model installed (so that two models meet offline, hosted too)."""
        if self.settings.contestants:
            return list(self.labels)
        return [*CONTESTANTS, *(f"{p} @ {m}" for m in self.other_bundled() for p in BUNDLED_CONTESTANTS)]

    def other_bundled(self) -> list[str]:
        """The bundled models installed here, other than the loaded one."""
        return [m for m in installed_bundled() if m != self.host.lm.name]

    def budget_line(self, request: gr.Request = None) -> str:
        """The tab's statement of the memory budget for other models, with what they take now."""
        st = self.companions.status()
        loaded = ", ".join(f"{html.escape(name)} ({mb} MB)" for name, mb in st["models"].items())
        return msg("cmp_budget", lang_of(request), budget=st["budget_mb"], used=st["used_mb"],
                   loaded=f": {loaded}" if loaded else "")

    def _model_of(self, entry: str, model: Any) -> tuple[str, str]:
        """A contestant's preset and the name of the model it runs on ("": the loaded one), checked against
        what this app allows (nothing is loaded yet)."""
        if isinstance(entry, str) and entry in self.labels:
            entry = self.labels[entry]  # the operator's entry behind the label a visitor picked
        preset, named = split_entry(entry) if isinstance(entry, str) else (entry, "")
        model = model.strip() if isinstance(model, str) else ""
        if named and model and named != model:
            raise prompts.InputError("contestant.model_twice", a=named[:80], b=model[:80])
        model = named or model
        allowed = self.settings.contestants
        if allowed and (f"{preset} @ {model}" if model else preset) not in allowed:
            raise ConfigError("contestant.not_allowed", name=_label(f"{preset} @ {model}" if model else str(preset))[:160],
                              choices=", ".join(self.labels))
        if model and self.settings.hosted and not allowed and model not in self.other_bundled():
            raise ConfigError("contestant.model_hosted")
        contestant(preset)  # an unknown preset is refused before any model loads
        return preset, model

    # ------------------------------------------------------------ running a comparison
    def _prompt(self, lm, task: str, text: str, source: str, target: str, length: str,
                max_new: int) -> prompts.TaskPrompt:
        if task == "generation":
            return prompts.generation_prompt(lm, text, max_new)
        if task == "translation":
            return prompts.translation_prompt(lm, text, source, target, max_new)
        if task == "dialogue":
            return prompts.dialogue_prompt(lm, text, [], prompts.DEFAULT_SYSTEM_PROMPT, max_new)
        return prompts.summarization_prompt(lm, text, length, max_new)

    @friendly
    def compare(self, task: str = "generation", prompt: str = "", source: str = "en", target: str = "fr",
                length: str = "short", contestants: Any = 2, blind: bool = True, max_new_tokens: Any = DEFAULT_MAX_NEW,
                contestant_1: str = DEFAULT_PAIR[0], contestant_2: str = DEFAULT_PAIR[1], contestant_3: str = "",
                contestant_4: str = "", temperature_1="", top_p_1="", seed_1="", temperature_2="", top_p_2="",
                seed_2="", temperature_3="", top_p_3="", seed_3="", temperature_4="", top_p_4="", seed_4="",
                model_1="", model_2="", model_3="", model_4="", state: dict | None = None,
                request: gr.Request = None):
        """Answer one prompt with 2-4 contestants at once; yields Progress, the last with the comparison's id."""
        lang = lang_of(request)
        if not isinstance(task, str) or task not in TASKS:
            raise prompts.InputError("input.task", task=str(task)[:40], choices=", ".join(TASKS))
        n = _number(contestants, "the number", 0, int) if not isinstance(contestants, int) else contestants
        if n is None or not 2 <= n <= MAX_SIDES:
            raise prompts.InputError("input.sides", max=MAX_SIDES, got=str(contestants)[:20])
        if not isinstance(blind, bool):
            raise prompts.InputError("input.blind")
        max_new = _number(max_new_tokens, "max_new_tokens", 0, int) or DEFAULT_MAX_NEW
        if max_new > self.settings.max_new_tokens:
            raise ConfigError("config.range_server", name="max_new_tokens", range=f"[1, {self.settings.max_new_tokens}]",
                              value=max_new)
        presets = [contestant_1, contestant_2, contestant_3, contestant_4][:n]
        own = [(temperature_1, top_p_1, seed_1), (temperature_2, top_p_2, seed_2),
               (temperature_3, top_p_3, seed_3), (temperature_4, top_p_4, seed_4)][:n]
        models = [model_1, model_2, model_3, model_4][:n]
        text = check_length(prompt, self.settings.max_input_chars, "prompt")
        specs = [self._model_of(entry, model) for entry, model in zip(presets, models)]
        # the models stay loaded (none is unloaded for another comparison) until this one is recorded
        # the operator's contestants and the bundled models load in hosted mode too (a bundled one is a preset)
        trusted = bool(self.settings.contestants) or all(not m or m in BUNDLED for _, m in specs)
        with self.companions.use([m for _, m in specs], trusted=trusted) as lms:
            yield from self._compare(task, text, source, target, length, blind, max_new, specs, own, lms, state,
                                     lang, request)

    def _compare(self, task, text, source, target, length, blind, max_new, specs, own, lms, state, lang, request):
        """The comparison itself, its models loaded (``lms``: model name -> model): the sides, the run, the record."""
        n, chosen, built = len(specs), [], {}
        for k, ((preset, model), (temp, top_p, seed)) in enumerate(zip(specs, own), 1):
            lm = lms[model]
            name, cfg = contestant(preset, task, max_new, _number(temp, "temperature", k),
                                   _number(top_p, "top_p", k), _number(seed, "seed", k, int))
            if self.settings.contestants and name != preset:  # own settings make a contestant not on the list
                raise ConfigError("contestant.not_allowed", name=name, choices=", ".join(self.labels))
            if lm is not self.host.lm:
                name = _label(f"{name} @ {lm.name}")  # a model loaded from a folder is named by its path
            if name in [c[0] for c in chosen]:
                raise prompts.InputError("input.twice", name=name)
            if id(lm) not in built:  # one prompt per model: each has its own chat template
                built[id(lm)] = self._prompt(lm, task, text, source, target, length, max_new)
            chosen.append((name, cfg, preset, lm, built[id(lm)]))
        order = list(range(n))  # side k shows chosen[order[k]]
        if blind:
            _shuffle(order)
        session_id = (state or {}).get("session_id") or new_session_id()
        sides = [_Side(SIDES[k], *chosen[order[k]]) for k in range(n)]
        yield from self._run(task, sides, blind, lang, request)
        task_options = {"generation": {}, "translation": {"source": source, "target": target},
                        "dialogue": {"system": prompts.DEFAULT_SYSTEM_PROMPT}, "summarization": {"length": length}}[task]
        records, outputs = [None] * n, [None] * n
        for k, side in enumerate(sides):  # back in the contestants' order, with the seed each one used
            settings = side.prompt.config(side.cfg).to_dict()
            if side.cfg.temperature != 0:
                settings["seed"] = getattr(side.stats, "seed", None)
            records[order[k]] = {"name": side.name, "preset": side.preset, "model": side.lm.name, **settings,
                                 "task_options": task_options,
                                 "finish_reason": getattr(side.stats, "finish_reason", None)}
            outputs[order[k]] = side.text
        if all(r["finish_reason"] == "stopped" for r in records):
            # every side cut short ("Stop all"): half outputs, a vote would rate the Stop, not the contestants.
            # One side stopped while another ended is a visitor's judgement (a rambling side), and counts
            yield Progress(sides, blind, lang, done=True, state={"session_id": session_id, "comparison_id": None})
            return
        cid = self.store.new_comparison(session_id, text, task, records, outputs, blind, order)
        yield Progress(sides, blind, lang, done=True, state={"session_id": session_id, "comparison_id": cid})

    def _run(self, task: str, sides: list[_Side], blind: bool, lang: str, request):
        """Stream every side at once; each side's Stop (its own event) ends that side alone."""
        session = getattr(request, "session_hash", None)
        for notice in dict.fromkeys(side.prompt.notice for side in sides if side.prompt.notice):
            gr.Warning(html.escape(notice))
        updates: queue.Queue = queue.Queue()
        runs = []  # (the LiveRuns registration, its stop event), one per side
        try:
            for side in sides:
                reg = self.live.run(session, f"compare-{side.letter}")
                runs.append((reg, reg.__enter__()))
                side.stream = side.lm.stream(side.prompt.input, side.prompt.config(side.cfg), heartbeat=HEARTBEAT_S,
                                             stop_event=runs[-1][1])
        except BaseException:
            for reg, stop in runs:
                stop.set()
                reg.__exit__(None, None, None)
            raise

        def work(i: int, side: _Side, reg) -> None:
            try:
                for chunk in side.stream:
                    updates.put((i, chunk))
            except BaseException as e:  # noqa: BLE001 - handed to the handler, which raises it
                updates.put((i, e))
            finally:
                side.stream.close()
                updates.put((i, _DONE))
                reg.__exit__(None, None, None)  # this side's Stop has nothing left to stop

        # each side's stream is first read (and so submitted) on its own thread: the visitor's context goes
        # with it, so the engine counts every side's row as this client's (scheduler.OWNER)
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, i, s, runs[i][0]), daemon=True,
                                    name=f"compare-{s.letter}") for i, s in enumerate(sides)]
        for th in threads:
            th.start()
        running = len(sides)
        try:
            yield Progress(sides, blind, lang)
            while running:
                try:
                    items = [updates.get(timeout=HEARTBEAT_S)]
                except queue.Empty:
                    yield Progress(sides, blind, lang)  # Gradio can close a generator only between yields
                    continue
                while True:  # every update waiting now goes out in one yield
                    try:
                        items.append(updates.get_nowait())
                    except queue.Empty:
                        break
                for i, item in items:
                    side = sides[i]
                    if item is _DONE:
                        side.running, running = False, running - 1
                        side.stats = side.stream.stats
                    elif isinstance(item, BaseException):
                        raise item
                    elif item:
                        side.text += item
                        side.stats = side.stream.stats
                        self.host.count(1)
                    elif not side.text:
                        side.stats = _Waiting(side.lm, side.stream)
                yield Progress(sides, blind, lang)
        finally:  # finished, failed, or the visitor left: no side keeps running
            for _, stop in runs:
                stop.set()
        for side in sides:
            side.text = side.text.lstrip() if task == "generation" else prompts.postprocess(task, side.text)

    def stop_side(self, letter: str, request: gr.Request = None) -> None:
        self.live.stop(getattr(request, "session_hash", None), f"compare-{letter}")

    # ------------------------------------------------------------ the page and the API
    def page(self, *args, **kwargs):
        """The page's outputs: state, titles, texts, stats lines, Stop buttons (4 each), vote buttons, result."""
        sent: dict[int, Any] = {}

        def changed(values: list) -> tuple:  # unchanged outputs are skipped: a side's Stop is never re-shown
            out = []
            for i, v in enumerate(values):
                out.append(gr.skip() if i in sent and sent[i] == v else v)
                sent[i] = v
            return tuple(out)

        for p in self.compare(*args, **kwargs):
            n = len(p.sides)
            pad = [None] * (MAX_SIDES - n)
            titles = [p.title(s) for s in p.sides] + [""] * len(pad)
            texts = [s.text for s in p.sides] + [""] * len(pad)
            lines = [p.line(s) for s in p.sides] + [""] * len(pad)
            stops = [gr.update(visible=s.running) for s in p.sides] + [gr.update(visible=False)] * len(pad)
            votable = p.done and bool(p.state and p.state.get("comparison_id"))
            votes = [gr.update(interactive=votable, visible=k < n) for k in range(MAX_SIDES)] + \
                [gr.update(interactive=votable)] * 2
            result = "" if not p.done else msg("cmp_ready" if votable else "cmp_stopped", p.lang)
            yield changed([p.state, *titles, *texts, *lines, *stops, *votes, result])

    page = functools.wraps(compare)(page)

    def api(self, *args, **kwargs):
        """/compare: the sides as JSON (names only when not blind) and, last, the comparison's id."""
        for p in self.compare(*args, **kwargs):
            yield {"done": p.done, "blind": p.blind,
                   "comparison_id": p.state["comparison_id"] if p.state else None,
                   "sides": [{"side": s.letter, "output": s.text, "stats": p.line(s),
                              "name": None if p.blind else s.name} for s in p.sides]}, \
                p.state if p.state else gr.skip()

    api = functools.wraps(compare)(api)

    # ------------------------------------------------------------ the vote
    def _vote(self, choice: Any, comparison_id: Any, state: Any, request=None):
        """VoteStore.vote with the session's own id (from the server-side state, never from the client),
        within the client's rate limit (one client cast 202 votes in 63 s, all for one side)."""
        key = client_key(request, self.settings.trusted_proxies)
        if not self.votes_limit.allow(key):
            wait = max(1, math.ceil(self.votes_limit.retry_after(key) / 60))
            raise VoteError("too_many", f"too many votes from this address; try again in {wait} minute(s)", wait=wait)
        session_id = state.get("session_id") if isinstance(state, dict) else None
        cid = comparison_id if isinstance(comparison_id, str) and comparison_id else \
            (state.get("comparison_id") if isinstance(state, dict) else None)
        if not session_id or not cid:
            raise VoteError("unknown_comparison", "no comparison to vote on yet: run a comparison first")
        return self.store.vote(session_id, cid, choice)

    def vote_page(self, choice: str, state: dict | None, request: gr.Request = None):
        """A vote button: the result line, every side's title with its name, the vote buttons disabled."""
        lang = lang_of(request)
        try:
            v = self._vote(choice, "", state, request)
        except VoteError as e:
            said = error_text(e, lang)
            gr.Warning(html.escape(said), title=msg("error_title", lang))
            done = e.code == "vote.already_voted"
            return (said, *[gr.skip()] * MAX_SIDES, *[gr.update(interactive=False) if done else gr.skip()] * 6)
        titles = [f"### {s}: {html.escape(name)}" for s, name in zip(SIDES, v.sides)]
        titles += [gr.skip()] * (MAX_SIDES - len(titles))
        return (self.vote_line(v, lang), *titles, *[gr.update(interactive=False)] * 6)

    def vote_api(self, choice: str = "A", comparison_id: str = "", state: dict | None = None,
                 request: gr.Request = None):
        """/vote: the choice ("A".."D", "tie", "both_bad") on the session's comparison (the last one, or
        ``comparison_id``); returns the reveal. A refusal is an error with the reason."""
        try:
            v = self._vote(choice, comparison_id, state, request)
        except VoteError as e:
            raise gr.Error(f"vote refused: {e.message}", print_exception=False) from None
        return {"comparison_id": v.comparison_id, "choice": v.choice, "winner": v.winner, "sides": list(v.sides),
                "voted_at": v.voted_at}

    @staticmethod
    def vote_line(v, lang: str = "en") -> str:
        if v.choice in ("tie", "both_bad"):
            said = msg(f"cmp_choice_{v.choice}", lang)
        else:
            said = msg("cmp_choice_side", lang, side=v.choice)
        reveal = ", ".join(msg("cmp_reveal", lang, side=s, name=html.escape(name)) for s, name in zip(SIDES, v.sides))
        return msg("cmp_voted", lang, choice=said, reveal=reveal)

    # ------------------------------------------------------------ the leaderboard
    def leaderboard(self, request: gr.Request = None) -> str:
        board, pending = self.board.get()
        lang = lang_of(request)
        if board is None:  # the first fit failed (logged)
            return msg("cmp_board_empty", lang)
        shown = render_leaderboard(board, lang)
        return shown + msg("cmp_board_pending", lang, n=pending) if pending and board.ratings else shown
