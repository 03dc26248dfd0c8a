"""The bundled GGUF as shipped (Q4_1) against its Q8_0 re-encoding, through the engine, same machine, same run.

    python bench/weights.py [--runs 5] [--ppl]

For each type: the first token of a new 300-token prompt (``LM.stream``, prompt reading dominates; median of
``--runs``), greedy decode tokens/s of a 128-token chat answer (median of 3), and with ``--ppl`` llama.cpp's
perplexity of the first 664 / 2,867 / 9,471 WikiText-2 test tokens (one 1,024-token window after another).
What ``LLMDEMO_LLAMACPP_WEIGHTS=auto`` chose on this CPU is printed last.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ppl", action="store_true")
    ap.add_argument("--backends-from", default=None, metavar="DIR",
                    help="a runtime-dispatch llama.cpp build: load its CPU backends from DIR first (docs/engine.md)")
    a = ap.parse_args()
    if a.backends_from:
        import ctypes
        import os

        import llama_cpp

        # libggml.so.0, the file libllama itself loaded: libggml.so is a copy in a wheel, a second ggml
        ggml = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml.so.0"))
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path(a.backends_from.encode())
    from bench.engine import LONG as TEXT, PROMPT as CHAT, _cpu
    from llmdemo.backends.llamacpp import LlamaCppLM
    from llmdemo.config import GenerationConfig
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset

    path = str(bundled_gguf(get_preset(DEFAULT_MODEL)))
    print(f"{_cpu()}; the bundled SmolLM2 GGUF")
    for mode in ("shipped", "q8_0"):
        lm = LlamaCppLM(path, weights=mode)
        r = lm.runner
        ids = lm.encode(TEXT)[:300]

        def first() -> float:
            lm.scheduler.call(lambda: [r._drop(s) for s in list(r.parked)])
            t = time.perf_counter()
            list(lm.stream(ids, GenerationConfig(temperature=0, max_new_tokens=1, stop=())))
            return time.perf_counter() - t

        def decode() -> float:
            t, n = None, 0
            for _ in lm.stream(CHAT, GenerationConfig(temperature=0, max_new_tokens=128, stop=())):
                n += 1
                t = t or time.perf_counter()
            return (n - 1) / (time.perf_counter() - t)

        first()
        f = statistics.median(first() for _ in range(a.runs))
        d = statistics.median(decode() for _ in range(3))
        line = (f"{lm.info()['weights']['type']:>10}: 300-token prompt, first token {f * 1000:.0f} ms "
                f"({300 / f:.0f} prompt tok/s); decode {d:.1f} tok/s; threads {r.threads}")
        if a.ppl:
            text = (Path(__file__).resolve().parent.parent / "benchmarks" / "wikitext2_raw_test.txt").read_text(
                encoding="utf-8")
            for chars in (2500, 12000, 40000):
                total, n = lm.loglikelihood_rolling(text[:chars], 1024, 1024)
                line += f"; ppl {n} tokens {math.exp(-total / n):.4f}"
        print(line, flush=True)
        lm.close()
    from llmdemo.backends.llamacpp import _weights

    w = _weights(path, "auto", None, None)
    print(f"auto on this CPU: {w.type} ({w.reason})")


if __name__ == "__main__":
    main()
