"""``python -m eval site RUNS... --output site/``: a static, self-contained site of evaluation runs.

What it writes (HTML, one stylesheet, one script and one data file per page; no server, no CDN: it opens
from ``file://`` and from a static Space, whose front matter ``README.md`` carries):

- ``index.html``: the leaderboard of every task and data (metrics with 95% intervals, model, engine,
  settings, date, a plot), the runs, a picker of two runs of the same task and data, and the votes'
  leaderboard (Bradley-Terry with intervals) when a votes database is given;
- ``run-KEY.html``: one run's settings, signatures, counts and every example (filter, sort, open one);
- ``pair-KEY.html``: two runs of the same task and data side by side, largest change first, with the
  paired test of each run metric (eval/runs.py: the same numbers as ``eval compare``).

A page's data is a script (``data/*.js`` setting ``window.SITE``), not JSON fetched at run time: a page
opened from ``file://`` may not fetch files. Every text from a run is put in the page as text (never as
HTML) by ``assets/site.js``; the plots are SVG made here from numbers and escaped names.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import shutil
from pathlib import Path
from typing import Callable, Iterable

from llmdemo.errors import DetailError

from .runfolder import write_file
from .runs import SCORE_NOTES, Run, open_runs, paired, side_by_side

ASSETS = Path(__file__).parent / "site_assets"
FRONT_MATTER = """---
title: llmdemo evaluation
emoji: 📊
colorFrom: blue
colorTo: gray
sdk: static
app_file: index.html
pinned: false
---

Evaluation runs written by `python -m eval site` (llmdemo). Open `index.html`.
"""
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="assets/site.css">
</head>
<body>
<main id="app"><noscript>This page shows its tables with JavaScript; turn it on to read them.</noscript></main>
<script src="data/{data}"></script>
<script src="assets/site.js"></script>
</body>
</html>
"""
MAX_PAIRS = 400  # side-by-side pages; a folder of many runs of one task is capped (each pair's test costs ~1 s)
APP_PAIRS = 20  # the app's zip: its paired tests run in the evaluation's one slot


class SiteError(DetailError, ValueError):
    """The site cannot be written there (a file in the way, no runs)."""

    kind = "eval.site"


def _header(run: Run, folders: bool = True) -> dict:
    """What a page says about a run above its examples."""
    from .leaderboard import row

    r = row(run)
    res = run.results
    return {"key": run.key, "label": run.label(), "name": run.name, "source": run.source, "task": run.task, "data": run.data,
            "model": r["model"], "backend": r["backend"], "engine": r["engine"], "settings": r["settings"],
            "date": r["date"], "n": r["n"], "main_metric": res.get("main_metric"),
            "higher_is_better": res.get("higher_is_better"), "per_example": run.per_example,
            "per_example_note": SCORE_NOTES.get(run.per_example or ""),
            "metrics": {k: v for k, v in (res.get("metrics") or {}).items() if isinstance(v, (int, float))},
            "ci95": {k: v for k, v in (res.get("ci95") or {}).items() if v},
            "signatures": res.get("signatures") or {}, "counts": run.counts(), "notes": res.get("notes") or [],
            "prompt_template": res.get("prompt_template"),
            # the model's file path, a server's URL, library versions: the run folder has them; a page shows
            # what its reader needs, and a hosted app's zip names nothing of its server
            "folder": str(run.path) if folders else None}


def _pair_key(a: Run, b: Run) -> str:
    return hashlib.sha256(f"{a.key}|{b.key}".encode()).hexdigest()[:12]


def _write(path: Path, text: str) -> None:
    # whole or not at all (runfolder's writer); a lone surrogate in a model's output becomes "?"
    write_file(path, text.encode("utf-8", "replace").decode("utf-8"))


def _data_js(obj) -> str:
    # a script, not JSON: a page opened from file:// may load scripts but not fetch files
    return "window.SITE = " + json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + ";\n"


def _clean(v):
    """NaN and infinities as None (JSON has no NaN; a run's perplexity can be infinite)."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


MARKER = ".llmdemo-site"  # in a folder this command wrote: only there are earlier pages removed
SPACE_FILES = {"README.md", ".gitattributes", ".git", MARKER}  # a fresh Space's clone: a site may go there


def _prepare(out: Path) -> None:
    """``out`` ready for a site: made if missing; in a folder this command wrote before, its earlier pages
    and data removed (a run left out this time must not keep a page); anything else there (a Space's .git)
    left alone. A folder of other files (a project's own index.html) is refused, never emptied."""
    if out.exists() and not out.is_dir():
        raise SiteError(f"{out} is a file; choose a folder for --output")
    if out.is_dir() and not (out / MARKER).exists():
        others = sorted(p.name for p in out.iterdir() if p.name not in SPACE_FILES)
        if others:
            raise SiteError(f"{out} holds other files ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                            "choose an empty folder, a Space's fresh clone, or one `eval site` wrote")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by python -m eval site; its pages are replaced when it runs again\n")
    for pattern in ("run-*.html", "pair-*.html", "index.html", "data/*.js", "assets/site.*"):
        for p in out.glob(pattern):
            if p.is_file() and not p.is_symlink():
                p.unlink()
            elif p.is_symlink():
                raise SiteError(f"{p} is a symbolic link; the site writes only its own files")
    (out / "data").mkdir(exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)


def _votes(db: str | Path | None):
    if db is None:
        return None
    from llmdemo.compare import ratings
    from llmdemo.compare.board import MAX_RATED, PRELIMINARY_BATTLES
    from llmdemo.compare.votes import VoteStore

    if not Path(db).is_file():
        raise SiteError(f"{db}: no such votes database")
    board = ratings.leaderboard(VoteStore(db).votes(), max_rated=MAX_RATED)
    d = board.to_dict()
    d["note"] = board._footer() if board.ratings else ""
    d["preliminary_battles"] = PRELIMINARY_BATTLES
    return _clean(d)


def build(paths: Iterable[str | Path], output: str | Path, votes: str | Path | None = None,
          progress: Callable[[str], None] | None = None, folders: bool = True, max_pairs: int = MAX_PAIRS) -> dict:
    """Write the site into ``output``; returns {"runs", "pairs", "skipped", "index"} (the index page's path).
    ``folders=False`` leaves the runs' folder names out (a hosted app's zip: the server's paths are its own)."""
    say = progress or (lambda _s: None)
    runs, skipped = open_runs(paths)
    if not runs and votes is None:
        why = "; ".join(f"{p}: {w}" for p, w in skipped[:3])
        raise SiteError("no runs to show" + (f" ({why})" if why else ""))
    board = _votes(votes)
    out = Path(output)
    _prepare(out)
    for name in ("site.css", "site.js"):
        shutil.copyfile(ASSETS / name, out / "assets" / name)
    if not (out / "README.md").exists() or (out / "README.md").read_text(encoding="utf-8").startswith("---\ntitle: llmdemo"):
        _write(out / "README.md", FRONT_MATTER)

    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.task, r.data), []).append(r)
    from .leaderboard import _notes, _svg, row

    index_groups, n_pairs, capped = [], 0, False
    for i, r in enumerate(runs, 1):
        say(f"run {i}/{len(runs)}: {r.label()}")
        page = {"kind": "run", "run": _header(r, folders), "examples": r.examples}
        _write(out / "data" / f"run-{r.key}.js", _data_js(_clean(page)))
        _write(out / f"run-{r.key}.html", PAGE.format(title=html.escape(f"{r.task} · {r.model}"),
                                                      data=f"run-{r.key}.js"))
    for (task, data), rs in groups.items():
        pairs = []
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                if n_pairs >= max_pairs:
                    capped = True
                    break
                n_pairs += 1
                say(f"pair {n_pairs}: {a.label()} vs {b.label()}")
                key = _pair_key(a, b)
                test = paired(a, b)
                per, rows = side_by_side(a, b)
                page = {"kind": "pair", "a": _header(a, folders), "b": _header(b, folders), "per_example": per,
                        "per_example_note": SCORE_NOTES.get(per or ""), "test": test, "rows": rows}
                _write(out / "data" / f"pair-{key}.js", _data_js(_clean(page)))
                _write(out / f"pair-{key}.html", PAGE.format(title=html.escape(f"{task}: two runs side by side"),
                                                             data=f"pair-{key}.js"))
                pairs.append({"a": a.key, "b": b.key, "page": f"pair-{key}.html"})
        lrows = [row(r) for r in rs]
        names = list(dict.fromkeys(k for lr in lrows for k in lr["metrics"]))
        index_groups.append({"task": task, "data": data, "main_metric": rs[0].results.get("main_metric"),
                             "higher_is_better": rs[0].results.get("higher_is_better"), "notes": _notes(task),
                             "metrics": names, "svg": _svg(lrows, names),
                             "runs": [{**_header(r, folders), "page": f"run-{r.key}.html"} for r in rs], "pairs": pairs})
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    index = {"kind": "index", "groups": index_groups, "votes": board, "generated": generated,
             "skipped": [{"path": p if folders else Path(p).name, "why": w if folders else w.replace(str(Path(p)), Path(p).name)}
                         for p, w in skipped], "pairs_capped": capped}
    _write(out / "data" / "index.js", _data_js(_clean(index)))
    _write(out / "index.html", PAGE.format(title="llmdemo evaluation", data="index.js"))
    return {"runs": len(runs), "pairs": n_pairs, "skipped": skipped, "index": out / "index.html"}


def zip_site(paths: Iterable[str | Path], folder: str | Path, votes: str | Path | None = None,
             folders: bool = False) -> Path:
    """The site of ``paths`` as ``folder``/llmdemo-site.zip (the app's download; the server's folder names left
    out unless ``folders``)."""
    folder = Path(folder)
    site = folder / "site"
    build(paths, site, votes, folders=folders, max_pairs=APP_PAIRS)
    try:
        return Path(shutil.make_archive(str(folder / "llmdemo-site"), "zip", root_dir=site))
    finally:
        shutil.rmtree(site, ignore_errors=True)
