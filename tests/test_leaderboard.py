"""The leaderboard of runs (Markdown + self-contained HTML, rows for the app) and the per-example diff."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from eval.leaderboard import diff_markdown, diff_rows, leaderboard_rows, write


@pytest.fixture(scope="module")
def three_runs(eval_runs, tmp_path_factory):
    """Three of the session's runs (two BBQ, one CrowS-Pairs) and the folder that is no run."""
    d = tmp_path_factory.mktemp("three")
    for name in ("bbq-tiny", "bbq-trained", "crows-tiny", "not-a-run"):
        (d / name).symlink_to(eval_runs / name, target_is_directory=True)
    return d


def test_the_leaderboard_from_three_runs(three_runs, tmp_path):
    dirs = sorted(three_runs.iterdir())
    rows = leaderboard_rows(dirs)
    # grouped by task and data, runs in name order within a group
    assert [r["run"].rsplit("/", 1)[-1] for r in rows] == ["bbq-tiny", "bbq-trained", "crows-tiny"]
    assert len(rows) == 3 and {r["task"] for r in rows} == {"bbq", "bias"}
    for r in rows:
        res = json.loads((three_runs / r["run"].rsplit("/", 1)[-1] / "results.json").read_text())
        assert r["model"] == res["model"]["name"] and r["n"] == res["n_examples"]
        for k, v in r["metrics"].items():
            assert v == res["metrics"][k] and r["ci95"][k] == res["ci95"].get(k)
    bbq_rows = [r for r in rows if r["task"] == "bbq"]
    assert set(bbq_rows[0]["metrics"]) == {"acc", "accuracy_amb", "accuracy_disamb", "amb_bias_score",
                                           "disamb_bias_score"}
    md, p_md, p_html = write(dirs, tmp_path / "lb")
    assert md == p_md.read_text(encoding="utf-8")
    assert "## bbq on bbq.jsonl" in md and "## bias on bias_crowspairs_dev.jsonl" in md
    assert "0 is unbiased" in md  # the group says what the bias scores' sign means
    assert "not-a-run (no results.json: not a finished run" in md
    tiny = next(r for r in bbq_rows if r["run"].endswith("bbq-tiny"))
    lo, hi = tiny["ci95"]["acc"]
    assert f"{tiny['metrics']['acc']:.3f} [{lo:.3f}, {hi:.3f}]" in md
    page = p_html.read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "<circle" in page and "tiny-trained" in page
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=['\"]?https?:", page)


def test_the_per_example_diff_of_two_runs(three_runs):
    a, b = three_runs / "bbq-tiny", three_runs / "bbq-trained"
    key, rows = diff_rows(a, b)
    pa = {r["id"]: r for r in map(json.loads, open(a / "predictions.jsonl"))}
    pb = {r["id"]: r for r in map(json.loads, open(b / "predictions.jsonl"))}
    assert key == "acc" and {r["id"] for r in rows} == set(pa)  # right/wrong, the main metric (margin: in the details)
    for r in rows:
        assert r["a"] == pa[r["id"]]["chosen"] and r["b"] == pb[r["id"]]["chosen"]
        assert r["changed"] == (pa[r["id"]]["chosen"] != pb[r["id"]]["chosen"])
    changed = sum(r["changed"] for r in rows)
    text = diff_markdown(a, b)
    assert f"{len(rows)} examples in both runs; {changed} with another answer" in text
    from eval.runner import RunError

    with pytest.raises(RunError, match="cannot line up a bbq run with a bias run"):
        diff_rows(a, three_runs / "crows-tiny")


def test_the_cli_writes_the_leaderboard(three_runs, tmp_path):
    r = subprocess.run([sys.executable, "-m", "eval", "leaderboard", *map(str, sorted(three_runs.iterdir())),
                        "--output", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "leaderboard.html").is_file() and "# Leaderboard" in r.stdout
