"""`python -m eval site`: a static site of runs (eval/site.py over eval/runs.py), read as files and in Chromium
from file:// with every request to another place refused and logged."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import ARTIFACTS, chromium
from test_lmeval import write_lmeval_folder

from eval.__main__ import compare
from eval.runs import open_run, paired, side_by_side
from eval.site import SiteError, build


def _data(path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("window.SITE = ") and text.endswith(";\n")
    return json.loads(text[len("window.SITE = "):-2])


def _votes(path):
    """A votes database: greedy beats t=1.0 in 10 of 14 blind votes."""
    from llmdemo.compare.votes import VoteStore, new_session_id

    store = VoteStore(path)
    a = {"name": "greedy", "model": "smollm2-135m-instruct", "temperature": 0.0, "top_p": 1.0, "seed": 1}
    b = {"name": "t=1.0", "model": "smollm2-135m-instruct", "temperature": 1.0, "top_p": 0.95, "seed": 2}
    for i in range(14):
        sid = new_session_id()
        cid = store.new_comparison(sid, f"prompt {i}", "generation", [a, b], ["x", "y"], blind=True, order=[0, 1])
        store.vote(sid, cid, "A" if i < 10 else "B")
    return store


@pytest.fixture(scope="module")
def site(eval_runs, tmp_path_factory):
    """The site of the session's runs, an lm-eval folder, a run whose output is HTML, and a folder that is no run."""
    d = tmp_path_factory.mktemp("site")
    lm = write_lmeval_folder(d)
    evil = d / "tr-evil"
    evil.mkdir()
    for f in ("run.json", "results.json"):
        (evil / f).write_bytes((eval_runs / "tr-tiny" / f).read_bytes())
    rows = [json.loads(line) for line in open(eval_runs / "tr-tiny" / "predictions.jsonl", encoding="utf-8")]
    rows[0]["prediction"] = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
    (evil / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    runs = [eval_runs / n for n in ("bbq-tiny", "bbq-trained", "crows-tiny", "tr-tiny", "tr-trained", "not-a-run")]
    _votes(d / "votes.sqlite3")
    info = build([*runs, evil, lm], d / "out", votes=d / "votes.sqlite3")
    return d / "out", info, eval_runs


def test_the_site_holds_every_run_and_every_example(site):
    out, info, runs = site
    index = _data(out / "data" / "index.js")
    groups = {(g["task"], g["data"]): g for g in index["groups"]}
    assert set(groups) == {("bbq", "bbq.jsonl"), ("bias", "bias_crowspairs_dev.jsonl"),
                           ("translation", "translation_flores200_devtest_en-fr.jsonl"),
                           ("arc_easy", "allenai/ai2_arc/ARC-Easy test"), ("gsm8k", "gsm8k/main test")}
    assert info["runs"] == 8 and info["pairs"] == 1 + 3  # bbq: one pair; translation: three runs, three pairs
    assert [s["path"].rsplit("/", 1)[-1] for s in index["skipped"]] == ["not-a-run"]
    for g in index["groups"]:
        for r in g["runs"]:
            page = _data(out / "data" / f"run-{r['key']}.js")
            assert (out / r["page"]).is_file()
            if r["source"] == "llmdemo":
                folder = runs / r["name"] if r["name"] != "tr-evil" else out.parent / "tr-evil"
                want = [json.loads(line)["id"] for line in open(folder / "predictions.jsonl", encoding="utf-8")]
                res = json.loads((folder / "results.json").read_text(encoding="utf-8"))
                assert [e["id"] for e in page["examples"]] == [str(i) for i in want]
                assert page["run"]["metrics"] == {k: v for k, v in res["metrics"].items() if isinstance(v, (int, float))}
    # lm-eval's runs beside ours, with the numbers lm-eval wrote (its file says 0.75; its samples average 0.5)
    arc = groups[("arc_easy", "allenai/ai2_arc/ARC-Easy test")]["runs"][0]
    assert arc["source"] == "lm-eval" and arc["metrics"]["acc"] == 0.75
    front = (out / "README.md").read_text(encoding="utf-8")
    assert front.startswith("---\n") and "\nsdk: static\n" in front and "\napp_file: index.html\n" in front
    # self-contained: no page, style or script names another host
    for f in out.rglob("*"):
        if f.suffix in (".html", ".css", ".js") and f.parent.name != "data":
            assert not re.search(r"(src|href)=['\"]?(https?:)?//", f.read_text(encoding="utf-8")), f


def test_the_side_by_side_numbers_are_compares(site):
    out, _, runs = site
    a, b = runs / "tr-tiny", runs / "tr-trained"
    index = _data(out / "data" / "index.js")
    g = next(g for g in index["groups"] if g["task"] == "translation")
    keys = {r["name"]: r["key"] for r in g["runs"]}
    pair = next(p for p in g["pairs"] if {p["a"], p["b"]} == {keys["tr-tiny"], keys["tr-trained"]})
    page = _data(out / "data" / pair["page"].replace(".html", ".js"))
    first = "tr-tiny" if page["a"]["key"] == keys["tr-tiny"] else "tr-trained"
    text = compare(*((a, b) if first == "tr-tiny" else (b, a)))
    for t in page["test"]["tests"]:
        line = next(line for line in text.splitlines() if line.startswith(f"| {t['metric']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == f"{t['delta']:+.2f}" and cells[4] == (f"{t['p']:.4f}" if t["p"] is not None else "")
    assert {t["metric"]: bool(t["test"]) for t in page["test"]["tests"]} == {"bleu": True, "chrf": True}
    # and compare's numbers are sacrebleu's own paired bootstrap on the two runs' predictions
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    rows = {n: [json.loads(line) for line in open(runs / n / "predictions.jsonl", encoding="utf-8")]
            for n in ("tr-tiny", "tr-trained")}
    first_rows, second_rows = rows[first], rows["tr-trained" if first == "tr-tiny" else "tr-tiny"]
    _, want = PairedTest([("a", [r["prediction"] for r in first_rows]), ("b", [r["prediction"] for r in second_rows])],
                         {"bleu": BLEU(tokenize=first_rows[0]["bleu_tokenize"]), "chrf": CHRF()},
                         [[r["reference"] for r in first_rows]], test_type="bs", n_samples=1000)()
    got = {t["metric"]: t for t in page["test"]["tests"]}
    for m, label in (("bleu", "BLEU"), ("chrf", "chrF2")):
        assert got[m]["a"] == pytest.approx(want[label][0].score) and got[m]["b"] == pytest.approx(want[label][1].score)
        assert got[m]["p"] == pytest.approx(want[label][1].p_value)
    # aligned by id, largest change of the per-example score first
    deltas = [abs(r["delta"]) for r in page["rows"]]
    assert deltas == sorted(deltas, reverse=True) and page["per_example"] == "chrf"
    ra, rb = open_run(a)[0], open_run(b)[0]
    sa = {e["id"]: e["scores"]["chrf"] for e in ra.examples}
    for r in page["rows"]:
        x = sa[r["id"]] if first == "tr-tiny" else {e["id"]: e["scores"]["chrf"] for e in rb.examples}[r["id"]]
        assert r["score_a"] == x


def test_a_mean_metric_gets_a_paired_test_and_others_none(eval_runs):
    a, b = open_run(eval_runs / "bbq-tiny")[0], open_run(eval_runs / "bbq-trained")[0]
    tests = {t["metric"]: t for t in paired(a, b)["tests"]}
    # accuracy is the mean of the picks' right/wrong: tested; a bias score is not a mean of one example's number
    assert tests["acc"]["p"] is not None and tests["acc"]["delta_ci"][0] <= tests["acc"]["delta"] <= tests["acc"]["delta_ci"][1]
    assert tests["amb_bias_score"]["p"] is None
    same = paired(a, a)["tests"]
    assert all(t["delta"] == 0 for t in same) and all(t["p"] in (None, 1.0) for t in same)
    key, rows = side_by_side(a, b)
    assert key == "acc" and {r["delta"] for r in rows} <= {-1.0, 0.0, 1.0}


def test_the_paired_test_of_a_mean_by_hand():
    """eval/runs.py's _p, against the procedure computed here with numpy (sacrebleu's paired_bs, on means)."""
    import numpy as np

    from eval.runs import _p

    a = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    b = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    idx = np.random.default_rng(12345).choice(8, size=(1000, 8), replace=True)
    diffs = np.abs(np.array(b)[idx].mean(1) - np.array(a)[idx].mean(1))
    want = (np.sum(diffs - diffs.mean() > abs(np.mean(b) - np.mean(a))) + 1) / 1001
    got = _p(a, b)
    assert got["p"] == pytest.approx(want) and 0 < got["p"] < 1
    lo, hi = got["delta_ci"]
    assert lo <= np.mean(b) - np.mean(a) <= hi and lo >= 0  # b never worse on any example: no resample below 0
    assert _p(b, a)["p"] == got["p"] and _p(b, a)["delta_ci"] == [-hi, -lo]


def test_the_site_replaces_its_own_pages_only_and_says_what_is_wrong(site, tmp_path):
    out, _, runs = site
    build([runs / "tr-tiny"], tmp_path / "s")
    (tmp_path / "s" / "mine.txt").write_text("kept")
    build([runs / "bbq-tiny"], tmp_path / "s")
    pages = sorted(p.name for p in (tmp_path / "s").glob("run-*.html"))
    assert len(pages) == 1 and pages[0].startswith("run-bbq-tiny-") and (tmp_path / "s" / "mine.txt").exists()
    project = tmp_path / "project"  # a folder of someone else's files: refused, nothing removed
    (project / "data").mkdir(parents=True)
    (project / "index.html").write_text("mine")
    (project / "data" / "app.js").write_text("mine")
    with pytest.raises(SiteError, match="holds other files"):
        build([runs / "tr-tiny"], project)
    assert (project / "index.html").read_text() == "mine" and (project / "data" / "app.js").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(SiteError, match="is a file"):
        build([runs / "tr-tiny"], tmp_path / "file")
    r = subprocess.run([sys.executable, "-m", "eval", "site", str(runs / "not-a-run"), "--output", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no runs to show" in r.stderr and "Traceback" not in r.stderr


def _guarded(ctx, refused: list):
    """Every request that is not a file of the site is refused and logged."""
    def route(rt):
        if rt.request.url.startswith("file://"):
            rt.continue_()
        else:
            refused.append(rt.request.url)
            rt.abort()
    ctx.route("**/*", route)


def test_the_site_in_chromium_from_file(site):
    out, _, runs = site
    refused, errors = [], []
    with chromium() as browser:
        for size, dark, locale in (("desktop", False, "en-US"), ("phone", True, "zh-CN")):
            vp = {"width": 1366, "height": 900} if size == "desktop" else {"width": 390, "height": 844}
            ctx = browser.new_context(viewport=vp, color_scheme="dark" if dark else "light", locale=locale)
            _guarded(ctx, refused)
            pg = ctx.new_page()
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(f"file://{out}/index.html")
            heading = "Evaluation runs" if locale == "en-US" else "评测运行"
            pg.get_by_role("heading", name=heading).wait_for(timeout=10_000)
            assert pg.locator(".tag", has_text="lm-eval").count() == 2  # arc_easy and gsm8k beside ours
            votes = pg.locator("#votes tbody tr").all_inner_texts()  # the blind votes' leaderboard, best first
            assert len(votes) == 2 and "greedy" in votes[0] and "10 / 4 / 0" in votes[0]
            # the page fits a phone: nothing wider than the screen but the tables' own scroll boxes
            assert pg.evaluate("document.documentElement.scrollWidth") <= vp["width"] + 1
            pg.screenshot(path=str(ARTIFACTS / f"site-index-{size}.png"), full_page=True)
            # a run: filter, sort, open an example
            pg.locator("a.runlink", has_text="tr-evil").click()
            pg.locator("tr.row").first.wait_for(timeout=10_000)
            n = pg.locator("tr.row").count()
            assert n == 6
            first_id = pg.locator("tr.row").first.get_attribute("data-id")
            pg.locator("#filter").fill("<img")
            assert pg.locator("tr.row").count() == 1 and pg.locator("tr.row").first.get_attribute("data-id") == first_id
            pg.locator("tr.row").first.click()
            detail = pg.locator("tr.detail").inner_text()
            assert "<img src=x" in detail and pg.locator("#app img").count() == 0  # shown as text, never run
            assert pg.title() != "pwned"
            pg.locator("#filter").fill("")
            pg.locator("#sort").select_option("high")
            scores = [float(s) for s in pg.locator("tr.row td.num").all_inner_texts() if s != "–"]
            assert scores == sorted(scores, reverse=True) and len(scores) == n
            pg.screenshot(path=str(ARTIFACTS / f"site-run-{size}.png"), full_page=size == "desktop")
            pg.locator("#back").click()
            pg.get_by_role("heading", name=heading).wait_for(timeout=10_000)
            # two runs side by side, picked on the index
            grp = pg.locator("section.group", has=pg.locator("h2", has_text="translation"))
            keys = pg.evaluate("() => Object.fromEntries(window.SITE.groups.find(g => g.task === 'translation')"
                               ".runs.map(r => [r.name, r.key]))")
            pick = ["tr-tiny", "tr-trained"] if size == "desktop" else ["tr-trained", "tr-tiny"]  # either order
            grp.locator("select.pick-a").select_option(value=keys[pick[0]])
            grp.locator("select.pick-b").select_option(value=keys[pick[1]])
            grp.locator("button.pick-go").click()
            pg.locator("#tests").wait_for(timeout=10_000)
            assert pg.locator("tr.row").count() == 6
            names = pg.evaluate("() => [window.SITE.a.name, window.SITE.b.name]")
            assert names == pick  # A is the run picked as A, whichever order the page was written in
            text = compare(runs / names[0], runs / names[1])
            shown = [row.split("\t") for row in pg.locator("#tests tbody tr").all_inner_texts()]
            assert sorted(c[0] for c in shown) == ["bleu", "chrf"]
            for cells in shown:  # B - A and the p-value as `eval compare` gives them
                line = next(line for line in text.splitlines() if line.startswith(f"| {cells[0]} |"))
                want = [c.strip() for c in line.strip("|").split("|")]
                assert float(cells[3]) == pytest.approx(float(want[3]), abs=0.006) and cells[5].strip() == want[4], (cells, want)
            pg.screenshot(path=str(ARTIFACTS / f"site-pair-{size}.png"), full_page=size == "desktop")
            pg.locator("#lang").click()  # the other language, kept across pages
            other = "评测运行" if locale == "en-US" else "Evaluation runs"
            pg.locator("#back").click()
            pg.get_by_role("heading", name=other).wait_for(timeout=10_000)
            ctx.close()
    assert refused == [] and errors == []


def test_the_votes_leaderboard_and_lmeval_runs_in_leaderboard_and_compare(eval_runs, tmp_path):
    from eval.leaderboard import leaderboard_rows
    from llmdemo.compare import ratings

    store = _votes(tmp_path / "votes.sqlite3")
    build([eval_runs / "tr-tiny"], tmp_path / "s", votes=tmp_path / "votes.sqlite3")
    shown = _data(tmp_path / "s" / "data" / "index.js")["votes"]
    want = ratings.leaderboard(store.votes(), max_rated=24)
    assert [(r["name"], round(r["rating"], 6), round(r["lower"], 6)) for r in shown["ratings"]] == [
        (r.name, round(r.rating, 6), round(r.lower, 6)) for r in want.ratings]
    assert shown["votes"] == 14 and shown["ratings"][0]["name"] == "greedy"
    with pytest.raises(SiteError, match="no such votes database"):
        build([eval_runs / "tr-tiny"], tmp_path / "s", votes=tmp_path / "missing.sqlite3")
    # lm-eval's folders in `eval leaderboard` and `eval compare`, with lm-eval's numbers
    one, two = write_lmeval_folder(tmp_path / "one"), write_lmeval_folder(tmp_path / "two")
    rows = leaderboard_rows([one, eval_runs / "tr-tiny"])
    assert [(r["task"], r["source"]) for r in rows] == [("arc_easy", "lm-eval"), ("gsm8k", "lm-eval"),
                                                        ("translation", "llmdemo")]
    assert rows[0]["metrics"]["acc"] == 0.75
    with pytest.raises(Exception, match="share 2 tasks"):
        compare(one, two)
    # lm-eval's own layout: OUT/<model>/ for each model, the same tasks: one page per model and task
    both = tmp_path / "both"
    for name, src in (("modelA", one), ("modelB", two)):
        (both / name).parent.mkdir(exist_ok=True)
        (src / "EleutherAI__pythia-70m").rename(both / name)
    info = build([both], tmp_path / "s2")
    assert info["runs"] == 4 and len(list((tmp_path / "s2").glob("run-*.html"))) == 4 and info["pairs"] == 2
    for name, src in (("modelA", one), ("modelB", two)):
        (both / name).rename(src / "EleutherAI__pythia-70m")
    text = compare(one, two, task="arc_easy")
    assert "| acc | 0.75 | 0.75 | +0.00 |  |" in text  # lm-eval's 0.75 (its samples' mean is 0.5): no test on it


def test_odd_run_folders_are_shown_or_skipped_with_a_line_never_a_traceback(eval_runs, tmp_path):
    base = json.loads((eval_runs / "tr-tiny" / "results.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in open(eval_runs / "tr-tiny" / "predictions.jsonl", encoding="utf-8")]
    odd = {"nulls": ({**base, "metrics": None, "ci95": None, "model": "just-a-name", "examples": []}, rows),
           "int-ids": (base, [{**r, "id": int(r["id"])} for r in rows]),  # the other run's ids are strings
           "surrogate": (base, [{**rows[0], "prediction": "a\ud800b"}] + rows[1:]),
           "nan": ({**base, "metrics": {"chrf": float("nan"), "bleu": float("inf")}}, rows),
           "bad-ll": ({**base, "task": "bias"}, [{"id": 1, "ll_more": None, "ll_less": "x"}])}
    for name, (res, rs) in odd.items():
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps(res), encoding="utf-8")
        (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "eval", "site", *map(str, sorted(tmp_path.iterdir())),
                        str(eval_runs / "tr-tiny"), "--output", str(tmp_path / "site")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    index = _data(tmp_path / "site" / "data" / "index.js")
    shown = {run["name"] for g in index["groups"] for run in g["runs"]}
    assert {"nulls", "int-ids", "surrogate", "nan", "tr-tiny", "bad-ll"} <= shown
    pair = next(p for g in index["groups"] for p in g["pairs"]
                if {p["a"], p["b"]} == {run["key"] for run in g["runs"] if run["name"] in ("int-ids", "tr-tiny")})
    assert _data(tmp_path / "site" / "data" / pair["page"].replace(".html", ".js"))["test"]["ids"] == len(rows)
