"""A visitor's 1-token request while a hostile client loads the engine, next to a same-minute baseline.

    python bench/attacks.py [--attacks long_prompts,reservations,perplexity] [--runs 3]

On the bundled model through ``LM.stream`` (the app's path, without HTTP): the victim asks for one new
token of a short chat prompt; its time to the last token is measured alone (baseline), then while:

- long_prompts: two ~3,100-token prompts (14,000 characters each, 1 new token) were sent 2 s before
  (the issue measured 20,000 characters on a larger context; the bundled model reads 4,096 tokens);
- reservations: 16 greedy 1,024-token generations stream at once (one client's 16 ordinary requests);
- perplexity: an evaluation's perplexity run (batch priority, the eval's 1,024-token windows, stride 512,
  batch 8) on the first 60,000 characters of the shipped WikiText-2 runs meanwhile;
- rows (``--attacks rows,rows_fifo``): one client holds every row of the scheduler and queues as many again,
  its generations ending one by one; ``rows`` with the hog and the victim as two clients (scheduler.OWNER,
  as the app sets them), ``rows_fifo`` with neither owned (arrival order: the engine before owners).

Attacks through the served app (HTTP): ``bench/attacks_http.py``.

Each figure is the median of ``--runs`` victims; the baseline is re-measured right before each attack.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VICTIM = [{"role": "user", "content": "Say hi."}]


def victim(lm) -> float:
    from llmdemo.config import GenerationConfig

    t0 = time.perf_counter()
    lm.stream(VICTIM, GenerationConfig(temperature=0, max_new_tokens=1, stop=())).text()
    return time.perf_counter() - t0


def baseline(lm, runs: int) -> float:
    return statistics.median(victim(lm) for _ in range(runs))


def attack_long_prompts(lm, runs: int) -> list[float]:
    from llmdemo.config import GenerationConfig

    words = ("the quick brown fox jumps over the lazy dog and " * 400)[:14_000]  # ~3,100 tokens: fits 4,096
    out = []
    for k in range(runs):
        threads = [threading.Thread(target=lambda i=i: lm.stream(f"{k} {i} {words}", GenerationConfig(
            temperature=0, max_new_tokens=1, stop=())).text()) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(2)
        out.append(victim(lm))
        for t in threads:
            t.join()
    return out


def attack_reservations(lm, runs: int) -> list[float]:
    from llmdemo.config import GenerationConfig

    stop = threading.Event()
    streams = []

    def hog(i):
        s = lm.stream([{"role": "user", "content": f"Write a very long story number {i}."}],
                      GenerationConfig(temperature=0, max_new_tokens=1024, stop=()), stop_event=stop)
        streams.append(s)
        for _ in s:
            if stop.is_set():
                break

    threads = [threading.Thread(target=hog, args=(i,), daemon=True) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(3)  # the hogs are admitted and decoding
    out = [victim(lm) for _ in range(runs)]
    stop.set()
    for t in threads:
        t.join(60)
    return out


def attack_rows(lm, runs: int, owners: bool = True) -> list[float]:
    """One client holds every row and queues as many again, its generations ending one by one (budgets
    64, 96, 128, ... tokens); the victim asks 3 s later. With ``owners`` the hog and the victim are two
    clients (scheduler.OWNER, as the app sets them); without, both are nobody's: arrival order, as before."""
    from llmdemo.config import GenerationConfig
    from llmdemo.engine.scheduler import OWNER

    out = []
    for _ in range(runs):
        stop = threading.Event()
        n = 2 * lm.scheduler.max_running

        def hog(i):
            if owners:
                OWNER.set("hog")  # this thread's context only
            s = lm.stream([{"role": "user", "content": f"Write a very long story number {i}."}],
                          GenerationConfig(temperature=0, max_new_tokens=64 + 32 * i, stop=()), stop_event=stop)
            for _ in s:
                if stop.is_set():
                    break

        threads = [threading.Thread(target=hog, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(3)  # every row taken, as many waiting
        token = OWNER.set("visitor" if owners else None)
        try:
            out.append(victim(lm))
        finally:
            OWNER.reset(token)
        stop.set()
        for t in threads:
            t.join(120)
    return out


def attack_rows_before(lm, runs: int) -> list[float]:
    return attack_rows(lm, runs, owners=False)


def attack_perplexity(lm, runs: int) -> list[float]:
    text = (Path(__file__).resolve().parent.parent / "benchmarks" / "wikitext2_raw_test.txt").read_text()[:60_000]
    done = threading.Event()

    def score():
        try:
            lm.token_logprobs(text, 1024, 512, batch_size=8, priority="batch")
        finally:
            done.set()

    t = threading.Thread(target=score, daemon=True)
    t.start()
    time.sleep(5)  # the scorer is loaded and scoring
    out = []
    for _ in range(runs):
        if done.is_set():
            print("note: the perplexity run ended before every victim ran")
            break
        out.append(victim(lm))
        time.sleep(1)
    t.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attacks", default="long_prompts,reservations,perplexity")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    from llmdemo.load import load

    lm = load()
    victim(lm)  # warm-up
    print(f"model {lm.name}; engine {getattr(lm, 'decode_mode', '?')}; context {lm.context_length}")
    print(f"{'attack':<14} {'baseline s':>10} {'victim s (median)':>18} {'victims':>24}")
    for name in a.attacks.split(","):
        base = baseline(lm, a.runs)
        times = {"long_prompts": attack_long_prompts, "reservations": attack_reservations,
                 "perplexity": attack_perplexity, "rows": attack_rows, "rows_fifo": attack_rows_before}[name](lm, a.runs)
        print(f"{name:<14} {base:>10.2f} {statistics.median(times):>18.2f} {', '.join(f'{t:.2f}' for t in times):>24}")


if __name__ == "__main__":
    main()
