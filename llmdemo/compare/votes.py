"""Blind-vote records: what each visitor was shown, and the one vote they gave on it, in SQLite.

The server keeps the comparison (prompt, outputs, contestants, the order of the sides) when it
shows it; a vote names only the comparison and a side, so a visitor cannot vote on outputs they
did not receive, on someone else's comparison, or twice on one.

>>> import tempfile, os
>>> store = VoteStore(os.path.join(tempfile.mkdtemp(), "votes.sqlite3"))
>>> sid = new_session_id()
>>> cid = store.new_comparison(sid, "Name a colour.", "generation",
...                            [{"name": "greedy", "temperature": 0}, {"name": "t=1.0", "temperature": 1.0}],
...                            ["Blue.", "Maybe teal?"], blind=True, order=[1, 0])
>>> v = store.vote(sid, cid, "A")          # side A showed contestant 1
>>> v.winner, v.sides
('t=1.0', ('t=1.0', 'greedy'))
>>> store.vote(sid, cid, "B")
Traceback (most recent call last):
...
llmdemo.compare.votes.VoteError: [already_voted] this comparison already has a vote

Everything stored is plain text: prompts and outputs may hold HTML or Markdown written by a
visitor or a model, and whatever renders them (the app, an export viewer) must escape them.
Nothing identifies a visitor beyond the random session id the app draws per browser session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from ..errors import UserError

MAX_CONTESTANTS = 4  # sides A..D
SIDES = "ABCD"
TIE_CHOICES = ("tie", "both_bad")  # "both_bad" counts as a tie in the ratings, as LMArena's "tie (bothbad)"
TASKS = ("generation", "translation", "dialogue", "summarization")

# Limits: well above what the app produces (20,000 input characters, 4096 new tokens), far below
# what would let one request fill the disk.
MAX_PROMPT_CHARS = 100_000
MAX_OUTPUT_CHARS = 100_000
MAX_NAME_CHARS = 200
MAX_CONTESTANT_JSON = 16_000  # one contestant's settings, as JSON
UNVOTED_KEEP_S = 24 * 3600  # a comparison without a vote is removed after this (when a new one is recorded)
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what secrets.token_urlsafe draws

# The codes VoteError carries, for a UI that words the message itself.
ERROR_CODES = (
    "bad_session",          # session id missing or not one new_session_id() could have drawn
    "unknown_comparison",   # no comparison with that id
    "not_your_comparison",  # the comparison was shown to another session
    "already_voted",        # the comparison has its vote
    "bad_choice",           # not a side this comparison offered, nor "tie" / "both_bad"
    "bad_type",             # a field of the wrong type (a number for a prompt, a dict for an id...)
    "too_long",             # a string or a settings dict over its limit
    "bad_text",             # text that is not valid Unicode (lone surrogates)
    "bad_task",             # not one of TASKS
    "bad_contestants",      # fewer than 2 or more than 4, unnamed, duplicate names, settings not JSON
    "bad_outputs",          # not one output per contestant
    "bad_order",            # order is not a permutation of the contestants
    "too_many",             # this client's votes are over the app's rate limit (webui/clients.py)
)


class VoteError(UserError, ValueError):
    """A comparison or vote refused: code ``vote.KIND`` (KIND one of ERROR_CODES); the message says why."""

    def __init__(self, kind: str, message: str, **params):
        assert kind in ERROR_CODES, kind
        super().__init__(f"vote.{kind}", kind=kind, detail=message, **params)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Vote:
    comparison_id: str
    choice: str  # "A".."D", "tie" or "both_bad"
    winner: str | None  # the winning contestant's name; None for a tie or both bad
    sides: tuple[str, ...]  # contestant names in the order the sides were shown: the reveal
    voted_at: str  # UTC, ISO 8601
    app_version: str


def new_session_id() -> str:
    """A random id for one visitor's session (128 bits); the only visitor identifier stored."""
    return secrets.token_urlsafe(16)


def app_version() -> str:
    try:
        from importlib.metadata import version

        return version("llmdemo")
    except Exception:  # not installed as a distribution: the source tree's version
        from .. import __version__

        return __version__


def default_db_path() -> Path:
    """$LLMDEMO_VOTES_DB, else votes.sqlite3 in the app's output folder ($LLMDEMO_OUTPUT_DIR, as
    webui/settings.py reads it; the old-run cleanup there removes run folders only, never this file)."""
    if os.environ.get("LLMDEMO_VOTES_DB"):
        return Path(os.environ["LLMDEMO_VOTES_DB"])
    out = os.environ.get("LLMDEMO_OUTPUT_DIR") or Path.home() / ".cache" / "llmdemo" / "runs"
    return Path(out) / "votes.sqlite3"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS comparisons (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    task TEXT NOT NULL,
    prompt TEXT NOT NULL,
    contestants TEXT NOT NULL,    -- JSON list of dicts, each with "name" and its full settings
    outputs TEXT NOT NULL,        -- JSON list of strings, outputs[i] is contestants[i]'s
    blind INTEGER NOT NULL,
    side_order TEXT NOT NULL,     -- JSON list: side k (A, B, ...) showed contestants[side_order[k]]
    app_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    comparison_id TEXT PRIMARY KEY REFERENCES comparisons(id),  -- one vote per comparison
    choice TEXT NOT NULL,
    winner INTEGER,               -- index into contestants; NULL for tie / both_bad
    voted_at TEXT NOT NULL,
    app_version TEXT NOT NULL
);
"""


class VoteStore:
    """Comparisons and votes in one SQLite file; safe to share between the app's threads.

    Each call opens its own connection (sqlite3 connections are not for sharing across threads)
    and writes in one transaction; WAL with synchronous=FULL makes a returned write durable,
    so "vote saved" survives a crash of the app right after.
    """

    def __init__(self, path: str | os.PathLike | None = None, unvoted_keep_s: float = UNVOTED_KEEP_S):
        self.path = Path(path) if path is not None else default_db_path()
        self.unvoted_keep_s = unvoted_keep_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # kept in the file
            conn.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.isolation_level = ""  # back to implicit transactions, so `with conn:` commits or rolls back
            yield conn
        finally:
            conn.close()

    # --- writes -----------------------------------------------------------------------------

    def new_comparison(self, session_id: str, prompt: str, task: str, contestants: list[dict],
                       outputs: list[str], blind: bool, order: list[int]) -> str:
        """Record what one session was shown; returns the comparison id its vote must name.

        ``contestants[i]`` is a JSON-serialisable dict with a unique ``"name"`` (what the
        leaderboard ranks and the reveal shows) and the full settings; ``outputs[i]`` its output;
        side k (A, B, ...) showed ``contestants[order[k]]``.
        """
        _session(session_id)
        prompt = _text("prompt", prompt, MAX_PROMPT_CHARS)
        if not isinstance(task, str) or task not in TASKS:
            raise VoteError("bad_task", f"task must be one of {', '.join(TASKS)}")
        if not isinstance(blind, bool):
            raise VoteError("bad_type", "blind must be true or false")
        if not isinstance(contestants, (list, tuple)) or not 2 <= len(contestants) <= MAX_CONTESTANTS:
            raise VoteError("bad_contestants", f"a comparison has 2 to {MAX_CONTESTANTS} contestants")
        names, settings = [], []
        for c in contestants:
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"].strip():
                raise VoteError("bad_contestants", "each contestant is a dict with a non-empty name")
            _text("contestant name", c["name"], MAX_NAME_CHARS)
            try:
                js = json.dumps(c, ensure_ascii=False, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError, RecursionError):
                raise VoteError("bad_contestants", f"contestant {c['name']!r}: settings must be plain JSON data") from None
            _text("contestant settings", js, MAX_CONTESTANT_JSON)
            names.append(c["name"])
            settings.append(c)
        if len(set(names)) != len(names):
            raise VoteError("bad_contestants", "contestant names must differ")
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(contestants):
            raise VoteError("bad_outputs", "one output per contestant")
        outputs = [_text("output", o, MAX_OUTPUT_CHARS) for o in outputs]
        if (not isinstance(order, (list, tuple)) or not all(type(k) is int for k in order)
                or sorted(order) != list(range(len(contestants)))):
            raise VoteError("bad_order", f"order must be a permutation of 0..{len(contestants) - 1}")
        cid = secrets.token_urlsafe(16)  # unguessable, unlike a row number
        with self._connect() as conn, conn:
            # comparisons nobody voted on are kept UNVOTED_KEEP_S, long enough to vote on them; kept for ever,
            # 4 clients filled ~378 MB an hour with them
            cutoff = (datetime.now(timezone.utc) - timedelta(seconds=self.unvoted_keep_s)).isoformat(
                timespec="microseconds")
            conn.execute("DELETE FROM comparisons WHERE created_at < ? AND id NOT IN (SELECT comparison_id FROM votes)",
                         (cutoff,))
            conn.execute(
                "INSERT INTO comparisons (id, session_id, created_at, task, prompt, contestants, outputs, blind, "
                "side_order, app_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, session_id, _now(), task, prompt, json.dumps(settings, ensure_ascii=False, sort_keys=True),
                 json.dumps(outputs, ensure_ascii=False), int(blind), json.dumps(list(order)), app_version()))
        return cid

    def vote(self, session_id: str, comparison_id: str, choice: str) -> Vote:
        """Record the session's one vote on a comparison it was shown; returns the reveal.

        ``choice`` is a side letter the comparison offered ("A", "B", and "C", "D" with more
        contestants), "tie" or "both_bad". Raises VoteError, storing nothing, otherwise.
        """
        _session(session_id)
        if not isinstance(comparison_id, str) or not _ID.fullmatch(comparison_id):
            raise VoteError("unknown_comparison", "no such comparison")
        if not isinstance(choice, str):
            raise VoteError("bad_choice", "the choice is a side letter, 'tie' or 'both_bad'")
        with self._connect() as conn, conn:
            row = conn.execute("SELECT session_id, contestants, side_order FROM comparisons WHERE id = ?",
                               (comparison_id,)).fetchone()
            if row is None:
                raise VoteError("unknown_comparison", "no such comparison")
            owner, contestants, order = row[0], json.loads(row[1]), json.loads(row[2])
            if not secrets.compare_digest(owner, session_id):
                raise VoteError("not_your_comparison", "this comparison was shown to another session")
            offered = SIDES[:len(order)]
            if choice in TIE_CHOICES:
                winner = None
            elif len(choice) == 1 and choice in offered:
                winner = order[offered.index(choice)]
            else:
                raise VoteError("bad_choice", f"choose one of {', '.join(offered)}, tie or both_bad")
            vote = Vote(comparison_id, choice, None if winner is None else contestants[winner]["name"],
                        tuple(contestants[k]["name"] for k in order), _now(), app_version())
            try:
                # the primary key refuses a second vote, also one racing in from another thread
                conn.execute("INSERT INTO votes (comparison_id, choice, winner, voted_at, app_version) "
                             "VALUES (?, ?, ?, ?, ?)",
                             (comparison_id, choice, winner, vote.voted_at, vote.app_version))
            except sqlite3.IntegrityError:
                raise VoteError("already_voted", "this comparison already has a vote") from None
        return vote

    # --- reads ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            return {"comparisons": conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0],
                    "votes": conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]}

    def version(self) -> int:
        """Changes whenever a vote is added (votes are never removed): the leaderboard's cache key."""
        with self._connect() as conn:
            return conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM votes").fetchone()[0]

    def votes(self) -> Iterator[dict[str, Any]]:
        """Every vote with its comparison, oldest first, as plain data (what `votes export` writes)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT v.comparison_id, v.choice, v.winner, v.voted_at, v.app_version, c.created_at, c.task, "
                "c.prompt, c.contestants, c.outputs, c.blind, c.side_order, c.app_version "
                "FROM votes v JOIN comparisons c ON c.id = v.comparison_id ORDER BY v.voted_at, v.rowid").fetchall()
        for r in rows:
            contestants = json.loads(r[8])
            order = json.loads(r[11])
            yield {
                "comparison_id": r[0], "choice": r[1],
                "winner": None if r[2] is None else contestants[r[2]]["name"],
                "voted_at": r[3], "app_version": r[4], "shown_at": r[5], "shown_app_version": r[12],
                "task": r[6], "prompt": r[7], "contestants": contestants, "outputs": json.loads(r[9]),
                "blind": bool(r[10]), "sides": [contestants[k]["name"] for k in order],
            }


def _session(session_id: Any) -> None:
    if not isinstance(session_id, str) or not _ID.fullmatch(session_id):
        raise VoteError("bad_session", "missing or malformed session id")


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise VoteError("bad_type", f"{field} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise VoteError("too_long", f"{field} is over {limit:,} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise VoteError("bad_text", f"{field} is not valid Unicode text") from None
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
