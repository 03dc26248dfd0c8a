"""Read an lm-evaluation-harness 0.4.x output folder (``lm_eval --output_path OUT --log_samples``), so its runs
show beside llmdemo's own: the metrics are those lm-eval wrote, never re-scored here.

The format, as read from EleutherAI/lm-evaluation-harness (0.4.x):

* ``lm_eval/loggers/evaluation_tracker.py`` (commit 034ab03621186e68aa1f73ee1508370580ea77b5):
  ``save_results_aggregated`` writes ``OUT/<model_name_sanitized>/results_<date_id>.json`` (``date_id`` =
  ``datetime.now().isoformat().replace(":", "-")``, local time; with an ``--output_path`` ending in ``.json``:
  ``<stem>_<date_id>.json`` beside it), the results dict plus ``task_hashes`` and the tracker's fields
  (``model_name``, ``model_name_sanitized``, ``total_evaluation_time_seconds``, ...). ``save_results_samples``
  appends one JSON line per document to ``samples_<task>_<same date_id>.jsonl``, with ``arguments`` turned into
  ``{"gen_args_<i>": {"arg_<j>": ...}}``, ``resps``/``filtered_resps`` stringified (``sanitize_list``: a
  loglikelihood ``(-3.2, False)`` becomes ``["-3.2", "False"]``) and ``target`` a string. An earlier tracker
  wrote ``samples_<task>_<date_id>.json`` as one JSON array with ``arguments`` a list of lists; both are read.
* ``lm_eval/evaluator.py`` (commit 5b321a1ad92f126671533121783340dc59e1b173) and
  ``lm_eval/evaluator_utils.py`` (0064c3a03e5fe863a1ffde689bdb216c97d8c5f1): the results dict has ``results``
  ({task: {"alias", "<metric>,<filter>": value, "<metric>_stderr,<filter>": value or "N/A"}}; a group that does
  not aggregate holds only its alias), ``group_subtasks``, ``configs`` ({task: {"dataset_path", "dataset_name",
  "test_split", "output_type", ...}}), ``versions``, ``n-shot``, ``higher_is_better`` ({task: {metric: bool}}),
  ``n-samples`` ({task: {"original", "effective"}}), ``config`` ({"model", "model_args", "batch_size",
  "gen_kwargs", "random_seed", ...}), ``git_hash``, ``date`` (a Unix time), ``lm_eval_version`` (newer 0.4.x).
  A sample line: ``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter`` and
  ``metrics`` (the metric names; both absent before ~0.4.4, where a task's lines come one filter after the
  other), ``doc_hash``, ``prompt_hash``, ``target_hash``, and each metric's per-sample value (``"acc": 1.0``).

The 95% intervals (``ci95``) are normal-approximation intervals, value +- 1.96 x the stderr lm-eval reported
(its bootstrap or analytic stderr); a metric whose stderr is "N/A" has none.

A samples file whose last line was cut off (no newline at its end, not JSON: an unfinished write) keeps its
other lines, and the results say so in ``notes``; any other line that is not JSON is an :class:`LmEvalError`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from pathlib import Path

from llmdemo.errors import DetailError

from .lmeval_samples import _example, _first_filter_block, _guess_type, _number

DATE_ID = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2}(?:\.\d+)?)")
RESULTS_NAME = re.compile(r"results_(" + DATE_ID.pattern + r")\.json")
NOT_METRICS = {"alias", "samples", "name", " "}
SKIP_METRICS = {"bypass"}  # --predict_only: a placeholder (999), not a score
MODEL_KEYS = ("peft=", "delta=", "pretrained=", "model=", "path=", "engine=")  # lm-eval's _get_model_name order


class LmEvalError(DetailError, ValueError):
    """An lm-eval output that cannot be read: one line naming the file (and line)."""

    kind = "eval.lmeval"


# ------------------------------------------------------------------ finding the files
def _looks_like_results(f: Path) -> bool:
    """A results file lm-eval wrote: named ``results_<date_id>.json``, or (another name) JSON with its keys."""
    if RESULTS_NAME.fullmatch(f.name):
        return True
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return (isinstance(data, dict) and isinstance(data.get("results"), dict)
            and any(k in data for k in ("configs", "versions", "n-shot", "higher_is_better")))


def _results_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix == ".json" and _looks_like_results(path) else []
    if not path.is_dir():
        return []
    found = []
    for d in [path] + sorted(p for p in path.iterdir() if p.is_dir()):
        found += [f for f in sorted(d.glob("results_*.json")) if f.is_file() and _looks_like_results(f)]
    return found


def is_lmeval(path) -> bool:
    """True for a folder holding lm-eval's ``results_*.json`` (in it, or one level down as in
    ``OUT/<model_name_sanitized>/``), or for such a file itself. An llmdemo run folder has ``results.json``:

    >>> is_lmeval("no/such/folder")
    False
    """
    try:
        return bool(_results_files(Path(path)))
    except OSError:
        return False


def _date_id(f: Path) -> str | None:
    m = DATE_ID.search(f.name)
    return m.group(0) if m else None


def _iso(date_id: str | None, data: dict) -> str | None:
    """The run's date in UTC: the results' ``date`` field (a Unix time), else the file name's (local time
    where lm-eval ran, so only a fallback: the site labels dates UTC).

    >>> _iso("2025-01-02T03-04-05.678901", {})
    '2025-01-02T03:04:05.678901'
    >>> _iso("2025-01-02T03-04-05.678901", {"date": 0})
    '1970-01-01T00:00:00+00:00'
    """
    d = data.get("date")
    if isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d):
        return _dt.datetime.fromtimestamp(d, _dt.UTC).isoformat(timespec="seconds")
    if date_id:
        m = DATE_ID.fullmatch(date_id)
        return f"{m.group(1)}T{m.group(2)}:{m.group(3)}:{m.group(4)}"
    return str(d) if d else None


# ------------------------------------------------------------------ reading them
def _load_results(f: Path) -> dict:
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LmEvalError(f"{f}, line {e.lineno}: not JSON ({e.msg})") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as e:
        raise LmEvalError(f"{f}: not an lm-eval results file ({str(e)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise LmEvalError(f"{f}: no \"results\" object, not an lm-eval results file")
    return data


def _read_samples(f: Path, notes: list[str]) -> list[dict]:
    try:
        text = f.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LmEvalError(f"{f}: not UTF-8 text ({e.reason})") from None
    if f.suffix == ".json":  # the early tracker: one JSON array
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise LmEvalError(f"{f}, line {e.lineno}: not JSON ({e.msg})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LmEvalError(f"{f}: not a list of samples")
        return rows
    rows, lines = [], text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:
            if n == len(lines):  # the last line, with no newline after it: a write cut short
                notes.append(f"{f.name}: its last line (line {n}) was cut off and is left out")
                break
            raise LmEvalError(f"{f}, line {n}: not a JSON sample ({str(e)[:120]})") from None
        if not isinstance(row, dict):
            raise LmEvalError(f"{f}, line {n}: not a sample object")
        rows.append(row)
    return rows


def _metric_name(key: str) -> tuple[str, str | None]:
    """``"acc,none"`` -> ("acc", "none"); ``"exact_match,flexible-extract"`` -> ("exact_match", ...)."""
    base, _, flt = key.partition(",")
    return base, (flt or None)


def _display(base: str, flt: str | None) -> str:
    """The name llmdemo shows for a metric of one filter.

    >>> _display("acc", "none"), _display("exact_match", "flexible-extract")
    ('acc', 'exact_match (flexible-extract)')
    """
    return base if flt in (None, "none") else f"{base} ({flt})"


def _model_name(data: dict) -> str:
    if data.get("model_name"):
        return str(data["model_name"])
    cfg = data.get("config") or {}
    args = cfg.get("model_args")
    if isinstance(args, dict):
        for k in MODEL_KEYS:
            if args.get(k[:-1]):
                return str(args[k[:-1]])
    elif isinstance(args, str):
        for k in MODEL_KEYS:
            if k in args:
                return args.split(k, 1)[1].split(",")[0]
    return str(cfg.get("model") or "?")


def _task(f: Path, data: dict, task: str, entry: dict, samples_rows: list[dict] | None, notes: list[str]):
    cfg = data.get("config") or {}
    tcfg = (data.get("configs") or {}).get(task) or {}
    # metrics in the file's order, named "acc" / "exact_match (flexible-extract)"; stderrs aside
    metrics, stderr, bases, filters = {}, {}, {}, []
    for k, v in entry.items():
        if k in NOT_METRICS or not isinstance(k, str):
            continue
        base, flt = _metric_name(k)
        if base.endswith("_stderr"):
            se = _number(v) if not isinstance(v, str) else None
            if se is not None:
                stderr[_display(base[: -len("_stderr")], flt)] = se
            continue
        val = _number(v) if not isinstance(v, str) else None
        if val is None or base in SKIP_METRICS:
            continue
        name = _display(base, flt)
        metrics[name] = val
        bases[name] = (base, flt)
        if flt not in filters:
            filters.append(flt)
    rows = samples_rows or []
    first_filter = rows[0].get("filter") if rows and "filter" in rows[0] else (filters[0] if filters else None)
    kept = _first_filter_block(rows, first_filter) if rows else []
    if kept and "filter" in kept[0]:
        first_filter = kept[0]["filter"]
    if not metrics and not kept:
        return None
    # main metric: the first of higher_is_better's that has a value (the first filter's, if several)
    hib = (data.get("higher_is_better") or {}).get(task) or {}
    main = None
    for m in hib:
        cands = [n for n, (b, _) in bases.items() if b == m]
        if cands:
            main = next((n for n in cands if bases[n][1] == first_filter), cands[0])
            break
    if main is None and metrics:
        main = next(iter(metrics))
    if main is None and kept and isinstance(kept[0].get("metrics"), list) and kept[0]["metrics"]:
        main = _display(kept[0]["metrics"][0], first_filter)
    h = hib.get(bases[main][0]) if main in bases else None
    output_type = tcfg.get("output_type") or _guess_type(kept)
    per_sample = {b: _display(b, first_filter) for b, flt in bases.values() if flt == first_filter}
    for r in kept[:1]:
        for m in r.get("metrics") or []:
            per_sample.setdefault(m, _display(m, first_filter))
    examples = [_example(s, output_type, per_sample, main) for s in kept]
    # the data lm-eval read: dataset_path[/dataset_name] and the split it evaluated
    subtasks = (data.get("group_subtasks") or {}).get(task) or []
    if tcfg:
        ds = "/".join(str(x) for x in (tcfg.get("dataset_path"), tcfg.get("dataset_name")) if x)
        split = tcfg.get("test_split") or tcfg.get("validation_split") or ""
        data_name = f"{ds} {split}".strip() or "?"
    else:
        data_name = "group: " + ", ".join(map(str, subtasks)) if subtasks else "?"
    ns = (data.get("n-samples") or {}).get(task) or {}
    n = ns.get("effective") if isinstance(ns, dict) else None
    if n is None and subtasks and not kept:
        parts = [((data.get("n-samples") or {}).get(t) or {}).get("effective") for t in subtasks]
        n = sum(parts) if parts and all(isinstance(p, int) for p in parts) else None
    if n is None:
        n = len(kept)
    nshot = (data.get("n-shot") or {}).get(task)
    version = (data.get("versions") or {}).get(task)
    config = {"num_fewshot": nshot} if nshot is not None else {}
    config.update({k: cfg[k] for k in ("model_args", "batch_size", "gen_kwargs", "limit") if cfg.get(k) is not None})
    flt_text = first_filter if first_filter is not None else "none"
    return {
        "task": task, "data": data_name, "source": "lm-eval", "lm_eval_version": data.get("lm_eval_version"),
        "main_metric": main, "higher_is_better": True if h is None else bool(h),
        "metrics": metrics,
        "ci95": {k: [v - 1.96 * stderr[k], v + 1.96 * stderr[k]] for k, v in metrics.items() if k in stderr},
        "n_examples": n,
        "model": {"name": _model_name(data), "backend": f"lm-eval {cfg.get('model') or '?'}"},
        "config": config,
        "seed": cfg.get("random_seed"),
        "examples": {"scored": len(kept), "failed": 0,
                     "empty_by_model": sum(1 for e in examples if e["status"] == "empty")},
        "signatures": {"lm-eval": f"{task} v{'?' if version is None else version} n-shot "
                                  f"{'?' if nshot is None else nshot} filter {flt_text}"},
        "date": _iso(_date_id(f), data),
        "notes": ["metrics as lm-eval reported them; not re-scored by llmdemo"] + notes,
        "lm_eval_file": str(f),
    }, examples


def _samples_file(f: Path, task: str) -> Path | None:
    d = _date_id(f)
    if not d:
        return None
    for ext in (".jsonl", ".json"):
        p = f.parent / f"samples_{task}_{d}{ext}"
        if p.is_file():
            return p
    return None


def read_lmeval(path) -> list[tuple[dict, list[dict]]]:
    """One (results, examples) pair per task of each lm-eval results file in ``path`` (see :func:`is_lmeval`);
    a group entry with no metrics and no samples of its own is left out, and where one folder holds several
    results files for the same model and task, the newest (by the date in its name) is kept."""
    path = Path(path)
    files = _results_files(path)
    if not files:
        raise LmEvalError(f"{path}: no lm-eval results_*.json here (nor one folder down)")
    loaded = []
    for f in files:
        loaded.append((f, _load_results(f)))
    newest: dict[tuple, tuple] = {}
    for f, data in loaded:
        model = data.get("model_name_sanitized") or _model_name(data)
        when = _iso(_date_id(f), data) or ""
        for pos, task in enumerate(data["results"]):
            key = (str(f.parent), model, task)
            if key not in newest or when > newest[key][0]:
                newest[key] = (when, f, data, pos)
    out = []
    for (_, _, task), (_when, f, data, _pos) in sorted(newest.items(), key=lambda kv: (kv[0][0], kv[1][0], kv[1][3])):
        entry = data["results"][task]
        if not isinstance(entry, dict):
            raise LmEvalError(f"{f}: results[{task!r}] is not an object")
        notes: list[str] = []
        sf = _samples_file(f, task)
        rows = _read_samples(sf, notes) if sf else None
        got = _task(f, data, task, entry, rows, notes)
        if got is not None:
            out.append(got)
    if not out:  # said, not an empty list: a folder of group entries only vanished without a word
        raise LmEvalError(f"{path}: lm-eval results with group entries only (no task has metrics or samples)")
    return out
