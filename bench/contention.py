"""One stream's speed beside a CPU-bound process, with threads re-chosen while serving and without.

    python bench/contention.py [--tokens 128] [--runs 3] [--json]

The bundled GGUF through ``LM.stream`` (the app's path), greedy, tokens/s after the first token,
medians of ``--runs``: quiet, then beside a process that spins one core (``while True: pass``), then
quiet again (``after``: the tuner must come back to the faster count). Each with the thread tuner on
(the default: ``ThreadTuner`` in llmdemo/backends/llamacpp/runner.py) and off (the count timed at load, kept).
Also 8 concurrent streams, quiet, tuner on and off (what the trials cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from bench.engine import PROMPT, _cpu
    from llmdemo.config import GenerationConfig
    from llmdemo.load import load

    lm = load()
    runner, tuner = lm.runner, lm.runner.tuner
    cfg = GenerationConfig(temperature=0, max_new_tokens=a.tokens, stop=())
    start_threads = runner.threads

    def one() -> float:
        first, n = None, 0
        for _ in lm.stream(PROMPT, cfg):
            n += 1
            if first is None:
                first = time.perf_counter()
        return (n - 1) / (time.perf_counter() - first)

    def streams(k: int) -> float:
        counts = [0] * k

        def go(i):
            for _ in lm.stream(PROMPT, cfg.replace(temperature=0.8, seed=i)):
                counts[i] += 1
        t = time.perf_counter()
        th = [threading.Thread(target=go, args=(i,)) for i in range(k)]
        for x in th:
            x.start()
        for x in th:
            x.join()
        return sum(counts) / (time.perf_counter() - t)

    def med(f, *args):
        return round(statistics.median(f(*args) for _ in range(a.runs)), 1)

    out = {"cpu": _cpu(), "threads_at_load": start_threads, "tokens": a.tokens}
    for mode in ("on", "off"):
        def set_tuner(tu=tuner if mode == "on" else None):
            runner.tuner = tu
            runner._use_threads(start_threads)
            if tu is not None:
                tu.current = start_threads
        lm.scheduler.call(set_tuner)
        one()  # warm-up
        quiet = med(one)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            beside = med(one)
            threads_busy = runner.threads
        finally:
            busy.kill()
            busy.wait()
        time.sleep(1.0)
        one()  # a stream for the tuner to notice the core is free again
        after = med(one)
        eight = med(streams, 8)
        out[f"tuner_{mode}"] = {"quiet_tok_s": quiet, "beside_busy_tok_s": beside, "ratio": round(beside / quiet, 2),
                                "threads_beside_busy": threads_busy, "after_tok_s": after,
                                "threads_after": runner.threads, "eight_streams_tok_s": eight}
    out["tuner"] = tuner.summary() if tuner else None
    lm.close()
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['cpu']}; threads timed at load: {start_threads}; one greedy {a.tokens}-token stream, tok/s")
    for mode in ("on", "off"):
        r = out[f"tuner_{mode}"]
        print(f"tuner {mode:>3}: quiet {r['quiet_tok_s']}, beside a busy process {r['beside_busy_tok_s']} "
              f"({r['ratio']}x, {r['threads_beside_busy']} thread(s)), quiet again {r['after_tok_s']} "
              f"({r['threads_after']} thread(s)); 8 streams quiet {r['eight_streams_tok_s']}")
    print(f"tuner: {out['tuner']}")


if __name__ == "__main__":
    main()
