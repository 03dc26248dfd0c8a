"""How fast a large run's pages open in `eval site`: two 5,000-example translation runs (made without a
model: FLORES sources, their references, and predictions with words dropped; per-example chrF by sacrebleu),
the site written, then each page opened from file:// in Chromium (Debian's) and timed from navigation start
to the first example row on screen, and a filter and a sort timed to their redrawn rows.

    .venv/bin/python bench/site.py [--n 5000] [--repeat 3]
    .venv/bin/python bench/site.py --shots docs RUN_DIR...   # the docs' screenshots of a site of these runs

Prints the build time, the data file sizes and the median of each timing. Target: a 5,000-example run's page
in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_run(folder: Path, n: int, seed: int) -> None:
    from sacrebleu.metrics import CHRF

    src = [json.loads(line) for line in open(ROOT / "benchmarks" / "translation_flores200_devtest_en-fr.jsonl",
                                             encoding="utf-8")]
    rng = random.Random(seed)
    chrf = CHRF()
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        r = src[i % len(src)]
        words = r["target"].split()
        pred = " ".join(w for w in words if rng.random() > 0.3)
        rows.append({"id": i, "input": r["source"], "prompt": [{"role": "user", "content": r["source"]}],
                     "prediction": pred, "reference": r["target"], "tgt_lang": "fr", "bleu_tokenize": "13a",
                     "chrf": chrf.sentence_score(pred, [r["target"]]).score, "bleu": 0.0})
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                              encoding="utf-8")
    mean = sum(r["chrf"] for r in rows) / n
    (folder / "results.json").write_text(json.dumps({
        "task": "translation", "data": "translation_flores200_devtest_en-fr.jsonl", "n_examples": n,
        "main_metric": "chrf", "higher_is_better": True, "metrics": {"chrf": mean, "bleu": 0.0},
        "ci95": {}, "model": {"name": f"synthetic-{seed}", "backend": "none"}, "seed": seed,
        "config": {"temperature": 0.0}}), encoding="utf-8")


SHOTS = [  # (page, width x height, colour scheme, language)
    ("index", (1366, 900), "light", "en-US"), ("index", (390, 844), "dark", "zh-CN"),
    ("run", (1366, 900), "dark", "en-US"), ("run", (390, 844), "light", "zh-CN"),
    ("pair", (1366, 900), "light", "zh-CN"), ("pair", (390, 844), "dark", "en-US")]


def shots(out: Path, runs: list[str]) -> None:
    """The site of ``runs`` in Chromium: index, a run and a side-by-side page, desktop and phone, light and
    dark, English and Chinese, as docs/site-*.png."""
    from playwright.sync_api import sync_playwright

    from eval.site import build

    site = Path(tempfile.mkdtemp(prefix="site-shots-")) / "site"
    build(runs, site)
    pages = {"index": site / "index.html", "run": sorted(site.glob("run-*.html"))[0],
             "pair": sorted(site.glob("pair-*.html"))[-1]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for kind, (w, h), scheme, locale in SHOTS:
            ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme, locale=locale)
            pg = ctx.new_page()
            pg.goto(f"file://{pages[kind]}")
            pg.locator("h1").wait_for()
            if kind != "index":
                pg.locator("tr.row").first.click()  # one example open
                if w < 600:
                    pg.locator("tr.row").first.scroll_into_view_if_needed()
            name = f"site-{kind}-{'phone' if w < 600 else 'desktop'}-{scheme}-{locale[:2]}.png"
            pg.screenshot(path=str(out / name))
            print(f"wrote {out / name}")
            ctx.close()
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shots", type=Path, default=None, help="write the docs' screenshots into this folder")
    ap.add_argument("runs", nargs="*", help="with --shots: the run folders the site shows")
    args = ap.parse_args()
    if args.shots:
        return shots(args.shots, args.runs)
    from playwright.sync_api import sync_playwright

    from eval.site import build

    tmp = Path(tempfile.mkdtemp(prefix="bench-site-"))
    t0 = time.perf_counter()
    make_run(tmp / "run-a", args.n, 1)
    make_run(tmp / "run-b", args.n, 2)
    t1 = time.perf_counter()
    build([tmp / "run-a", tmp / "run-b"], tmp / "site")
    t2 = time.perf_counter()
    site = tmp / "site"
    sizes = {p.name: p.stat().st_size for p in (site / "data").glob("*.js")}
    from llmdemo.backends.hf.lean.tuning import cpu_signature  # the CPU's name as speed caches record it

    print(f"CPU: {cpu_signature()['cpu']}, {os.cpu_count()} CPUs; {args.n:,} examples per run")
    print(f"runs made in {t1 - t0:.1f} s; site written in {t2 - t1:.1f} s (paired bootstrap included)")
    for name, size in sorted(sizes.items()):
        print(f"  data/{name}: {size / 1e6:.1f} MB")
    pages = {"run": next(site.glob("run-*.html")), "pair": next(site.glob("pair-*.html"))}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for kind, page in pages.items():
            opened, filtered, sorted_ = [], [], []
            for _ in range(args.repeat):
                ctx = browser.new_context(viewport={"width": 1366, "height": 900})
                pg = ctx.new_page()
                pg.goto(f"file://{page}")
                pg.locator("tr.row").first.wait_for(timeout=60_000)
                opened.append(pg.evaluate("performance.now()") / 1000)
                before = pg.locator("#showing").text_content()
                t = time.perf_counter()
                pg.locator("#filter").fill("the")
                pg.wait_for_function("b => document.querySelector('#showing').textContent !== b", arg=before)
                filtered.append(time.perf_counter() - t)
                t = time.perf_counter()
                pg.locator("#sort").select_option(index=1)
                pg.locator("tr.row").first.wait_for()
                sorted_.append(time.perf_counter() - t)
                ctx.close()
            print(f"{kind} page: first rows after {statistics.median(opened):.2f} s (median of {args.repeat}; "
                  f"all {', '.join(f'{x:.2f}' for x in opened)}); filter {statistics.median(filtered):.2f} s; "
                  f"sort {statistics.median(sorted_):.2f} s")
        browser.close()


if __name__ == "__main__":
    main()
