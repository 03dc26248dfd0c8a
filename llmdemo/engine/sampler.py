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

from dataclasses import dataclass
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
        return self._choose(logits, seen, False)[0]

    def pick_with_probs(self, logits: torch.Tensor, seen: torch.Tensor | None, top: int) -> tuple[int, "TokenProbs"]:
        """The same pick as ``__call__`` (the same random draws), and what it was picked from.

        ``before``: the softmax of ``logits`` as the model gave them; ``after``: the distribution the
        token was actually drawn from, after the repetition penalty, suppressed tokens, temperature,
        top-k and top-p (greedy: all mass on the argmax). Nothing here calls the generator, so a seed
        gives the same tokens with or without recording (tests/test_tokenprobs.py).

        >>> import torch
        >>> from llmdemo.config import GenerationConfig
        >>> tok, p = Sampler(GenerationConfig(temperature=0), seed=0).pick_with_probs(torch.tensor([[0.0, 1.0]]), None, 2)
        >>> tok, round(p.p_before, 3), p.p_after, p.top_ids
        (1, 0.731, 1.0, [1, 0])
        """
        tok, after = self._choose(logits, seen, True)
        tok = int(tok)
        raw = logits[0].float()  # (V,)
        logp = raw.log_softmax(dim=-1)
        before = logp.exp()
        entropy = float(-(before * logp).nansum())  # nats; a -inf logit adds 0 * -inf = nan, which nansum drops
        k = min(int(top), raw.shape[-1])
        top_p, top_i = torch.topk(before, k)
        after = after[0]
        return tok, TokenProbs(tok, float(before[tok]), float(after[tok]), entropy, top_i.tolist(), top_p.tolist(),
                               after[top_i].tolist())

    def _choose(self, logits: torch.Tensor, seen: torch.Tensor | None, want_dist: bool):
        """(next id (1,), the distribution (1, V) it was drawn from, or None unless ``want_dist``)."""
        c = self.config
        if c.repetition_penalty != 1.0 and seen is not None and seen.numel():
            p = c.repetition_penalty
            score = logits.gather(1, seen)
            logits = logits.scatter(1, seen, torch.where(score < 0, score * p, score / p))
        if self.suppress is not None:
            logits = logits.index_fill(1, self.suppress, float("-inf"))
        if c.greedy:
            pick = logits.argmax(dim=-1)  # (1,)
            return pick, (torch.zeros_like(logits).scatter_(1, pick[:, None], 1.0) if want_dist else None)
        logits = logits / c.temperature
        vocab = logits.shape[-1]
        if not (0 < c.top_k < vocab) and c.top_p >= 1.0:
            probs = logits.softmax(dim=-1)
            return torch.multinomial(probs, 1, generator=self.generator).squeeze(1), (probs if want_dist else None)
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
        kept = vals.softmax(dim=-1)  # (1, n) over the shortlist: what the token is drawn from
        pick = torch.multinomial(kept, 1, generator=self.generator)  # (1, 1) into the shortlist
        dist = torch.zeros_like(logits).scatter_(1, idx, kept) if want_dist else None  # (1, V), zero off the list
        return idx.gather(1, pick).squeeze(1), dist  # (1,)


@dataclass
class TokenProbs:
    """What one pick was made from (numbers only; the stream adds the texts): see ``Sampler.pick_with_probs``."""

    token: int
    p_before: float  # the model's own probability of the token (softmax of the raw logits)
    p_after: float  # its probability in the distribution it was drawn from
    entropy: float  # of the raw distribution, in nats
    top_ids: list[int]  # the most likely tokens by p_before, most likely first
    top_before: list[float]
    top_after: list[float]
