"""Decode speed of the default model: load time, time to first token, tokens/s, peak memory.

    python bench/decode.py [--runs 3] [--new-tokens 128] [--modes ...] [--vs-llamacpp] [--json]

Each setting runs in a fresh process: it loads the model (warm cache), warms up, then streams a
30-token chat question (46 tokens with the chat template's default system prompt) with greedy
decoding ``--runs`` times; medians are reported. Settings:

- ``hf-generate``: plain ``transformers`` ``model.generate()`` in float32 (the baseline);
- ``transformers``: llmdemo's decode loop over the model's own forward (float32);
- ``auto``: the default: the lean Llama forward with the kernels measured fastest on this CPU
  (llmdemo/backends/hf/lean/tuning.py; the choice is cached, so this is a warm start; the row says which);
- ``float32``, ``float16``, ``bfloat16``, ``bfloat16-onednn``, ``float16-onednn``: the lean
  forward forced to one kernel for prompts and decode steps;
- ``llamacpp`` (with ``--vs-llamacpp``): llama-cpp-python on the same GGUF file, when importable.

Time to first token: ``ttft_s`` repeats the same prompt (llama.cpp then reuses the cached prompt,
so its figure is one token's work); ``ttft_new_prompt_s`` clears that cache first (llmdemo keeps
prompt prefixes only in whole 64-token chunks, so for this 46-token prompt the two are the same
measurement). ``load_s`` ("ready") runs from before the child process starts to the model being
loaded, on a warm cache.

llama-cpp-python 0.3.36 built here with ``-march=native`` crashed in its AMX matrix product on
this CPU (SIGSEGV in ``ggml_backend_amx_mul_mat``); the script loads it with
``use_extra_bufts=False``, which skips the AMX and repacked-weight buffer types
(``--llamacpp-extra-bufts`` turns them back on).
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
messages = json.loads(sys.argv[6]); extra_bufts = sys.argv[7] == "1"; gguf = sys.argv[8]
fresh = None
if mode == "llamacpp":
    import llama_cpp
    if not extra_bufts:
        _default = llama_cpp.llama_model_default_params
        def _params():
            p = _default(); p.use_extra_bufts = False; return p
        llama_cpp.llama_model_default_params = _params
        llama_cpp.llama.llama_cpp.llama_model_default_params = _params
    from llama_cpp import Llama
    llm = Llama(model_path=gguf, n_threads=len(os.sched_getaffinity(0)),
                n_ctx=2048, verbose=False)
    load_s = time.time() - t0
    ids = None
    def once(reset=False):
        if reset:
            llm.reset()
        t = time.perf_counter(); first = None; n = 0
        for chunk in llm.create_chat_completion(messages, max_tokens=new, temperature=0, stream=True):
            if chunk["choices"][0]["delta"].get("content"):
                n += 1; first = first or time.perf_counter() - t
        total = time.perf_counter() - t
        return first, (n - 1) / (total - first), n
    fresh = lambda: once(reset=True)
else:
    from llmdemo.config import GenerationConfig
    from llmdemo.load import load
    lm = load(decode="transformers" if mode == "hf-generate" else mode)
    load_s = time.time() - t0
    cfg = GenerationConfig(temperature=0, max_new_tokens=new, stop=())
    ids = lm.encode(messages)
    chosen = {k: lm.info().get(k) for k in ("decode", "prefill", "start")}
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
out = {"load_s": load_s, "ttft_s": statistics.median(r[0] for r in res),
       "decode_tok_s": statistics.median(r[1] for r in res), "new_tokens": res[0][2],
       "prompt_tokens": len(ids) if ids is not None else None}
if mode != "llamacpp":
    out["forward"] = chosen
out["ttft_new_prompt_s"] = statistics.median(fresh()[0] for _ in range(runs)) if fresh else out["ttft_s"]
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def measure(mode: str, runs: int, new: int, extra_bufts: bool = False, python: str = sys.executable) -> dict:
    sys.path.insert(0, str(ROOT))
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset

    gguf = str(bundled_gguf(get_preset(DEFAULT_MODEL)))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.time()
    r = subprocess.run([python, "-c", CHILD, str(t0), mode, str(runs), str(new), str(ROOT),
                        json.dumps(MESSAGES), "1" if extra_bufts else "0", gguf], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def machine() -> dict:
    """The CPU and the flags that decide which kernels are fast (AVX512-FP16, AVX512-BF16, AMX, ...)."""
    name, flags = "", set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            k, _, v = line.partition(":")
            if k.strip() == "model name" and not name:
                name = v.strip()
            elif k.strip() == "flags" and not flags:
                flags = set(v.split())
    except OSError:
        pass
    keep = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "f16c"))
    return {"cpu": name, "flags": keep, "cpus": len(os.sched_getaffinity(0))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--modes", default="hf-generate,auto,float32,float16,bfloat16",
                    help="comma-separated settings (see the module docstring)")
    ap.add_argument("--vs-llamacpp", action="store_true", help="also run llama-cpp-python on the same GGUF file")
    ap.add_argument("--llamacpp-python", default=sys.executable,
                    help="Python interpreter that has llama_cpp installed (a separate environment)")
    ap.add_argument("--llamacpp-extra-bufts", action="store_true",
                    help="let llama.cpp use its extra buffer types (AMX / repacked weights)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    if a.vs_llamacpp:
        modes.append("llamacpp")
    results = {m: measure(m, a.runs, a.new_tokens, a.llamacpp_extra_bufts,
                          a.llamacpp_python if m == "llamacpp" else sys.executable) for m in modes}
    base = results.get("hf-generate", {}).get("decode_tok_s")
    ref = results.get("llamacpp", {}).get("decode_tok_s")
    for r in results.values():
        if "decode_tok_s" in r:
            r["x_transformers_generate"] = round(r["decode_tok_s"] / base, 2) if base else None
            r["x_llamacpp"] = round(r["decode_tok_s"] / ref, 2) if ref else None
    results["machine"] = machine()
    if a.json:
        print(json.dumps(results))
        return
    results.pop("machine")
    print(f"{'setting':14} {'load s':>7} {'TTFT ms':>8} {'TTFT new':>8} {'tok/s':>7} {'x HF gen':>8} "
          f"{'x llama.cpp':>11} {'peak MB':>8}")
    for m, r in results.items():
        if "error" in r:
            print(f"{m:14} error: {r['error']}")
            continue
        xl = f"{r['x_llamacpp']:.2f}" if r.get("x_llamacpp") else "n/a"
        xh = f"{r['x_transformers_generate']:.2f}" if r.get("x_transformers_generate") else "n/a"
        print(f"{m:14} {r['load_s']:7.2f} {r['ttft_s'] * 1000:8.0f} {r['ttft_new_prompt_s'] * 1000:8.0f} "
              f"{r['decode_tok_s']:7.1f} {xh:>8} {xl:>11} {r['peak_rss_mb']:8.0f}")
        if m == "auto" and r.get("forward"):
            f = r["forward"]
            print(f"{'':14} (auto chose: prompts {f['prefill']}, decode {f['decode']}; {f['start']} start)")
    m = machine()
    print(f"(medians of {a.runs} runs after a warm-up; {a.new_tokens} new tokens; greedy; {m['cpus']} CPUs of "
          f"{m['cpu']}: {' '.join(m['flags'])})")
    if "llamacpp" not in results:
        print("llama.cpp: not asked (--vs-llamacpp)")
    elif "error" in results["llamacpp"]:
        print("llama.cpp: llama-cpp-python is not importable here; install it in a separate environment "
              "(it compiles for about 12 minutes) and run this script there")


if __name__ == "__main__":
    main()
