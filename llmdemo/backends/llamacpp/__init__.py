"""A GGUF file run in-process by llama.cpp (``llama-cpp-python``): ``--model llamacpp:PATH.gguf``
or ``--model llamacpp:default`` (the bundled SmolLM2).

llama.cpp computes the logits; everything else is llmdemo's own, so results compare with the
transformers backend: the same scheduler (interactive before batch work, Stop, budgets), the same
samplers and seeds, the same chat template (the GGUF's own, rendered with jinja2 as transformers
renders it) and the same rolling-window perplexity, with each token's log-probability computed
here from the logits at the position before it (llama-cpp-python's own ``echo`` log-probabilities
are one position off, its issue #1983).

One llama.cpp context holds up to ``LLMDEMO_MAX_RUNNING`` sequences, stepped together: every decode row of a
scheduler step goes into one ``llama_decode`` (docs/engine.md).

- ``model.py``: ``LlamaCppLM`` (tokens, chat template, scoring, ``info()``);
- ``runner.py``: ``LlamaCppRunner`` (the sequences in the context, each step's batch) and ``ThreadTuner``;
- ``weights.py``: the weight type llama.cpp runs (the shipped GGUF or its faster Q8_0 re-encoding).
"""

from .model import LlamaCppLM, _eval, _token_logprobs, _weights
from .runner import UBATCH, LlamaCppRunner, ThreadTuner

__all__ = ["LlamaCppLM", "LlamaCppRunner", "ThreadTuner", "UBATCH", "_eval", "_token_logprobs", "_weights"]
