"""A leaderboard of runs, and two runs side by side example by example.

``python -m eval leaderboard runs/*`` reads each run folder's ``results.json`` and writes one Markdown table and
a self-contained HTML page (an inline SVG plot of each metric with its 95% interval), grouped by task and data.
:func:`leaderboard_rows` returns the same rows for the app. ``python -m eval diff A B`` lines up two runs'
examples by id (:func:`diff_rows`). Runs are read through eval/runs.py: llmdemo's run folders and lm-eval's
output folders alike.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Iterable

ENGINE_KEYS = ("backend", "decode")


def _task(name: str):
    from .tasks import TASKS

    return TASKS.get(name)


def _metrics_of(res: dict) -> list[str]:
    t = _task(res.get("task", ""))
    names = list(t.summary_metrics) if t is not None and t.summary_metrics else [res.get("main_metric")]
    return [m for m in names if m in res.get("metrics", {})]


def _settings(res: dict) -> str:
    cfg = res.get("config") or {}
    if "temperature" in cfg:
        keys = ("temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty")
        parts = [f"{k}={cfg[k]}" for k in keys if cfg.get(k) is not None]
    elif "max_length" in cfg:
        parts = [f"max_length={cfg['max_length']}", f"stride={cfg.get('stride')}"]
    elif res.get("source") == "lm-eval":  # lm-eval's own settings
        parts = [f"{k}={cfg[k]}" for k in ("num_fewshot", "model_args", "batch_size", "gen_kwargs") if cfg.get(k) is not None]
    else:
        parts = [str(cfg["scoring"])] if cfg.get("scoring") else []
    if res.get("seed") is not None:
        parts.append(f"seed={res['seed']}")
    return ", ".join(parts)


def leaderboard_rows(run_dirs: Iterable[str | Path]) -> list[dict]:
    """One dict per run folder that holds a results.json: what the table shows, in the groups' order.

    Each row: ``task``, ``data``, ``run`` (the folder), ``model``, ``backend``, ``engine``, ``settings``, ``date``
    (results.json's modification time, UTC), ``n``, ``metrics`` ({name: value}), ``ci95`` ({name: [lo, hi]}),
    ``higher_is_better`` and ``main_metric``. Folders without a results.json are left out (:func:`collect`
    says which)."""
    return collect(run_dirs)[0]


def collect(run_dirs: Iterable[str | Path]) -> tuple[list[dict], list[tuple[str, str]]]:
    from .runs import open_runs

    runs, skipped = open_runs(run_dirs, with_examples=False)
    rows = [row(r) for r in runs]
    rows.sort(key=lambda r: (r["task"], r["data"], r["run"]))
    return rows, skipped


def row(run) -> dict:
    """One run's leaderboard row (see :func:`leaderboard_rows`); ``run`` is an eval.runs.Run."""
    res = run.results
    model = res.get("model") or {}
    engine = model.get("engine")
    engine = (" / ".join(f"{k}: {v}" for k, v in engine.items()) if isinstance(engine, dict)
              else model.get("decode") or "")
    names = _metrics_of(res)
    return {"task": run.task, "data": run.data, "run": str(run.path) + (f" ({run.task})" if run.source != "llmdemo" else ""),
            "source": run.source, "key": run.key, "label": run.label(), "model": model.get("name", "?"),
            "backend": model.get("backend") or "transformers", "engine": engine, "settings": _settings(res),
            "date": run.date, "n": res.get("n_examples"), "metrics": {k: res["metrics"][k] for k in names},
            "ci95": {k: (res.get("ci95") or {}).get(k) for k in names},
            "higher_is_better": res.get("higher_is_better"), "main_metric": res.get("main_metric")}


def _cell(v, ci) -> str:
    if not _finite(v):
        return "" if not isinstance(v, (int, float)) else str(v)
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_finite(c) for c in ci)
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ok else "")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["task"], r["data"]), []).append(r)
    return out


def _notes(task: str) -> list[str]:
    t = _task(task)
    return list(t.notes[:1]) if t is not None and t.notes else []


def markdown(rows: list[dict], skipped: list[tuple[str, str]] = ()) -> str:
    lines = ["# Leaderboard", "", "Values with their 95% intervals, as each run's results.json gives them.", ""]
    for (task, data), rs in _groups(rows).items():
        names = list(dict.fromkeys(k for r in rs for k in r["metrics"]))
        main = rs[0]["main_metric"]
        lines += [f"## {task} on {data}", "",
                  f"Main metric {main} ({'higher' if rs[0]['higher_is_better'] else 'lower'} is better).", ""]
        lines += [f"> {n}" for n in _notes(task)] + ([""] if _notes(task) else [])
        lines += ["| run | model | backend | engine | settings | date (UTC) | n | " + " | ".join(names) + " |",
                  "| --- " * (7 + len(names)) + "|"]
        for r in rs:
            cells = [Path(r["run"]).name, r["model"], r["backend"], r["engine"], r["settings"], r["date"], str(r["n"])]
            cells += [_cell(r["metrics"].get(k), r["ci95"].get(k)) for k in names]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{p} ({why})" for p, why in skipped), ""]
    return "\n".join(lines)


def _svg(rs: list[dict], names: list[str]) -> str:
    """One panel per metric: each run's value as a dot with its 95% interval as a line."""
    W, label_w, row_h, pad = 640, 180, 22, 28
    parts, y0 = [], 0
    for k in names:
        vals = [(Path(r["run"]).name, r["metrics"].get(k), r["ci95"].get(k)) for r in rs]
        # finite numbers only: one NaN (an empty run's score) made every dot of the panel cx='nan'
        pts = [x for _, v, ci in vals if _finite(v) for x in ([v] + [c for c in (ci or []) if _finite(c)])]
        if not pts:
            continue
        lo, hi = min(pts + [0.0]), max(pts)
        hi = hi if hi > lo else lo + 1
        sx = lambda x: label_w + (W - label_w - 20) * (x - lo) / (hi - lo)  # noqa: E731
        h = pad + row_h * len(vals) + 10
        parts.append(f"<g transform='translate(0,{y0})'><text x='4' y='16' font-weight='bold'>{html.escape(k)}</text>"
                     f"<text x='{label_w}' y='16' font-size='10'>{lo:.3g}</text>"
                     f"<text x='{W - 20}' y='16' font-size='10' text-anchor='end'>{hi:.3g}</text>")
        if lo < 0 < hi:
            parts.append(f"<line x1='{sx(0):.1f}' x2='{sx(0):.1f}' y1='{pad - 6}' y2='{h - 6}' stroke='#999' "
                         "stroke-dasharray='3,3'/>")
        for i, (name, v, ci) in enumerate(vals):
            y = pad + row_h * i + row_h / 2
            parts.append(f"<text x='4' y='{y + 4:.1f}' font-size='11'>{html.escape(name[:28])}</text>")
            if not _finite(v):
                continue
            if ci and all(_finite(c) for c in ci):
                parts.append(f"<line x1='{sx(ci[0]):.1f}' x2='{sx(ci[1]):.1f}' y1='{y:.1f}' y2='{y:.1f}' "
                             "stroke='#4c72b0' stroke-width='2'/>")
            parts.append(f"<circle cx='{sx(v):.1f}' cy='{y:.1f}' r='4' fill='#c44e52'><title>{html.escape(name)}: "
                         f"{_cell(v, ci)}</title></circle>")
        parts.append("</g>")
        y0 += h
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{y0}' viewBox='0 0 {W} {y0}' font-family='sans-serif' "
            f"role='img'>{''.join(parts)}</svg>")


def html_page(rows: list[dict], skipped: list[tuple[str, str]] = ()) -> str:
    body = ["<h1>Leaderboard</h1><p>Values with their 95% intervals, as each run's results.json gives them.</p>"]
    for (task, data), rs in _groups(rows).items():
        names = list(dict.fromkeys(k for r in rs for k in r["metrics"]))
        body.append(f"<h2>{html.escape(task)} on {html.escape(data)}</h2><p>Main metric {html.escape(str(rs[0]['main_metric']))} "
                    f"({'higher' if rs[0]['higher_is_better'] else 'lower'} is better).</p>")
        body += [f"<p class='note'>{html.escape(n)}</p>" for n in _notes(task)]
        head = ["run", "model", "backend", "engine", "settings", "date (UTC)", "n"] + names
        body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for r in rs:
            cells = [Path(r["run"]).name, r["model"], r["backend"], r["engine"], r["settings"], r["date"], str(r["n"])]
            cells += [_cell(r["metrics"].get(k), r["ci95"].get(k)) for k in names]
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        body.append("</table>" + _svg(rs, names))
    if skipped:
        body.append("<p>Skipped: " + html.escape("; ".join(f"{p} ({why})" for p, why in skipped)) + "</p>")
    css = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse;"
           "margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}.note{color:#555}")
    return f"<!doctype html><meta charset='utf-8'><title>llmdemo leaderboard</title><style>{css}</style>" + "\n".join(body)


def write(run_dirs: Iterable[str | Path], output: str | Path) -> tuple[str, Path, Path]:
    """Write leaderboard.md and leaderboard.html into ``output``; returns the Markdown and the two paths."""
    rows, skipped = collect(run_dirs)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, skipped)
    (out / "leaderboard.md").write_text(md, encoding="utf-8")
    (out / "leaderboard.html").write_text(html_page(rows, skipped), encoding="utf-8")
    return md, out / "leaderboard.md", out / "leaderboard.html"


# ------------------------------------------------------------------ two runs, example by example
def diff_rows(a: str | Path, b: str | Path) -> tuple[str, list[dict]]:
    """The two runs' rows side by side, on the ids both have: (per-example key, rows), largest change first
    (eval/runs.py's :func:`~eval.runs.side_by_side`, with the right/wrong of multiple choice).

    Each row: ``id``, ``input``, ``a`` / ``b`` (the answer: the pick or the prediction), ``score_a`` /
    ``score_b`` (the task's per-example score), ``right_a`` / ``right_b`` (multiple choice), ``changed``."""
    from .runs import pair_of, side_by_side

    ra, rb = pair_of(a, b)
    key, rows = side_by_side(ra, rb)
    sa, sb = ({e["id"]: e["scores"].get("acc") for e in r.examples} for r in (ra, rb))
    for r in rows:
        r["right_a"], r["right_b"] = sa.get(r["id"]), sb.get(r["id"])
        r["changed"] = r["changed"] or r["right_a"] != r["right_b"]
    return key, rows


def diff_markdown(a: str | Path, b: str | Path, limit: int = 50) -> str:
    key, rows = diff_rows(a, b)
    a, b = Path(a), Path(b)
    changed = [r for r in rows if r["changed"]]
    lines = [f"# {a.name} vs {b.name}, example by example", "",
             f"{len(rows)} examples in both runs; {len(changed)} with another answer"
             + (" or another right/wrong" if any(r["right_a"] is not None for r in rows) else "")
             + f". Shown: the changed ones, largest {key} change first (at most {limit}).", "",
             f"| id | input | {a.name} | {b.name} | {key} {a.name} | {key} {b.name} |", "| --- " * 6 + "|"]
    for r in changed[:limit]:
        def ans(v, right):
            return v[:120] + ("" if right is None else (" ✓" if right else " ✗"))
        cells = [r["id"], r["input"][:150], ans(r["a"], r["right_a"]), ans(r["b"], r["right_b"]),
                 _cell(r["score_a"], None), _cell(r["score_b"], None)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"
