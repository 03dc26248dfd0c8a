"""Scoring on top of a scheduler: rolling windows, each token's log-probability, log-likelihoods.

:class:`ScoredModel` gives an in-process backend the interface's scoring methods (``token_logprobs``,
``loglikelihood_rolling``, ``loglikelihood``, ``loglikelihood_batch``, lm-evaluation-harness's semantics)
over two things the backend has: ``_score_batch(windows)`` (the log-probabilities of each window's last
tokens) and a scheduler whose ``call`` runs it on the model's thread between generation steps.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .request import INTERACTIVE, as_priority
from .stream import rolling_windows

# tokens one scoring call may carry (a call runs whole on the model's thread, between generation steps):
# one 1,024-token window of the eval's default, ~2-4 s of a 135M model's float32 forward on 2 cores
SCORE_TOKENS_PER_CALL = 1024


class ScoredModel:
    """The scoring methods of :class:`~llmdemo.engine.model.ScheduledModel` (see the module docstring)."""

    def _score_windows(self, windows: list[tuple[list[int], int]], batch_size: int,
                       progress: Callable[[int, int], None] | None = None,
                       priority: int | str = INTERACTIVE) -> list[list[float]]:
        """Log-probabilities of the last ``n`` tokens of each window given the tokens before them.

        ``windows`` holds ``(ids, n)`` pairs with ``1 <= n < len(ids)``. Windows are right-padded
        into batches; only the scored positions go through the output layer. Each batch is one
        call on the scheduler's thread, so generation requests get their steps in between.
        """
        priority = as_priority(priority)
        results: list[list[float]] = []
        start = 0
        while start < len(windows):
            # at most `batch_size` windows and SCORE_TOKENS_PER_CALL tokens per call (one window at least):
            # a call holds the model's thread, and 8 windows of 1,024 tokens held every visitor's stream
            # for tens of seconds
            end, tokens = start, 0
            while end < len(windows) and end - start < batch_size and \
                    (end == start or tokens + len(windows[end][0]) <= SCORE_TOKENS_PER_CALL):
                tokens += len(windows[end][0])
                end += 1
            chunk = windows[start:end]
            results.extend(self.scheduler.call(lambda chunk=chunk: self._score_batch(chunk), priority))
            start = end
            if progress is not None:
                progress(len(results), len(windows))
        return results

    def rolling_windows(self, n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
        return rolling_windows(n_tokens, max_length, stride)

    def token_logprobs(self, text: str, max_length: int | None = None, stride: int | None = None,
                       batch_size: int = 4, progress: Callable[[int, int], None] | None = None,
                       priority: int | str = INTERACTIVE) -> tuple[list[int], list[float]]:
        """Text tokens (no special tokens) and the log-probability of each given all before it.

        The text is prefixed with BOS so that its first token is scored too. ``progress(done, total)``
        is called after each batch of windows.
        """
        if self.is_encoder_decoder:
            raise ValueError("perplexity needs a decoder-only model")
        ids = self._text_ids(text)
        if not ids:
            return [], []
        full = [self.prefix_token()] + list(ids)
        max_length = min(max_length or self.context_length, self.context_length)
        stride = stride or max_length // 2
        windows = [(full[b:e], n) for b, e, n in self.rolling_windows(len(full), max_length, stride)]
        scores = self._score_windows(windows, batch_size, progress, priority)
        return list(ids), [lp for s in scores for lp in s]

    def loglikelihood_rolling(self, text: str, max_length: int | None = None, stride: int | None = None,
                              batch_size: int = 4, priority: int | str = INTERACTIVE) -> tuple[float, int]:
        """Sum of token log-probabilities of ``text`` and the number of tokens scored."""
        _, lps = self.token_logprobs(text, max_length, stride, batch_size, priority=priority)
        return math.fsum(lps), len(lps)

    def loglikelihood(self, context: Any, continuation: str, priority: int | str = INTERACTIVE) -> tuple[float, int]:
        """Log-probability of ``continuation`` right after the (encoded) ``context``.

        The oldest context tokens are dropped when the pair does not fit in the context window.
        """
        ctx = self.encode(context) if context else []
        if not ctx:  # no context: the continuation is scored from the prefix token, as a whole text is
            ctx = [self.prefix_token()]
        cont = self._text_ids(continuation)
        if not cont:
            return 0.0, 0
        if self.is_encoder_decoder:
            raise ValueError("loglikelihood needs a decoder-only model")
        cont = cont[: self.context_length - 1]
        ctx = ctx[-(self.context_length - len(cont)):]
        (scores,) = self._score_windows([(ctx + cont, len(cont))], 1, priority=priority)
        return math.fsum(scores), len(scores)

    def loglikelihood_batch(self, pairs: Sequence[tuple[Any, str]], batch_size: int = 16,
                            priority: int | str = INTERACTIVE) -> list[tuple[float, int]]:
        """``[(context, continuation), ...]`` -> ``[(log-probability of continuation, tokens), ...]``.

        Pairs are split into tokens as lm-evaluation-harness's ``_encode_pair`` does: the context's
        trailing spaces move to the continuation, the pair is tokenized whole, and the continuation is
        what follows the context's own tokens. Pairs with the same context share one pass over it where
        the backend allows (``_score_shared``: the context's keys and values computed once, then every
        continuation read against them in one batch)::

            context  "Q: Who?\nA:"        -> tokens c0 c1 c2 c3      (computed once)
            choices  " Bob" / " Unknown"   -> rows  [c3 b0], [c3 u0 u1] (each row: the context's last
                                                     token, then the continuation but its last token)
        """
        if self.is_encoder_decoder:
            raise ValueError("loglikelihood needs a decoder-only model")
        encoded: list[tuple[list[int], list[int]]] = []
        for context, continuation in pairs:
            if isinstance(context, str) and context:
                n = len(context) - len(context.rstrip())
                if n:
                    context, continuation = context[:-n], context[-n:] + continuation
                whole, ctx = self.encode(context + continuation), self.encode(context)
                cont = whole[len(ctx):] if whole[:len(ctx)] == ctx else self._text_ids(continuation)
            else:
                ctx, cont = (self.encode(context) if context else []), self._text_ids(continuation)
            ctx = ctx or [self.prefix_token()]
            cont = cont[: self.context_length - 1]
            encoded.append((ctx[-(self.context_length - len(cont)):], cont))
        out: list[tuple[float, int] | None] = [None] * len(encoded)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, cont) in enumerate(encoded):
            if not cont:
                out[i] = (0.0, 0)
            else:
                groups.setdefault(tuple(ctx), []).append(i)
        shared = getattr(self, "_score_shared", None)
        priority = as_priority(priority)
        for ctx, idx in groups.items():
            for s in range(0, len(idx), batch_size):
                part = idx[s:s + batch_size]
                conts = [encoded[i][1] for i in part]
                if shared is not None and len(ctx) + max(map(len, conts)) <= self.context_length:
                    scores = self.scheduler.call(lambda c=list(ctx), cs=conts: shared(c, cs), priority)
                else:
                    scores = self._score_windows([(list(ctx) + c, len(c)) for c in conts], batch_size,
                                                 priority=priority)
                for i, sc in zip(part, scores):
                    out[i] = (math.fsum(sc), len(sc))
        return out  # type: ignore[return-value]
