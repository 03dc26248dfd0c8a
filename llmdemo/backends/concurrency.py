"""How many requests to keep in flight to a model server: a semaphore whose size adapts.

A fixed number is wrong somewhere: too low and a vLLM server batches little; too high and a hosted
endpoint answers 429 (or 503) and every rejected request waits out a backoff. So, as Inspect AI's
adaptive connections do (its docs, "Model Concurrency"), the limit starts at 20 and adapts between a
minimum and a maximum (default 100): additive increase while the server keeps up, multiplicative
decrease (x0.8, rounded, at least 1 less) on a rate-limit episode, debounced by a 15 s cool-down (longer
if the first 429's ``Retry-After`` asks for longer) so that one burst of 429s is one cut. Transient
failures (500, 502, 504, a dropped connection) never shrink it: they are infrastructure noise, and fewer
requests would not cure an outage; a success after a retry is neutral. ``Retry-After`` is honoured in
both modes.

Departures from Inspect, each small: the minimum is 1 (Inspect's 4); growth is +1 per ``limit``
consecutive successes completed at the limit (no slow start: growth needs evidence that the limit, not
the workload, is what holds requests back); a 429 answered to a request sent before the latest cut
belongs to the episode that caused that cut, whatever the clock says (it says nothing about the new
limit); and there is no growth within the cool-down after a cut, while that episode's 429s may still be
arriving.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import threading
import time
from typing import Any, Callable, Iterator

START = 20
MAXIMUM = 100
DECREASE = 0.8
COOLDOWN_S = 15.0
MAX_WAIT_S = 60.0  # a Retry-After longer than this is taken as this: a run should not stall for an hour
OVERLOAD_STATUS = frozenset({429, 503})  # 503: what vLLM, TGI and proxies answer when full


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    ``now``: the wall-clock time (``time.time()``) an HTTP date is measured from. None when absent or
    unreadable; a date in the past is 0.

    >>> parse_retry_after("7"), parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    (7.0, 10.0)
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is not one of them
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), 1e9)


class Slot:
    """One request's place in a :class:`Concurrency`; reports its outcome, then is released (once)."""

    def __init__(self, owner: "Concurrency", epoch: int):
        self._owner, self.epoch, self._held = owner, epoch, True

    def success(self, clean: bool = True) -> None:
        """The server answered. ``clean=False``: it did after a retry, which is no evidence it keeps up."""
        self._owner.success(epoch=self.epoch, clean=clean)

    def overloaded(self, retry_after_s: float | None = None) -> float | None:
        return self._owner.overloaded(retry_after_s, epoch=self.epoch)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner.release()


class Concurrency:
    """A thread-safe limit on requests in flight: adaptive (see the module docstring) or fixed.

    ``acquire()`` blocks until a request may go and returns its :class:`Slot`; ``release()`` (or the slot's)
    ends it. Between the two, ``success()`` or ``overloaded(retry_after_s)`` say how the server answered.
    ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(self, start: int = START, *, minimum: int = 1, maximum: int = MAXIMUM, fixed: bool = False,
                 decrease: float = DECREASE, cooldown_s: float = COOLDOWN_S, max_wait_s: float = MAX_WAIT_S,
                 clock: Callable[[], float] = time.monotonic):
        if fixed:
            minimum = maximum = int(start)
        if not 1 <= int(minimum) <= int(maximum):
            raise ValueError(f"concurrency bounds must satisfy 1 <= min <= max, got min {minimum}, max {maximum}")
        if not 0.0 < decrease < 1.0:
            raise ValueError(f"the decrease factor must be between 0 and 1, got {decrease}")
        self.fixed = fixed
        self.minimum, self.maximum = int(minimum), int(maximum)
        self.start = min(max(int(start), self.minimum), self.maximum)
        self.decrease, self.cooldown_s, self.max_wait_s = decrease, float(cooldown_s), float(max_wait_s)
        self._clock = clock
        self._cond = threading.Condition()
        self._limit = self.start
        self._in_flight = 0
        self._epoch = 0  # cuts so far: a slot remembers the epoch it was acquired in
        self._quiet_until = -math.inf  # end of the cool-down: no further cut, no growth before it
        self._streak = 0  # consecutive clean successes at the limit since the last change
        self.episodes = 0  # rate-limit episodes (each one cut in adaptive mode)
        self.rate_limited = 0  # 429/503 answers, every one
        self.peak = 0  # the most requests in flight at once
        self.min_seen = self.start  # the lowest the limit has been

    @classmethod
    def of(cls, spec: "int | str | Concurrency", maximum: int = MAXIMUM) -> "Concurrency":
        """``"auto"``: adaptive, starting at 20 (or ``maximum`` if lower) up to ``maximum``; an int (or a
        string of digits, as a command line gives it): fixed at that; a Concurrency: itself (to share one)."""
        if isinstance(spec, Concurrency):
            return spec
        if isinstance(spec, str) and spec.strip().lower() == "auto":
            return cls(min(START, int(maximum)), maximum=int(maximum))
        try:
            n = int(spec)
        except (TypeError, ValueError):
            raise ValueError(f"concurrency must be 'auto' or a number of requests, got {spec!r}") from None
        if n < 1:
            raise ValueError(f"concurrency must be at least 1, got {n}")
        return cls(n, fixed=True)

    # ------------------------------------------------------------ state
    @property
    def mode(self) -> str:
        return "fixed" if self.fixed else "adaptive"

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # ------------------------------------------------------------ slots
    def acquire(self, stop: Callable[[], bool] | None = None) -> Slot | None:
        """Wait for room under the limit and take it; None if ``stop()`` turned true while waiting."""
        with self._cond:
            while self._in_flight >= self._limit:
                if stop is not None and stop():
                    return None
                # with a stop predicate, wake now and then to look at it (nothing notifies on a stop)
                self._cond.wait(0.1 if stop is not None else None)
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            return Slot(self, self._epoch)

    def release(self) -> None:
        with self._cond:
            if self._in_flight <= 0:
                raise RuntimeError("Concurrency.release() without a matching acquire()")
            self._in_flight -= 1
            self._cond.notify()

    @contextlib.contextmanager
    def slot(self) -> Iterator[Slot]:
        s = self.acquire()
        assert s is not None  # no stop predicate: acquire() only returns with a slot
        try:
            yield s
        finally:
            s.release()

    # ------------------------------------------------------------ outcomes
    def success(self, epoch: int | None = None, clean: bool = True) -> None:
        """Call while still holding the slot: whether the limit was reached is read from ``in_flight``."""
        if self.fixed or not clean:
            return
        with self._cond:
            if epoch is not None and epoch != self._epoch:
                return  # sent under an older, higher limit: no evidence about this one
            # below the limit the workload, not the limit, held requests back: no evidence the server
            # would keep up with more
            if self._in_flight < self._limit or self._clock() < self._quiet_until:
                return
            self._streak += 1
            if self._streak >= self._limit and self._limit < self.maximum:
                self._limit += 1
                self._streak = 0
                self._cond.notify()

    def overloaded(self, retry_after_s: float | None = None, epoch: int | None = None) -> float | None:
        """A 429 or 503. Cuts the limit once per episode (adaptive mode); returns the wait ``Retry-After``
        asked for, capped at ``max_wait_s`` (None when it gave none: the caller backs off as it would)."""
        wait = None if retry_after_s is None else min(max(0.0, float(retry_after_s)), self.max_wait_s)
        with self._cond:
            self.rate_limited += 1
            self._streak = 0
            now = self._clock()
            stale = epoch is not None and epoch != self._epoch
            if now >= self._quiet_until and not stale:
                self.episodes += 1
                self._epoch += 1
                if not self.fixed:
                    self._limit = max(self.minimum, min(self._limit - 1, round(self._limit * self.decrease)))
                    self.min_seen = min(self.min_seen, self._limit)
                # the episode lasts at least until the server said it would take more; only its first 429
                # sets the end, or a steady run of them would put the next cut off for ever
                self._quiet_until = now + max(self.cooldown_s, wait or 0.0)
        return wait

    def info(self) -> dict[str, Any]:
        """For a results file: the mode, the bounds, the limit now and what happened."""
        with self._cond:
            return {"mode": self.mode, "start": self.start, "min": self.minimum, "max": self.maximum,
                    "limit": self._limit, "peak": self.peak, "lowest": self.min_seen, "episodes": self.episodes,
                    "rate_limited": self.rate_limited}

    def __repr__(self) -> str:
        return (f"Concurrency({self.mode}, limit={self._limit}, in_flight={self._in_flight}, "
                f"range={self.minimum}-{self.maximum})")
