"""A look inside the loaded model: tokens, next-token probabilities, surprisal, attention.

These functions back the app's "Inside the model" tab; they use the same :class:`~llmdemo.backends.hf.model.LM`
as generation and evaluation, so what they show is what the other tabs run.

Surprisal of token i is ``-log p(token_i | tokens before it)`` in nats. Its sum over a text is the
negative log-likelihood that the perplexity code computes, so ``exp(sum / n_tokens)`` is the
text's perplexity.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from .config import ConfigError
from .errors import Notice, Unavailable

MAX_ATTENTION_TOKENS = 256  # attention maps grow with T^2; longer texts are cut with a notice


@dataclass(frozen=True)
class Token:
    id: int
    text: str  # the token decoded on its own (spaces and partial characters shown as they are)


def _decoder_only(lm) -> None:
    if lm.is_encoder_decoder:
        raise Unavailable("backend.encoder_decoder", model=lm.name)


def tokens(lm, text: str) -> list[Token]:
    """The text's tokens, without special tokens."""
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return [Token(int(i), lm.tokenizer.decode([i], clean_up_tokenization_spaces=False)) for i in ids]


def _without_grad(fn):
    """``torch.no_grad()`` around ``fn``, torch imported at the first call: building the app (the Inside
    tab's sliders read :func:`layer_head_counts`) must not import torch (1.5 s of the page's start)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)
    return wrapper


@_without_grad
def next_token_distribution(lm, prompt, k: int = 10) -> tuple[list[tuple[Token, float]], float]:
    """Top-``k`` next tokens with probabilities after ``prompt`` (str, messages or ids),
    and the total probability over the whole vocabulary (1 up to rounding)."""
    _decoder_only(lm)
    if isinstance(prompt, str):  # plain text starts from BOS, as in surprisal and perplexity
        ids = [lm.prefix_token()] + lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = lm.encode(prompt)
    import torch

    ids = ids[-lm.context_length:]
    x = torch.tensor([ids], device=lm.device)
    # on the model's thread, between generation steps (the scheduler owns the model)
    logits = lm.call(lambda: _no_grad(lm.model)(input_ids=x).logits[0, -1].float())  # (V,)
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs, min(k, probs.shape[-1]))
    out = [(Token(int(i), lm.tokenizer.decode([int(i)], clean_up_tokenization_spaces=False)), float(p))
           for p, i in zip(top.values, top.indices)]
    return out, float(probs.sum())


def surprisal(lm, text: str, max_length: int | None = None) -> list[tuple[Token, float]]:
    """Each token with its surprisal in nats, through the same code as perplexity."""
    _decoder_only(lm)
    ids, lps = lm.token_logprobs(text, max_length=max_length)
    return [(Token(int(i), lm.tokenizer.decode([i], clean_up_tokenization_spaces=False)), -lp)
            for i, lp in zip(ids, lps)]


def _no_grad(fn):
    import torch

    return torch.no_grad()(fn)


def perplexity_of(scores: list[tuple[Token, float]]) -> float:
    return math.exp(sum(s for _, s in scores) / len(scores)) if scores else float("nan")


@_without_grad
def attention(lm, text: str, layer: int = -1, head: int | None = None,
              max_tokens: int = MAX_ATTENTION_TOKENS) -> tuple[list[Token], torch.Tensor, str | None]:
    """Attention weights (T, T) of one layer, for one head or averaged over heads (``head=None``).

    Row i holds how much position i attends to each position j <= i (rows sum to 1). The text is
    prefixed with BOS, which often draws much attention ("attention sink"). Eager attention is
    switched on for this call only: the fast kernels used elsewhere do not return weights.
    """
    _decoder_only(lm)
    toks = tokens(lm, text)
    notice = None
    if len(toks) > max_tokens - 1:
        toks = toks[: max_tokens - 1]
        notice = Notice("notice.attention", n=max_tokens - 1)
    import torch

    bos = lm.prefix_token()
    ids = torch.tensor([[bos] + [t.id for t in toks]], device=lm.device)
    model = lm.model
    before = model.config._attn_implementation
    def eager_attention():
        # the switch is model-wide: on the model's thread, nothing else runs on the model meanwhile
        model.set_attn_implementation("eager")
        try:
            return _no_grad(model)(input_ids=ids, output_attentions=True).attentions  # layers x (1, H, T, T)
        finally:
            model.set_attn_implementation(before)

    att = lm.call(eager_attention)
    n_layers = len(att)
    if not -n_layers <= layer < n_layers:
        raise ConfigError("config.range", name="layer", range=f"[0, {n_layers - 1}]", value=layer)
    a = att[layer][0].float()  # (H, T, T)
    if head is None:
        m = a.mean(dim=0)
    else:
        if not 0 <= head < a.shape[0]:
            raise ConfigError("config.range", name="head", range=f"[0, {a.shape[0] - 1}]", value=head)
        m = a[head]
    first = Token(bos, lm.tokenizer.decode([bos], clean_up_tokenization_spaces=False))
    return [first] + toks, m.cpu(), notice


def layer_head_counts(lm) -> tuple[int, int]:
    """Layers and attention heads: from a transformers config, or from what a GGUF says (llama.cpp)."""
    if getattr(lm, "n_layers", None) and getattr(lm, "n_heads", None):
        return int(lm.n_layers), int(lm.n_heads)
    c = lm.config
    layers = getattr(c, "num_hidden_layers", None) or getattr(c, "n_layer", 1)
    heads = getattr(c, "num_attention_heads", None) or getattr(c, "n_head", 1)
    return int(layers), int(heads)
