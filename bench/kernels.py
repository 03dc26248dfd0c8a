"""Time of one weight product per kernel: why llmdemo decodes with float16 weights on this CPU.

    python bench/kernels.py

For a 1536x576 weight (SmolLM2-135M's gate/up shape) and one input row: float32, float16 and
bfloat16 ``F.linear``, torch's int8 (``_weight_int8pack_mm``) and int4
(``_weight_int4pack_mm_for_cpu``, groups of 32) weight-only kernels; "hot" repeats one weight
(it stays in cache), "cold" walks 200 different weights (read from memory, as in decoding).
Medians of 5 passes, microseconds per product.
"""

import statistics
import time

import torch
import torch.nn.functional as F

N, K, G = 1536, 576, 32


def per_call(fn, weights, passes=5):
    fn(weights[0])
    out = []
    for _ in range(passes):
        t = time.perf_counter()
        for w in weights:
            fn(w)
        out.append((time.perf_counter() - t) / len(weights) * 1e6)
    return statistics.median(out)


def int8(w):
    scale = w.abs().amax(1) / 127
    return (w / scale[:, None]).round().to(torch.int8), scale


def int4(w):
    g = w.reshape(N, K // G, G)
    lo, hi = g.amin(-1), g.amax(-1)
    d = (hi - lo) / 15
    q = ((g - lo[..., None]) / d[..., None]).round().clamp(0, 15).to(torch.int32).reshape(N, K)
    return torch._convert_weight_to_int4pack_for_cpu(q, 1), torch.stack([d.t(), (lo + 8 * d).t()], -1).contiguous()


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, K)
    base = [torch.randn(N, K) for _ in range(200)]
    kinds = {
        "float32": ([w for w in base], lambda w: F.linear(x, w)),
        "float16": ([w.half() for w in base], lambda w: F.linear(x.half(), w)),
        "bfloat16": ([w.bfloat16() for w in base], lambda w: F.linear(x.bfloat16(), w)),
        "int8 (_weight_int8pack_mm)": ([int8(w) for w in base], lambda w: torch._weight_int8pack_mm(x, *w)),
        "int4 (_weight_int4pack_mm_for_cpu)": ([int4(w) for w in base],
                                               lambda w: torch._weight_int4pack_mm_for_cpu(x, w[0], G, w[1])),
    }
    print(f"{N}x{K} weight, one input row, {torch.get_num_threads()} threads: microseconds per product")
    for name, (ws, fn) in kinds.items():
        print(f"  {name:36} hot {per_call(fn, ws[:1] * 200):8.0f}   cold {per_call(fn, ws):8.0f}")


if __name__ == "__main__":
    main()
