"""Log-likelihoods from llama.cpp's ``llama-server``, which returns no prompt log-probabilities (llama.cpp #27174).

The recipe is lm-evaluation-harness's for llama-server (its README, "Evaluating GGUF Models Served by
llama.cpp"): each continuation token is *generated* with a ``logit_bias`` large enough to force it, and its
log-probability read from ``n_probs``, which llama-server computes from the raw logits before any sampler
(the bias included) runs. One request per scored token, each on the same slot as the tokens before it
(``id_slot`` + ``cache_prompt``), so the server reads only the one new token; the slot count (``/props``
``total_slots``) is how many such chains run at once.

llama-server returns no probability for a generated token whose text is not whole UTF-8 by itself (the
first bytes of a Chinese character, in byte-level BPE) nor for an end-of-generation token: for those, a
token whose text is whole is forced instead, and the wanted token's log-probability read from the same
position's ``top_logprobs`` (``n_probs`` 1,000, then 20,000); counted in ``ranked``.

A server that reported the probability *after* the bias (a forced token at ~1.0) would give every choice
the same score: before the first score, the forced log-probability of the greedy token is checked against
the one the server gives it unforced (:meth:`SlotScorer.check`).
"""

from __future__ import annotations

import math
import queue
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from .server_errors import LogprobsUnreliable, ServerError

FORCE_BIAS = 100.0  # added to the forced token's logit: no other token's logit is 100 nats above it
TOP_TRIES = (1_000, 20_000)  # n_probs asked for a token read from the top list (20,000 entries: ~1.7 MB)
METHOD = ("llama-server: each continuation token forced with logit_bias, its log-probability read from n_probs "
          "(softmax of the raw logits), one slot per chain of tokens (lm-evaluation-harness's recipe)")


def detect(lm) -> dict | None:
    """``/props`` of a llama-server (``total_slots``, ...), or None for any other server."""
    try:
        props = lm._request("GET", "/props", root=True)
    except ServerError:
        return None
    if not isinstance(props, dict) or not isinstance(props.get("total_slots"), int) or props["total_slots"] < 1:
        return None
    return props


class SlotScorer:
    """Forced-token scoring over a llama-server's slots (see the module docstring)."""

    def __init__(self, lm, props: dict):
        self.lm = lm
        self.slots = int(props["total_slots"])
        self._free: queue.Queue[int] = queue.Queue()
        for s in range(self.slots):
            self._free.put(s)
        self._count = threading.Lock()  # the counters below are bumped from one thread per slot
        self.requests = 0  # forced-token requests sent (a scored token is one)
        self.ranked = 0  # tokens read from a top list (their text not whole UTF-8 alone, or end of generation)
        self._whole: int | None = None  # a token whose text is whole UTF-8, forced to read a top list

    # ----------------------------------------------------------- tokens
    def tokenize(self, text: str, special: bool = False) -> list[int]:
        out = self.lm._request("POST", "/tokenize", root=True, json={"content": text, "add_special": special})
        return [int(t if isinstance(t, int) else t["id"]) for t in out["tokens"]]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.lm._request("POST", "/detokenize", root=True, json={"tokens": list(ids)})["content"]

    # ----------------------------------------------------------- scoring
    @contextmanager
    def slot(self) -> Iterator[int]:
        """One slot for a chain of requests that extend each other (its cache holds their common prefix)."""
        s = self._free.get()
        try:
            yield s
        finally:
            self._free.put(s)

    def _ask(self, ids: list[int], slot: int, force: int | None, n_probs: int = 1) -> dict | None:
        """The generated token's entry of completion_probabilities (id, logprob, top_logprobs), or None when
        the server gave none (a token whose text is not whole UTF-8, an end of generation)."""
        body: dict[str, Any] = {"prompt": ids, "n_predict": 1, "n_probs": n_probs, "temperature": -1.0,
                                "id_slot": slot, "cache_prompt": True}
        if force is not None:
            body["logit_bias"] = [[int(force), FORCE_BIAS]]
        with self._count:
            self.requests += 1
        out = self.lm._request("POST", "/completion", root=True, json=body)
        probs = out.get("completion_probabilities") if isinstance(out, dict) else None
        first = probs[0] if isinstance(probs, list) and probs and isinstance(probs[0], dict) else None
        return first if first is not None and "id" in first and "logprob" in first else None

    def _next(self, ids: list[int], slot: int, force: int | None) -> tuple[int, float]:
        first = self._ask(ids, slot, force)
        if first is None:
            raise LogprobsUnreliable(
                f"{self.lm.name}: the llama-server at {self.lm.root_url} answered /completion without "
                "completion_probabilities[0].id/logprob (a llama.cpp from before 2025 names them otherwise); "
                "update llama.cpp or score in process (--model llamacpp:FILE.gguf)")
        return int(first["id"]), float(first["logprob"])

    def _whole_token(self) -> int:
        if self._whole is None:
            out = self.lm._request("POST", "/tokenize", root=True, json={"content": " the", "with_pieces": True})
            whole = [t["id"] for t in out["tokens"] if isinstance(t, dict) and isinstance(t.get("piece"), str)]
            if not whole:
                raise ValueError(f"{self.lm.name}: the llama-server's /tokenize gave no piece of text for ' the'")
            self._whole = int(whole[0])
        return self._whole

    def _from_top(self, ids: list[int], token: int, slot: int) -> float:
        """log p(token | ids) read from the top list at that position, a whole-text token forced there."""
        with self._count:
            self.ranked += 1
        for n in TOP_TRIES:
            first = self._ask(ids, slot, self._whole_token(), n)
            for alt in (first or {}).get("top_logprobs") or []:
                if isinstance(alt, dict) and alt.get("id") == token:
                    return float(alt["logprob"])
        raise LogprobsUnreliable(f"{self.lm.name}: token {token} is not among the {TOP_TRIES[-1]:,} most likely "
                                 f"at its position on the llama-server at {self.lm.root_url}, which gives no "
                                 "probability for it when forced; score this task in process instead")

    def forced(self, ids: list[int], token: int, slot: int) -> float:
        """log p(token | ids): the token generated under a bias that forces it, scored before the bias."""
        first = self._ask(ids, slot, token)
        if first is None:  # its text is not whole UTF-8 alone, or it ends the generation
            return self._from_top(ids, token, slot)
        got, lp = int(first["id"]), float(first["logprob"])
        if got != token:
            raise LogprobsUnreliable(f"{self.lm.name}: the llama-server at {self.lm.root_url} did not generate the "
                                     f"token a logit_bias of {FORCE_BIAS:g} forced ({got} instead of {token})")
        return lp

    def continuation(self, ctx: list[int], cont: list[int], slot: int) -> list[float]:
        """Each continuation token's log-probability given the context and the tokens before it."""
        return [self.forced(ctx + cont[:i], cont[i], slot) for i in range(len(cont))]

    def check(self) -> None:
        """Refuse a server whose forced probability is not the unforced one (it would score after the bias)."""
        ids = self.tokenize("The capital of France is", special=True)
        with self.slot() as s:
            greedy, lp = self._next(ids, s, None)
            # another token forced: its probability must stay a probability of the model, not ~1
            # a token whose text is whole (never an end of generation, which llama-server gives no probability)
            other = self._whole_token() if self._whole_token() != greedy else max(0, greedy - 1)
            forced_greedy = self.forced(ids, greedy, s)
            forced_other = self.forced(ids, other, s)
        if abs(forced_greedy - lp) > 1e-3 * max(1.0, abs(lp)) or forced_other > -1e-6:
            raise LogprobsUnreliable(
                f"{self.lm.name}: the llama-server at {self.lm.root_url} reports probabilities after its "
                f"logit_bias (a forced token scored {math.exp(forced_other):.3f}; the greedy token {lp:.4f} "
                f"unforced, {forced_greedy:.4f} forced), so forced-token scoring through it is refused")
