"""A short CUDA check of the wrapper on tiny models (run where a GPU is present).

    python bench/gpu_check.py

Checks: device/dtype defaults (cuda, bf16), generate == join(stream), batched greedy == unbatched
in fp32 and (agreement rate) in bf16, perplexity windows batched vs unbatched, attention rows.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

from conftest import _tiny_decoder, _tiny_seq2seq  # noqa: E402
from llmdemo import internals  # noqa: E402
from llmdemo.config import GenerationConfig  # noqa: E402
from llmdemo.backends.hf.loading import pick_device, pick_dtype  # noqa: E402
from llmdemo.backends.hf.model import LM  # noqa: E402

PROMPTS = ["The weather is", "Once upon a time there was a small", "Hello", "The city council voted to build a new"]
G = GenerationConfig(temperature=0, max_new_tokens=24)


def main() -> None:
    res = {"cuda": torch.cuda.is_available(), "torch": torch.__version__}
    import transformers

    res["transformers"] = transformers.__version__
    dev = pick_device(None)
    res["device"], res["dtype"] = dev, str(pick_dtype(dev)).replace("torch.", "")
    for name, build in (("decoder", _tiny_decoder), ("seq2seq", _tiny_seq2seq)):
        for dtype in (torch.float32, torch.bfloat16):
            m, tok = build()
            lm = LM(m.to(dev, dtype), tok, name=name)
            s = lm.stream("The weather is", G)
            joined = "".join(s)
            single = [lm.generate(p, G) for p in PROMPTS]
            batched = lm.generate_batch(PROMPTS, G, batch_size=4)
            key = f"{name}_{str(dtype).replace('torch.', '')}"
            res[key] = {"join_equals_generate": joined == lm.generate("The weather is", G),
                        "batch_agreement": sum(a == b for a, b in zip(single, batched)) / len(PROMPTS),
                        "device": str(lm.device)}
            if name == "decoder":
                text = "Once upon a time there was a small model that liked to talk. " * 8
                a = lm.token_logprobs(text, 48, 16, batch_size=1)[1]
                b = lm.token_logprobs(text, 48, 16, batch_size=8)[1]
                res[key]["ppl_batch_max_abs_diff"] = max(abs(x - y) for x, y in zip(a, b))
                toks, att, _ = internals.attention(lm, "The weather is nice today.", layer=1, head=0)
                res[key]["attention_rows_sum_to_1"] = bool(torch.allclose(att.float().sum(-1),
                                                                          torch.ones(len(toks)), atol=1e-2))
                t = time.perf_counter()
                lm.generate("Hello", GenerationConfig(temperature=0, max_new_tokens=64))
                res[key]["decode_64_tokens_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
