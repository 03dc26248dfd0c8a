"""What the Evaluation tab shows of a run: the progress line, the examples table (in the benchmark's order),
the report for the page and a metric's 95% interval."""

from __future__ import annotations

import re
from typing import Any

from ...i18n import text as msg

def progress_line(done: int, total: int, elapsed_s: float, lang: str = "en", windows: tuple[int, int] | None = None,
                  tokens: tuple[int, int] | None = None, preparing: bool = False) -> str:
    """The Evaluation tab's status while a run goes: examples done, time so far, and an estimate once
    one example is done (from the pace so far; batches finish together, so it moves in steps). A run of
    one long text (perplexity on WikiText-2: one example) counts the text's windows instead. A generation
    run also counts its tokens against the most its rows may take: rows of a batch often end together at
    their cap, and the example count alone stayed at "0 of N" until the end. ``preparing``: the first
    scoring use is loading the scoring model, with nothing done yet."""
    if preparing and not done:
        return msg("eval_preparing", lang, elapsed=_duration(elapsed_s, lang))
    key = "eval_running"
    if windows and windows[1] and total - done == 1:  # the last (or only) text: its windows say how far
        key, (done, total) = "eval_running_windows", windows
    left = msg("eval_left", lang, left=_duration(elapsed_s / done * (total - done), lang)) if 0 < done < total else ""
    line = msg(key, lang, done=done, total=total, pct=f" ({100 * done / total:.0f}%)" if total else "",
               elapsed=_duration(elapsed_s, lang), left=left)
    if tokens and tokens[1] and done < total:
        gen, most = tokens
        line = line.rstrip("…") + msg("eval_tokens", lang, gen=f"{gen:,}", most=f"{most:,}",
                                      pct=f"{100 * gen / most:.0f}")
    return line


def _duration(s: float, lang: str = "en") -> str:
    s = int(round(s))
    if lang == "zh":
        return f"{s} 秒" if s < 60 else f"{s // 60} 分 {s % 60:02d} 秒"
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def examples_table(rows: list[dict], task: str, text: str = "", order: str = "data") -> list[list]:
    """A run's rows for the page: row number first (what "Row (0 = first)" counts, so it still names the row
    after a filter), texts cut short (the table is read on a phone too), the per-example score rounded."""
    from eval.runs import example, filter_sort
    from eval.tasks import TASKS

    key = TASKS[task].per_example if task in TASKS else None
    shown = []
    for i, r in enumerate(rows):
        e = example(r, key)
        e["row"] = i
        shown.append(e)
    return [[e["row"], _short(e["input"]), _short(e["reference"]), _short(e["output"]), _round(e["score"])]
            for e in filter_sort(shown, text, order)]


def _round(v: Any) -> Any:
    """A per-example score as the table shows it (it showed 18.829901861676117)."""
    return round(v, 2) if isinstance(v, float) else v


def _short(v: Any, n: int = 160) -> str:
    v = str(v)
    return v if len(v) <= n else v[: n - 1] + "…"


def _in_data_order(rows: list[dict], path, task: str, limit: int) -> list[dict]:
    """Rows in the benchmark's order (predictions.jsonl is in the order examples finished in a batch)."""
    try:
        from eval.datasets import load_records
        from eval.tasks import TASKS

        records = load_records(str(path), task, limit)
        if TASKS[task].prepare is not None:
            records = TASKS[task].prepare(records)
        pos = {str(r["id"]): i for i, r in enumerate(records)}
    except Exception:  # noqa: BLE001 - order is a nicety: the rows as written
        return rows
    for r in rows:  # the languages, for "open this example in its task tab" (rows store the target only)
        i = pos.get(str(r.get("id")))
        if i is not None:
            for k in ("src_lang", "tgt_lang"):
                if k in records[i] and k not in r:
                    r[k] = records[i][k]
    return sorted(rows, key=lambda r: pos.get(str(r.get("id")), len(pos)))


def _report_for_page(path: str) -> str:
    """report.md for a Markdown component: its images are files next to it, so they are left out (the plot is shown)."""
    from pathlib import Path

    from ...safety import safe_markdown

    text = Path(path).read_text(encoding="utf-8")
    # the report quotes benchmark files and model outputs as they are: shown in the page, an <img> in an
    # example's id would load from anywhere, so no HTML tag and no image reaches the Markdown component
    return safe_markdown(re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text))

def _ci(res: dict, k: str, n: int | None = None, lang: str = "en") -> str:
    """The metric's 95% interval, or why it is not given: too few examples, or every resample alike."""
    from eval.metrics import FEW_FOR_CI

    ci = res.get("ci95", {}).get(k)
    if not ci:
        return ""
    if n is not None and n < FEW_FOR_CI:
        return msg("eval_ci_few", lang, n=n)
    if ci[0] == ci[1]:
        return msg("eval_ci_flat", lang, lo=f"{ci[0]:.2f}")
    return f"{ci[0]:.2f} – {ci[1]:.2f}"
