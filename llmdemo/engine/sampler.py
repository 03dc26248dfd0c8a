"""Samplers: how one sequence picks its next token from the logits.

A :class:`Sampler` belongs to one request (vLLM's per-request ``SamplingParams``): its own
settings and its own random generator. So a request sampled inside a batch of others draws
exactly the numbers it would draw alone, and its output does not depend on who it shares
the model with.

It works in numpy, not torch: generating with the default llama.cpp model then never imports
torch (1-2.6 s of every start-up; torch is imported for scoring and the Inside tab only).
Runners hand it one row of logits as a numpy array.

>>> import numpy as np
>>> from llmdemo.config import GenerationConfig
>>> s = Sampler(GenerationConfig(temperature=0), seed=0)
>>> s(np.array([0.1, 2.0, -1.0], dtype=np.float32), None)
1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..config import GenerationConfig

SHORTLIST = 1024  # candidates looked at first for top-p without top-k


def _softmax(x: np.ndarray) -> np.ndarray:
    """In float64, so the cumulative sums the draw and top-p use do not drift over 49k tokens."""
    x = x.astype(np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def _top(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of ``x``, largest first, ties by lower index first (whatever
    order ``argpartition`` leaves them in, so the kept set is the full sort's).

    >>> _top(np.zeros(2000), 3).tolist(), _top(np.array([1.0, 3.0, 3.0, 2.0]), 2).tolist()
    ([0, 1, 2], [1, 2])
    """
    if k >= x.shape[0]:
        return np.argsort(-x, kind="stable")
    kth = x[np.argpartition(-x, k - 1)[k - 1]]  # the k-th largest value
    cand = np.flatnonzero(x >= kth)  # every index tied with it too, in index order
    return cand[np.lexsort((cand, -x[cand]))][:k]


class Sampler:
    """Repetition penalty, suppressed tokens, then greedy or temperature / top-k / top-p sampling."""

    def __init__(self, config: GenerationConfig, seed: int, suppress: Sequence[int] = ()):
        self.config = config
        self.seed = seed
        # PCG64 from the request's seed: the same seed gives the same draws on any machine and alone
        # or in a batch (one draw of a uniform number per sampled token)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.suppress = np.asarray(list(suppress), dtype=np.int64) if suppress else None

    def __call__(self, logits, seen: Sequence[int] | None) -> int:
        """``logits``: one row (V,) or (1, V); ``seen``: the ids already in the sequence -> the next id."""
        return self._choose(logits, seen, False)[0]

    def pick_with_probs(self, logits, seen: Sequence[int] | None, top: int) -> tuple[int, "TokenProbs"]:
        """The same pick as ``__call__`` (the same random draws), and what it was picked from.

        ``before``: the softmax of ``logits`` as the model gave them; ``after``: the distribution the
        token was actually drawn from, after the repetition penalty, suppressed tokens, temperature,
        top-k and top-p (greedy: all mass on the argmax). Nothing here draws a random number, so a seed
        gives the same tokens with or without recording (tests/test_tokenprobs.py).

        >>> import numpy as np
        >>> from llmdemo.config import GenerationConfig
        >>> tok, p = Sampler(GenerationConfig(temperature=0), seed=0).pick_with_probs(np.array([0.0, 1.0]), None, 2)
        >>> tok, round(p.p_before, 3), p.p_after, p.top_ids
        (1, 0.731, 1.0, [1, 0])
        """
        tok, after = self._choose(logits, seen, True)
        raw = _row(logits).astype(np.float64)
        finite = np.isfinite(raw)
        m = raw[finite].max() if finite.any() else 0.0
        logp = raw - (m + np.log(np.exp(raw - m).sum()))
        before = np.exp(logp)
        with np.errstate(invalid="ignore"):
            entropy = float(-np.nansum(before * logp))  # nats; a -inf logit adds 0 * -inf = nan, which nansum drops
        top_i = _top(before, min(int(top), raw.shape[0]))
        return tok, TokenProbs(tok, float(before[tok]), float(after[tok]), entropy, top_i.tolist(),
                               before[top_i].tolist(), after[top_i].tolist())

    def _choose(self, logits, seen: Sequence[int] | None, want_dist: bool) -> tuple[int, np.ndarray | None]:
        """(next id, the distribution (V,) it was drawn from, or None unless ``want_dist``)."""
        c = self.config
        x = _row(logits).astype(np.float32, copy=True)
        if np.isnan(x).any() or np.isposinf(x).any():
            raise ValueError("the model's logits hold NaN or +inf: this request cannot be sampled")
        if c.repetition_penalty != 1.0 and seen is not None and len(seen):
            ids = np.asarray(seen, dtype=np.int64)
            score = x[ids]  # read before writing: a token seen twice is penalised once
            x[ids] = np.where(score < 0, score * c.repetition_penalty, score / c.repetition_penalty)
        if self.suppress is not None:
            x[self.suppress] = -np.inf
        if not np.isfinite(x).any():  # every token is -inf (or suppressed): nothing to pick from
            raise ValueError("no token is left to pick from (every logit is -inf): this request cannot be sampled")
        if c.greedy:
            pick = int(np.argmax(x))
            if want_dist:
                dist = np.zeros(x.shape[0])
                dist[pick] = 1.0
                return pick, dist
            return pick, None
        x = x / np.float32(c.temperature)
        vocab = x.shape[0]
        if not (0 < c.top_k < vocab) and c.top_p >= 1.0:
            probs = _softmax(x)
            return self._draw(np.arange(vocab), probs), (probs if want_dist else None)
        # Work on a shortlist instead of sorting the whole vocabulary: the top-k, or for top-p
        # alone the top 1024 when they already hold the top-p mass.
        if 0 < c.top_k < vocab:
            idx = _top(x, c.top_k)
            vals = x[idx].astype(np.float64)
            probs = _softmax(vals)  # top-p applies after top-k, on the renormalised top-k
        else:
            idx = _top(x, min(SHORTLIST, vocab))
            vals = x[idx].astype(np.float64)
            full = _softmax(x)
            probs = full[idx]
            if float(probs.sum()) < c.top_p:  # a flat distribution: the nucleus needs the whole vocabulary
                idx = _top(x, vocab)
                vals, probs = x[idx].astype(np.float64), full[idx]
        if c.top_p < 1.0:
            # drop a token when the mass before it already reaches top_p (the first always stays)
            drop = (np.cumsum(probs) - probs) >= c.top_p
            vals = np.where(drop, -np.inf, vals)
        kept = _softmax(vals)  # over the shortlist: what the token is drawn from
        pick = self._draw(idx, kept)
        if want_dist:
            dist = np.zeros(vocab)
            dist[idx] = kept
            return pick, dist
        return pick, None

    def _draw(self, ids: np.ndarray, probs: np.ndarray) -> int:
        """One uniform draw through the cumulative distribution (inverse transform sampling)."""
        cum = np.cumsum(probs)
        if not np.isfinite(cum[-1]) or cum[-1] <= 0:
            raise ValueError("the sampling distribution is empty or not finite: this request cannot be sampled")
        # the first index whose cumulative mass exceeds the draw always has mass of its own
        j = int(np.searchsorted(cum, self.rng.random() * cum[-1], side="right"))
        if j >= len(ids):  # rounding at the very top: the last token with mass
            j = int(np.flatnonzero(probs > 0)[-1])
        return int(ids[j])


def _row(logits) -> np.ndarray:
    """One row of logits as a 1-D numpy array (a (1, V) row or a (V,) vector; several rows are a bug)."""
    a = np.asarray(logits)
    if a.ndim > 1:
        if a.shape[0] != 1 or a.ndim > 2:
            raise ValueError(f"one row of logits expected, got shape {a.shape}")
        return a[0]
    return a


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
