"""Blind votes (llmdemo/compare/votes.py) and the leaderboard (llmdemo/compare/ratings.py): no model, no UI."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime

import numpy as np
import pytest

from conftest import ROOT
from llmdemo import cli
from llmdemo.compare.ratings import NotEstimable, fit_bradley_terry, leaderboard, pairwise
from llmdemo.compare.votes import (MAX_CONTESTANT_JSON, MAX_OUTPUT_CHARS, MAX_PROMPT_CHARS, VoteError, VoteStore,
                           default_db_path, new_session_id)

GREEDY = {"name": "greedy", "model": "smollm2-135m-instruct", "temperature": 0.0, "top_p": 1.0, "seed": 1}
HOT = {"name": "t=1.0", "model": "smollm2-135m-instruct", "temperature": 1.0, "top_p": 0.95, "seed": 2}


@pytest.fixture
def store(tmp_path):
    return VoteStore(tmp_path / "votes.sqlite3")


def _compare(store, sid, order=(0, 1), contestants=(GREEDY, HOT), outputs=None, prompt="Name a colour."):
    outputs = outputs or [f"output {i}" for i in range(len(contestants))]
    return store.new_comparison(sid, prompt, "generation", list(contestants), list(outputs), blind=True,
                                order=list(order))


def _rows(path) -> tuple[int, int]:
    """Rows in the file itself, read without VoteStore."""
    with sqlite3.connect(path) as conn:
        return (conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0])


# --- the store ---------------------------------------------------------------------------------

def test_a_vote_lands_once_and_a_second_is_refused(store):
    sid = new_session_id()
    cid = _compare(store, sid)
    v = store.vote(sid, cid, "B")
    assert v.winner == "t=1.0" and v.sides == ("greedy", "t=1.0") and v.choice == "B"
    for again in ("B", "A", "tie"):  # the same vote or a changed mind: both refused
        with pytest.raises(VoteError) as e:
            store.vote(sid, cid, again)
        assert e.value.kind == "already_voted" and "already has a vote" in str(e.value)
    assert _rows(store.path) == (1, 1)
    assert [r["choice"] for r in store.votes()] == ["B"]


def test_each_vote_keeps_what_was_shown(store):
    sid = new_session_id()
    html = '<img src=x onerror="alert(1)"> **bold** & </textarea>'
    cid = store.new_comparison(sid, html, "translation", [GREEDY, HOT], [html, "plain"], blind=True, order=[1, 0])
    store.vote(sid, cid, "A")
    (r,) = list(VoteStore(store.path).votes())
    assert r["prompt"] == html and r["outputs"] == [html, "plain"]  # kept as text, byte for byte, not escaped
    assert r["contestants"] == [GREEDY, HOT]  # the full settings
    assert r["winner"] == "t=1.0" and r["sides"] == ["t=1.0", "greedy"] and r["blind"] is True
    assert r["task"] == "translation" and r["app_version"] and r["choice"] == "A"
    stamp = datetime.fromisoformat(r["voted_at"])
    assert stamp.utcoffset().total_seconds() == 0  # UTC
    assert set(r) >= {"comparison_id", "shown_at", "shown_app_version"}
    assert not any("ip" == k or "user" in k for k in r)  # nothing about the visitor but the session's comparison


def test_sides_map_to_contestants_through_the_shuffled_order(store):
    sid = new_session_id()
    four = [dict(GREEDY), dict(HOT), {"name": "top-p 0.5", "top_p": 0.5}, {"name": "rep 1.3", "repetition_penalty": 1.3}]
    cid = _compare(store, sid, order=[2, 0, 3, 1], contestants=four)
    v = store.vote(sid, cid, "D")
    assert v.winner == "t=1.0" and v.sides == ("top-p 0.5", "greedy", "rep 1.3", "t=1.0")
    cid2 = _compare(store, sid, order=[1, 0])
    assert store.vote(sid, cid2, "both_bad").winner is None


def test_a_restarted_store_still_has_the_vote(store):
    sid = new_session_id()
    cid = _compare(store, sid)
    store.vote(sid, cid, "A")
    reopened = VoteStore(store.path)
    assert reopened.counts() == {"comparisons": 1, "votes": 1}
    with pytest.raises(VoteError, match="already_voted"):  # the one-vote rule holds across restarts
        reopened.vote(sid, cid, "B")


def test_a_vote_confirmed_survives_sigkill(tmp_path):
    db = tmp_path / "votes.sqlite3"
    script = (
        "import sys, time\n"
        "from llmdemo.compare.votes import VoteStore, new_session_id\n"
        "s = VoteStore(sys.argv[1]); sid = new_session_id()\n"
        "cid = s.new_comparison(sid, 'p', 'dialogue', [{'name': 'x'}, {'name': 'y'}], ['a', 'b'], blind=False, order=[0, 1])\n"
        "s.vote(sid, cid, 'A')\n"
        "print('vote saved', cid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        line = proc.stdout.readline()
        assert line.startswith("vote saved"), line
        os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown, no checkpoint of the WAL
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    (r,) = list(VoteStore(db).votes())
    assert r["comparison_id"] == line.split()[2] and r["winner"] == "x"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_votes_on_one_comparison_land_once(store):
    sid = new_session_id()
    cid = _compare(store, sid)
    results = []
    barrier = threading.Barrier(8)

    def go(choice):
        barrier.wait()
        try:
            results.append(store.vote(sid, cid, choice).choice)
        except VoteError as e:
            results.append(e.kind)

    threads = [threading.Thread(target=go, args=("AB"[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count("already_voted") == 7 and _rows(store.path) == (1, 1)


# --- hostile payloads: refused with a message, stored nowhere ------------------------------------

def _vote_payloads(sid, cid, other_cid):
    return [
        ("unknown comparison", (sid, "A" * 22, "A"), "unknown_comparison"),
        ("SQL in the id", (sid, "' OR 1=1; DROP TABLE votes; --", "A"), "unknown_comparison"),
        ("HTML as the id", (sid, "<script>alert(1)</script>", "A"), "unknown_comparison"),
        ("id of the wrong type", (sid, 1, "A"), "unknown_comparison"),
        ("id as a list", (sid, [cid], "A"), "unknown_comparison"),
        ("someone else's comparison", (sid, other_cid, "A"), "not_your_comparison"),
        ("a side not offered", (sid, cid, "C"), "bad_choice"),
        ("lower case side", (sid, cid, "a"), "bad_choice"),
        ("HTML as the choice", (sid, cid, "<b>A</b>"), "bad_choice"),
        ("a huge choice", (sid, cid, "A" * 1_000_000), "bad_choice"),
        ("choice as a number", (sid, cid, 0), "bad_choice"),
        ("choice as None", (sid, cid, None), "bad_choice"),
        ("choice as a list", (sid, cid, ["A"]), "bad_choice"),
        ("no session", (None, cid, "A"), "bad_session"),
        ("empty session", ("", cid, "A"), "bad_session"),
        ("a huge session id", ("x" * 1_000_000, cid, "A"), "bad_session"),
        ("session as a dict", ({"id": sid}, cid, "A"), "bad_session"),
    ]


def test_hostile_votes_are_refused_and_stored_nowhere(store):
    sid, other = new_session_id(), new_session_id()
    cid = _compare(store, sid)
    other_cid = _compare(store, other)
    before = _rows(store.path)
    for label, args, code in _vote_payloads(sid, cid, other_cid):
        with pytest.raises(VoteError) as e:
            store.vote(*args)
        assert e.value.kind == code, label
        assert e.value.message and len(str(e.value)) < 200, label  # a message, short, without echoing the payload
        assert _rows(store.path) == before, label
    store.vote(sid, cid, "A")  # the refusals did not use up the visitor's own vote
    store.vote(other, other_cid, "tie")
    assert _rows(store.path) == (2, 2)


class _Opaque:
    pass


@pytest.mark.parametrize("label,changes,code", [
    ("huge prompt", {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "too_long"),
    ("huge output", {"outputs": ["x" * (MAX_OUTPUT_CHARS + 1), "y"]}, "too_long"),
    ("huge settings", {"contestants": [dict(GREEDY, note="x" * MAX_CONTESTANT_JSON), HOT]}, "too_long"),
    ("huge name", {"contestants": [dict(GREEDY, name="n" * 1000), HOT]}, "too_long"),
    ("prompt as a number", {"prompt": 123}, "bad_type"),
    ("outputs as numbers", {"outputs": [1, 2]}, "bad_type"),
    ("lone surrogate", {"prompt": "bad \ud800 text"}, "bad_text"),
    ("blind as text", {"blind": "yes"}, "bad_type"),
    ("task not offered", {"task": "<script>"}, "bad_task"),
    ("one contestant", {"contestants": [GREEDY], "outputs": ["a"], "order": [0]}, "bad_contestants"),
    ("five contestants", {"contestants": [{"name": str(i)} for i in range(5)], "outputs": ["a"] * 5,
                          "order": list(range(5))}, "bad_contestants"),
    ("contestants as text", {"contestants": "ab"}, "bad_contestants"),
    ("unnamed contestant", {"contestants": [{"temperature": 0}, HOT]}, "bad_contestants"),
    ("same name twice", {"contestants": [GREEDY, dict(HOT, name="greedy")]}, "bad_contestants"),
    ("settings not JSON", {"contestants": [dict(GREEDY, x=_Opaque()), HOT]}, "bad_contestants"),
    ("NaN in settings", {"contestants": [dict(GREEDY, temperature=math.nan), HOT]}, "bad_contestants"),
    ("outputs missing", {"outputs": ["only one"]}, "bad_outputs"),
    ("order repeats", {"order": [0, 0]}, "bad_order"),
    ("order too long", {"order": [0, 1, 2]}, "bad_order"),
    ("order of bools", {"order": [True, False]}, "bad_order"),
    ("bad session", {"session_id": "short"}, "bad_session"),
])
def test_hostile_comparisons_are_refused_and_stored_nowhere(store, label, changes, code):
    args = dict(session_id=new_session_id(), prompt="p", task="generation", contestants=[GREEDY, HOT],
                outputs=["a", "b"], blind=True, order=[0, 1])
    args.update(changes)
    with pytest.raises(VoteError) as e:
        store.new_comparison(**args)
    assert e.value.kind == code and e.value.message
    assert len(str(e.value)) < 200  # the message does not echo a huge payload
    assert _rows(store.path) == (0, 0)


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMDEMO_VOTES_DB", raising=False)
    monkeypatch.setenv("LLMDEMO_OUTPUT_DIR", str(tmp_path / "out"))
    assert default_db_path() == tmp_path / "out" / "votes.sqlite3"
    monkeypatch.setenv("LLMDEMO_VOTES_DB", str(tmp_path / "v.db"))
    assert default_db_path() == tmp_path / "v.db"
    assert VoteStore().path == tmp_path / "v.db" and (tmp_path / "v.db").is_file()


# --- Bradley-Terry ----------------------------------------------------------------------------

def _votes(*triples):
    """(a, b, winner or None, times) -> vote dicts as VoteStore.votes() gives them."""
    out = []
    for a, b, winner, times in triples:
        out += [{"sides": [a, b], "winner": winner}] * times
    return out


def test_two_players_match_the_closed_form():
    # x: 7 wins, y: 3 wins, 2 ties -> as half a win each way: 8 to 4, so 400 * log10(8 / 4) apart
    votes = _votes(("x", "y", "x", 4), ("y", "x", "x", 3), ("x", "y", "y", 3), ("x", "y", None, 1),
                   ("y", "x", None, 1))
    votes[-1] = {"sides": ["y", "x"], "winner": None}  # both_bad is stored as winner None too
    board = leaderboard(votes, rounds=50)
    r = {x.name: x.rating for x in board.ratings}
    assert r["x"] - r["y"] == pytest.approx(400 * math.log10(8 / 4), abs=1e-6)
    assert (r["x"] + r["y"]) / 2 == pytest.approx(1000, abs=1e-6)  # centred, as a fit from zero ends up
    assert board.prior == 0 and board.votes == 12
    x = board.ratings[0]
    assert (x.name, x.wins, x.losses, x.ties, x.battles) == ("x", 7, 3, 2, 12)
    assert board.win_rate["x"]["y"] == pytest.approx(0.7) and board.win_rate["y"]["x"] == pytest.approx(0.3)
    assert board.battles["x"]["y"] == 12 and board.wins["y"]["x"] == 3


def _zermelo(names, votes, iters=20000):
    """The classic MM iteration for Bradley-Terry strengths (Zermelo 1929, Hunter 2004), written apart from
    ratings.py: p_i <- W_i / sum_j n_ij / (p_i + p_j); ties count half a win to each side."""
    k = {n: i for i, n in enumerate(names)}
    w = [[0.0] * len(names) for _ in names]
    for v in votes:
        a, b = v["sides"]
        if v["winner"] is None:
            w[k[a]][k[b]] += 0.5
            w[k[b]][k[a]] += 0.5
        else:
            loser = b if v["winner"] == a else a
            w[k[v["winner"]]][k[loser]] += 1
    p = [1.0] * len(names)
    for _ in range(iters):
        new = []
        for i in range(len(names)):
            wins = sum(w[i])
            denom = sum((w[i][j] + w[j][i]) / (p[i] + p[j]) for j in range(len(names)) if j != i)
            new.append(wins / denom)
        g = math.exp(sum(math.log(x) for x in new) / len(new))
        p = [x / g for x in new]
    return {n: 1000 + 400 * math.log10(p[k[n]]) for n in names}


def test_three_players_match_an_independent_mle():
    votes = _votes(("a", "b", "a", 6), ("a", "b", "b", 2), ("b", "c", "b", 5), ("c", "b", "c", 3),
                   ("a", "c", "a", 4), ("c", "a", "c", 1), ("a", "c", None, 2), ("b", "c", None, 1))
    expected = _zermelo(["a", "b", "c"], votes)
    board = leaderboard(votes, rounds=100)
    assert [r.name for r in board.ratings] == sorted(expected, key=lambda n: -expected[n])
    for r in board.ratings:
        assert r.rating == pytest.approx(expected[r.name], abs=1e-6)
    # and as LMArena fits it: a logistic regression on the rows, each tie as one win for each side
    assert _loglik_gradient(votes, {r.name: r.rating for r in board.ratings}) == pytest.approx(0, abs=1e-8)


def _loglik_gradient(votes, ratings):
    """max |d loglik / d rating| over LMArena's duplicated rows (logit = ln(10) * (R_a - R_b) / 400)."""
    # each vote is two rows; a decisive vote labels both for its winner, a tie labels one row for each side
    g = dict.fromkeys(ratings, 0.0)
    for v in votes:
        a, b = v["sides"]
        y = 0.5 if v["winner"] is None else float(v["winner"] == a)
        p = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / 400))
        g[a] += 2 * (y - p)
        g[b] -= 2 * (y - p)
    return max(abs(x) for x in g.values())


def test_bootstrap_intervals_hold_the_rating_and_are_seeded():
    votes = _votes(("a", "b", "a", 30), ("a", "b", "b", 15), ("b", "c", "b", 20), ("b", "c", "c", 12),
                   ("a", "c", "a", 18), ("a", "c", "c", 6), ("a", "c", None, 5))
    one = leaderboard(votes, rounds=300, seed=7)
    for r in one.ratings:
        assert r.lower < r.rating < r.upper
        assert r.upper - r.lower < 400  # a real interval, not an unbounded one
    assert one.fallback_rounds == 0  # every resample of this many votes has a finite plain fit
    assert leaderboard(votes, rounds=300, seed=7) == one  # same seed, same numbers
    other = leaderboard(votes, rounds=300, seed=8)
    assert [r.lower for r in other.ratings] != [r.lower for r in one.ratings]
    assert [r.rating for r in other.ratings] == [r.rating for r in one.ratings]  # the fit does not depend on the seed
    assert one.ratings[0].rank == 1


def test_an_unbeaten_contestant_gets_a_finite_rating_and_says_so():
    votes = _votes(("x", "y", "x", 2))
    with pytest.raises(NotEstimable):
        fit_bradley_terry(np.array([[0.0, 2.0], [0.0, 0.0]]))
    board = leaderboard(votes, rounds=50)
    r = {x.name: x.rating for x in board.ratings}
    # one virtual tie: 2.5 to 0.5
    assert board.prior == 1.0 and r["x"] - r["y"] == pytest.approx(400 * math.log10(2.5 / 0.5), abs=1e-6)
    assert "virtual tie" in board.to_text() and "virtual tie" in board.to_markdown()
    assert all(math.isfinite(x.lower) and math.isfinite(x.upper) for x in board.ratings)
    # a finite plain fit, but a third of the resamples of 5 votes drop y's one win: those rounds say so
    board = leaderboard(_votes(("x", "y", "x", 4), ("x", "y", "y", 1)), rounds=50)
    assert board.prior == 0 and 5 < board.fallback_rounds < 40 and "refit with" in board.to_text()


def test_multi_contestant_votes_and_groups_that_never_met():
    assert pairwise({"sides": ["p", "q", "r", "s"], "winner": "r"}) == [("r", "p", 1.0), ("r", "q", 1.0), ("r", "s", 1.0)]
    assert len(pairwise({"sides": ["p", "q", "r"], "winner": None})) == 3
    board = leaderboard(_votes(("a", "b", "a", 2), ("a", "b", "b", 1), ("c", "d", "c", 1), ("c", "d", "d", 3)),
                        rounds=20)
    assert not board.connected and "not comparable" in board.to_text()
    assert leaderboard([], rounds=10).to_text() == "No votes yet."


# --- the CLI ------------------------------------------------------------------------------------

@pytest.fixture
def voted_db(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite3")
    sid = new_session_id()
    for order, choice in [([0, 1], "A")] * 3 + [([1, 0], "A"), ([0, 1], "tie"), ([1, 0], "both_bad")]:
        store.vote(sid, _compare(store, sid, order=order, prompt="<b>hi</b> | there"), choice)
    return store.path


def test_cli_leaderboard_and_export(voted_db, capsys):
    assert cli.main(["votes", "leaderboard", "--db", str(voted_db), "--format", "json", "--rounds", "50"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert board["votes"] == 6 and [r["name"] for r in board["ratings"]] == ["greedy", "t=1.0"]
    # greedy 3 wins, t=1.0 1 win, 2 ties: 4 to 2
    gap = board["ratings"][0]["rating"] - board["ratings"][1]["rating"]
    assert gap == pytest.approx(400 * math.log10(4 / 2), abs=1e-6)
    assert cli.main(["votes", "leaderboard", "--db", str(voted_db), "--format", "markdown", "--rounds", "20"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| Rank | Contestant |") and "| greedy |" in md
    assert cli.main(["votes", "leaderboard", "--db", str(voted_db), "--rounds", "20"]) == 0
    assert "greedy" in capsys.readouterr().out
    assert cli.main(["votes", "export", "--format", "jsonl", "--db", str(voted_db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(x) for x in lines]
    assert len(records) == 6 and records[0]["prompt"] == "<b>hi</b> | there"
    assert records[0]["contestants"][0] == GREEDY and {r["choice"] for r in records} == {"A", "tie", "both_bad"}


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["votes", "leaderboard", "--db", str(tmp_path / "none.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no votes database at") and err.strip().count("\n") == 0
    assert not (tmp_path / "none.sqlite3").exists()  # looking did not create it
    junk = tmp_path / "junk.sqlite3"
    junk.write_text("not a database " * 100)
    assert cli.main(["votes", "export", "--db", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.strip().count("\n") == 0


def test_cli_entry_point_runs_votes_and_keeps_old_commands(voted_db):
    env = dict(os.environ, LLMDEMO_VOTES_DB=str(voted_db), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "llmdemo", "votes", "leaderboard", "--rounds", "20"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "greedy" in r.stdout and "bootstrap" in r.stdout
    r = subprocess.run([sys.executable, "-m", "llmdemo", "models"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "smollm2-135m-instruct" in r.stdout
    args = cli.build_parser().parse_args(["generate", "--temperature", "0", "hello", "world"])
    assert args.command == "generate" and args.text == ["hello", "world"]


def test_votes_and_arena_stay_in_the_core():
    code = ("import llmdemo.compare.votes, llmdemo.compare.ratings, sys; "
            "print(any(m.split('.')[0] in ('gradio', 'eval', 'torch', 'transformers') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.strip() == "False"


def test_comparisons_nobody_voted_on_expire_and_voted_ones_stay(tmp_path):
    """Issue 37, finding 15: every comparison shown was kept for ever with its whole prompt."""
    import sqlite3 as _sqlite3

    store = VoteStore(tmp_path / "votes.sqlite3", unvoted_keep_s=3600)
    ids = {}
    for name in ("voted", "unvoted", "recent"):
        sid = new_session_id()
        ids[name] = (sid, store.new_comparison(sid, "p" * 1000, "generation", [{"name": "x"}, {"name": "y"}],
                                              ["1", "2"], True, [0, 1]))
    store.vote(*ids["voted"], "A")
    with _sqlite3.connect(store.path) as conn:  # two of them were shown two hours ago
        conn.execute("UPDATE comparisons SET created_at = '2000-01-01T00:00:00.000000+00:00' WHERE id IN (?, ?)",
                     (ids["voted"][1], ids["unvoted"][1]))
    sid = new_session_id()
    store.new_comparison(sid, "p", "generation", [{"name": "x"}, {"name": "y"}], ["1", "2"], True, [0, 1])
    with _sqlite3.connect(store.path) as conn:
        kept = {r[0] for r in conn.execute("SELECT id FROM comparisons")}
    assert ids["voted"][1] in kept and ids["recent"][1] in kept and ids["unvoted"][1] not in kept
    assert store.counts() == {"comparisons": 3, "votes": 1}
    with pytest.raises(VoteError, match="no such comparison"):  # too late to vote on the expired one
        store.vote(*ids["unvoted"], "A")
