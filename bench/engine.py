"""The default engine (llama.cpp under the scheduler) against llama.cpp's own loops, same GGUF, same threads.

    python bench/engine.py [--scenarios stream,batch,eval,quality] [--tokens 128] [--runs 3] [--json]

- stream: one greedy 128-token chat answer through ``LM.stream`` (the app's path: scheduler, our
  sampler, text detokenized as it streams) against llama-cpp-python's ``create_completion`` stream on
  a fresh context with the same thread count; tokens/s after the first token, and the first token's
  time for a new prompt. Medians of ``--runs`` after a warm-up.
- batch: 8 concurrent 128-token streams through ``LM.stream`` (one thread each, as 8 visitors):
  aggregate tokens/s and the slowest stream against the mean; against llama.cpp's own batched step
  (``llama_decode`` of 8 sequences, one token each, greedy argmax, no Python sampler), same threads.
- eval: the first 48 FLORES-200 en-fr sentences through the app's translation prompt and
  ``generate_batch`` at batch 16 (the eval defaults, greedy); seconds.
- quality: greedy 48-token outputs of llama.cpp vs the transformers float32 forward of the same GGUF
  on 10 translation and 10 chat prompts (how many identical), and the perplexity of both on the first
  8,000 WikiText-2 tokens (1024-token windows, llama.cpp scoring through ``llamacpp:default``).

``--engine torch`` runs stream/batch/eval on the transformers-side default instead (``--decode``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
LONG = ("The committee met on Tuesday to discuss the new budget for the city's public libraries, which had seen "
        "a sharp rise in visitors since the winter. ") * 20
QUESTIONS = ["Name three colours.", "What is the capital of France?", "Write one sentence about the sea.",
             "Who are you?", "Count from one to five.", "What is a language model?", "Give me a synonym of big.",
             "Why is the sky blue?", "Tell me a joke.", "What do cats eat?"]


def load_engine(engine: str, decode: str):
    from llmdemo.load import load

    return load(decode=decode if engine == "torch" else "auto")


def bench_stream(lm, a) -> dict:
    from llama_cpp import Llama

    from llmdemo.config import GenerationConfig

    cfg = GenerationConfig(temperature=0, max_new_tokens=a.tokens, stop=())
    ids = lm.encode(PROMPT)

    def ours():
        if hasattr(lm, "runner") and hasattr(lm.runner, "parked"):  # a new prompt: nothing kept from the last run
            lm.scheduler.call(lambda: [lm.runner._drop(s) for s in list(lm.runner.parked)])
        elif hasattr(lm, "prefix_cache"):
            lm.prefix_cache.clear()
        s = lm.stream(PROMPT, cfg)
        s.text()
        return s.stats.tokens_per_s, s.stats.ttft_s, s.stats.new_tokens

    path = _run_path(lm)
    threads = lm.info().get("threads") or 1

    def theirs():
        llm = Llama(path, n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False)
        t0, first, n = time.perf_counter(), None, 0
        for _ in llm.create_completion(ids, max_tokens=a.tokens, temperature=0.0, stream=True):
            n += 1
            first = first or time.perf_counter()
        return (n - 1) / (time.perf_counter() - first), first - t0, n

    ours()
    o = [ours() for _ in range(a.runs)]
    res = {"ours_tok_s": round(statistics.median(x[0] for x in o), 1),
           "ours_first_token_ms": round(1000 * statistics.median(x[1] for x in o), 1)}
    if path:
        theirs()
        t = [theirs() for _ in range(a.runs)]
        res.update(llama_cpp_tok_s=round(statistics.median(x[0] for x in t), 1),
                   llama_cpp_first_token_ms=round(1000 * statistics.median(x[1] for x in t), 1))
        res["ratio_tok_s"] = round(res["ours_tok_s"] / res["llama_cpp_tok_s"], 3)
        res["ratio_first_token"] = round(res["ours_first_token_ms"] / res["llama_cpp_first_token_ms"], 3)
        # llama.cpp's raw loop: one llama_decode per token, argmax in numpy, no sampler or text
        res["raw_loop_tok_s"] = round(raw_batched(lm, [PROMPT], a.tokens)[0], 1)
        res["ratio_vs_raw_loop"] = round(res["ours_tok_s"] / res["raw_loop_tok_s"], 3)
        # the first token of a new 300-token prompt: ours (prompt read in 32-token micro-batches) against one
        # raw llama_decode of the 300 tokens (llama.cpp's default 512-token micro-batch)
        long_ids = lm.encode(LONG)[:300]

        def first300():
            lm.scheduler.call(lambda: [lm.runner._drop(s) for s in list(lm.runner.parked)])
            t = time.perf_counter()
            list(lm.stream(long_ids, cfg.replace(max_new_tokens=1)))
            return time.perf_counter() - t
        first300()
        res["first_token_300_ms"] = round(1000 * statistics.median(first300() for _ in range(a.runs)), 1)
        raw = [raw_batched(lm, [long_ids], 2)[1] for _ in range(a.runs + 1)][1:]
        res["raw_first_token_300_ms"] = round(1000 * statistics.median(raw), 1)
        res["ratio_first_token_300"] = round(res["first_token_300_ms"] / res["raw_first_token_300_ms"], 3)
    res["threads"] = threads
    res["weights"] = (lm.info().get("weights") or {}).get("type")
    return res


def _run_path(lm) -> str | None:
    """The GGUF llama.cpp runs for ``lm``: the shipped file or its chosen re-encoding (llmdemo/backends/llamacpp/weights.py)."""
    w = getattr(lm, "weights", None)
    return w.path if w is not None else getattr(lm, "path", None)


def bench_batch(lm, a) -> dict:
    from llmdemo.config import GenerationConfig

    cfg = GenerationConfig(temperature=0, max_new_tokens=a.tokens, stop=())
    rows = a.streams
    prompts = [[{"role": "user", "content": f"Write a long story about a dragon number {i} who learns to bake."}]
               for i in range(rows)]
    rates, counts = [0.0] * rows, [0] * rows
    go = threading.Barrier(rows + 1)

    def visitor(i):
        go.wait()
        s = lm.stream(prompts[i], cfg)
        s.text()
        rates[i], counts[i] = s.stats.new_tokens / s.stats.total_s, s.stats.new_tokens

    lm.generate(prompts[0], GenerationConfig(temperature=0, max_new_tokens=4, stop=()))  # warm-up
    ts = [threading.Thread(target=visitor, args=(i,)) for i in range(rows)]
    for t in ts:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    res = {"rows": rows, "aggregate_tok_s": round(sum(counts) / wall, 1),
           "slowest_vs_mean": round(min(rates) / statistics.mean(rates), 3), "tokens": sum(counts)}
    if _run_path(lm):
        res["llama_cpp_batched_tok_s"] = round(raw_batched(lm, prompts, a.tokens)[0], 1)
        res["ratio"] = round(res["aggregate_tok_s"] / res["llama_cpp_batched_tok_s"], 3)
    return res


def raw_batched(lm, prompts, n_tokens: int) -> tuple[float, float]:
    """llama.cpp alone: each prompt read in one call, then one llama_decode of every row per step, argmax in
    numpy. (decode tokens/s, seconds to read the prompts to their first logits)."""
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama, _internals

    threads = lm.info().get("threads") or 1
    base = Llama(_run_path(lm), n_ctx=64, verbose=False)
    p = llama_cpp.llama_context_params.from_buffer_copy(base.context_params)
    p.n_ctx, p.n_seq_max, p.kv_unified, p.n_batch, p.n_ubatch = 8192, len(prompts), True, 2048, 512
    p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED  # llama.cpp's own default (auto) on a CPU
    ctx = _internals.LlamaContext(model=base._model, params=p, verbose=False)
    ctx.set_n_threads(threads, threads)
    ids = [lm.encode(q) for q in prompts]
    b = llama_cpp.llama_batch_init(2048, 0, 1)
    nv = base.n_vocab()

    def put(i, tok, pos, sid, want):
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, want
        b.seq_id[i][0] = sid

    last = []
    t_read = time.perf_counter()
    for sid, x in enumerate(ids):  # each prompt read in a call of its own (as the engine reads them)
        for j, tok in enumerate(x):
            put(j, tok, j, sid, j == len(x) - 1)
        b.n_tokens = len(x)
        assert llama_cpp.llama_decode(ctx.ctx, b) == 0
        last.append(int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, len(x) - 1),
                                                         shape=(nv,)))))
    read_s = time.perf_counter() - t_read
    pos = [len(x) for x in ids]
    t0 = time.perf_counter()
    for _ in range(n_tokens - 1):
        for r in range(len(ids)):
            put(r, last[r], pos[r], r, True)
            pos[r] += 1
        b.n_tokens = len(ids)
        assert llama_cpp.llama_decode(ctx.ctx, b) == 0
        last = [int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, r), shape=(nv,))))
                for r in range(len(ids))]
    rate = len(ids) * (n_tokens - 1) / (time.perf_counter() - t0)
    llama_cpp.llama_batch_free(b)
    return rate, read_s


def bench_eval(lm, a) -> dict:
    from llmdemo import prompts
    from llmdemo.config import TASK_DEFAULTS

    recs = [json.loads(line) for line in
            (ROOT / "benchmarks" / "translation_flores200_devtest_en-fr.jsonl").read_text().splitlines()[: a.eval_n]]
    cfg = TASK_DEFAULTS["translation"]
    built, caps = [], []
    for r in recs:
        p = prompts.translation_prompt(lm, r["source"], "en", "fr", cfg.max_new_tokens)
        built.append(p.input)
        caps.append(min(cfg.max_new_tokens, 4 * lm.count_tokens(r["source"]) + 16))
    t = time.perf_counter()
    outs = lm.generate_batch(built, cfg, batch_size=16, max_new_tokens=caps, priority="batch")  # as the harness
    return {"sentences": len(recs), "batch": 16, "seconds": round(time.perf_counter() - t, 1),
            "empty": sum(not o.strip() for o in outs)}


def bench_quality(a) -> dict:
    import math

    from llmdemo import prompts
    from llmdemo.config import GenerationConfig
    from llmdemo.load import load

    eng = load()
    ref = load(decode="transformers")
    recs = [json.loads(line) for line in
            (ROOT / "benchmarks" / "translation_flores200_devtest_en-fr.jsonl").read_text().splitlines()[:10]]
    cfg = GenerationConfig(temperature=0, max_new_tokens=48, stop=())
    built = [prompts.translation_prompt(ref, r["source"], "en", "fr", 48).input for r in recs]
    built += [[{"role": "user", "content": q}] for q in QUESTIONS]
    same, first_diff = 0, []
    for p in built:
        x, y = eng.encode(p), ref.encode(p)
        assert x == y, "the two tokenizers disagree on a prompt"
        a_, b_ = eng.generate(p, cfg), ref.generate(p, cfg)
        same += a_ == b_
        if a_ != b_:
            first_diff.append(next((i for i, (c, d) in enumerate(zip(a_, b_)) if c != d), min(len(a_), len(b_))))
    text = (ROOT / "benchmarks" / "wikitext2_raw_test.txt").read_text(encoding="utf-8")
    ids = ref._text_ids(text[:60000])[: a.ppl_tokens]
    text = ref.decode(ids)
    cpp = load("llamacpp:default")
    s_ref, n_ref = ref.loglikelihood_rolling(text, 1024, 1024)
    s_cpp, n_cpp = cpp.loglikelihood_rolling(text, 1024, 1024)
    return {"greedy_identical": f"{same}/{len(built)}", "first_differing_char": first_diff,
            "ppl_transformers_fp32": round(math.exp(-s_ref / n_ref), 4), "ppl_llama_cpp_q4_1": round(math.exp(-s_cpp / n_cpp), 4),
            "tokens": n_ref}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="stream,batch,eval,quality")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--eval-n", type=int, default=48)
    ap.add_argument("--ppl-tokens", type=int, default=8000)
    ap.add_argument("--engine", choices=["llamacpp", "torch"], default="llamacpp")
    ap.add_argument("--decode", default="float16", help="with --engine torch: the lean kernel or 'transformers'")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    scen = a.scenarios.split(",")
    out: dict = {"cpu": _cpu(), "engine": a.engine}
    lm = load_engine(a.engine, a.decode) if set(scen) - {"quality"} else None
    if lm is not None:
        out["model"] = {k: lm.info().get(k) for k in ("backend", "decode", "threads", "thread_choice")}
    for name in scen:
        t = time.perf_counter()
        out[name] = {"stream": lambda: bench_stream(lm, a), "batch": lambda: bench_batch(lm, a),
                     "eval": lambda: bench_eval(lm, a), "quality": lambda: bench_quality(a)}[name]()
        out[name]["bench_s"] = round(time.perf_counter() - t, 1)
        print(json.dumps({name: out[name]}), flush=True)
    if a.json:
        print(json.dumps(out))


def _cpu() -> str:
    from llmdemo.backends.hf.lean.tuning import cpu_signature  # the CPU's name as speed caches record it

    return f"{cpu_signature()['cpu']} x{os.cpu_count()}"


if __name__ == "__main__":
    main()
