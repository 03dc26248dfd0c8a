"""Samplers: how one sequence picks its next token from the logits.

A :class:`Sampler` belongs to one request (vLLM's per-request ``SamplingParams``): its own
settings and its own random generator. So a request sampled inside a batch of others draws
exactly the numbers it would draw alone, and its output does not depend on who it shares
the model with.

>>> import torch
>>> from llmdemo.config import GenerationConfig
>>> s = Sampler(GenerationConfig(temperature=0), seed=0)
>>> int(s(torch.tensor([[0.1, 2.0, -1.0]]), None))
1
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..config import GenerationConfig

SHORTLIST = 1024  # candidates looked at first for top-p without top-k


class Sampler:
    """Repetition penalty, suppressed tokens, then greedy or temperature / top-k / top-p sampling."""

    def __init__(self, config: GenerationConfig, seed: int, suppress: Sequence[int] = (),
                 device: torch.device | str = "cpu"):
        self.config = config
        self.seed = seed
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.suppress = torch.tensor(list(suppress), dtype=torch.long, device=device) if suppress else None

    def __call__(self, logits: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
        """``logits`` (1, V) float32, ``seen`` (1, S) ids already in the sequence -> next id (1,)."""
        c = self.config
        if c.repetition_penalty != 1.0 and seen is not None and seen.numel():
            p = c.repetition_penalty
            score = logits.gather(1, seen)
            logits = logits.scatter(1, seen, torch.where(score < 0, score * p, score / p))
        if self.suppress is not None:
            logits = logits.index_fill(1, self.suppress, float("-inf"))
        if c.greedy:
            return logits.argmax(dim=-1)  # (1,)
        logits = logits / c.temperature
        vocab = logits.shape[-1]
        if not (0 < c.top_k < vocab) and c.top_p >= 1.0:
            return torch.multinomial(logits.softmax(dim=-1), 1, generator=self.generator).squeeze(1)
        # Work on a shortlist instead of sorting the whole vocabulary (4 ms for 49k tokens, per row
        # and step): the top-k, or for top-p alone the top 1024 when they already hold the top-p mass.
        if 0 < c.top_k < vocab:
            vals, idx = torch.topk(logits, c.top_k, dim=-1)  # (1, k), sorted
            probs = vals.softmax(dim=-1)  # top-p applies after top-k, on the renormalised top-k
        else:
            vals, idx = torch.topk(logits, min(SHORTLIST, vocab), dim=-1)
            probs = (vals - logits.logsumexp(dim=-1, keepdim=True)).exp()
            if float(probs.sum()) < c.top_p:  # a flat distribution: the nucleus needs the whole vocabulary
                vals, idx = torch.sort(logits, descending=True, dim=-1)
                probs = vals.softmax(dim=-1)
        if c.top_p < 1.0:
            # drop a token when the mass before it already reaches top_p (the first always stays)
            drop = (probs.cumsum(dim=-1) - probs) >= c.top_p
            vals = vals.masked_fill(drop, float("-inf"))
        pick = torch.multinomial(vals.softmax(dim=-1), 1, generator=self.generator)  # (1, 1) into the shortlist
        return idx.gather(1, pick).squeeze(1)  # (1,)
