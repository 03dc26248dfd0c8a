"""How each request kind is answered: the one execution path of every task (eval/runner.py runs it).

A task declares each record's requests and makes its row from the answers (eval/taskdef.py); :class:`Loop`
answers the requests by kind and writes each row as its record completes.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from llmdemo import prompts
from llmdemo.interface import loglikelihood_batch

from .runfolder import RunError, RunSpec


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


def progress_bar(total: int, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="ex", file=sys.stderr, dynamic_ncols=True,
                disable=None)


def error_line(err: BaseException) -> str:
    """An error as a run records it (a failed example, a scoring error): its type and its message's first line."""
    msg = str(err).strip()
    return f"{type(err).__name__}: {msg.splitlines()[0] if msg else ''}"


class Loop:
    """The one execution path of every task (lm-evaluation-harness's evaluator): each record's requests, as the
    task declares them, answered by kind; a record's row is made by the task and written as soon as its last
    answer is in.

    ``generate`` requests of all records go to the engine at once (``bs`` rows, refilled as each ends; a failed
    example is counted, not written, and too many stop the run); a record's other requests are answered as
    soon as its generations are in (dialogue's reference reply, scored after its prompt). Tasks without
    generation are answered ``bs`` records at a time, by kind, in one batched call each; perplexity's texts
    one at a time, window by window, with progress and Stop between windows.
    """

    def __init__(self, task, lm, spec: RunSpec, bs: int, write, stop_event, window_cb, token_cb, n_todo: int):
        self.task, self.lm, self.spec, self.bs, self.write = task, lm, spec, bs, write
        self.window_cb, self.token_cb, self.n_todo = window_cb, token_cb, n_todo
        self.failures: list[tuple[str, str]] = []
        self.give_up = threading.Event()  # set when too many examples failed
        self.stop = _Either(stop_event, self.give_up)
        self.tokens = 0  # generated tokens (a task that generates), else tokens scored
        self.first: list | None = None  # the first record's requests (the report's prompt template)

    def requests(self, record: dict) -> list[tuple[str, Any]]:
        """The record's requests, checked and normalised: a generate request's args become a TaskPrompt."""
        out = []
        for kind, args in self.task.requests(record, self.lm, self.spec):
            if kind == "generate" and not isinstance(args, prompts.TaskPrompt):
                args = prompts.TaskPrompt(self.task.name, args[0], max_new_tokens=args[1] if len(args) > 1 else None)
            elif kind != "generate" and kind not in ANSWERERS:
                raise RunError(f"task {self.task.name!r} asks for {kind!r} requests; the runner answers "
                               f"generate, {', '.join(ANSWERERS)}")
            out.append((kind, args))
        if self.first is None:
            self.first = out
        return out

    def template(self, records: list[dict]) -> str:
        if self.first is None and records:  # nothing left to run (a rerun that only scores): ask the first
            self.requests(records[0])
        gen = [a for k, a in self.first or () if k == "generate"]
        return (gen[0].template if gen else "") or self.task.template

    def run(self, todo: list[dict]) -> None:
        asked = [self.requests(r) for r in todo]
        streamed = any(k == "generate" for reqs in asked for k, _ in reqs)
        step = len(todo) if streamed else max(1, self.bs)  # generation refills its rows over the whole run
        for s in range(0, len(todo), step):
            if self.stop.is_set():
                break
            self._chunk(todo[s:s + step], asked[s:s + step], streamed)

    def _chunk(self, records: list[dict], asked: list[list], streamed: bool) -> None:
        answers = [[None] * len(a) for a in asked]
        left = [len(a) for a in asked]
        failed_ids: set[int] = set()

        def answered(i: int, j: int, value) -> None:
            kind = asked[i][j][0]
            answers[i][j] = value
            if kind == "generate" or not streamed:
                self.tokens += _size(self.lm, kind, value)
            left[i] -= 1
            if left[i] == 0 and i not in failed_ids:
                self.write(self.task.process(records[i], answers[i], asked[i]))

        if not streamed:
            self._answer(asked, range(len(records)), answered)
            return
        gen = [(i, j) for i, reqs in enumerate(asked) for j, (k, _) in enumerate(reqs) if k == "generate"]
        gen_left = [sum(k == "generate" for k, _ in reqs) for reqs in asked]

        def done(g: int, text: str) -> None:
            i, j = gen[g]
            gen_left[i] -= 1
            if gen_left[i] == 0 and i not in failed_ids:  # its other requests, right away (a row per example)
                self._answer(asked, [i], answered)
            answered(i, j, text)

        def failed(g: int, err: BaseException) -> None:
            # an example that failed (an error, a completion the server aborted) is never written as a prediction
            i = gen[g][0]
            if i not in failed_ids:
                failed_ids.add(i)
                self.failures.append((records[i]["id"], error_line(err)))
            if len(self.failures) > failure_limit(self.n_todo):
                self.give_up.set()

        self._answer(asked, [i for i, n in enumerate(gen_left) if n == 0], answered)  # records that generate nothing
        if not gen:
            return
        ps = [asked[i][j][1] for i, j in gen]
        cfg = self.spec.config
        self.lm.generate_batch([p.input for p in ps], ps[0].config(cfg).replace(max_new_tokens=cfg.max_new_tokens),
                               batch_size=self.bs, on_done=done, stop_event=self.stop,
                               max_new_tokens=[p.config(cfg).max_new_tokens for p in ps],  # each prompt's cap
                               priority="batch", on_error=failed, on_progress=self.token_cb)

    def _answer(self, asked: list[list], which, answered) -> None:
        """The requests other than generation of the records ``which``, one batched call per kind."""
        by_kind: dict[str, list[tuple[int, int]]] = {}
        for i in which:
            for j, (kind, _) in enumerate(asked[i]):
                if kind != "generate":
                    by_kind.setdefault(kind, []).append((i, j))
        for kind, where in by_kind.items():
            ANSWERERS[kind](self, [asked[i][j][1] for i, j in where], lambda k, v: answered(*where[k], v))


def _size(lm, kind: str, answer) -> int:
    """Tokens in an answer: generated, or scored."""
    if kind == "generate":
        return lm.count_tokens(answer) if answer else 0
    if kind == "token_logprobs":
        return len(answer[0])
    return int(answer[1])


# how each request kind other than generation is answered: ANSWERERS[kind](loop, args, answered) calls
# answered(k, answer) for the k-th args, as each is in
def _loglikelihood(loop: Loop, args: list[tuple], answered) -> None:
    """(context, continuation) pairs, encoded as lm-evaluation-harness's _encode_pair, in one batched call."""
    if loop.spec.reproducible:  # each pair alone, through the same encoding as a batch
        for k, pair in enumerate(args):
            answered(k, loglikelihood_batch(loop.lm, [pair], priority="batch")[0])
        return
    for k, a in enumerate(loglikelihood_batch(loop.lm, args, priority="batch")):
        answered(k, a)


def _loglikelihood_after(loop: Loop, args: list[tuple], answered) -> None:
    """(context, continuation): the continuation's own tokens right after the context's (nothing moved between
    them): a reply scored after the prompt that asked for it."""
    for k, (context, continuation) in enumerate(args):
        answered(k, tuple(loop.lm.loglikelihood(context, continuation, priority="batch")))


def _loglikelihood_rolling(loop: Loop, args: list[tuple], answered) -> None:
    """(text,): the whole text's log-likelihood from the prefix token."""
    extra = {"batch_size": 1} if loop.spec.reproducible else {}
    for k, a in enumerate(args):
        answered(k, loop.lm.loglikelihood_rolling(a[0], priority="batch", **extra))


def _token_logprobs(loop: Loop, args: list[tuple], answered) -> None:
    """(text,): each token's log-probability in rolling windows of --max-length by --stride. A long text is one
    example: progress over its windows, and Stop between them (a stopped text is not written, redone on resume)."""
    spec, stop = loop.spec, loop.stop
    wbar = progress_bar(0, 0, "windows") if loop.n_todo == 1 else None
    if wbar is not None:
        wbar.unit = "win"

    def on_windows(done: int, total: int) -> None:
        if stop.is_set():
            raise RunStopped("stopped")
        if loop.window_cb is not None:  # the app's progress line: windows of the text being scored
            loop.window_cb(done, total)
        if wbar is not None:
            wbar.total = total
            wbar.update(done - wbar.n)

    try:
        for k, a in enumerate(args):
            if stop.is_set():
                break
            answered(k, loop.lm.token_logprobs(a[0], spec.max_length, spec.stride, batch_size=loop.bs,
                                               progress=on_windows, priority="batch"))
    except RunStopped:
        pass
    finally:
        if wbar is not None:
            wbar.close()


ANSWERERS = {
    "loglikelihood": _loglikelihood,
    "loglikelihood_after": _loglikelihood_after,
    "loglikelihood_rolling": _loglikelihood_rolling,
    "token_logprobs": _token_logprobs,
}
