"""The one place a dataset, a task, the model and a metric meet.

A run writes into its output folder as it goes: ``run.json`` (the settings), then
``predictions.jsonl`` one flushed line per example, then ``results.json`` and the reports.
Rerunning with the same settings skips the examples already in ``predictions.jsonl``; the folder's
rules (its lock, what must match to resume, what --overwrite may delete) are in eval/runfolder.py; how a
task's requests are answered, in eval/answering.py.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from llmdemo.config import TASK_DEFAULTS
from llmdemo.interface import require

from llmdemo.load import load

from .answering import Loop, RunStopped, error_line, failure_limit, progress_bar  # noqa: F401 (RunStopped: the app catches it here)
from .datasets import DataError, load_records
from .runfolder import RunError, RunSpec, claim, read_done, write_file
from .tasks import TASKS as TASK_REGISTRY
from .tasks import get_task

TASKS = tuple(TASK_REGISTRY)  # the registered task names (eval/tasks.py)


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "sacrebleu", "rouge-score", "gguf", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    from llmdemo import __version__

    out["llmdemo"] = __version__
    return out


def _auto_batch(lm, task: str) -> int:
    if str(lm.device).startswith("cuda"):
        return 32
    # rows are refilled as they finish, so a larger batch no longer idles on its slowest row:
    # 16 rows gave 3.85x batch 1 on FLORES en-fr here (bench/eval_throughput.py)
    return 16 if task in ("translation", "dialogue", "summarization") else 4


def run(spec: RunSpec, lm=None, progress_cb=None, stop_event=None, window_cb=None, token_cb=None) -> dict:
    """Run one evaluation; returns the results dict also written to results.json.

    ``progress_cb(done, total)`` is called as each example is written; ``window_cb(done, total)`` as each
    window of a perplexity text is scored; ``token_cb(generated, budget)`` while a generation task's rows run
    (rows of a batch often end together, so the example count alone can stay at 0 until the end).

    Generation and scoring go to the model's scheduler at batch priority, so a visitor's request
    is served between two of the run's steps. Setting ``stop_event`` ends the run at the next step
    with :class:`RunStopped`; the examples finished so far stay in predictions.jsonl.
    """

    try:
        task = get_task(spec.task)  # a task file (path/to/task.yaml) is read and registered by its name
    except ValueError as e:
        raise RunError(str(e)) from None
    spec.task = task.name
    if spec.data is None:
        if task.data_file is None:
            raise RunError(f"no data given for the {task.name} task")
        spec.data = task.data_file
    from .shipped import resolve_data

    spec.data = resolve_data(spec.data)  # a shipped name becomes its file (its hash goes into the settings)
    records = load_records(spec.data, spec.task, spec.limit)
    if task.prepare is not None:
        try:
            records = task.prepare(records)
        except DataError:
            raise
        except ValueError as e:  # a task file's template that fails on a record: one line, before the model
            raise RunError(str(e)) from None
        if not records:
            raise DataError(f"{spec.data}: no example could be made (a conversation needs two turns or more)")
    lm = lm or load(spec.model)
    if task.needs:
        try:
            require(lm, task.needs, f"the {task.name} task ({task.kind}: it scores text)")
        except ValueError as e:
            raise RunError(str(e)) from None
    spec.config = spec.config or TASK_DEFAULTS.get(spec.task if task.kind == "generate" else "translation") or \
        TASK_DEFAULTS["translation"].replace(temperature=0.0)  # a task file's generation: greedy
    if task.kind == "generate":
        spec.config = spec.config.replace(seed=spec.seed)
    out = Path(spec.output)
    with claim(out, spec.settings(lm), spec.overwrite):
        return _run_locked(spec, lm, records, out, progress_cb, stop_event, window_cb, token_cb)


def _run_locked(spec: RunSpec, lm, records: list[dict], out: Path, progress_cb, stop_event, window_cb=None,
                token_cb=None) -> dict:
    task = get_task(spec.task)
    pred_file = out / "predictions.jsonl"
    done = read_done(pred_file)
    done_ids = {d["id"] for d in done}
    todo = [r for r in records if r["id"] not in done_ids]
    bs = _auto_batch(lm, spec.task) if spec.batch_size == "auto" else int(spec.batch_size)
    if hasattr(lm, "concurrency"):  # a server batches by itself: send --concurrency requests at once
        bs = getattr(lm, "max_concurrency", lm.concurrency)  # the most it may grow to: threads wait for a slot
    if spec.reproducible:
        # one sequence at a time, as `generate(prompt)` alone: batched greedy text can differ from it (padding,
        # other kernels for more rows; llama.cpp #7052, vLLM #23138), one at a time cannot
        bs = 1
    t0 = time.perf_counter()
    new_tokens, failures = 0, []
    retried0 = getattr(lm, "retried", 0)
    bar = progress_bar(len(records), len(records) - len(todo), f"{spec.task} {Path(spec.data).name}")
    with open(pred_file, "a", encoding="utf-8") as f:
        controller = getattr(lm, "controller", None)  # a server's: how many requests it lets in flight

        def write(row: dict) -> None:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            if controller is not None:
                bar.set_postfix_str(f"in flight {controller.in_flight}/{controller.limit}, "
                                    f"429s {controller.rate_limited}", refresh=False)
            bar.update(1)
            if progress_cb:
                progress_cb(bar.n, len(records))

        loop = Loop(task, lm, spec, bs, write, stop_event, window_cb, token_cb, len(todo))
        loop.run(todo)
        template = loop.template(records)
        new_tokens, failures = loop.tokens, loop.failures
    bar.close()
    if len(failures) > failure_limit(len(todo)):
        n = len(read_done(pred_file))
        hint = ""
        if any("interrupt_requests" in msg for _, msg in failures):
            hint = " (llama-cpp-python's server: start it with --interrupt_requests false)"
        raise RunError(f"{len(failures)} examples failed, so the run stopped: {failures[0][1]}{hint}. "
                       f"The {n} finished are kept in {pred_file}; the same command retries the rest")
    if stop_event is not None and stop_event.is_set():
        n = len(read_done(pred_file))
        raise RunStopped(f"stopped after {n} of {len(records)} examples; they are kept in {pred_file}, "
                         "and the same command resumes the run")
    seconds = time.perf_counter() - t0
    rows = {d["id"]: d for d in read_done(pred_file)}
    ordered = [rows[r["id"]] for r in records if r["id"] in rows]
    try:
        results = _score(spec, lm, ordered, records)
    except Exception as e:  # noqa: BLE001 - the predictions stay; the report says what failed
        results = {"metrics": {}, "signatures": {}, "ci95": {},
                   "scoring_error": error_line(e)}
    # what did not become a scored prediction, kept apart from what the model itself returned empty
    results["examples"] = {
        "scored": len(ordered), "failed": len(failures), "retried": getattr(lm, "retried", 0) - retried0,
        "empty_by_model": sum(1 for d in ordered if "prediction" in d and not str(d["prediction"]).strip()),
        "failed_ids": [i for i, _ in failures][:20]}
    if spec.max_tokens and task.kind == "perplexity":
        results.setdefault("notes", []).append(
            f"each text was cut to its first {spec.max_tokens:,} tokens (this app's limit); the whole text's "
            "perplexity differs")
    if failures:
        results.setdefault("notes", []).append(
            f"{len(failures)} examples failed and are not scored ({failures[0][1]}); the same command retries them")
    results.update({
        "task": spec.task, "data": spec.data, "n_examples": len(ordered),
        "model": lm.info(), "prompt_template": template,
        "config": _config_of(spec, task, bs),
        "main_metric": task.main_metric, "higher_is_better": task.higher_is_better,
        "seed": spec.seed, "versions": _versions(),
        "batching": _batching(lm, bs, spec),
        "timing": {"seconds": round(seconds, 2), "examples_this_run": len(todo),
                   "examples_per_s": round(len(todo) / seconds, 3) if seconds > 0 and todo else None,
                   "tokens_per_s": round(new_tokens / seconds, 1) if seconds > 0 and new_tokens else None},
    })
    write_file(out / "results.json", json.dumps(results, indent=1, ensure_ascii=False))
    from .report import write_reports

    write_reports(out, results, ordered)
    if results.get("scoring_error"):
        raise RunError(f"scoring failed ({results['scoring_error']}); the predictions are kept in {pred_file} and "
                       f"{out / 'report.md'} says so; the same command scores them again without generating")
    return results


def _config_of(spec: RunSpec, task, bs: int) -> dict:
    """What the run's numbers were made with: the decoding settings (generation), the windows (perplexity), or
    how requests were scored."""
    if task.kind == "generate":
        return spec.config.to_dict()
    if task.kind == "perplexity":
        return {"max_length": spec.max_length, "stride": spec.stride, "batch_size": bs,
                **({"max_tokens": spec.max_tokens} if spec.max_tokens else {})}
    return {"scoring": task.scoring or task.kind}


def _score(spec: RunSpec, lm, rows: list[dict], records: list[dict]) -> dict:
    if not rows:
        return {"metrics": {}, "signatures": {}, "ci95": {}}
    return get_task(spec.task).score_run(rows)


def _batching(lm, bs: int, spec: "RunSpec") -> dict:
    """What the run's sequences shared: the engine's batching and how many examples it was handed at once."""
    b = dict(lm.batching()) if hasattr(lm, "batching") else {"engine": lm.info().get("backend") or "unknown"}
    b["examples_at_once"] = bs
    b["reproducible"] = bool(spec.reproducible)
    if spec.reproducible:
        b["note"] = "one sequence at a time (--reproducible): each example as it is alone"
    return b
