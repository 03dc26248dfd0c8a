"""A run's output folder: what a run is (:class:`RunSpec`), one writer at a time (``run.lock``), what must
match for a rerun to resume (``run.json``), what ``--overwrite`` may delete, and the finished examples
read back from ``predictions.jsonl``. The runner (eval/runner.py) does the work inside :func:`claim`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llmdemo.config import GenerationConfig
from llmdemo.errors import DetailError

from .tasks import get_task


class RunError(DetailError, ValueError):
    """The run cannot start (settings clash with an earlier run in the folder, ...)."""

    kind = "eval.run"


RUN_FILES = {"run.json", "predictions.jsonl", "results.json", "report.md", "report.html", "compare.md", "diff.md",
             "run.lock"}


def is_run_file(name: str) -> bool:
    return name in RUN_FILES or re.fullmatch(r"plot-\d+\.png", name) is not None


def check_output(out: Path, overwrite: bool = False) -> None:
    """Before any work: ``out`` can hold a run, and ``--overwrite`` would delete a run folder and nothing else."""
    try:
        out.resolve(strict=False)
    except (RuntimeError, OSError) as e:  # a symbolic-link loop
        raise RunError(f"{out}: cannot use this path for --output ({e})") from None
    if out.is_symlink() and not out.exists():
        raise RunError(f"{out}: a broken or looping symbolic link; choose another --output")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file, not a folder; choose a folder for --output")
    if out.is_dir():  # a run file that is a link would be written through, to wherever it points
        linked = sorted(p.name for p in out.iterdir() if is_run_file(p.name) and p.is_symlink())
        if linked:
            raise RunError(f"{out}: {', '.join(linked[:3])} is a symbolic link; a run writes only its own files")
    if overwrite and out.is_dir():
        others = sorted(p.name for p in out.iterdir() if not is_run_file(p.name))
        if others:
            raise RunError(f"--overwrite replaces run folders only, and {out} holds other files "
                           f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); choose another --output")


def write_file(path: Path, text: str) -> None:
    """Write a run's file whole or not at all (a temporary file beside it, then renamed over it): a reader
    never sees half a results.json, and a link in its place is replaced, not written through."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def lock(out: Path):
    """One run per folder: run.lock holds the writer's pid; a lock left by a dead process is taken over."""
    path = out / "run.lock"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
                age = time.time() - path.stat().st_mtime
            except (OSError, ValueError):
                pid, age = 0, 0.0
            # held: by a live process (this one too: another thread), or just created and its pid not yet written
            if (pid and _pid_alive(pid)) or (not pid and age < 5):
                raise RunError(f"another run (pid {pid or '?'}) is writing to {out}; wait for it or choose "
                               "another --output") from None
            path.unlink(missing_ok=True)  # its process is gone (killed): the run can resume
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        break
    else:
        raise RunError(f"could not take the lock {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@dataclass
class RunSpec:
    task: str
    data: str | None
    output: str
    model: str | None = None
    config: GenerationConfig | None = None
    limit: int | None = None
    batch_size: int | str = 8
    seed: int = 0
    max_length: int = 1024
    stride: int = 512
    length: str = "short"
    overwrite: bool = False
    max_tokens: int | None = None  # perplexity: each text cut to its first max_tokens tokens (a hosted app's cap)
    reproducible: bool = False  # one sequence (one request, one scored pair) at a time: equal to one-at-a-time

    def settings(self, lm) -> dict:
        """What must match for a rerun to resume. Batch size and limit are left out: they do not change
        any example's result, so a run can be resumed with a larger --limit."""
        data = self.data
        sha = None
        if not data.startswith("hf:") and Path(data).is_file():
            sha = hashlib.sha256(Path(data).read_bytes()).hexdigest()
        d = {"task": self.task, "data": str(Path(data).name) if sha else data, "data_sha256": sha,
             "model": lm.name, "model_file": lm.info().get("file_sha256") or lm.info().get("revision"),
             "seed": self.seed}
        info = lm.info()
        if info.get("backend") not in (None, "transformers"):  # which engine answered (never the API key)
            d.update(backend=info["backend"], base_url=info.get("base_url"), served_model=info.get("served_model"))
        if self.reproducible:  # only when set (runs made without it resume as before); batched text may differ
            d["reproducible"] = True
        task = get_task(self.task)
        kind = task.kind
        if task.source_sha256:  # a task file: the same declaration, or no resume
            d["task_file_sha256"] = task.source_sha256
        weights = (info.get("weights") or {}).get("type")  # llama.cpp: the shipped type or its Q8_0 re-encoding
        if kind == "generate":  # generation goes through the decode forward; scoring does not
            d["decode"] = getattr(lm, "decode_mode", None)
            if weights:  # a run resumes on the same weight type only (its outputs would mix two models)
                d["weights"] = weights
            prefill = info.get("prefill")
            if prefill and prefill != d["decode"]:  # prompts read by another kernel (tuning.py); older runs lack it
                d["prefill"] = prefill
            d.update(config=self.config.to_dict(), length=self.length if self.task == "summarization" else None)
        elif kind == "perplexity":
            d.update(max_length=self.max_length, stride=self.stride)
            if weights and "llama.cpp" in str((info.get("engine") or {}).get("scoring")):  # scored by those weights
                d["weights"] = weights
            if self.max_tokens:  # only when set: runs made without it resume as before
                d["max_tokens"] = self.max_tokens
        return d


@contextmanager
def claim(out: Path, settings: dict, overwrite: bool = False):
    """Hold ``out`` for one run with ``settings``: checked as a place for a run, locked, then either the
    same settings as the run already there (it resumes), or emptied of that run (``overwrite``), or
    refused; ``run.json`` is written before the work starts."""
    check_output(out, overwrite)
    run_file = out / "run.json"
    out.mkdir(parents=True, exist_ok=True)
    with lock(out):  # first the lock: a live run's folder is neither compared nor overwritten under it
        if run_file.exists() and not overwrite:
            old = json.loads(run_file.read_text())
            if old != settings:
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise RunError(f"{out} holds a run with other settings ({', '.join(diff)} differ); "
                               "use another --output or pass --overwrite")
        elif overwrite:
            for p in out.iterdir():  # check_output made sure these are a run's own files
                if p.name != "run.lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        write_file(run_file, json.dumps(settings, indent=1))
        yield


def read_done(path: Path) -> list[dict]:
    """Finished examples; a line cut short by a kill is dropped (and redone)."""
    done = []
    if not path.exists():
        return done
    good = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):  # cut before its newline (even if the JSON is whole): redone
                break
            try:
                done.append(json.loads(raw))
                good += len(raw)
            except json.JSONDecodeError:
                break
    with open(path, "r+b") as f:  # drop a partial last line before appending to the file
        f.truncate(good)
    return done
