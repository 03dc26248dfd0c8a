"""Do the lean forward's kernels keep the model's quality? Perplexity and greedy agreement vs float32.

    python bench/quality.py [--tokens 20000] [--greedy 20] [--kernels float32,float16,...] [--json]

1. Perplexity on the first ``--tokens`` tokens of WikiText-2 (raw, test), BOS-prefixed, in
   non-overlapping 1024-token windows, through (a) the transformers forward in float32 (what eval
   reports) and (b) llmdemo's lean forward with each kernel (llmdemo/backends/hf/lean/fast.py KERNELS; ``--decode
   auto`` chooses among them by speed, llmdemo/backends/hf/lean/tuning.py). Target: within 0.5% of (a).
2. Greedy outputs (48 new tokens) for ``--greedy`` prompts (FLORES-200 en-fr sentences through the
   app's translation prompt, and chat questions), each decoded with the transformers forward in
   float32 and with each kernel: how many match exactly. Target: at least 19 of 20.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdemo import prompts  # noqa: E402
from llmdemo.config import GenerationConfig  # noqa: E402
from llmdemo.backends.hf.lean.fast import KERNELS, FastLlama, kernel_unavailable  # noqa: E402
from llmdemo.load import load  # noqa: E402

DEFAULT_BENCH = os.environ.get("LLMDEMO_BENCHMARKS", str(Path(__file__).resolve().parents[1] / "benchmarks"))
QUESTIONS = ["What is the capital of France?", "Give me three tips for sleeping better.",
             "Explain photosynthesis in one sentence.", "Write a haiku about autumn.",
             "What is 12 times 7?", "Name a famous painting by Leonardo da Vinci.",
             "How do I boil an egg?", "Why is the sky blue?", "Suggest a name for a pet turtle.",
             "What does a compiler do?"]


@torch.no_grad()
def lean_logprobs(fast: FastLlama, windows: list[tuple[list[int], int]]) -> list[float]:
    out: list[float] = []
    for ids, n in windows:
        x = torch.tensor([ids])
        logits = fast.forward(x, torch.arange(len(ids))[None], fast.new_cache(1, len(ids)), 0, last_only=False)[0]
        lp = torch.log_softmax(logits[len(ids) - n - 1: len(ids) - 1], dim=-1)
        out += lp.gather(1, x[0, len(ids) - n:, None]).squeeze(1).tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmarks", default=DEFAULT_BENCH)
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--greedy", type=int, default=20)
    ap.add_argument("--kernels", default=",".join(k for k in KERNELS if kernel_unavailable(k) is None))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bench = Path(a.benchmarks)
    kernels = [k for k in a.kernels.split(",") if k]
    lm = load(decode="transformers")
    text = (bench / "wikitext2_raw_test.txt").read_text(encoding="utf-8")
    ids = lm.tokenizer(text[: a.tokens * 8], add_special_tokens=False)["input_ids"][: a.tokens]
    full = [lm.prefix_token()] + ids
    windows = [(full[b:e], n) for b, e, n in lm.rolling_windows(len(full), a.max_length, a.max_length)]
    res: dict = {"tokens": len(ids), "max_length": a.max_length, "perplexity": {}, "greedy": {}}
    t = time.perf_counter()
    lps = [lp for w in lm._score_windows(windows, 1) for lp in w]
    res["perplexity"]["transformers_float32"] = math.exp(-math.fsum(lps) / len(lps))
    print(f"  transformers float32: {res['perplexity']['transformers_float32']:.4f} ({time.perf_counter() - t:.0f} s)",
          file=sys.stderr, flush=True)
    for mode in kernels:
        t = time.perf_counter()
        lps = lean_logprobs(FastLlama(lm.model, mode), windows)
        res["perplexity"][f"lean_{mode}"] = math.exp(-math.fsum(lps) / len(lps))
        print(f"  lean {mode}: {res['perplexity'][f'lean_{mode}']:.4f} ({time.perf_counter() - t:.0f} s)",
              file=sys.stderr, flush=True)
    ref = res["perplexity"]["transformers_float32"]
    res["perplexity_change_pct"] = {k: round(100 * (v / ref - 1), 3) for k, v in res["perplexity"].items()}

    rows = [json.loads(line) for line in open(bench / "translation_flores200_devtest_en-fr.jsonl", encoding="utf-8")]
    n_tr = a.greedy - a.greedy // 2
    prompts = [prompts.translation_prompt(lm, r["source"], "en", "fr", 48).input for r in rows[:n_tr]]
    prompts += [[{"role": "user", "content": q}] for q in QUESTIONS[: a.greedy - n_tr]]
    cfg = GenerationConfig(temperature=0, max_new_tokens=48, stop=())
    outs = {}
    for mode in ["transformers", *kernels]:
        lm.set_decode(mode)
        outs[mode] = [lm.generate(p, cfg) for p in prompts]
    for mode in kernels:
        res["greedy"][f"lean_{mode}"] = sum(x == y for x, y in zip(outs[mode], outs["transformers"]))
    res["greedy"]["n"] = len(prompts)
    if a.json:
        print(json.dumps(res))
        return
    print(f"WikiText-2 test, first {res['tokens']} tokens, windows of {a.max_length} (no overlap):")
    for k, v in res["perplexity"].items():
        print(f"  {k:26} perplexity {v:8.4f}  ({res['perplexity_change_pct'][k]:+.3f}% vs transformers float32)")
    print(f"greedy outputs equal to the transformers float32 ones ({len(prompts)} prompts, 48 new tokens):")
    for mode in kernels:
        print(f"  lean {mode}: {res['greedy'][f'lean_{mode}']}/{len(prompts)}")


if __name__ == "__main__":
    main()
