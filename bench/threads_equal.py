"""Whether the default engine's logits depend on the thread count or on the other rows of a step, and what
keeping them equal costs.

    python bench/threads_equal.py [--prompt-tokens 600] [--steps 24] [--runs 5]

The bundled model on llama.cpp (the app's runner, its scheduler thread). One long prompt (WikiText-2, so the
key/value cells pass 512) read alone, then ``--steps`` greedy decode steps, logits kept:

- threads: the same at 1 and at 2 threads (the thread tuner switches between them while serving);
- beside others: the row alone against the same row stepped beside 3 other sequences (as in a batch);
- cost: one stream's decode steps per second, with and without the padding token (medians of ``--runs``).

Each for a sequence marked exact (evaluation work: a step it would run alone is padded with a throwaway
token) and for one that is not (a visitor's). Prints the largest absolute logit difference and the steps at which the greedy token differs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "benchmarks"


def _text() -> str:
    for p in (SHARED / "wikitext2_raw_test.txt", ROOT / "eval" / "data" / "wikitext2_raw_test.txt"):
        if p.is_file():
            return p.read_text(encoding="utf-8")[:20000]
    return "The committee met on Tuesday to discuss the new budget for the city's public libraries. " * 80


def _run(lm, ids: list[int], steps: int, threads: int, exact: bool, others: int = 0) -> np.ndarray:
    """Logits of the first sequence: after its prompt, then after each greedy step (on the scheduler's thread)."""
    from llmdemo.engine.runner import Sequence

    runner = lm.runner

    def work():
        kept = runner.tuner
        runner.tuner = None
        runner.clear()
        runner._use_threads(threads)
        try:
            seqs = [Sequence(prompt=list(ids), budget=steps + 1, exact=exact)] + \
                   [Sequence(prompt=list(ids[k * 7:k * 7 + 40]), budget=steps + 1, exact=exact)
                    for k in range(1, others + 1)]
            for s in seqs:
                runner.start(s)
            first = {}
            while not all(s.prefilled for s in seqs):
                todo = [(s, min(runner.n_batch, len(s.prompt) - s.filled)) for s in seqs if not s.prefilled][:1]
                pre, _ = runner.step(todo, [])
                if pre[0] is not None:
                    first[id(todo[0][0])] = pre[0]
            out = [first[id(seqs[0])]]
            for s in seqs:
                s.last = int(np.argmax(first[id(s)]))
            for _ in range(steps):
                _, dec = runner.step([], seqs)
                out.append(dec[0])
                for s, row in zip(seqs, dec):
                    s.last = int(np.argmax(row))
            for s in seqs:
                runner.finish(s, False)
            return np.stack(out)
        finally:
            runner.tuner = kept

    return lm.scheduler.call(work)


def _speed(lm, ids: list[int], steps: int, runs: int, exact: bool) -> float:
    """Decode steps per second of one sequence alone (prompt excluded)."""
    from llmdemo.engine.runner import Sequence

    runner = lm.runner

    def work():
        runner.clear()
        s = Sequence(prompt=list(ids), budget=steps + 1, exact=exact)
        runner.start(s)
        while not s.prefilled:
            pre, _ = runner.step([(s, min(runner.n_batch, len(s.prompt) - s.filled))], [])
        s.last = int(np.argmax(pre[0]))
        t = time.perf_counter()
        for _ in range(steps):
            _, dec = runner.step([], [s])
            s.last = int(np.argmax(dec[0]))
        dt = time.perf_counter() - t
        runner.finish(s, False)
        return steps / dt

    return statistics.median(lm.scheduler.call(work) for _ in range(runs))


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a - b).max(axis=1)
    return {"max_abs": round(float(d.max()), 4),
            "greedy_differs_at": [int(i) for i in np.nonzero(a.argmax(1) != b.argmax(1))[0]][:5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from llmdemo.load import load

    lm = load(None)
    ids = lm._text_ids(_text())[: a.prompt_tokens]
    res: dict = {"model": lm.name, "weights": (lm.info().get("weights") or {}).get("type"), "prompt_tokens": len(ids)}
    for exact in (True, False):
        one, two = _run(lm, ids, a.steps, 1, exact), _run(lm, ids, a.steps, 2, exact)
        beside = _run(lm, ids, a.steps, 2, exact, others=3)
        res["exact (evaluation work)" if exact else "not exact (a visitor's request)"] = {
            "1 vs 2 threads": _diff(one, two), "alone vs beside 3 others (2 threads)": _diff(two, beside),
            "decode steps/s alone (2 threads)": round(_speed(lm, ids, 64, a.runs, exact), 1)}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
