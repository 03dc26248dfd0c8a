"""A generation request as the scheduler sees it: what to generate, who it is for, its priority, its cancel
handle, and the tokens as they come (readers wait on it from other threads).

Its errors (:class:`SchedulerBusy`, :class:`RequestAborted`) are the visitor's: coded ``UserError``s.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from contextvars import ContextVar
from typing import Callable

from ..config import GenerationConfig
from ..errors import UserError

log = logging.getLogger("llmdemo.engine.scheduler")

INTERACTIVE, BATCH = 0, 1  # priorities: lower runs first
# who a request is for (the app sets a client's address around each step of its handler): a new client's
# request is admitted before one of a client already holding rows, so one client streaming many
# generations does not hold every row while others wait. None: no owner (the CLI, an evaluation run)
OWNER: ContextVar[str | None] = ContextVar("llmdemo_owner", default=None)
PRIORITIES = {"interactive": INTERACTIVE, "batch": BATCH}


def as_priority(priority: int | str) -> int:
    """A priority given by name ("interactive", "batch") or number, as a number."""
    return PRIORITIES.get(priority, priority) if isinstance(priority, str) else priority


class SchedulerBusy(UserError, RuntimeError):
    """Too many requests are waiting already; the message says to try again."""


class RequestAborted(UserError, RuntimeError):
    """The request could not finish (the model was unloaded or replaced meanwhile); the message says why."""


class Request:
    """A generation request: what to generate, and the tokens as they come.

    The scheduler appends to ``tokens`` and sets ``finish_reason`` ("eos", "length",
    "stop_string", "stopped", "error"); readers call :meth:`wait` and read ``tokens``.
    """

    _ids = itertools.count()

    def __init__(self, prompt: list[int], config: GenerationConfig, *, budget: int, seed: int,
                 priority: int = INTERACTIVE, stop_event: threading.Event | None = None,
                 on_finish: Callable[["Request"], None] | None = None):
        self.id = next(self._ids)
        self.owner = OWNER.get()
        self.prompt = list(prompt)
        self.config = config
        self.budget = budget
        self.seed = seed
        self.priority = priority
        self.stop_event = stop_event
        self.on_finish = on_finish
        self.tokens: list[int] = []
        # with config.logprobs: one sampling.TokenProbs per token of ``tokens`` (filled before it)
        self.token_probs: list = []
        self.finish_reason: str | None = None
        self.error: BaseException | None = None
        self.steps = 0  # forward passes spent on this request (prompt chunks and decode steps)
        self.prefix_reused = 0  # prompt tokens whose keys/values came from the prefix cache
        self.submitted_at = time.perf_counter()
        self.started_at: float | None = None  # when its first prompt chunk was computed
        # the scheduler's forward count when it was submitted and when its first token came:
        # how many forward passes it waited for, whatever they cost (tests check this, not times)
        self.submitted_step: int | None = None
        self.first_token_step: int | None = None
        self._cancel = threading.Event()
        self._cond = threading.Condition()

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def cancel(self) -> None:
        """Ask the scheduler to drop this request before its next step (no effect once finished)."""
        self._cancel.set()
        with self._cond:
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float | None = None) -> bool:
        """Block until there are more than ``seen`` tokens or the request is done; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.tokens) > seen or self.done or self._cancel.is_set(),
                                       timeout)

    # called by the scheduler's thread
    def _push(self, token: int, probs=None) -> None:
        with self._cond:
            if probs is not None:
                self.token_probs.append(probs)
            self.tokens.append(token)
            self._cond.notify_all()

    def _finish(self, reason: str, error: BaseException | None = None) -> None:
        with self._cond:
            if self.finish_reason is not None:
                return
            self.error = error
            self.finish_reason = reason
            self._cond.notify_all()
        if self.on_finish is not None:
            try:
                self.on_finish(self)
            except Exception:  # noqa: BLE001 - a reader's callback must not stop the loop
                log.exception("on_finish callback failed")
