"""Decode-step cost against batch size, per weight type of the lean forward (default model).

    python bench/batch_scaling.py [--rows 1,2,4,8,16] [--modes float16,float32] [--steps 32]

Each of ``rows`` sequences holds a ~40-token chat prompt; the script times ``--steps`` decode
steps of all rows together through the scheduler's runner (median step time), and prints
tokens/s for the batch and per row. This is what ``max_running`` and the weight type trade.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1,2,4,8,16")
    ap.add_argument("--modes", default="float16,float32")
    ap.add_argument("--steps", type=int, default=32)
    a = ap.parse_args()
    import torch

    from llmdemo.load import load
    from llmdemo.engine.runner import Sequence

    lm = load()
    out = {"threads": torch.get_num_threads(), "by_mode": {}}
    for mode in a.modes.split(","):
        lm.set_decode(mode)
        res = {}
        for b in map(int, a.rows.split(",")):
            seqs = [Sequence(prompt=lm.encode([{"role": "user", "content": f"Tell me a long story number {i}."}]),
                            budget=a.steps + 8) for i in range(b)]

            def work():
                for s in seqs:
                    lm.runner.start(s)
                    while not s.prefilled:
                        logits = lm.runner.prefill(s)
                    s.last = int(logits.argmax())
                times = []
                toks = [s.last for s in seqs]
                for _ in range(a.steps):
                    t = time.perf_counter()
                    toks = lm.runner.decode(seqs, toks).argmax(-1).tolist()
                    times.append(time.perf_counter() - t)
                for s in seqs:
                    lm.runner.finish(s, keep_prefix=False)
                return statistics.median(times[2:])

            step = lm.call(work)
            res[b] = {"step_ms": round(step * 1000, 1), "tok_s": round(b / step, 1), "per_row_tok_s": round(1 / step, 1)}
            print(f"{mode} rows={b}: {res[b]}", file=sys.stderr, flush=True)
        out["by_mode"][mode] = res
    lm.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
