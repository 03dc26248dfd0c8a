"""The transformers backend's runners (see ``llmdemo/engine/runner.py`` for what a runner does).

:class:`LeanRunner` batches decode steps over sequences of any length (the lean Llama forward);
:class:`HFRunner` uses the model's own ``transformers`` forward, one sequence at a time
(any architecture, encoder-decoders included).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from ...engine.runner import PromptThenDecode, Sequence
from .lean.kvcache import MAX_CHUNK, PrefixCache, chunk_ends


class LeanRunner(PromptThenDecode):
    """The lean Llama forward (``llmdemo.backends.hf.lean.fast``): chunked prefill with prefix reuse, batched decode steps.

    Prompts and decode steps may use different kernels (``prefill_fast``, e.g. bfloat16 where the
    CPU multiplies it fast in large blocks); both write the same float32 key/value caches.
    """

    name = "lean"

    def __init__(self, fast, prefix: PrefixCache, prefill_fast=None):
        self.fast = fast
        self.prefill_fast = prefill_fast or fast
        self.prefix = prefix

    def start(self, seq: Sequence) -> None:
        reuse, cache = self.prefix.take(seq.prompt)
        if cache is None:
            # room for the prompt and the first new tokens; the cache doubles when it fills
            cache = self.fast.new_kv(-(-(len(seq.prompt) + min(seq.budget, 128)) // MAX_CHUNK) * MAX_CHUNK)
        seq.state, seq.filled, seq.reused = cache, reuse, reuse

    @torch.no_grad()
    def prefill(self, seq: Sequence) -> np.ndarray | None:
        end = next(e for e in chunk_ends(len(seq.prompt)) if e > seq.filled)
        dev = self.fast.embed.device
        ids = torch.tensor([seq.prompt[seq.filled:end]], device=dev)  # (1, T)
        pos = torch.arange(seq.filled, end, device=dev)[None]  # (1, T)
        logits = self.prefill_fast.forward(ids, pos, seq.state, seq.filled)  # (1, V)
        seq.filled = end
        return _numpy(logits[0]) if seq.prefilled else None

    def decode(self, seqs: list[Sequence], tokens: list[int]) -> np.ndarray:
        ids = torch.tensor(tokens, device=self.fast.embed.device)
        return _numpy(self.fast.decode(ids, [s.state for s in seqs]))

    def finish(self, seq: Sequence, keep_prefix: bool) -> None:
        if keep_prefix and seq.prefilled:
            self.prefix.put(seq.prompt, seq.state)
        seq.state = None


class HFRunner(PromptThenDecode):
    """The model's own forward with a ``transformers`` cache per sequence, one sequence per call.

    Serves every architecture (encoder-decoders too) and GPUs; decode steps of several
    sequences run one after the other, so requests interleave rather than batch.
    """

    name = "transformers"

    def __init__(self, lm):
        self.lm = lm
        self.model = lm.model
        params = inspect.signature(lm.model.forward).parameters
        self._keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        # transformers 5.24 calls the KV cache argument `cache`; earlier 5.x releases `past_key_values`
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def start(self, seq: Sequence) -> None:
        from transformers import DynamicCache, EncoderDecoderCache

        seq.filled = seq.reused = 0
        if self.lm.is_encoder_decoder:
            seq.state = EncoderDecoderCache(DynamicCache(), DynamicCache())
        else:
            seq.state = DynamicCache()

    @torch.no_grad()
    def prefill(self, seq: Sequence) -> np.ndarray:
        lm, dev = self.lm, self.lm.device
        ids = torch.tensor([seq.prompt], device=dev)  # (1, T)
        seq.filled = len(seq.prompt)
        if lm.is_encoder_decoder:
            start = lm.config.decoder_start_token_id
            start = lm.pad_id if start is None else int(start)
            seq.encoder = self.model.get_encoder()(input_ids=ids, attention_mask=torch.ones_like(ids))
            seq.seen = [start]  # HF applies the penalty to decoder tokens here
            logits = self._dec(seq, start)
            if lm._forced_bos is not None:  # the first token is forced (e.g. the target language)
                forced = torch.full_like(logits, float("-inf"))
                forced[:, int(lm._forced_bos)] = 0.0
                logits = forced
            return _numpy(logits[0])
        pos = torch.arange(len(seq.prompt), device=dev)[None]
        out = self.model(input_ids=ids, position_ids=pos, use_cache=True, **self._keep,
                         **{self._cache_arg: seq.state})
        return _numpy(out.logits[0, -1, :])  # (V,)

    def _dec(self, seq: Sequence, token: int) -> torch.Tensor:
        ids = torch.tensor([[token]], device=self.lm.device)
        out = self.model(encoder_outputs=seq.encoder, decoder_input_ids=ids, use_cache=True,
                         **{self._cache_arg: seq.state})
        return out.logits[:, -1, :].float()

    @torch.no_grad()
    def decode(self, seqs: list[Sequence], tokens: list[int]) -> np.ndarray:
        rows = []
        for seq, tok in zip(seqs, tokens):
            if self.lm.is_encoder_decoder:
                rows.append(self._dec(seq, tok))
                continue
            at = len(seq.prompt) + len(seq.new) - 1  # the position of the token fed now
            out = self.model(input_ids=torch.tensor([[tok]], device=self.lm.device),
                             position_ids=torch.tensor([[at]], device=self.lm.device), use_cache=True,
                             **self._keep, **{self._cache_arg: seq.state})
            rows.append(out.logits[:, -1, :].float())
        return _numpy(torch.cat(rows))  # (B, V)

    def finish(self, seq: Sequence, keep_prefix: bool) -> None:
        seq.state = None
        seq.encoder = None


def _numpy(logits: torch.Tensor) -> np.ndarray:
    """Logits as the engine's sampler takes them: float32 numpy on the CPU (a copy off a GPU)."""
    return logits.detach().float().cpu().numpy()
