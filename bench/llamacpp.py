"""llmdemo's llamacpp backend against llama.cpp's own generation, same GGUF, same machine, same run.

    python bench/llamacpp.py [--tokens 128] [--runs 3]

Greedy decoding of the bundled model on a chat prompt: tokens/s of llmdemo's stream (the scheduler,
our sampler, text detokenized as it streams) and of llama-cpp-python's ``create_completion`` (its
own loop and sampler), each on a fresh context, medians of ``--runs`` after a warm-up.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    from llama_cpp import Llama

    from llmdemo.config import GenerationConfig
    from llmdemo.load import load

    cfg = GenerationConfig(temperature=0, max_new_tokens=a.tokens, stop=())

    def ours():
        lm = load("llamacpp:default")
        s = lm.stream(PROMPT, cfg)
        s.text()
        lm.close()
        return s.stats.tokens_per_s, s.stats.new_tokens

    path = load("llamacpp:default").path

    def theirs():
        llm = Llama(path, n_ctx=4096, verbose=False)
        ids = load("llamacpp:default").encode(PROMPT)
        first, n = None, 0
        for _ in llm.create_completion(ids, max_tokens=a.tokens, temperature=0.0, stream=True):
            n += 1
            first = first or time.perf_counter()
        return (n - 1) / (time.perf_counter() - first), n

    ours(), theirs()  # warm-up
    o = [ours() for _ in range(a.runs)]
    t = [theirs() for _ in range(a.runs)]
    res = {"llmdemo_tok_s": round(statistics.median(x for x, _ in o), 1),
           "llama_cpp_tok_s": round(statistics.median(x for x, _ in t), 1),
           "tokens": [n for _, n in o], "their_tokens": [n for _, n in t]}
    res["ratio"] = round(res["llmdemo_tok_s"] / res["llama_cpp_tok_s"], 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
