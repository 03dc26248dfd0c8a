"""Evaluation throughput: batched translation and perplexity scoring on the real model.

    python bench/eval_throughput.py [--n 64] [--batch-sizes 1,4,8,16] [--runs 3] [--decode auto] [--json]

Translation: the first ``--n`` FLORES-200 en-fr devtest sentences through the app's translation
prompt and ``LM.generate_batch`` (greedy, the eval defaults), at each batch size; examples/s.
Perplexity: the first ``--ppl-tokens`` tokens of WikiText-2 (raw, test) scored by
``LM.token_logprobs`` with max length 1024, against a raw forward of the same model over
1024-token windows (``model(input_ids)``, batch 1, nothing else); tokens/s. The ratio compares
like with like with ``stride = max length`` (every token scored once, no overlap); the default
eval stride (512) scores half of each window and is shown too.

Medians of ``--runs`` runs after a warm-up (one batch / one window of the same work). Data: ``--benchmarks`` or $LLMDEMO_BENCHMARKS
(default: the shipped benchmarks/).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdemo import prompts  # noqa: E402
from llmdemo.config import DECODE_MODES, TASK_DEFAULTS  # noqa: E402
from llmdemo.load import load  # noqa: E402
from llmdemo.backends.hf.model import LM  # noqa: E402

DEFAULT_BENCH = os.environ.get("LLMDEMO_BENCHMARKS", str(Path(__file__).resolve().parents[1] / "benchmarks"))


def median_time(fn, runs: int, warmup=None) -> tuple[float, object]:
    out = (warmup or fn)()  # warm-up (a smaller piece of the same work when given)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def translation(lm: LM, bench: Path, n: int, batch_sizes: list[int], runs: int) -> dict:
    rows = [json.loads(line) for line in open(bench / "translation_flores200_devtest_en-fr.jsonl", encoding="utf-8")][:n]
    cfg0 = TASK_DEFAULTS["translation"].replace(seed=0)
    built = [prompts.translation_prompt(lm, r["source"], r["src_lang"], r["tgt_lang"], cfg0.max_new_tokens)
             for r in rows]
    cfg = built[0].config(cfg0).replace(max_new_tokens=cfg0.max_new_tokens)
    caps = [p.config(cfg0).max_new_tokens for p in built]
    inputs = [p.input for p in built]
    res: dict = {"n": len(inputs), "max_new_tokens": cfg0.max_new_tokens, "by_batch_size": {}}
    outputs = {}
    for bs in batch_sizes:
        s, out = median_time(lambda: lm.generate_batch(inputs, cfg, batch_size=bs, max_new_tokens=caps), runs,
                             lambda: lm.generate_batch(inputs[:bs], cfg, batch_size=bs, max_new_tokens=caps[:bs]))
        outputs[bs] = out
        res["by_batch_size"][bs] = {"seconds": round(s, 2), "examples_per_s": round(len(inputs) / s, 3)}
        print(f"  translation bs={bs}: {s:.1f} s, {len(inputs) / s:.2f} examples/s", file=sys.stderr, flush=True)
    base = outputs.get(1) or outputs[batch_sizes[0]]
    b1 = res["by_batch_size"].get(1)
    for bs, r in res["by_batch_size"].items():
        r["x_batch_1"] = round(r["examples_per_s"] / b1["examples_per_s"], 2) if b1 else None
        r["same_output_as_first"] = sum(a == b for a, b in zip(outputs[bs], base))
    return res


def perplexity(lm: LM, bench: Path, n_tokens: int, max_length: int, runs: int) -> dict:
    text = (bench / "wikitext2_raw_test.txt").read_text(encoding="utf-8")
    ids = lm.tokenizer(text[: n_tokens * 8], add_special_tokens=False)["input_ids"][:n_tokens]
    text = lm.decode(ids)
    full = [lm.prefix_token()] + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = [full[i:i + max_length] for i in range(0, len(full) - 1, max_length)]

    @torch.no_grad()
    def raw():
        for w in windows:
            lm.model(input_ids=torch.tensor([w], device=lm.device))

    @torch.no_grad()
    def raw_one():
        lm.model(input_ids=torch.tensor([windows[0]], device=lm.device))

    raw_s, _ = median_time(raw, runs, raw_one)
    raw_tok = sum(len(w) for w in windows)
    res = {"max_length": max_length, "tokens": len(full) - 1,
           "raw_forward": {"seconds": round(raw_s, 2), "tokens_per_s": round(raw_tok / raw_s, 1)}}
    for stride, bs in ((max_length, 1), (max_length, 4), (max_length // 2, 4)):
        s, (toks, lps) = median_time(lambda: lm.token_logprobs(text, max_length, stride, batch_size=bs), runs,
                                     lambda: lm.token_logprobs(text[:2000], max_length, stride, batch_size=bs))
        key = f"score_stride{stride}_bs{bs}"
        res[key] = {"seconds": round(s, 2), "tokens_per_s": round(len(lps) / s, 1),
                    "x_raw_forward": round(len(lps) / s / (raw_tok / raw_s), 2)}
        print(f"  perplexity stride={stride} bs={bs}: {len(lps) / s:.0f} tokens/s "
              f"(raw forward {raw_tok / raw_s:.0f})", file=sys.stderr, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmarks", default=DEFAULT_BENCH)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ppl-tokens", type=int, default=None,
                    help="default 4 x (max length - 1): four whole windows either way (with one more token, the "
                         "rolling scorer would spend a fifth whole window on it)")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--model", default=None)
    ap.add_argument("--decode", default="auto", choices=DECODE_MODES)
    ap.add_argument("--skip", choices=["translation", "perplexity"], action="append", default=[])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bench = Path(a.benchmarks)
    if not (bench / "wikitext2_raw_test.txt").exists():
        sys.exit(f"benchmarks not found in {bench}; pass --benchmarks or set LLMDEMO_BENCHMARKS")
    lm = load(a.model, decode=a.decode)
    out = {"model": lm.name, "decode": lm.decode_mode, "threads": torch.get_num_threads(),
           "runs": a.runs}
    if "translation" not in a.skip:
        out["translation"] = translation(lm, bench, a.n, [int(b) for b in a.batch_sizes.split(",")], a.runs)
    if "perplexity" not in a.skip:
        out["perplexity"] = perplexity(lm, bench, a.ppl_tokens or 4 * (a.max_length - 1), a.max_length, a.runs)
    if a.json:
        print(json.dumps(out))
        return
    print(f"model {out['model']} (decode {out['decode']}), {out['threads']} threads, medians of {a.runs} runs")
    if "translation" in out:
        t = out["translation"]
        print(f"translation, {t['n']} FLORES en-fr sentences:")
        for bs, r in t["by_batch_size"].items():
            print(f"  batch {bs:>2}: {r['examples_per_s']:6.2f} examples/s  ({r['x_batch_1'] or 'n/a'}x batch 1; "
                  f"{r['same_output_as_first']}/{t['n']} outputs equal to the first batch size's)")
    if "perplexity" in out:
        p = out["perplexity"]
        print(f"perplexity scoring, {p['tokens']} WikiText-2 tokens, max length {p['max_length']}:")
        print(f"  raw forward            {p['raw_forward']['tokens_per_s']:8.1f} tokens/s")
        for k, r in p.items():
            if k.startswith("score_"):
                print(f"  {k:22} {r['tokens_per_s']:8.1f} tokens/s ({r['x_raw_forward']}x raw forward)")


if __name__ == "__main__":
    main()
