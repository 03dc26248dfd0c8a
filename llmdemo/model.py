"""The one model wrapper used by the app, the CLI and eval.

Generation comes in layers over one decoding loop (the mlx-lm shape):

    _steps(rows, config)         -> next token of every row, one step at a time   (B,)
    stream(prompt, config)       -> a Stream: iterate it for new text chunks, .text() joins
    generate(prompt, config)     -> stream(...).text()
    generate_batch(prompts, ...) -> many prompts through the same _steps, left-padded

A prompt is a string (tokenized as is), a list of ``{"role", "content"}`` messages (the
tokenizer's chat template is applied), or a list of token ids.
"""

from __future__ import annotations

import inspect
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from .config import DECODE_MODES, GenerationConfig
from .presets import resolve

# The first prompt chunk; later chunks end at 128, 256, ... Every chunk reads all the weights once
# (~30 ms here), so short prompts are read in one piece: with 16-token chunks a new 46-token chat
# prompt took 330 ms to its first token instead of ~150 ms.
PREFIX_CHUNK = 64


def _is_boundary(n: int) -> bool:
    """Whether a prompt chunk ends at ``n`` in every prompt longer than ``n`` (64, 128, 256, ...)."""
    return n >= PREFIX_CHUNK and n & (n - 1) == 0


def _chunk_ends(n: int) -> list[int]:
    """Where the chunks of an ``n``-token prompt end: 64, 128, 256, ... below ``n``, then ``n``."""
    ends, e = [], PREFIX_CHUNK
    while e < n:
        ends.append(e)
        e *= 2
    return ends + [n]


def _last_boundary(n: int) -> int:
    """The last chunk boundary at or before ``n`` (0 if none): how much of a prompt can be shared."""
    return max((e for e in _chunk_ends(n) if _is_boundary(e)), default=0)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which and why."""


class ContextOverflowError(ValueError):
    """The prompt alone does not fit in the model's context window."""


@dataclass
class Stats:
    """Filled in while a Stream is consumed."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    ttft_s: float | None = None  # time to first token
    total_s: float = 0.0
    finish_reason: str | None = None  # "eos", "stop_string", "length", "stopped"
    seed: int | None = None  # the seed actually used (drawn when the config had none)
    notices: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - (self.ttft_s or 0.0)
        if self.new_tokens > 1 and decode_s > 0:
            return (self.new_tokens - 1) / decode_s
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    def summary(self) -> str:
        ttft = f"{self.ttft_s * 1000:.0f} ms" if self.ttft_s is not None else "n/a"
        return f"{self.new_tokens} tokens · {self.tokens_per_s:.1f} tokens/s · first token {ttft}"


class Stream:
    """Iterate for new text chunks; ``text()`` consumes the rest and returns all of it."""

    def __init__(self, chunks: Callable[["Stream"], Iterator[str]], stats: Stats):
        self.stats = stats
        self._parts: list[str] = []
        self._it = chunks(self)

    def __iter__(self) -> Iterator[str]:
        for chunk in self._it:
            self._parts.append(chunk)
            yield chunk

    def text(self) -> str:
        for _ in self:
            pass
        return "".join(self._parts)

    def close(self) -> None:
        self._it.close()


def _holdback(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string."""
    keep = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:n]):
                keep = n
                break
    return keep


def _find_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    hits = [i for s in stops if (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


class LM:
    """A loaded model and its tokenizer. Load once, share everywhere."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "custom", style: str | None = None,
                 info: dict[str, Any] | None = None, load_s: float | None = None, pairs: tuple = (),
                 decode: str = "auto"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config
        self.is_encoder_decoder = bool(getattr(self.config, "is_encoder_decoder", False))
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        self.style = style or self._infer_style()
        self.pairs = pairs
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.load_s = load_s
        self._info = dict(info or {})
        gen = getattr(model, "generation_config", None)
        eos = {tokenizer.eos_token_id}
        for src in (gen, self.config):
            e = getattr(src, "eos_token_id", None) if src is not None else None
            eos.update(e if isinstance(e, (list, tuple)) else [e])
        self.eos_ids = {int(e) for e in eos if e is not None}
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = getattr(self.config, "pad_token_id", None)
        if pad is None:
            pad = min(self.eos_ids) if self.eos_ids else 0
        self.pad_id = int(pad)
        suppress: set[int] = set()
        for words in getattr(gen, "bad_words_ids", None) or []:
            if len(words) == 1:
                suppress.add(int(words[0]))
        if self.is_encoder_decoder and self.pad_id not in self.eos_ids:
            suppress.add(self.pad_id)  # Marian/BART would otherwise emit padding
        self._suppress = sorted(suppress)
        self._forced_bos = getattr(gen, "forced_bos_token_id", None) if self.is_encoder_decoder else None
        self.context_length = self._context_length()
        # Only the last position's logits are needed while generating: skip the (T, vocab) matmul.
        params = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in params
        # transformers 5.24 calls the KV cache argument `cache`; earlier 5.x releases `past_key_values`
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.lock = threading.Lock()  # held by callers that must not share the model (e.g. model swaps)
        self._fast = None
        self.decode_mode = "transformers"
        self._prefix = None  # (prompt chunk tokens, KV cache) kept from the last one-prompt generation
        self._prefix_lock = threading.Lock()
        self.prefix_cache_tokens = 2048  # at most this many prompt tokens kept (46 KB each for SmolLM2-135M)
        self.last_prefix_reused = 0  # prompt tokens whose keys/values came from the prefix cache last time
        self.set_decode(decode)

    def set_decode(self, mode: str = "auto") -> str:
        """Choose the forward pass used while generating; returns the mode in effect.

        ``"auto"``: on a CPU, the lean Llama forward with float16 linear weights where the model
        allows it (see :mod:`llmdemo.fast`), else ``"transformers"``; ``"float16"`` / ``"float32"``:
        the lean forward with weights of that type (raises if the model has no lean forward);
        ``"transformers"``: the model's own forward. Scoring always uses the model's own forward.
        """
        from .fast import FastLlama, unsupported

        if mode not in DECODE_MODES:
            raise ValueError(f"unknown decode mode {mode!r}; use one of {', '.join(DECODE_MODES)}")
        why = unsupported(self.model)
        if mode == "auto":
            cpu_fp32 = self.device.type == "cpu" and self.dtype == torch.float32
            mode = "float16" if cpu_fp32 and why is None else "transformers"
        if mode != "transformers" and why is not None:
            raise ValueError(f"decode mode {mode!r} is not available for model {self.name!r}: {why}")
        self._fast = None if mode == "transformers" else FastLlama(self.model, getattr(torch, mode))
        self.decode_mode = mode
        self.clear_prefix_cache()
        return mode

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, name: str | None = None, *, device: str | None = None, dtype: str | None = None,
             trust_remote_code: bool = False, allow_paths: bool = True, allow_hub_ids: bool = True,
             progress: Callable[[str], None] | None = None, decode: str = "auto") -> "LM":
        """Load a preset, hub id, local folder or .gguf file (default: the bundled SmolLM2).

        ``decode`` chooses the forward pass used while generating (see :meth:`set_decode`).
        """
        if decode not in DECODE_MODES:
            raise ModelLoadError(f"unknown decode mode {decode!r}; use one of {', '.join(DECODE_MODES)}")
        from .loading import _stderr_progress, load_weights

        source = resolve(name, allow_paths=allow_paths, allow_hub_ids=allow_hub_ids)
        t0 = time.perf_counter()
        try:
            loaded = load_weights(source.kind, source.location, device=device, dtype=dtype,
                                  trust_remote_code=trust_remote_code, progress=progress or _stderr_progress)
        except (OSError, ValueError, RuntimeError, ImportError) as e:
            hint = ""
            if source.kind == "hub":
                hint = (" (this machine may be offline: the Hub is needed for this model; "
                        "the bundled default 'smollm2-135m-instruct' works offline)")
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"could not load model {source.name!r} from {source.location}: {first}{hint}") from e
        info = dict(loaded.info, name=source.name)
        try:
            return cls(loaded.model, loaded.tokenizer, name=source.name, style=source.style, info=info,
                       load_s=time.perf_counter() - t0, pairs=source.preset.pairs if source.preset else (),
                       decode=decode)
        except ValueError as e:
            raise ModelLoadError(str(e)) from e

    def _infer_style(self) -> str:
        if self.is_encoder_decoder:
            return "t5" if getattr(self.config, "model_type", "") == "t5" else "seq2seq"
        return "chat" if self.has_chat_template else "base"

    def _context_length(self) -> int:
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            v = getattr(self.config, attr, None)
            if isinstance(v, int) and v > 0:
                return v
        v = getattr(self.tokenizer, "model_max_length", None)
        return v if isinstance(v, int) and 0 < v < 1_000_000 else 512

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def info(self) -> dict[str, Any]:
        """What a report needs to say which model produced a number."""
        import transformers

        return {
            **self._info,
            "name": self.name,
            "model_type": getattr(self.config, "model_type", None),
            "style": self.style,
            "parameters": self.n_params,
            "dtype": str(self.dtype).replace("torch.", ""),
            # the forward used while generating: "float16"/"float32" = llmdemo's lean Llama forward
            # with linear weights of that type; "transformers" = the model's own forward
            "decode": self.decode_mode,
            "device": str(self.device),
            "context_length": self.context_length,
            "load_s": round(self.load_s, 3) if self.load_s is not None else None,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    # ---------------------------------------------------------------- encoding
    def encode(self, prompt: Any) -> list[int]:
        """Token ids of a prompt: str, chat messages, or ids."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        prompt = list(prompt)
        if prompt and isinstance(prompt[0], dict):
            if not self.has_chat_template:
                raise ValueError(f"model {self.name!r} has no chat template; give a plain text prompt")
            ids = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return [int(i) for i in ids]
        return [int(i) for i in prompt]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate_text(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """Cut ``text`` to at most ``max_tokens`` tokens (keeping the start); say whether it was cut."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text, False
        return self.tokenizer.decode(ids[: max(0, max_tokens)], skip_special_tokens=True), True

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    # --------------------------------------------------------------- decoding
    def _sampler(self, config: GenerationConfig, seed: int):
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        suppress = torch.tensor(self._suppress, dtype=torch.long, device=self.device) if self._suppress else None

        def sample(logits, seen):  # logits (B, V) float32, seen (B, S) ids already in each row
            if config.repetition_penalty != 1.0 and seen is not None and seen.numel():
                p = config.repetition_penalty
                score = logits.gather(1, seen)
                logits = logits.scatter(1, seen, torch.where(score < 0, score * p, score / p))
            if suppress is not None:
                logits = logits.index_fill(1, suppress, float("-inf"))
            if config.greedy:
                return logits.argmax(dim=-1)  # (B,)
            logits = logits / config.temperature
            if 0 < config.top_k < logits.shape[-1]:
                kth = torch.topk(logits, config.top_k, dim=-1).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            if config.top_p < 1.0:
                sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
                probs = sorted_logits.softmax(dim=-1)
                # drop a token when the mass before it already reaches top_p (the first always stays)
                drop = (probs.cumsum(dim=-1) - probs) >= config.top_p
                sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
                logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
            probs = logits.softmax(dim=-1)
            return torch.multinomial(probs, 1, generator=gen).squeeze(1)  # (B,)

        return sample

    @torch.no_grad()
    def _steps(self, rows: Sequence[Sequence[int]], config: GenerationConfig, seed: int,
               max_new_tokens: int) -> Iterator[Any]:
        """Yield the next token of every row, step by step: a (B,) tensor per step.

        Rows are left-padded; the attention mask hides padding and position ids count
        real tokens only, so a row's greedy output does not depend on its batch.
        """
        dev = self.device
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        seen = torch.empty((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            # decoder-only rows are left-padded so all rows end together; encoder inputs are
            # right-padded, as their learned position embeddings expect
            at = slice(0, len(r)) if self.is_encoder_decoder else slice(width - len(r), width)
            ids[i, at] = torch.tensor(r, dtype=torch.long)
            mask[i, at] = 1
            # repetition penalty looks at real tokens only; pad slots repeat the row's first token
            seen[i] = r[0]
            seen[i, at] = torch.tensor(r, dtype=torch.long)
        ids, mask = ids.to(dev), mask.to(dev)
        sample = self._sampler(config, seed)
        keep = {"logits_to_keep": 1} if self._logits_to_keep else {}
        if self.is_encoder_decoder:
            from transformers import DynamicCache, EncoderDecoderCache

            start = self.config.decoder_start_token_id
            if start is None:
                start = self.pad_id
            encoder_outputs = self.model.get_encoder()(input_ids=ids, attention_mask=mask)
            dec = torch.full((len(rows), 1), int(start), dtype=torch.long, device=dev)
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            seen = dec.clone()  # HF applies the penalty to decoder tokens for encoder-decoders
            for step in range(max_new_tokens):
                # the cache object is updated in place by every forward
                out = self.model(encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=dec,
                                 use_cache=True, **{self._cache_arg: cache})
                logits = out.logits[:, -1, :].float()  # (B, V)
                if step == 0 and self._forced_bos is not None:
                    nxt = torch.full((len(rows),), int(self._forced_bos), dtype=torch.long, device=dev)
                else:
                    nxt = sample(logits, seen)
                yield nxt
                dec = nxt[:, None]
                seen = torch.cat([seen, dec], dim=1)
            return
        seen = seen.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        if self._fast is not None and len(rows) == 1:
            forward, release = self._single_row_forward(list(rows[0]), width + max_new_tokens)
        else:
            forward, release = self._decoder_forward(len(rows), width + max_new_tokens, keep), None
        try:
            logits = forward(ids, mask, pos)
            for i in range(max_new_tokens):
                nxt = sample(logits, seen)  # (B,)
                going = yield nxt  # the lean forward takes a send([bool per row]): rows to go on with
                if i + 1 == max_new_tokens:
                    break
                if going is not None and hasattr(forward, "select") and not all(going):
                    sel = torch.tensor([j for j, g in enumerate(going) if g], dtype=torch.long, device=dev)
                    mask, pos, seen, nxt = mask[sel], pos[sel], seen[sel], nxt[sel]
                    forward.select(sel)
                mask = torch.cat([mask, mask.new_ones((len(nxt), 1))], dim=1)
                pos = pos[:, -1:] + 1
                seen = torch.cat([seen, nxt[:, None]], dim=1)
                logits = forward(nxt[:, None], mask, pos)
        finally:
            if release is not None:
                release()

    def _single_row_forward(self, prompt: list[int], length: int):
        """The lean forward for one prompt, with the prompt read in fixed chunks and a prefix cache.

        The prompt is always computed in the same chunks, ending at positions 64, 128, 256, ...
        (doubling) and at its end. The keys/values of whole chunks are kept after the generation
        (one prompt's worth, see ``prefix_cache_tokens``); a later prompt that starts with the same
        chunks reuses them and computes only the rest. Because a chunk's numbers depend only on the
        tokens up to its end and the chunks are always the same, the output is the same whether or
        not a prefix was reused (a test checks this); only the time to the first token changes.
        Returns ``(forward, release)``; ``release()`` hands the cache back for the next prompt.
        """
        fast = self._fast
        with self._prefix_lock:  # take the stored prefix: a concurrent generation starts without it
            entry, self._prefix = self._prefix, None
        reuse, cache = 0, None
        if entry is not None:
            old_tokens, old_cache = entry
            common = 0
            for a, b in zip(old_tokens, prompt):
                if a != b:
                    break
                common += 1
            reuse = _last_boundary(min(common, len(prompt) - 1))  # at least one token left to compute
            if reuse and old_cache[0][0].shape[2] >= length:
                cache = old_cache
            elif reuse:
                cache = fast.new_cache(1, length)
                for (k, v), (ok, ov) in zip(cache, old_cache):
                    k[:, :, :reuse] = ok[:, :, :reuse]
                    v[:, :, :reuse] = ov[:, :, :reuse]
        if cache is None:
            reuse, cache = 0, fast.new_cache(1, length)
        self.last_prefix_reused = reuse
        filled = [0]

        def lean(ids, mask, pos):
            start = filled[0]
            if start == 0:  # the prompt: chunk by chunk, skipping the reused ones
                logits = None
                begin = reuse
                for end in _chunk_ends(ids.shape[1]):
                    if end <= reuse:
                        continue
                    logits = fast.forward(ids[:, begin:end], pos[:, begin:end], cache, begin)
                    begin = end
                filled[0] = ids.shape[1]
                return logits
            filled[0] += ids.shape[1]
            return fast.forward(ids, pos, cache, start)

        def release():
            keep = _last_boundary(min(len(prompt), self.prefix_cache_tokens))
            if keep and filled[0] >= len(prompt):  # the prompt was computed in full
                kept = cache
                if cache[0][0].shape[2] > 2 * keep:  # do not hold on to room for a long generation
                    kept = [(k[:, :, :keep].clone(), v[:, :, :keep].clone()) for k, v in cache]
                with self._prefix_lock:
                    self._prefix = (prompt[:keep], kept)

        return lean, release

    def clear_prefix_cache(self) -> None:
        with self._prefix_lock:
            self._prefix = None

    def _decoder_forward(self, batch: int, length: int, keep: dict) -> Callable[..., Any]:
        """A forward with its own KV cache: ``(ids (B,T), mask (B,S), pos (B,T)) -> last logits (B,V) float32``."""
        if self._fast is not None:
            fast = self._fast
            cache = fast.new_cache(batch, length)
            filled = [0]

            def lean(ids, mask, pos):
                start = filled[0]
                filled[0] += ids.shape[1]
                return fast.forward(ids, pos, cache, start, key_mask=mask)

            def select(rows: torch.Tensor) -> None:  # keep these rows of the batch (finished ones leave)
                cache[:] = [(k[rows], v[rows]) for k, v in cache]

            lean.select = select
            return lean
        from transformers import DynamicCache

        kwargs = dict(keep, use_cache=True)
        kwargs[self._cache_arg] = DynamicCache()  # updated in place by every forward

        def own(ids, mask, pos):
            return self.model(input_ids=ids, attention_mask=mask, position_ids=pos, **kwargs).logits[:, -1, :].float()

        return own

    def _budget(self, n_prompt: int, config: GenerationConfig, stats: Stats) -> int:
        if self.is_encoder_decoder:
            limit = getattr(self.model.generation_config, "max_length", None) or self.context_length
            if n_prompt > self.context_length:
                raise ContextOverflowError(
                    f"input is {n_prompt} tokens; model {self.name!r} reads at most {self.context_length}")
            budget = min(config.max_new_tokens, max(1, self.context_length, limit))
        else:
            room = self.context_length - n_prompt
            if room < 1:
                raise ContextOverflowError(
                    f"prompt is {n_prompt} tokens; model {self.name!r} has a context of {self.context_length}")
            budget = min(config.max_new_tokens, room)
        if budget < config.max_new_tokens:
            stats.notices.append(f"max new tokens lowered from {config.max_new_tokens} to {budget} "
                                 f"to fit the {self.context_length}-token context")
        return budget

    def stream(self, prompt: Any, config: GenerationConfig | None = None,
               stop_event: threading.Event | None = None) -> Stream:
        """Stream new text for one prompt; ``stop_event`` is checked before every step."""
        config = config or GenerationConfig()
        ids = self.encode(prompt)
        if not ids:
            raise ValueError("empty prompt")
        stats = Stats(prompt_tokens=len(ids), seed=config.seed if config.seed is not None else secrets.randbelow(2**31))
        budget = self._budget(len(ids), config, stats)

        def chunks(stream: Stream) -> Iterator[str]:
            t0 = time.perf_counter()
            generated: list[int] = []
            emitted = 0
            text = ""
            stats.finish_reason = "length"
            steps = self._steps([ids], config, stats.seed, budget)
            try:
                for nxt in steps:
                    if stop_event is not None and stop_event.is_set():
                        stats.finish_reason = "stopped"
                        break
                    tok = int(nxt[0])
                    if stats.ttft_s is None:
                        stats.ttft_s = time.perf_counter() - t0
                    if tok in self.eos_ids:
                        stats.finish_reason = "eos"
                        break
                    generated.append(tok)
                    stats.new_tokens = len(generated)
                    stats.total_s = time.perf_counter() - t0
                    text = self.decode(generated)
                    if text.endswith("\ufffd"):
                        continue  # half a multi-byte character: wait for the rest
                    cut = _find_stop(text, config.stop, max(0, emitted - 64)) if config.stop else None
                    if cut is not None:
                        text = text[:cut]
                        stats.finish_reason = "stop_string"
                        break
                    safe = len(text) - _holdback(text, config.stop)
                    if safe > emitted:
                        yield text[emitted:safe]
                        emitted = safe
            finally:
                steps.close()
                stats.total_s = time.perf_counter() - t0
            if stats.finish_reason != "stopped" and len(text) > emitted:
                yield text[emitted:]

        return Stream(chunks, stats)

    def generate(self, prompt: Any, config: GenerationConfig | None = None,
                 stop_event: threading.Event | None = None) -> str:
        """Non-streaming generation: the join of :meth:`stream`."""
        return self.stream(prompt, config, stop_event).text()

    def chat(self, messages: Sequence[dict], config: GenerationConfig | None = None,
             stop_event: threading.Event | None = None) -> Stream:
        """Stream the assistant's reply to a list of ``{"role", "content"}`` messages."""
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError("each message needs 'role' and 'content'")
        return self.stream(list(messages), config, stop_event)

    def generate_batch(self, prompts: Sequence[Any], config: GenerationConfig | None = None,
                       batch_size: int = 8, on_done: Callable[[int, str], None] | None = None,
                       stop_event: threading.Event | None = None,
                       max_new_tokens: Sequence[int] | None = None) -> list[str]:
        """Generate for many prompts, ``batch_size`` at a time (similar lengths grouped together).

        For greedy decoding the output for each prompt equals ``generate(prompt)`` (with
        ``config.max_new_tokens`` lowered to ``max_new_tokens[i]`` where given), up to float
        rounding: padding changes the shapes of the matrix products, which moves the last bits in
        float32 and more with float16 weights (see ``bench/batch_agreement.py`` for the rates).
        ``on_done(index, text)`` is called as each batch finishes.
        """
        config = config or GenerationConfig()
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        encoded = [self.encode(p) for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[str | None] = [None] * len(encoded)
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        for start in range(0, len(order), batch_size):
            if stop_event is not None and stop_event.is_set():
                break
            idx = order[start:start + batch_size]
            rows = [encoded[i] for i in idx]
            limits = [min(self._budget(len(r), config, Stats()),
                          max_new_tokens[i] if max_new_tokens is not None else config.max_new_tokens)
                      for i, r in zip(idx, rows)]
            budget = max(limits)
            done = [False] * len(rows)
            out: list[list[int]] = [[] for _ in rows]
            active = list(range(len(rows)))  # the rows still in the batch, in the order of its tensors
            steps = self._steps(rows, config, seed, budget)
            try:
                nxt = next(steps)
                while True:
                    for j, tok in zip(active, nxt.tolist()):
                        if done[j]:
                            continue
                        if tok in self.eos_ids:
                            done[j] = True
                            continue
                        out[j].append(tok)
                        if len(out[j]) >= limits[j]:
                            done[j] = True
                        elif config.stop and _find_stop(self.decode(out[j][-16:]), config.stop) is not None:
                            done[j] = True
                    if all(done):
                        break
                    going = None
                    finished = sum(done[j] for j in active)
                    if self._fast is not None and finished and finished >= len(active) // 4:
                        # finished rows leave the batch: later steps compute only the rows still going
                        going = [not done[j] for j in active]
                        active = [j for j in active if not done[j]]
                    try:
                        nxt = steps.send(going)
                    except StopIteration:
                        break
            finally:
                steps.close()
            for j, i in enumerate(idx):
                text = self.decode(out[j])
                cut = _find_stop(text, config.stop) if config.stop else None
                results[i] = text[:cut] if cut is not None else text
                if on_done is not None:
                    on_done(i, results[i])
        return [r if r is not None else "" for r in results]

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def _score_windows(self, windows: list[tuple[list[int], int]], batch_size: int,
                       progress: Callable[[int, int], None] | None = None) -> list[list[float]]:
        """Log-probabilities of the last ``n`` tokens of each window given the tokens before them.

        ``windows`` holds ``(ids, n)`` pairs with ``1 <= n < len(ids)``. Windows are right-padded
        into batches; only the scored positions go through the output layer.
        """
        results: list[list[float]] = []
        head = self.model.get_output_embeddings()
        base = getattr(self.model, self.model.base_model_prefix, None)
        # the fast path applies the output layer ourselves; models that scale/cap logits take the slow one
        fast = (base is not None and head is not None
                and getattr(self.config, "final_logit_softcapping", None) is None
                and getattr(self.config, "logit_scale", None) is None and not self.is_encoder_decoder)
        for start in range(0, len(windows), batch_size):
            chunk = windows[start:start + batch_size]
            width = max(len(w) for w, _ in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, (w, _) in enumerate(chunk):
                ids[i, : len(w)] = torch.tensor(w)
                mask[i, : len(w)] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            if fast:
                hidden = base(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
            else:
                logits_all = self.model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
            for i, (w, n) in enumerate(chunk):
                L = len(w)
                targets = ids[i, L - n: L]  # (n,)
                if fast:
                    logits = head(hidden[i, L - n - 1: L - 1])  # (n, V)
                else:
                    logits = logits_all[i, L - n - 1: L - 1]
                lp = torch.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
                results.append(lp.tolist())
            if progress is not None:
                progress(len(results), len(windows))
        return results

    def rolling_windows(self, n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
        """Windows ``(begin, end, n_scored)`` that score tokens 1..n_tokens-1 exactly once.

        Token 0 is the BOS prefix and is never scored. Each window holds at most ``max_length``
        tokens and scores only the tokens after the previous window's end, with the rest of the
        window as context (the Hugging Face "perplexity of fixed-length models" recipe). Window
        ends move by ``stride``, at most ``max_length - 1`` so every scored token has context::

            tokens   B t1 t2 t3 t4 t5 t6 t7      max_length=4, stride=2
            window1  B t1 t2 t3                  scores t1 t2 t3
            window2        t2 t3 t4 t5           scores t4 t5 (t2 t3 are context)
            window3              t4 t5 t6 t7     scores t6 t7
        """
        if max_length < 2:
            raise ValueError("max_length must be at least 2")
        if stride < 1:
            raise ValueError("stride must be at least 1")
        step = min(stride, max_length - 1)
        out = []
        prev_end = 1
        end = min(max_length, n_tokens)
        while prev_end < n_tokens:
            begin = max(0, end - max_length)
            out.append((begin, end, end - prev_end))
            prev_end = end
            end = min(end + step, n_tokens)
        return out

    def prefix_token(self) -> int:
        """BOS, or EOS where the tokenizer has no BOS (GPT-2 style)."""
        bos = self.tokenizer.bos_token_id
        if bos is None:
            bos = self.tokenizer.eos_token_id
        if bos is None:
            raise ValueError(f"model {self.name!r} has neither a BOS nor an EOS token to start a text with")
        return int(bos)

    def token_logprobs(self, text: str, max_length: int | None = None, stride: int | None = None,
                       batch_size: int = 4, progress: Callable[[int, int], None] | None = None
                       ) -> tuple[list[int], list[float]]:
        """Text tokens (no special tokens) and the log-probability of each given all before it.

        The text is prefixed with BOS so that its first token is scored too. ``progress(done, total)``
        is called after each batch of windows.
        """
        if self.is_encoder_decoder:
            raise ValueError("perplexity needs a decoder-only model")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            return [], []
        full = [self.prefix_token()] + list(ids)
        max_length = min(max_length or self.context_length, self.context_length)
        stride = stride or max_length // 2
        windows = [(full[b:e], n) for b, e, n in self.rolling_windows(len(full), max_length, stride)]
        scores = self._score_windows(windows, batch_size, progress)
        return list(ids), [lp for s in scores for lp in s]

    def loglikelihood_rolling(self, text: str, max_length: int | None = None, stride: int | None = None,
                              batch_size: int = 4) -> tuple[float, int]:
        """Sum of token log-probabilities of ``text`` and the number of tokens scored."""
        _, lps = self.token_logprobs(text, max_length, stride, batch_size)
        return math.fsum(lps), len(lps)

    def loglikelihood(self, context: Any, continuation: str) -> tuple[float, int]:
        """Log-probability of ``continuation`` right after the (encoded) ``context``.

        The oldest context tokens are dropped when the pair does not fit in the context window.
        """
        ctx = self.encode(context)
        cont = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not cont:
            return 0.0, 0
        if self.is_encoder_decoder:
            raise ValueError("loglikelihood needs a decoder-only model")
        cont = cont[: self.context_length - 1]
        ctx = ctx[-(self.context_length - len(cont)):]
        (scores,) = self._score_windows([(ctx + cont, len(cont))], 1)
        return math.fsum(scores), len(scores)
