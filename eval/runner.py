"""The one place a dataset, a task, the model and a metric meet.

A run writes into its output folder as it goes: ``run.json`` (the settings), then
``predictions.jsonl`` one flushed line per example, then ``results.json`` and the reports.
Rerunning with the same settings skips the examples already in ``predictions.jsonl``; the folder's
rules (its lock, what must match to resume, what --overwrite may delete) are in eval/runfolder.py.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

from llmdemo import prompts
from llmdemo.config import TASK_DEFAULTS
from llmdemo.interface import loglikelihood_batch, require

from llmdemo.load import load

from . import metrics
from .datasets import DataError, load_records
from .runfolder import RunError, RunSpec, claim, read_done, write_file
from .tasks import TASKS as TASK_REGISTRY
from .tasks import example_row, get_task

TASKS = tuple(TASK_REGISTRY)  # the registered task names (eval/tasks.py)


class _Either:
    """Set when any of its events is: the visitor's Stop, or the run giving up on too many failures."""

    def __init__(self, *events):
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def failure_limit(n: int) -> int:
    """How many examples may fail before a run stops: a few, or a tenth of a large run."""
    return max(2, n // 10)


class RunStopped(RuntimeError):
    """The run was stopped (Stop, or its client left); what it finished is kept and a rerun resumes."""


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


def _progress(total: int, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="ex", file=sys.stderr, dynamic_ncols=True,
                disable=None)


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
    bar = _progress(len(records), len(records) - len(todo), f"{spec.task} {Path(spec.data).name}")
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

        if task.requests is not None:
            template = task.template
            new_tokens = _run_requests(task, lm, todo, bs, write, stop_event, spec)
        elif task.kind == "perplexity":
            template = "BOS + text (no special tokens); rolling windows"
            new_tokens = _run_perplexity(spec, lm, todo, bs, write, stop_event, window_cb)
        else:
            template, new_tokens, failures = _run_generation(spec, lm, records, todo, bs, write, stop_event, token_cb)
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
                   "scoring_error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}
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
        "config": spec.config.to_dict() if task.kind == "generate" else
        {"max_length": spec.max_length, "stride": spec.stride, "batch_size": bs,
         **({"max_tokens": spec.max_tokens} if spec.max_tokens else {})} if task.kind == "perplexity" else
        {"scoring": task.scoring or task.kind},
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


def _run_perplexity(spec: RunSpec, lm, todo: list[dict], bs: int, write, stop_event, window_cb=None) -> int:
    """Score each text in rolling windows and write its row; returns the number of tokens scored. Stop is
    seen between windows (a long text is one example); a stopped text is not written, and redone on resume."""
    new_tokens = 0
    # a long text is one example: show progress over its windows too
    wbar = _progress(0, 0, "windows") if len(todo) == 1 else None
    if wbar is not None:
        wbar.unit = "win"

    def on_windows(done: int, total: int) -> None:
        if stop_event is not None and stop_event.is_set():
            raise RunStopped("stopped")
        if window_cb is not None:  # the app's progress line: windows of the text being scored
            window_cb(done, total)
        if wbar is not None:
            wbar.total = total
            wbar.update(done - wbar.n)

    for r in todo:
        if stop_event is not None and stop_event.is_set():
            break
        text = lm.truncate_text(r["text"], spec.max_tokens)[0] if spec.max_tokens else r["text"]
        try:
            ids, lps = lm.token_logprobs(text, spec.max_length, spec.stride, batch_size=bs,
                                         progress=on_windows, priority="batch")
        except RunStopped:
            break
        lp = math.fsum(lps)
        new_tokens += len(ids)
        write({"id": r["id"], "n_tokens": len(lps), "n_words": metrics.count_words(text),
               "n_bytes": len(text.encode("utf-8")), "logprob": lp,
               "perplexity": math.exp(-lp / len(lps)) if lps else None})
    if wbar is not None:
        wbar.close()
    return new_tokens


def _run_generation(spec: RunSpec, lm, records: list[dict], todo: list[dict], bs: int, write,
                    stop_event=None, token_cb=None) -> tuple[str, int]:
    """Generate and write each example; returns the prompt template and the number of tokens generated."""
    built = []
    for r in todo:
        p = prompts.build_prompt(lm, spec.task, r, max_new_tokens=spec.config.max_new_tokens, length=spec.length)
        built.append(p)
    template = built[0].template if built else prompts.TEMPLATES.get((lm.style, spec.task), "")
    if not built:
        return template, 0, []
    cfg = built[0].config(spec.config).replace(max_new_tokens=spec.config.max_new_tokens)
    caps = [p.config(spec.config).max_new_tokens for p in built]  # per-prompt caps, as the app applies them
    task = get_task(spec.task)
    generated = [0]

    failures: list[tuple[str, str]] = []
    give_up = __import__("threading").Event()

    def failed(i: int, err: BaseException) -> None:
        # an example that failed (an error, a completion the server aborted) is never written as a prediction
        failures.append((todo[i]["id"], f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"))
        if len(failures) > failure_limit(len(todo)):
            give_up.set()

    def done(i: int, text: str) -> None:
        r, p = todo[i], built[i]
        generated[0] += lm.count_tokens(text) if text else 0
        row = example_row(task, r, p.input, prompts.postprocess(spec.task, text))
        row["finish_reason"] = getattr(text, "finish_reason", None)
        if spec.task == "dialogue":
            ll, n = lm.loglikelihood(p.input, r["reference"], priority="batch")
            row.update(ref_logprob=ll, ref_tokens=n)
        if p.notice:
            row["notice"] = p.notice
        write(row)

    # bs examples run at once; as each finishes it is written and the next one takes its row
    lm.generate_batch([p.input for p in built], cfg, batch_size=bs, on_done=done,
                      stop_event=_Either(stop_event, give_up), max_new_tokens=caps, priority="batch", on_error=failed,
                      on_progress=token_cb)
    return template, generated[0], failures


def _score(spec: RunSpec, lm, rows: list[dict], records: list[dict]) -> dict:
    if not rows:
        return {"metrics": {}, "signatures": {}, "ci95": {}}
    return get_task(spec.task).score_run(rows)


# how each request kind is answered, in batches: the runner's whole knowledge of what tasks ask
def _generate(lm, args: list[tuple], spec: "RunSpec", bs: int) -> list:
    """("generate", (prompt, max_new_tokens)) requests: greedy unless the run's config says otherwise."""
    cfg = spec.config
    return lm.generate_batch([a[0] for a in args], cfg, batch_size=bs,
                             max_new_tokens=[min(a[1], cfg.max_new_tokens) if len(a) > 1 else cfg.max_new_tokens
                                             for a in args], priority="batch")


def _batching(lm, bs: int, spec: "RunSpec") -> dict:
    """What the run's sequences shared: the engine's batching and how many examples it was handed at once."""
    b = dict(lm.batching()) if hasattr(lm, "batching") else {"engine": lm.info().get("backend") or "unknown"}
    b["examples_at_once"] = bs
    b["reproducible"] = bool(spec.reproducible)
    if spec.reproducible:
        b["note"] = "one sequence at a time (--reproducible): each example as it is alone"
    return b


def _loglikelihoods(lm, args: list[tuple], spec: "RunSpec", bs: int) -> list:
    if spec.reproducible:  # each pair alone, through the same encoding (lm-eval's _encode_pair) as a batch
        return [loglikelihood_batch(lm, [pair], priority="batch")[0] for pair in args]
    return loglikelihood_batch(lm, args, priority="batch")


ANSWERERS = {
    "loglikelihood": _loglikelihoods,
    "loglikelihood_rolling": lambda lm, args, spec, bs: [
        lm.loglikelihood_rolling(a[0], priority="batch", **({"batch_size": 1} if spec.reproducible else {}))
        for a in args],
    "generate": _generate,
}


def _run_requests(task, lm, todo: list[dict], bs: int, write, stop_event, spec: "RunSpec") -> int:
    """Ask the task for each record's requests, answer them grouped by kind (``bs`` records at a time), hand
    each record its answers back and write the row it makes; returns the number of tokens scored."""
    n_tokens = 0
    for start in range(0, len(todo), max(1, bs)):
        if stop_event is not None and stop_event.is_set():
            break
        chunk = todo[start:start + max(1, bs)]
        asked = [task.requests(r) for r in chunk]
        answers: list[list] = [[None] * len(a) for a in asked]
        by_kind: dict[str, list[tuple[int, int]]] = {}
        for i, reqs in enumerate(asked):
            for j, (kind, _) in enumerate(reqs):
                by_kind.setdefault(kind, []).append((i, j))
        for kind, where in by_kind.items():
            if kind not in ANSWERERS:
                raise RunError(f"task {task.name!r} asks for {kind!r} requests; the runner answers "
                               f"{', '.join(ANSWERERS)}")
            got = ANSWERERS[kind](lm, [asked[i][j][1] for i, j in where], spec, bs)
            for (i, j), a in zip(where, got):
                answers[i][j] = a
                n_tokens += (int(a[1]) if isinstance(a, tuple) and len(a) > 1 else
                             lm.count_tokens(a) if isinstance(a, str) and a else 0)
        for r, a in zip(chunk, answers):
            write(task.process(r, a))
    return n_tokens
