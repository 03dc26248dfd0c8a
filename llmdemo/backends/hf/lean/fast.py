"""A lean forward pass for Llama-architecture decoders (the default SmolLM2), used while generating.

Why: decoding one token of the 135M default model with the ``transformers`` forward spends
about as long in Python and small tensor ops (a cache that grows by ``cat``, masks rebuilt
every step, 30 layers of module calls) as in the matrix products themselves, and the products
read every weight once per token, so their speed is set by bytes read. This module:

* runs the same arithmetic as ``LlamaForCausalLM`` with fewer, larger ops: q/k/v in one
  product, gate/up in one product, a key/value cache allocated once and written in place;
* can keep the linear weights of the decoder layers in 16 bits (half the bytes per token;
  activations, norms, attention, the output layer and the logits stay float32), multiplied by
  torch's default kernels or by oneDNN with weights packed once for it (see :data:`KERNELS`).

Which kernel is fastest depends on the CPU (float16 products are fast only with native float16
math, bfloat16 ones with AVX512-BF16/AMX), so ``llmdemo.backends.hf.lean.tuning`` measures them on the machine at
hand instead of this module guessing.

Rotary embeddings come from the model's own ``rotary_emb`` module, so every RoPE variant
``transformers`` implements for Llama is honoured. Anything this module does not handle
(other architectures, biases in the MLP, ...) makes :func:`unsupported` say why, and the
caller keeps the ``transformers`` forward.

Scoring (perplexity, log-likelihoods) and the "Inside the model" tab use the ``transformers``
forward with the weights as loaded; only generation goes through here.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .kvcache import KVCache

# name -> (weight dtype, packed for oneDNN). "float32" shares the model's own tensors.
KERNELS: dict[str, tuple[torch.dtype, bool]] = {
    "float32": (torch.float32, False),
    "float16": (torch.float16, False),
    "bfloat16": (torch.bfloat16, False),
    "bfloat16-onednn": (torch.bfloat16, True),
    "float16-onednn": (torch.float16, True),
}
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def fuse(linears: Sequence[Any], dtype: torch.dtype) -> torch.Tensor:
    """The weights of linears that read the same input, stacked into one (out, in) matrix of ``dtype``."""
    return torch.cat([lin.weight.detach() for lin in linears], dim=0).to(dtype).contiguous()


def fused_weights(model: Any, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every decoder layer's linear weights as :class:`FastLlama` uses them (q/k/v and gate/up stacked), in ``dtype``."""
    out = {}
    for i, layer in enumerate(model.model.layers):
        at, mlp = layer.self_attn, layer.mlp
        out[f"{i}.qkv"] = fuse((at.q_proj, at.k_proj, at.v_proj), dtype)
        out[f"{i}.o"] = fuse((at.o_proj,), dtype)
        out[f"{i}.gate_up"] = fuse((mlp.gate_proj, mlp.up_proj), dtype)
        out[f"{i}.down"] = fuse((mlp.down_proj,), dtype)
    return out


@functools.lru_cache(maxsize=None)  # the probe runs a oneDNN product: once per kernel per process
def kernel_unavailable(kernel: str) -> str | None:
    """Why this torch build cannot run ``kernel`` here, or None when it can."""
    if kernel not in KERNELS:
        return f"unknown kernel {kernel!r}"
    dtype, packed = KERNELS[kernel]
    if not packed:
        return None
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (mkldnn)"
    try:  # the private ops inductor uses for the same purpose; absent or failing in some builds
        w = torch.ops.mkldnn._reorder_linear_weight(torch.zeros(8, 8, dtype=dtype), 1)
        torch.ops.mkldnn._linear_pointwise(torch.zeros(1, 8, dtype=dtype), w, None, "none", [], "")
    except Exception as e:  # noqa: BLE001 - any failure means: not here
        return f"oneDNN {dtype} linear failed: {type(e).__name__}"
    return None


def unsupported(model: Any) -> str | None:
    """Why the lean forward cannot run this model, or None when it can."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "llama":
        return "only Llama-architecture models have the lean forward"
    if getattr(cfg, "is_encoder_decoder", False):
        return "encoder-decoder model"
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "mlp_bias", False):
        return "MLP differs from Llama's"
    if getattr(cfg, "pretraining_tp", 1) not in (None, 1):
        return "pretraining_tp > 1"
    base = getattr(model, "model", None)
    if base is None or not hasattr(base, "layers") or not hasattr(base, "rotary_emb"):
        return "unexpected module layout"
    head = model.get_output_embeddings()
    if getattr(head, "weight", None) is None or getattr(head, "bias", None) is not None:
        return "output layer is not a plain Linear"
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return "logits are scaled"
    return None


class Rope:
    """Llama's default rotary embedding, computed as ``LlamaRotaryEmbedding`` computes it (the lean start has
    no transformers module to ask); tests/test_lightload.py compares the two."""

    rope_type = "default"

    def __init__(self, cfg: Any):
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        base = cfg.rope_parameters["rope_theta"]
        self.inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))

    def __call__(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


class FastLlama:
    """Weights gathered from a loaded ``LlamaForCausalLM``. A sequence's cache is :meth:`new_kv`; a prompt
    chunk goes through :meth:`forward`, a step of many sequences through :meth:`decode` (the runner's two
    calls, llmdemo/engine/runner.py)."""

    def __init__(self, model: Any, kernel: str | torch.dtype = "float32", batch_hint: int = 1,
                 fused: dict[str, torch.Tensor] | None = None):
        why = unsupported(model)
        if why:
            raise ValueError(why)
        kernel = _DTYPE_NAMES.get(kernel, kernel) if isinstance(kernel, torch.dtype) else kernel
        why = kernel_unavailable(kernel)
        if why:
            raise ValueError(why)
        cfg = model.config
        self.model = model
        self.kernel = kernel
        weight_dtype, self.packed = KERNELS[kernel]
        self.weight_dtype = weight_dtype
        self._nbytes = 0  # bytes of weights held beyond the model's own
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.q_size = self.n_heads * self.head_dim
        self.kv_size = self.n_kv * self.head_dim
        self.scale = self.head_dim ** -0.5
        base = model.model
        self.embed = base.embed_tokens.weight  # lookups read one row: kept as loaded
        self.rotary = base.rotary_emb
        self.norm_w, self.norm_eps = base.norm.weight.float(), base.norm.variance_epsilon

        def w(key: str, *linears):
            if fused is not None:  # already fused and converted (LeanWeights.fused: a cache file)
                t = fused[key]
                self._nbytes += t.numel() * t.element_size() if t.dtype != torch.float32 or self.packed else 0
            elif weight_dtype == linears[0].weight.dtype and not self.packed:
                if len(linears) == 1:
                    return linears[0].weight.detach()  # the model's own tensor
                # fuse, then point the model's layers at slices of the fused tensor: no second copy
                t = torch.cat([lin.weight.detach() for lin in linears], dim=0)
                at = 0
                for lin in linears:
                    n = lin.weight.shape[0]
                    lin.weight = torch.nn.Parameter(t[at:at + n], requires_grad=lin.weight.requires_grad)
                    at += n
                return t
            else:
                t = fuse(linears, weight_dtype)
                self._nbytes += t.numel() * t.element_size()
            if self.packed:  # oneDNN's own layout, packed once for rows of about ``batch_hint``
                return _Packed(torch.ops.mkldnn._reorder_linear_weight(t, batch_hint), weight_dtype)
            return t

        def b(*linears):
            if all(lin.bias is None for lin in linears):
                return None
            return torch.cat([lin.bias.detach() if lin.bias is not None else torch.zeros(lin.out_features)
                              for lin in linears]).float()

        self.inter = base.layers[0].mlp.gate_proj.out_features
        self.layers = []
        for i, layer in enumerate(base.layers):
            at, mlp = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.float(), layer.input_layernorm.variance_epsilon,
                w(f"{i}.qkv", at.q_proj, at.k_proj, at.v_proj), b(at.q_proj, at.k_proj, at.v_proj),
                w(f"{i}.o", at.o_proj), b(at.o_proj),
                layer.post_attention_layernorm.weight.float(), layer.post_attention_layernorm.variance_epsilon,
                w(f"{i}.gate_up", mlp.gate_proj, mlp.up_proj), w(f"{i}.down", mlp.down_proj),
            ))
        # the output layer stays float32 (the model's own tensor, no copy): float16 logits come in
        # steps of 1/64 near 16, which turns close candidates into ties
        self.head = model.get_output_embeddings().weight.detach()
        # cos/sin for positions 0..n-1 computed once by the model's own rotary module (one call
        # per step otherwise: a dozen small ops); only for variants whose values do not depend
        # on the sequence seen ("dynamic" scaling changes them with the length)
        self._rope_static = getattr(self.rotary, "rope_type", "default") in ("default", "linear", "llama3")
        self._cos = self._sin = None

    def _rope(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (B, T, 1, D) float32 for positions ``pos`` (B, T)."""
        if not self._rope_static:
            cos, sin = self.rotary(x, pos)
        else:
            top = int(pos.max()) + 1
            if self._cos is None or top > self._cos.shape[0]:
                n = max(1024, 1 << (top - 1).bit_length())
                cos, sin = self.rotary(x[:1, :1], torch.arange(n, device=pos.device)[None])
                self._cos, self._sin = cos[0].float(), sin[0].float()  # (n, D)
            cos, sin = self._cos[pos], self._sin[pos]
        return cos[:, :, None].float(), sin[:, :, None].float()

    def own_tensors(self, like: "FastLlama | None" = None) -> None:
        """Copy the tensors still shared with the source file (embeddings, norms) into memory of their
        own and drop the source, so that the file's memory maps close (the float32 decoder weights it
        also holds are never read). ``like``: another FastLlama of the same model whose copies to share."""
        if like is not None:
            self.embed, self.head, self.norm_w = like.embed, like.head, like.norm_w
        else:
            tied = self.head.data_ptr() == self.embed.data_ptr()
            self.embed = self.embed.clone()
            self.head = self.embed if tied else self.head.clone()
            self.norm_w = self.norm_w.clone()
        self.layers = [tuple(t.clone() if isinstance(t, torch.Tensor) and t.dim() == 1 else t for t in layer)
                       for layer in self.layers]
        self.model = None

    def nbytes(self) -> int:
        """Bytes of the weights this object holds beyond the model's own (16-bit copies; float32 shares)."""
        return self._nbytes

    def _linear(self, x: torch.Tensor, weight: Any, bias: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(weight, _Packed):
            y = torch.ops.mkldnn._linear_pointwise(x.to(weight.dtype), weight.w, None, "none", [], "").float()
        elif weight.dtype != torch.float32:
            y = F.linear(x.to(weight.dtype), weight).float()
        else:
            y = F.linear(x, weight)
        return y + bias if bias is not None else y

    @staticmethod
    def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)

    def new_kv(self, capacity: int) -> KVCache:
        """An empty one-sequence cache with room for ``capacity`` tokens (it grows when needed)."""
        return KVCache(len(self.layers), self.n_kv, self.head_dim, capacity, self.embed.device)

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, pos: torch.Tensor, cache: KVCache, start: int,
                last_only: bool = True) -> torch.Tensor:
        """Logits (float32) for one sequence's ``ids`` (1, T) at ``cache`` slots ``start..start+T-1``.

        ``pos`` (1, T) are the rotary positions. Returns (1, V) for the last position, or (1, T, V).
        """
        cache.reserve(start + ids.shape[1])
        cache.length = start + ids.shape[1]
        layers = cache.layers
        bsz, t = ids.shape
        end = start + t
        x = F.embedding(ids, self.embed).float()  # (B, T, H)
        cos, sin = self._rope(x, pos)  # (B, T, 1, D): broadcast over heads
        half = self.head_dim // 2
        mask = None
        causal = False
        if t > 1:
            if start == 0:
                causal = True
            else:  # queries after a cached prefix: each sees the prefix and the new tokens up to itself
                q_at = torch.arange(start, end, device=ids.device)[:, None]
                mask = torch.arange(end, device=ids.device)[None, :] <= q_at
        for (n1, e1, wqkv, bqkv, wo, bo, n2, e2, wgu, wd), (kc, vc) in zip(self.layers, layers):
            h = self._rms(x, n1, e1)
            qkv = self._linear(h, wqkv, bqkv)  # (B, T, q + 2kv)
            # rotary embedding on q and k heads together: x * cos + rotate_half(x) * sin
            qk = qkv[..., : self.q_size + self.kv_size].view(bsz, t, self.n_heads + self.n_kv, self.head_dim)
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
            q = qk[:, :, : self.n_heads].transpose(1, 2)
            k = qk[:, :, self.n_heads:].transpose(1, 2)
            v = qkv[..., self.q_size + self.kv_size:].view(bsz, t, self.n_kv, self.head_dim).transpose(1, 2)
            kc[:, :, start:end] = k
            vc[:, :, start:end] = v
            a = F.scaled_dot_product_attention(q, kc[:, :, :end], vc[:, :, :end], attn_mask=mask, is_causal=causal,
                                               scale=self.scale, enable_gqa=self.n_kv != self.n_heads)
            x = x + self._linear(a.transpose(1, 2).reshape(bsz, t, self.q_size), wo, bo)
            h = self._rms(x, n2, e2)
            gu = self._linear(h, wgu)
            x = x + self._linear(F.silu(gu[..., : self.inter]) * gu[..., self.inter:], wd)
        if last_only:
            x = x[:, -1]
        return self._linear(self._rms(x, self.norm_w, self.norm_eps), self.head)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, caches: Sequence[KVCache]) -> torch.Tensor:
        """One decode step for ``B`` sequences of any lengths: logits (B, V) float32 for ``ids`` (B,).

        Each sequence's new token goes at the end of its own cache. The matrix products (which read
        the weights, the cost of a step) run once for all rows; attention runs per row over that
        row's own keys, exactly as it would alone, so no padding or mask is needed.
        """
        bsz = ids.shape[0]
        lens = [c.length for c in caches]
        for c in caches:
            c.reserve(c.length + 1)
            c.length += 1
        pos = torch.tensor(lens, device=ids.device)[:, None]  # (B, 1)
        x = F.embedding(ids[:, None], self.embed).float()  # (B, 1, H)
        cos, sin = self._rope(x, pos)  # (B, 1, 1, D)
        half = self.head_dim // 2
        gqa = self.n_kv != self.n_heads
        for li, (n1, e1, wqkv, bqkv, wo, bo, n2, e2, wgu, wd) in enumerate(self.layers):
            h = self._rms(x, n1, e1)
            qkv = self._linear(h, wqkv, bqkv)  # (B, 1, q + 2kv)
            qk = qkv[..., : self.q_size + self.kv_size].view(bsz, 1, self.n_heads + self.n_kv, self.head_dim)
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
            q = qk[:, :, : self.n_heads].transpose(1, 2)  # (B, heads, 1, D)
            k = qk[:, :, self.n_heads:].transpose(1, 2)  # (B, kv, 1, D)
            v = qkv[..., self.q_size + self.kv_size:].view(bsz, 1, self.n_kv, self.head_dim).transpose(1, 2)
            outs = []
            for b, (c, n) in enumerate(zip(caches, lens)):
                kc, vc = c.layers[li]
                kc[:, :, n:n + 1] = k[b:b + 1]
                vc[:, :, n:n + 1] = v[b:b + 1]
                outs.append(F.scaled_dot_product_attention(q[b:b + 1], kc[:, :, :n + 1], vc[:, :, :n + 1],
                                                           scale=self.scale, enable_gqa=gqa))
            a = torch.cat(outs) if bsz > 1 else outs[0]  # (B, heads, 1, D)
            x = x + self._linear(a.transpose(1, 2).reshape(bsz, 1, self.q_size), wo, bo)
            h = self._rms(x, n2, e2)
            gu = self._linear(h, wgu)
            x = x + self._linear(F.silu(gu[..., : self.inter]) * gu[..., self.inter:], wd)
        return self._linear(self._rms(x[:, -1], self.norm_w, self.norm_eps), self.head)


class _Packed:
    """A linear weight in oneDNN's packed layout (an opaque tensor) and the dtype inputs must have."""

    __slots__ = ("w", "dtype")

    def __init__(self, w: torch.Tensor, dtype: torch.dtype):
        self.w, self.dtype = w, dtype
