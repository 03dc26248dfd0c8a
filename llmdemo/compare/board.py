"""The leaderboard kept ready: fitted once per change of the votes, in a thread of its own.

A fit with bootstrap intervals costs from milliseconds to seconds (rounds x contestants); computed on
each view and after each vote, four views at once of a board with 300 visitor-made contestants cost
over 1,000 s of CPU each. Here the cost is bounded twice: ``max_rated`` contestants at most enter the
fit (ratings.leaderboard), and at most one fit runs at a time, started by a view that found the board
older than the votes; other views get the latest board with the number of votes it does not count yet.
A vote never computes anything.
"""

from __future__ import annotations

import logging
import threading

from . import ratings

log = logging.getLogger(__name__)

PRELIMINARY_BATTLES = 10  # fewer votes than this: a row is shown as preliminary, without an interval or a rank
MAX_RATED = 24  # contestants fitted, those in the most votes; the rest are counted as "not rated"


class BoardCache:
    def __init__(self, store, *, rounds: int = 1000, seed: int = 0, max_rated: int = MAX_RATED):
        self.store, self.rounds, self.seed, self.max_rated = store, rounds, seed, max_rated
        self._lock = threading.Lock()
        self._board: ratings.Leaderboard | None = None
        self._counted = -1  # the store's vote count the board was fitted on
        self._worker: threading.Thread | None = None
        self.fits = 0  # how many fits ran (tests count them)

    def get(self, wait_s: float = 3.0) -> tuple[ratings.Leaderboard, int]:
        """The latest board and how many votes it does not count yet (0: it is current).

        A board older than the votes starts one fit (never two at once) and waits up to ``wait_s`` for
        it, so a visitor usually sees their own vote; past that the older board is given."""
        count = self.store.version()
        with self._lock:
            if self._counted != count and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(target=self._fit, name="leaderboard-fit", daemon=True)
                self._worker.start()
            worker = self._worker
        if worker is not None and (self._counted != count):
            worker.join(wait_s if self._board is not None else None)  # the first board is waited for
        with self._lock:
            return self._board, max(0, count - self._counted)

    def _fit(self) -> None:
        count = self.store.version()  # read before the votes: a vote in between makes the board stale, not wrong
        try:
            board = ratings.leaderboard(self.store.votes(), rounds=self.rounds, seed=self.seed,
                                        max_rated=self.max_rated)
        except Exception:  # the views keep the older board (a database error is logged, not shown)
            log.exception("leaderboard fit failed")
            return
        with self._lock:
            self._board, self._counted = board, count
            self.fits += 1
