"""The llama.cpp micro-batch (``n_ubatch``): prompt speed against which batch-invariance equalities hold.

    python bench/ubatch.py [--sizes 32,64,128,256,512] [--runs 3] [--json]

For each size, a context of the engine's own runner (flash attention, 8 sequences, the bundled GGUF,
the thread count the engine chose) and:

- prompt tok/s: a 512-token prompt read in one call (median of ``--runs``), and a 300-token one;
- ``together``: 4 prompts (~60-120 tokens) read in one call against each read alone, last-token logits;
- ``split``: one prompt read whole against read as 40 tokens then the rest (a kept prefix, a chunk);
- ``decode``: 8 decode rows stepped together against each stepped alone.

Each equality prints the largest absolute difference in the logits (0 = bit-equal), which the
engine's tests need: a request's output must not depend on its neighbours (tests/test_engine_llamacpp.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEXT = ("The committee met on Tuesday to discuss the new budget for the city's public libraries, which had "
        "seen a sharp rise in visitors since the winter. Several members argued that the money should go to "
        "longer opening hours, while others wanted more books in languages other than English. ")
QUESTIONS = ["Name three colours and say why you like each of them.", "What is the capital of France, and what is it known for?",
             "Write two sentences about the sea at night, with the moon above it.",
             "Explain in simple words what a language model does when it writes an answer to a question."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,64,128,256,512")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from llmdemo.backends.llamacpp import runner as llamacpp
    from llmdemo.engine.runner import Sequence
    from llmdemo.load import load
    from bench.engine import _cpu

    lm = load()
    threads = lm.runner.threads
    long_ids = lm.encode(TEXT * 12)[:512]
    ids300 = long_ids[:300]
    chats = [lm.encode([{"role": "user", "content": q + " " + TEXT[: 60 * (i + 1)]}]) for i, q in enumerate(QUESTIONS)]
    out = {"cpu": _cpu(), "threads": threads, "sizes": {}}
    for u in map(int, a.sizes.split(",")):
        llamacpp.UBATCH = u
        r = llamacpp.LlamaCppRunner(lm, n_seq=8, n_ctx=4096, threads=threads)

        def read(prompts_with_splits):
            """Read each prompt (in the given pieces; pieces of different prompts at the same index share a
            call); the last-token logits of each, and the seconds taken."""
            seqs = [Sequence(prompt=list(p), budget=4) for p, _ in prompts_with_splits]
            for s in seqs:
                r.start(s)
            t = time.perf_counter()
            logits = [None] * len(seqs)
            for k in range(max(len(sp) for _, sp in prompts_with_splits)):
                calls = [(s, sp[k]) for s, (_, sp) in zip(seqs, prompts_with_splits) if k < len(sp)]
                res, _ = r.step(calls, [])
                for (s, _), lg in zip(calls, res):
                    if lg is not None:
                        logits[seqs.index(s)] = lg
            dt = time.perf_counter() - t
            return seqs, logits, dt

        def done(seqs):
            for s in seqs:
                r.finish(s, keep_prefix=False)

        speed = {}
        for name, ids in (("512", long_ids), ("300", ids300)):
            times = []
            for _ in range(a.runs + 1):
                seqs, _, dt = read([(ids, [len(ids)])])
                done(seqs)
                times.append(dt)
            speed[name] = round(len(ids) / statistics.median(times[1:]), 1)
        # together vs alone
        alone = []
        for c in chats:
            seqs, lg, _ = read([(c, [len(c)])])
            alone.append(lg[0])
            done(seqs)
        seqs, together, _ = read([(c, [len(c)]) for c in chats])
        done(seqs)
        d_together = max(float(np.abs(x - y).max()) for x, y in zip(alone, together))
        # whole vs split
        seqs, whole, _ = read([(ids300, [300])])
        done(seqs)
        seqs, split, _ = read([(ids300, [40, 260])])
        d_split = float(np.abs(whole[0] - split[0]).max())
        done(seqs)
        # decode: 8 rows together vs alone
        s1, l1, _ = read([(c, [len(c)]) for c in chats])  # 8 rows, read 4 per call (a call holds 512 tokens)
        s2, l2, _ = read([(c, [len(c)]) for c in chats])
        seqs, lg = s1 + s2, l1 + l2
        for s, x in zip(seqs, lg):
            s.last = int(np.argmax(x))
        toks = [s.last for s in seqs]
        dec_together = r.decode(seqs, toks)
        done(seqs)
        d_dec = 0.0
        for i, c in enumerate(chats + chats):
            (s,), (x,), _ = read([(c, [len(c)])])
            y = r.decode([s], [toks[i]])[0]
            d_dec = max(d_dec, float(np.abs(y - dec_together[i]).max()))
            done([s])
        out["sizes"][u] = {"prompt_tok_s_512": speed["512"], "prompt_tok_s_300": speed["300"],
                           "together_max_diff": d_together, "split_max_diff": d_split, "decode_max_diff": d_dec}
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['cpu']}; {threads} threads; bundled GGUF")
    print("n_ubatch | prompt tok/s (512 / 300 tokens) | together vs alone | split vs whole | 8 decode rows vs alone")
    for u, v in out["sizes"].items():
        print(f"{u:>8} | {v['prompt_tok_s_512']:>7} / {v['prompt_tok_s_300']:<7} | {v['together_max_diff']:.3g} | "
              f"{v['split_max_diff']:.3g} | {v['decode_max_diff']:.3g}")


if __name__ == "__main__":
    main()
