"""How often batched greedy output equals unbatched greedy output on the real model.

    python bench/batch_agreement.py --n 100 --batch-size 8 [--decode auto] [--json]

Prompts: FLORES-200 en-fr devtest sentences through the app's translation prompt.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmdemo import prompts  # noqa: E402
from llmdemo.config import DECODE_MODES, GenerationConfig  # noqa: E402
from llmdemo.load import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("LLMDEMO_BENCHMARKS", str(Path(__file__).resolve().parents[1]
                    / "benchmarks")) + "/translation_flores200_devtest_en-fr.jsonl")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--model", default=None)
    ap.add_argument("--decode", default="auto", choices=DECODE_MODES)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    lm = load(a.model, decode=a.decode)
    rows = [json.loads(l) for l in open(a.data, encoding="utf-8")][: a.n]
    prompts = [prompts.translation_prompt(lm, r["source"], r["src_lang"], r["tgt_lang"], a.max_new_tokens).input
               for r in rows]
    cfg = GenerationConfig(temperature=0, max_new_tokens=a.max_new_tokens)
    t0 = time.perf_counter()
    single = [lm.generate(p, cfg) for p in prompts]
    t1 = time.perf_counter()
    batched = lm.generate_batch(prompts, cfg, batch_size=a.batch_size)
    t2 = time.perf_counter()
    agree = sum(s == b for s, b in zip(single, batched))
    prefix = sum(s[:20] == b[:20] for s, b in zip(single, batched))
    res = {"model": lm.name, "decode": lm.decode_mode, "n": len(prompts), "batch_size": a.batch_size, "max_new_tokens": a.max_new_tokens,
           "exact_agreement": agree / len(prompts), "first_20_chars_agreement": prefix / len(prompts),
           "unbatched_s": round(t1 - t0, 1), "batched_s": round(t2 - t1, 1)}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{agree}/{len(prompts)} batched greedy outputs equal the unbatched ones "
              f"({100 * agree / len(prompts):.0f}%); first 20 characters equal in {prefix}/{len(prompts)}; "
              f"unbatched {t1 - t0:.0f} s, batched (bs={a.batch_size}) {t2 - t1:.0f} s")


if __name__ == "__main__":
    main()
