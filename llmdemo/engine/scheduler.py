"""One scheduler owns the shared model: continuous batching, cancellation, priorities.

Every generation is a :class:`Request` (prompt ids, settings, budget, priority, cancel handle)
submitted to the :class:`Scheduler`. Its thread loops over three kinds of work, the way vLLM's
scheduler and model runner split it:

    1. drop requests that finished or were cancelled (their rows leave the batch at once);
    2. admit waiting requests (interactive before batch; among equals, the request whose owner holds the
       fewest rows, then the oldest; a smaller one that fits passes one that does not, for a while; a
       client holding rows leaves the last row to a client holding none);
    3. one step (``runner.step``): the next prompt chunks, the shortest prompts first (a long prompt is
       read chunk by chunk, so the others get a step between two chunks), and one token for every request
       whose prompt is read, all rows together.

Other work on the model (scoring a window, one look inside the model) is a :meth:`Scheduler.call`
run on the same thread between steps, so nothing else computes on the model meanwhile.

Interactive requests come first: they are admitted before batch work, even beyond the batch
work's share of ``max_running``, and batch calls wait while interactive requests are active
(at most ``batch_patience_s``, so batch work is slowed, never starved). New tokens are pushed
into the request as they are made: a slow reader never holds the loop.
"""

from __future__ import annotations

import atexit
import collections
import heapq
import itertools
import logging
import threading
import weakref
import time
from concurrent.futures import Future
from typing import Any, Callable

# the request, its priorities and errors live in request.py; importable from here too, as callers always have
from .request import (BATCH, INTERACTIVE, OWNER, PRIORITIES, Request, RequestAborted,  # noqa: F401
                      SchedulerBusy, as_priority)
from .runner import Sequence
from .sampler import Sampler

log = logging.getLogger("llmdemo.engine.scheduler")


class Scheduler:
    """Steps all running requests of one model together; see the module docstring.

    ``max_running``: rows in one decode step (interactive requests may go past it when batch work
    fills it, never batch work); ``max_waiting``: requests queued before :class:`SchedulerBusy`.
    """

    def __init__(self, lm, *, max_running: int = 16, max_waiting: int = 256, batch_patience_s: float = 2.0,
                 hold_s: float = 30.0):
        self.lm = lm
        self.hold_s = hold_s  # how long smaller requests may pass the first in line (see _next_admitted)
        self._light_last = False  # the last step left the long prompts out (see _step)
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.batch_patience_s = batch_patience_s
        self.steps = 0  # forward passes run by the loop (decode steps and prompt chunks)
        self.step_hook: Callable[[str, int], None] | None = None  # called before each forward: (kind, rows)
        self._waiting: list[tuple[int, int, Request]] = []  # heap of (priority, arrival, request)
        self._active: dict[Request, Sequence] = {}  # admitted: prompt being read, or decoding
        self._calls: list[tuple[int, int, float, Callable[[], Any], Future]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ the public side
    def submit(self, req: Request) -> Request:
        with self._cond:
            if self._closed:
                raise RequestAborted("aborted.unloaded")
            if len(self._waiting) >= self.max_waiting:
                raise SchedulerBusy("busy.queue", n=len(self._waiting))
            req.submitted_step = self.steps
            heapq.heappush(self._waiting, (req.priority, next(self._order), req))
            self._start()
            self._cond.notify_all()
        return req

    def call(self, fn: Callable[[], Any], priority: int = INTERACTIVE) -> Any:
        """Run ``fn()`` on the scheduler's thread between two steps and return its result."""
        if threading.current_thread() is self._thread:
            return fn()  # already on the model's thread (a call inside a call)
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RequestAborted("aborted.unloaded")
            heapq.heappush(self._calls, (priority, next(self._order), time.perf_counter(), fn, fut))
            self._start()
            self._cond.notify_all()
        return fut.result()

    def queue_position(self, req: Request) -> int:
        """How many requests wait ahead of ``req`` (0 once it is admitted)."""
        with self._cond:
            if req in self._active or req.done:
                return 0
            mine = next(((p, o) for p, o, r in self._waiting if r is req), None)
            return sum(1 for p, o, _ in self._waiting if mine is not None and (p, o) < mine)

    def stats(self) -> dict:
        with self._cond:
            return {"waiting": len(self._waiting), "running": len(self._active), "steps": self.steps,
                    "max_running": self.max_running}

    def close(self, reason: str = "the model was unloaded") -> None:
        """Stop the loop; every request not finished ends with an error that says why."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        err = RequestAborted("aborted.changed", reason=reason)
        for _, _, req in self._waiting:
            req._finish("error", err)
        for req in list(self._active):
            req._finish("error", err)
        for *_, fut in self._calls:
            fut.set_exception(err)
        self._waiting, self._active, self._calls = [], {}, []

    def abort_running(self, error: BaseException) -> int:
        """End every running request with ``error`` (on the scheduler's thread, between steps: e.g. inside
        :meth:`call` when the model's forward is swapped); returns how many ended."""
        active = list(self._active)
        for req in active:
            self._end(req, "error", error)
        return len(active)

    # ------------------------------------------------------------ the loop
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"scheduler-{self.lm.name}", daemon=True)
            self._thread.start()
            _RUNNING.add(self)

    def _stop_at_exit(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


    def _loop(self) -> None:
        try:
            self._steps_forever()
        except BaseException as e:  # a dead engine thread is reported to every waiter, never waited on forever
            log.critical("the scheduler's thread died", exc_info=True)  # reported here, with its traceback
            self.close(f"the model's engine thread stopped ({type(e).__name__}: {e})")

    def _steps_forever(self) -> None:
        while True:
            with self._cond:
                while not (self._waiting or self._active or self._calls or self._closed):
                    self._cond.wait()
                if self._closed:
                    return
            try:
                self._iteration()
            except Exception as e:  # noqa: BLE001 - a failed step ends its requests, never the loop
                log.exception("scheduler step failed")
                for req in list(self._active):
                    self._end(req, "error", e)

    def _iteration(self) -> None:
        self._drop_cancelled()
        self._admit()
        self._run_calls(interactive_only=True)
        interactive_busy = any(r.priority == INTERACTIVE for r in self._active)
        self._step()
        self._run_calls(interactive_only=False, interactive_busy=interactive_busy)

    def _drop_cancelled(self) -> None:
        with self._cond:
            gone = [item for item in self._waiting if item[2].cancelled]
            if gone:
                self._waiting = [item for item in self._waiting if not item[2].cancelled]
                heapq.heapify(self._waiting)
        for _, _, req in gone:
            req._finish("stopped")
        for req in [r for r in self._active if r.cancelled]:
            self._end(req, "stopped")

    def _next_admitted(self) -> Request | None:
        """The first waiting request (by priority, then its owner's rows, then arrival) that has a row and fits
        the runner now.

        A runner with a fixed room (llama.cpp: sequences and cells of one context) may not hold the first
        in line yet: a smaller request behind it that fits goes first (a 1-token visitor once waited 370 s
        behind 1,024-token reservations it would have fitted beside). Once the first in line has waited
        ``hold_s``, nothing passes it any more, so a large request is delayed, never starved."""
        n_inter = sum(1 for r in self._active if r.priority == INTERACTIVE)
        fits = getattr(self.lm.runner, "can_start", None)
        # a fair share of the runner's cells (llama.cpp: one context for every row); see `keep` below
        share = getattr(self.lm.runner, "n_ctx", 0) // max(1, self.max_running)
        held = collections.Counter(r.owner for r in self._active if r.owner is not None)
        # by priority, then the rows the request's owner already holds (a fair share of rows), then arrival
        order = sorted(self._waiting, key=lambda it: (it[0], held[it[2].owner] if it[2].owner is not None else 0,
                                                      it[1]))
        for k, item in enumerate(order):
            prio, _, req = item
            free = self.max_running - (n_inter if prio == INTERACTIVE else len(self._active))
            # A client already holding rows leaves the last row and a row's share of cells to a client holding
            # none: a newcomer starts within a step instead of waiting for one of the holder's generations to
            # end (running rows are never pre-empted). Requests nobody owns (the CLI, evaluation runs) keep
            # every row.
            keep = req.owner is not None and held[req.owner] > 0
            room = free > (1 if keep else 0)
            if room and (fits is None or fits(len(req.prompt), req.budget + (share if keep else 0))):
                self._waiting.remove(item)
                heapq.heapify(self._waiting)
                return req
            if k == 0 and time.perf_counter() - req.submitted_at > self.hold_s:
                return None  # the first in line holds its place
        return None

    def _admit(self) -> None:
        while True:
            with self._cond:
                if not self._waiting:
                    return
                req = self._next_admitted()
                if req is None:
                    return
            try:
                seq = Sequence(prompt=req.prompt, budget=req.budget, exact=req.priority == BATCH)
                seq.seen = list(req.prompt) if req.config.repetition_penalty != 1.0 else None
                seq.sampler = Sampler(req.config, req.seed, self.lm.suppress_ids)
                self.lm.runner.start(seq)
            except Exception as e:  # noqa: BLE001 - this request fails with the reason; the others go on
                req._finish("error", e)
                continue
            req.prefix_reused = seq.reused
            self._active[req] = seq

    def _hook(self, kind: str, rows: int) -> None:
        self.steps += 1
        if self.step_hook is not None:
            self.step_hook(kind, rows)

    def _step(self) -> None:
        """Every decode row's token and as many prompt tokens of rows being read as the runner's step holds
        (interactive first, then the shortest), in one ``runner.step``: llama.cpp reads 20 arriving visitors'
        prompts together, not one by one; a runner that reads one prompt at a time gets one per step."""
        rows = [(r, s) for r, s in self._active.items() if s.prefilled and not r.done]
        room = self.lm.runner.n_batch  # prompt tokens this step (the runner reads them in a call of their own)
        pre = []
        for req in sorted((r for r, s in self._active.items() if not s.prefilled),
                          key=lambda r: _reading_order(r, self._active[r])):
            if room <= 0:
                break
            seq = self._active[req]
            n = min(len(seq.prompt) - seq.filled, room)
            pre.append((req, seq, n))
            room -= n
        # a short prompt read to its end this step goes in a light step without the long prompts' chunks,
        # so its first token does not wait for ~500 prompt tokens of theirs; never two light steps in a row,
        # so the long prompts are slowed at most twofold by a stream of short ones
        ending = [x for x in pre if x[2] == len(x[1].prompt) - x[1].filled]
        light = bool(ending) and len(ending) < len(pre) and not self._light_last and \
            sum(n for *_, n in ending) <= self.lm.runner.n_batch // 4
        if light:
            pre = ending
        self._light_last = light
        if not rows and not pre:
            return
        # the hook's kind: "decode" (rows only), "prefill" (prompts only) or "decode+prefill"
        self._hook("+".join(k for k, there in (("decode", rows), ("prefill", pre)) if there), len(rows) + len(pre))
        for r, *_ in rows + pre:
            r.steps += 1
        now = time.perf_counter()
        for r, *_ in pre:
            if r.started_at is None:
                r.started_at = now
        try:
            pre_logits, logits = self.lm.runner.step([(s, n) for _, s, n in pre], [s for _, s in rows])
        except Exception as e:  # noqa: BLE001 - the rows of this step fail with the reason; the loop goes on
            log.exception("a forward step failed")
            for r, *_ in rows + pre:
                self._end(r, "error", e)
            return
        for (req, seq, _), lg in zip(pre, pre_logits):
            if lg is not None:
                try:
                    self._emit(req, seq, lg)
                except Exception as e:  # noqa: BLE001
                    self._end(req, "error", e)
        for i, (req, seq) in enumerate(rows):
            try:
                self._emit(req, seq, logits[i])
            except Exception as e:  # noqa: BLE001 - e.g. NaN logits in one row: that request fails, not all
                self._end(req, "error", e)

    def _emit(self, req: Request, seq: Sequence, logits) -> None:
        """Sample the request's next token from its own row of logits and hand it over."""
        probs = None
        if req.config.logprobs:  # the same pick, and the distributions it came from (no second pass)
            tok, probs = seq.sampler.pick_with_probs(logits, seq.seen, req.config.logprobs)
        else:
            tok = seq.sampler(logits, seq.seen)
        if tok in self.lm.eos_ids:
            self._end(req, "eos")
            return
        if not seq.new:
            req.first_token_step = self.steps
        seq.new.append(tok)
        seq.last = tok
        if seq.seen is not None:
            seq.seen.append(tok)
        req._push(tok, probs)
        if len(seq.new) >= seq.budget:
            self._end(req, "length")
        elif req.config.stop and _has_stop(self.lm.decode(seq.new[-16:]), req.config.stop):
            self._end(req, "stop_string")

    def _end(self, req: Request, reason: str, error: BaseException | None = None) -> None:
        seq = self._active.pop(req, None)
        if seq is not None:
            try:
                # a finished interactive prompt is kept for the next one (a chat's next turn starts with it);
                # a stopped or failed one is freed at once
                self.lm.runner.finish(seq, keep_prefix=req.priority == INTERACTIVE and reason in
                                      ("eos", "length", "stop_string"))
            except Exception:  # noqa: BLE001
                log.exception("releasing a sequence failed")
        req._finish(reason, error)

    def _run_calls(self, interactive_only: bool, interactive_busy: bool = False) -> None:
        with self._cond:
            if not self._calls:
                return
            prio, _, queued_at, fn, fut = self._calls[0]
            if prio != INTERACTIVE:
                if interactive_only:
                    return
                # batch work waits while visitors are served, but never longer than its patience
                if interactive_busy and time.perf_counter() - queued_at < self.batch_patience_s:
                    return
            heapq.heappop(self._calls)
        if not fut.set_running_or_notify_cancel():
            return
        self._hook("call", 1)
        try:
            fut.set_result(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            fut.set_exception(e)


def _reading_order(req: Request, seq: Sequence) -> tuple[int, int, int]:
    """Which prompt is read first: interactive before batch, then the fewest prompt tokens left, then
    arrival. Oldest-first made a visitor's 1-token request wait 221 s behind two 4,400-token prompts sent
    2 s earlier; shortest-first reads it in the next step, and a long prompt still gets what room a step
    has left over."""
    return req.priority, len(seq.prompt) - seq.filled, req.id


def _has_stop(text: str, stops) -> bool:
    return any(s in text for s in stops)


# Loops still running when the interpreter exits are stopped first: a daemon thread frozen in
# place while torch's and OpenMP's objects are destroyed under it ended the process with
# "terminate called without an active exception" (SIGABRT, exit code 134).
_RUNNING: "weakref.WeakSet[Scheduler]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for sched in list(_RUNNING):
        sched._stop_at_exit()
