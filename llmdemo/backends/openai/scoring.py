"""Log-likelihoods for the ``openai:`` backend: completions with ``echo`` and ``logprobs`` over token ids (as
lm-evaluation-harness's ``local-completions``), after a check of the server against itself; llama.cpp's
llama-server through its slots instead (llamaserver.py)."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable

from ...engine.stream import rolling_windows
from ..server_errors import LogprobsUnreliable


class _Scoring:
    """Scoring for :class:`~llmdemo.backends.openai.model.OpenAILM`."""

    # ------------------------------------------------------------ scoring
    def _echo(self, ids: list[int]) -> list[float | None]:
        """The server's log-probability of each prompt token given those before it (first: None)."""
        out = self._request("POST", "/completions", json={
            "model": self.model, "prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0.0})
        lp = ((out.get("choices") or [{}])[0].get("logprobs") or {}).get("token_logprobs") or []
        return list(lp[: len(ids)])

    def check_logprobs(self) -> None:
        """Refuse scoring unless the server's echoed prompt log-probabilities agree with its own generation."""
        with self._check_lock:
            if self._checked:
                return
            if self._scorer is not None:  # no prompt log-probabilities here: forced tokens instead
                self._scorer.check()
                self._checked = True
                return
            # text prompts: every server takes them (llama-cpp-python's refuses token ids)
            ctx = "The capital of France is"
            out = self._request("POST", "/completions", json={
                "model": self.model, "prompt": ctx, "max_tokens": 1, "logprobs": 1, "temperature": 0.0})
            choice = (out.get("choices") or [{}])[0]
            gen_lps = (choice.get("logprobs") or {}).get("token_logprobs") or []
            g_text = choice.get("text", "")
            if not gen_lps or gen_lps[0] is None or not g_text:
                raise LogprobsUnreliable(f"{self.name}: the server at {self.root_url} returned no log-probability "
                                         "for a generated token; it cannot score texts")
            out = self._request("POST", "/completions", json={
                "model": self.model, "prompt": ctx + g_text, "max_tokens": 1, "echo": True, "logprobs": 1,
                "temperature": 0.0})
            echoed = ((out.get("choices") or [{}])[0].get("logprobs") or {}).get("token_logprobs") or []
            echoed = echoed[:-1]  # the prompt's, without the one new token
            if len(echoed) < 2 or echoed[-1] is None or all(x is None for x in echoed[1:]):
                raise LogprobsUnreliable(
                    f"{self.name}: the server at {self.root_url} returns no prompt log-probabilities with echo "
                    "(llama.cpp's llama-server does this), so perplexity through it would be meaningless; "
                    "use a server that does (vLLM) or the in-process llamacpp backend")
            if abs(echoed[-1] - gen_lps[0]) > 1e-3 * max(1.0, abs(gen_lps[0])):
                raise LogprobsUnreliable(
                    f"{self.name}: the server at {self.root_url} gives inconsistent prompt log-probabilities "
                    f"(a greedy token scored {gen_lps[0]:.4f} when generated but {echoed[-1]:.4f} when echoed back; "
                    "llama-cpp-python's server is one position off, its issue #1983), so perplexity through it "
                    "is refused; use vLLM or the in-process llamacpp backend")
            self._checked = True

    def token_logprobs(self, text: str, max_length: int | None = None, stride: int | None = None,
                       batch_size: int = 4, progress: Callable[[int, int], None] | None = None,
                       priority: Any = None) -> tuple[list[int], list[float]]:
        """Text tokens and the log-probability of each given all before it, in rolling windows as
        :func:`llmdemo.engine.stream.rolling_windows` places them; windows are sent as many at a time as the
        concurrency controller allows."""
        self.check_logprobs()
        ids = self._tokenize(text)
        if not ids:
            return [], []
        full = [self.prefix_token()] + ids
        max_length = min(max_length or self.context_length, self.context_length - 1)
        stride = stride or max_length // 2
        windows = rolling_windows(len(full), max_length, stride)
        scores: list[list[float]] = [[] for _ in windows]
        done = 0
        # batch_size windows at once at most (1: --reproducible), each thread waiting for a slot
        with ThreadPoolExecutor(max(1, min(self.max_concurrency, batch_size))) as pool:
            futs = {pool.submit(self._window, full[b:e], n): k for k, (b, e, n) in enumerate(windows)}
            for fut in as_completed(futs):
                k = futs[fut]
                n = windows[k][2]
                lps = fut.result()[-n:]
                if len(lps) != n or any(x is None for x in lps):
                    raise LogprobsUnreliable(f"{self.name}: the server returned {len(lps)} log-probabilities "
                                             f"for a window of {n} scored tokens")
                scores[k] = [float(x) for x in lps]
                done += 1
                if progress is not None:
                    progress(done, len(windows))
        return ids, [lp for s in scores for lp in s]

    def _window(self, ids: list[int], n: int) -> list[float | None]:
        """Log-probabilities of a window's tokens (its last ``n`` at least; the first may be None)."""
        if self._scorer is None:
            return self._echo(ids)
        with self._scorer.slot() as slot:  # one window, one slot: each forced token extends the last one's prompt
            return self._scorer.continuation(ids[:-n], ids[-n:], slot)

    def loglikelihood_rolling(self, text: str, max_length: int | None = None, stride: int | None = None,
                              batch_size: int = 4, priority: Any = None) -> tuple[float, int]:
        _, lps = self.token_logprobs(text, max_length, stride, batch_size)
        return math.fsum(lps), len(lps)

    def loglikelihood(self, context: Any, continuation: str, priority: Any = None) -> tuple[float, int]:
        self.check_logprobs()
        ctx, cont = self._pair(context, continuation)
        if not cont:
            return 0.0, 0
        lps = self._window(ctx + cont, len(cont))[-len(cont):]
        return math.fsum(float(x) for x in lps), len(cont)

    def _pair(self, context: Any, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation tokens, cut to fit the context window (the context from its start)."""
        ctx = self.encode(context) if context else []
        ctx = ctx or [self.prefix_token()]
        cont = self._tokenize(continuation)[: self.context_length - 2]
        return ctx[-(self.context_length - 1 - len(cont)):], cont

    def loglikelihood_batch(self, pairs, batch_size: int = 16, priority: Any = None) -> list[tuple[float, int]]:
        """One echo request per pair, as many in flight as the concurrency controller allows (servers share no
        prefix across requests). On a llama-server, the pairs that share a context (a question's choices) go
        to one slot one after the other, so its cache holds the context once."""
        if self._scorer is None:
            with ThreadPoolExecutor(self.max_concurrency) as pool:  # threads wait for a slot
                return list(pool.map(lambda p: self.loglikelihood(p[0], p[1]), pairs))
        self.check_logprobs()
        groups: dict[str, list[int]] = {}
        for i, (c, _) in enumerate(pairs):
            groups.setdefault(json.dumps(c, ensure_ascii=False), []).append(i)
        out: list[tuple[float, int]] = [(0.0, 0)] * len(pairs)

        def one_group(idx: list[int]) -> None:
            with self._scorer.slot() as slot:
                for i in idx:
                    ctx, cont = self._pair(*pairs[i])
                    lps = self._scorer.continuation(ctx, cont, slot) if cont else []
                    out[i] = (math.fsum(lps), len(cont))

        with ThreadPoolExecutor(self._scorer.slots) as pool:
            list(pool.map(one_group, groups.values()))
        return out
