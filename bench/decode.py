"""Decode speed of the default model: load time, time to first token, tokens/s, peak memory.

    python bench/decode.py [--runs 3] [--new-tokens 128] [--vs-llamacpp] [--json]

For each setting: a fresh process loads the model (warm cache), warms up, then streams a 30-token
chat prompt with greedy decoding ``--runs`` times; medians are reported. The same prompt also runs
through plain ``transformers`` ``model.generate()`` (fp32) as the baseline, and through
llama-cpp-python on the same GGUF file with ``--vs-llamacpp`` when it is importable.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."}]

CHILD = r"""
import json, os, resource, statistics, sys, time
t0 = float(sys.argv[1]); mode = sys.argv[2]; runs = int(sys.argv[3]); new = int(sys.argv[4])
sys.path.insert(0, sys.argv[5])
messages = json.loads(sys.argv[6])
if mode == "llamacpp":
    from llama_cpp import Llama
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset
    llm = Llama(model_path=str(bundled_gguf(get_preset(DEFAULT_MODEL))), n_threads=len(os.sched_getaffinity(0)),
                n_ctx=2048, verbose=False)
    load_s = time.time() - t0
    def once():
        t = time.perf_counter(); first = None; n = 0
        for _ in llm.create_chat_completion(messages, max_tokens=new, temperature=0, stream=True):
            n += 1; first = first or time.perf_counter() - t
        total = time.perf_counter() - t
        return first, (n - 1) / (total - first), n
else:
    from llmdemo.config import GenerationConfig
    from llmdemo.model import LM
    lm = LM.load()
    load_s = time.time() - t0
    cfg = GenerationConfig(temperature=0, max_new_tokens=new, stop=())
    ids = lm.encode(messages)
    if mode == "hf-generate":
        import torch
        x = torch.tensor([ids])
        def once():
            t = time.perf_counter()
            out = lm.model.generate(x, max_new_tokens=1, do_sample=False)
            first = time.perf_counter() - t
            t = time.perf_counter()
            out = lm.model.generate(x, max_new_tokens=new, do_sample=False, min_new_tokens=new)
            total = time.perf_counter() - t
            n = out.shape[1] - x.shape[1]
            return first, (n - 1) / (total - first), n
    else:
        def once():
            # greedy until EOS or new tokens; new_tokens in the output says how many
            s = lm.stream(ids, cfg)
            for _ in s: pass
            return s.stats.ttft_s, s.stats.tokens_per_s, s.stats.new_tokens
once()  # warm-up
res = [once() for _ in range(runs)]
print(json.dumps({"load_s": load_s, "ttft_s": statistics.median(r[0] for r in res),
                  "decode_tok_s": statistics.median(r[1] for r in res), "new_tokens": res[0][2],
                  "prompt_tokens": len(ids) if mode != "llamacpp" else None,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(mode: str, runs: int, new: int) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", CHILD, str(t0), mode, str(runs), str(new), str(ROOT),
                        json.dumps(MESSAGES)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--vs-llamacpp", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    modes = ["hf-generate", "fp32"]
    if a.vs_llamacpp:
        modes.append("llamacpp")
    results = {m: measure(m, a.runs, a.new_tokens) for m in modes}
    base = results["hf-generate"].get("decode_tok_s")
    ref = results.get("llamacpp", {}).get("decode_tok_s")
    for r in results.values():
        if "decode_tok_s" in r:
            r["x_transformers_generate"] = round(r["decode_tok_s"] / base, 2) if base else None
            r["x_llamacpp"] = round(r["decode_tok_s"] / ref, 2) if ref else None
    if a.json:
        print(json.dumps(results))
        return
    print(f"{'setting':14} {'load s':>7} {'TTFT ms':>8} {'tok/s':>7} {'x HF gen':>8} {'x llama.cpp':>11} {'peak MB':>8}")
    for m, r in results.items():
        if "error" in r:
            print(f"{m:14} error: {r['error']}")
            continue
        xl = f"{r['x_llamacpp']:.2f}" if r.get("x_llamacpp") else "n/a"
        print(f"{m:14} {r['load_s']:7.2f} {r['ttft_s'] * 1000:8.0f} {r['decode_tok_s']:7.1f} "
              f"{r['x_transformers_generate']:8.2f} {xl:>11} {r['peak_rss_mb']:8.0f}")
    print(f"(medians of {a.runs} runs after a warm-up; {a.new_tokens} new tokens; greedy; "
          f"{os.cpu_count()} CPUs)")
    if "llamacpp" not in results:
        print("llama.cpp: not asked (--vs-llamacpp)")
    elif "error" in results["llamacpp"]:
        print("llama.cpp: llama-cpp-python is not importable here; install it in a separate environment "
              "(it compiles for about 12 minutes) and run this script there")


if __name__ == "__main__":
    main()
