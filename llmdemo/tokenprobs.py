"""Token probabilities ("why this word"): what the model weighed at each generated token, and branching.

Ask for them with ``GenerationConfig(logprobs=N)``: every generated token then comes with a
:class:`TokenInfo` on ``stream.token_info`` (a list that grows as tokens arrive), taken from the very
logits the sampler picked from, with no second forward pass:

- ``p_before``: the model's own probability of the token (softmax of the raw logits);
- ``p_after``: its probability in the distribution it was actually drawn from, after the repetition
  penalty, suppressed tokens, temperature, top-k and top-p (greedy: 1.0 for the pick, 0 elsewhere);
- ``alternatives``: the ``N`` most likely tokens by ``p_before``, each with both probabilities;
- ``entropy``: of the raw distribution, in nats (divide by ln 2 for bits).

In-process backends (llama.cpp, transformers) give all of it (``TOKEN_PROBS`` in their capabilities).
An OpenAI-compatible server (``SERVER_TOKEN_PROBS``) gives what it returns as ``logprobs`` /
``top_logprobs``, read as "before the settings": ``p_after`` and ``entropy`` are None there, token ids
too, and branching is not offered.

>>> info = TokenInfo(5, " sky", 0.5, 1.0, 1.2, [Alternative(5, " sky", 0.5, 1.0), Alternative(7, " sea", 0.2, 0.0)])
>>> info.chosen(7).text, info.chosen(7).p_before, info.chosen(7).p_after
(' sea', 0.2, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from .config import GenerationConfig
from .errors import InputError, Unavailable
from .interface import TOKEN_PROBS
from .engine.stream import Stats, Stream


@dataclass
class Alternative:
    id: int | None  # None where a server gives only the token's text
    text: str
    p_before: float  # the model's probability (raw logits)
    p_after: float | None  # in the distribution sampled from; None: not known (a server)


@dataclass
class TokenInfo:
    """One generated token: what it was, how likely, and what else the model weighed there."""

    id: int | None
    text: str  # the text this token added to the output (pieces of all tokens join to the output)
    p_before: float
    p_after: float | None
    entropy: float | None  # nats, of the raw distribution; None when not known (a server gives only its top-N)
    alternatives: list[Alternative] = field(default_factory=list)  # most likely first (by p_before)

    @property
    def entropy_bits(self) -> float | None:
        return None if self.entropy is None else self.entropy / math.log(2)

    def chosen(self, token: int) -> "TokenInfo":
        """This position as if ``token`` (one of the alternatives) had been picked: the branch's first token."""
        alt = next((a for a in self.alternatives if a.id == token), None)
        if alt is None:
            raise InputError("input.no_alternative", token=token)
        return replace(self, id=alt.id, text=alt.text, p_before=alt.p_before, p_after=alt.p_after,
                       alternatives=list(self.alternatives))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TokenInfo":
        d = dict(d)
        d["alternatives"] = [Alternative(**a) for a in d.get("alternatives") or []]
        return cls(**d)


def info_of(probs, text: str, piece: Callable[[int], str]) -> TokenInfo:
    """A :class:`TokenInfo` from the sampler's numbers (``sampling.TokenProbs``); ``piece(id)`` names an
    alternative (its text alone, so a token that is half a character shows as "\ufffd")."""
    alts = [Alternative(int(i), piece(int(i)), float(b), float(a))
            for i, b, a in zip(probs.top_ids, probs.top_before, probs.top_after)]
    return TokenInfo(int(probs.token), text, float(probs.p_before), float(probs.p_after), float(probs.entropy), alts)


def trim(infos: list[TokenInfo], text: str) -> None:
    """Cut ``infos`` (in place) to the tokens that make ``text``, the output as finally shown (a stop
    string cuts it inside or after a token: the tokens past the cut go, the last one's text is clipped)."""
    at = 0
    for k, info in enumerate(infos):
        if at >= len(text) and info.text:
            del infos[k:]
            return
        room = len(text) - at
        if len(info.text) > room:
            info.text = info.text[:room]
        at += len(info.text)


def branch_ids(lm, prompt: Any, tokens: Sequence[int], i: int, alternative: int,
               config: GenerationConfig) -> tuple[list[int], GenerationConfig | None]:
    """The ids to generate on from and the settings to use (None: the limit leaves no token): see :func:`branch`."""
    caps = getattr(lm, "capabilities", frozenset())
    if TOKEN_PROBS not in caps or getattr(lm, "is_encoder_decoder", False):
        backend = lm.info().get("backend", "this") if hasattr(lm, "info") else "this"
        raise Unavailable("backend.unavailable", what="branching from a token", backend=backend, model=lm.name)
    if not 0 <= i < len(tokens) + 1:
        raise InputError("input.no_position", i=i, n=len(tokens))
    ids = list(lm.encode(prompt)) + [int(t) for t in tokens[:i]] + [int(alternative)]
    left = config.max_new_tokens - (i + 1)
    return ids, (config.replace(max_new_tokens=left) if left >= 1 else None)


def branch(lm, prompt: Any, tokens: Sequence[int], i: int, alternative: int, config: GenerationConfig,
           **stream_kw) -> Stream:
    """Generate on from ``prompt`` + ``tokens[:i]`` + ``[alternative]`` with the same settings.

    ``prompt`` is what ``lm.encode`` takes (text, chat messages or token ids); ``tokens`` are the
    generated ids so far. The stream gives the text after the alternative; the whole answer keeps the
    config's token limit (``max_new_tokens`` counts the ``i + 1`` tokens already there). The seed
    starts again at the branch point, so a sampled continuation is not the original one's draws.

        prompt   p p p p
        tokens           t0 t1 t2 t3        i = 2, alternative a
        branch   p p p p t0 t1 a  ...       the stream gives what follows a
    """
    ids, cfg = branch_ids(lm, prompt, tokens, i, alternative, config)
    if cfg is None or int(alternative) in getattr(lm, "eos_ids", ()):  # the limit, or the end of text, chosen
        stats = Stats(prompt_tokens=len(ids), finish_reason="length" if cfg is None else "eos", seed=config.seed)
        return Stream(lambda handle: iter(()), stats)
    return lm.stream(ids, cfg, **stream_kw)
