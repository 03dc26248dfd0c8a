"""``LlamaCppLM``: a GGUF model in llama.cpp behind llmdemo's scheduler (see the package docstring)."""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ...engine.model import ScheduledModel, _env_int
from ...engine.request import INTERACTIVE
from ...engine.scheduler import Scheduler
from ...interface import BATCH, GENERATE, INSIDE, SCORE, TOKEN_PROBS
from ...modelfiles import usable_cpus
from ...tokenizer import render_chat
from .runner import UBATCH, LlamaCppRunner, ThreadTuner

if TYPE_CHECKING:
    from .weights import Weights

log = logging.getLogger(__name__)


def _eval(llm, tokens: Sequence[int], all_logits: bool = False) -> np.ndarray:
    """Feed ``tokens`` after the context's current ones; logits of the last (or of every) token."""
    n_past = llm.n_tokens
    llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
    llm._batch.set_batch(batch=list(tokens), n_past=n_past, logits_all=all_logits)
    llm._ctx.decode(llm._batch)
    llm.input_ids[n_past:n_past + len(tokens)] = tokens
    llm.n_tokens += len(tokens)
    rows = len(tokens) if all_logits else 1
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(rows, llm.n_vocab())).copy()


def _token_logprobs(logits: np.ndarray, targets: Sequence[int]) -> list[float]:
    """log softmax(logits[i])[targets[i]] for each row, in float64 (numpy: scoring needs no torch).

    >>> [round(x, 4) for x in _token_logprobs(np.array([[0.0, 0.0], [2.0, 0.0]], np.float32), [1, 0])]
    [-0.6931, -0.1269]
    """
    targets = np.asarray(targets, dtype=np.int64)
    out: list[float] = []
    for s in range(0, len(logits), 128):  # 128 rows at a time: float64 copies of 128 x V, not of the window
        x = logits[s:s + 128].astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
        out.extend((x[np.arange(len(x)), targets[s:s + 128]] - lse).tolist())
    return out


def _weights(path: str, option: str | None, threads: int | None, progress) -> "Weights":
    """The file to run: the shipped GGUF or its Q8_0 re-encoding (weights.py); as shipped when
    the choice cannot be made (a read-only cache, a failed conversion), with the reason."""
    from .weights import Weights, choose, mode_from_env

    mode = mode_from_env(option)  # a wrong value is the user's error: raised, not hidden
    try:
        return choose(path, mode=mode, threads=threads or min(usable_cpus(), 4), progress=progress)
    except Exception as e:  # noqa: BLE001 - the shipped file always runs
        log.warning("running the GGUF as shipped: %s", e)
        return Weights(path, "as shipped", "as shipped", f"as shipped: the re-encoding failed ({e})")


class LlamaCppLM(ScheduledModel):
    """A GGUF model in llama.cpp, behind llmdemo's scheduler (see the module docstring)."""

    def __init__(self, path: str, *, name: str | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None, style: str | None = None, pairs: tuple = (),
                 exact_scoring: bool = False, max_running: int | None = None,
                 progress: Callable[[str], None] | None = None, weights: str | None = None):
        try:
            import llama_cpp
            from llama_cpp import Llama
        except ImportError as e:
            raise ImportError("the llamacpp backend needs llama-cpp-python: "
                              "pip install 'llama-cpp-python[server]' (it compiles llama.cpp, 5-12 minutes)") from e
        t0 = time.perf_counter()
        self.path = str(Path(path).resolve())
        # the context of one request (what a prompt + its answer may fill) and of all of them together
        self.context_length = n_ctx or _env_int("LLMDEMO_LLAMACPP_CTX", 4096)
        n_seq = max_running or _env_int("LLMDEMO_MAX_RUNNING", 16)
        total = max(self.context_length, _env_int("LLMDEMO_LLAMACPP_CELLS", 8192))
        # the Llama object gives the vocabulary, the model and its settings; its own context is not used
        # for generation (the runner makes one that holds n_seq sequences), so it is kept small
        self._threads_forced = n_threads or int(os.environ.get("LLMDEMO_LLAMACPP_THREADS") or 0) or None
        self.weights = _weights(self.path, weights, self._threads_forced, progress)
        kw: dict[str, Any] = dict(model_path=self.weights.path, n_ctx=64, n_batch=64, logits_all=False, verbose=False)
        if os.environ.get("LLMDEMO_LLAMACPP_EXTRA_BUFTS") == "0" and \
                "use_extra_bufts" in inspect.signature(Llama.__init__).parameters:
            # a llama-cpp-python built with -march=native crashed in its AMX path on an Intel CPU here;
            # this turns llama.cpp's extra buffer types (AMX, repacked weights) off. Left on by default, as
            # its server has them, so that results here equal the server's.
            kw["use_extra_bufts"] = False
        self.llm = Llama(**kw)
        self._kw = kw  # a second context for scoring is made with the same settings, on first use
        self._scorer = None
        self._score_lock = threading.Lock()  # one window at a time holds the scoring context (see _score_windows)
        self.load_s = time.perf_counter() - t0
        meta = self.llm.metadata
        self.name = name or f"llamacpp:{Path(path).name}"
        self.chat_template = meta.get("tokenizer.chat_template")
        self.style = style or ("chat" if self.chat_template else "base")
        self.pairs = pairs
        self.is_encoder_decoder = False
        self.device = "cpu"  # a string, not torch.device: generating here never imports torch
        self.context_length = min(self.context_length, int(meta.get(
            f"{meta.get('general.architecture', 'llama')}.context_length", self.context_length)))
        self.decode_mode = "llamacpp"
        self.exact_scoring = exact_scoring
        self._hf = None  # exact scoring: the transformers model of the same weights, in float32, built on first use
        self._hf_lock = threading.Lock()
        self._progress = progress
        self.capabilities = frozenset({GENERATE, SCORE, BATCH, TOKEN_PROBS} | ({INSIDE} if exact_scoring else set()))
        self._bos = self.llm.token_bos()
        self._eos = self.llm.token_eos()
        self.eos_ids = {int(self._eos)}
        eot = getattr(self.llm._model, "token_eot", lambda: -1)()
        if eot is not None and eot >= 0:
            self.eos_ids.add(int(eot))
        self.suppress_ids: list[int] = []  # never sampled (the sampler reads them)
        self._meta = meta
        self._sha: str | None = None
        # the model's shape, from the GGUF (the Inside tab's sliders, the Model tab)
        arch = meta.get("general.architecture", "llama")
        self.n_layers = int(meta.get(f"{arch}.block_count", 0)) or None
        self.n_heads = int(meta.get(f"{arch}.attention.head_count", 0)) or None
        self.n_params = int(llama_cpp.llama_model_n_params(self.llm._model.model))
        self.runner = LlamaCppRunner(self, n_seq=n_seq, n_ctx=total, threads=self._threads_forced or 1)
        self.scheduler = Scheduler(self, max_running=n_seq, max_waiting=_env_int("LLMDEMO_MAX_WAITING", 256))
        self.last_prefix_reused = 0
        self.thread_choice: dict[str, Any] = {"threads": self._threads_forced, "source": "forced"} \
            if self._threads_forced else self.scheduler.call(self._choose_threads)
        if not self._threads_forced and len(self.thread_choice.get("step_ms", ())) > 1:
            # and re-chosen while serving, as other processes come and go (ThreadTuner)
            self.runner.tuner = ThreadTuner(self.thread_choice["step_ms"], self.runner.threads)

    def _choose_threads(self) -> dict[str, Any]:
        """Time a decode step with each thread count this process may use; keep the fastest.

        Runs on the scheduler's thread (the one that runs every step): llama.cpp's threads are that
        thread's. A rule ("half the logical CPUs") was wrong on 2 vCPUs: 1 thread gave 0.52x of
        llama.cpp's own speed with 2. Two passes, the second in reverse order, each count keeping its
        best, so one burst of load from another process does not decide.
        """
        counts = sorted({1, *range(2, min(usable_cpus(), 8) + 1)})
        timed: dict[int, float] = {}
        for n in counts + counts[::-1]:
            timed[n] = min(timed.get(n, float("inf")), self.runner.time_step(n))
        best = min(timed, key=timed.get)
        self.runner.threads = best
        self.runner.ctx.set_n_threads(best, best)
        return {"threads": best, "source": "measured", "step_ms": {n: round(t * 1000, 2) for n, t in timed.items()}}

    # ------------------------------------------------------------ tokens
    def _piece(self, i: int) -> str:
        return self.llm.detokenize([i], special=True).decode("utf-8", errors="replace")

    def _text_ids(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else []

    def encode(self, prompt: Any) -> list[int]:
        """Token ids: text as is; chat messages through the GGUF's chat template (as transformers renders it)."""
        if isinstance(prompt, str):
            # BOS first where the GGUF asks for it (add_bos_token: Gemma, not SmolLM2), as transformers' tokenizer
            # adds it: without it Gemma 3 270M copied its few-shot examples instead of translating
            return list(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)) if prompt else []
        prompt = list(prompt)
        if prompt and isinstance(prompt[0], dict):
            if not self.chat_template:
                raise ValueError(f"model {self.name!r} has no chat template; give a plain text prompt")
            text = render_chat(self.chat_template, prompt, bos_token=self._piece(self._bos), eos_token=self._piece(self._eos))
            return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        return [int(i) for i in prompt]

    def count_tokens(self, text: str) -> int:
        return len(self._text_ids(text))

    def truncate_text(self, text: str, max_tokens: int) -> tuple[str, bool]:
        ids = self._text_ids(text)
        if len(ids) <= max_tokens:
            return text, False
        return self.decode(ids[: max(0, max_tokens)]), True

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids if int(i) not in self.eos_ids]
        return self.llm.detokenize(ids).decode("utf-8", errors="replace") if ids else ""

    def prefix_token(self) -> int:
        bos = self._bos if self._bos is not None and self._bos >= 0 else self._eos
        return int(bos)

    # ------------------------------------------------------------ scoring
    def scorer(self):
        """The transformers model of the same GGUF, de-quantized to float32, loaded on first use.

        With ``exact_scoring`` (the default model), perplexity, log-likelihoods and the Inside tab use
        it, so scores agree with lm-evaluation-harness's transformers runs to the digit while llama.cpp
        generates. The first use converts the GGUF once into the cache (~40 s), later ones load that
        (~3 s). Its work runs on this model's scheduler thread, between generation steps.
        """
        if self._hf is None:
            with self._hf_lock:
                if self._hf is None:
                    from ..hf.model import LM
                    from ...presets import resolve

                    t0 = time.perf_counter()
                    hf = LM.from_source(resolve(str(self.path)), decode="transformers", progress=self._progress)
                    own, hf.scheduler = hf.scheduler, self.scheduler
                    own.close("replaced by the llama.cpp model's scheduler")
                    hf.name = self.name
                    if self._progress:
                        self._progress(f"loaded the transformers model for exact scoring "
                                       f"({time.perf_counter() - t0:.1f} s)")
                    self._hf = hf
        return self._hf

    @property
    def scorer_ready(self) -> bool:
        """False while exact scoring's model is still to be loaded (its first use converts the GGUF)."""
        return not self.exact_scoring or self._hf is not None

    @property
    def model(self):
        """The transformers model (exact scoring only): what the Inside tab looks into."""
        if not self.exact_scoring:
            raise AttributeError("the llamacpp backend has no transformers model")
        return self.scorer().model

    @property
    def tokenizer(self):
        if not self.exact_scoring:
            raise AttributeError("the llamacpp backend has no transformers tokenizer")
        return self.scorer().tokenizer

    def token_logprobs(self, text, max_length=None, stride=None, batch_size=4, progress=None, priority=INTERACTIVE):
        if self.exact_scoring:
            return self.scorer().token_logprobs(text, max_length, stride, batch_size, progress, priority)
        return super().token_logprobs(text, max_length, stride, batch_size, progress, priority)

    def loglikelihood_rolling(self, text, max_length=None, stride=None, batch_size=4, priority=INTERACTIVE):
        if self.exact_scoring:
            return self.scorer().loglikelihood_rolling(text, max_length, stride, batch_size, priority)
        return super().loglikelihood_rolling(text, max_length, stride, batch_size, priority)

    def loglikelihood(self, context, continuation, priority=INTERACTIVE):
        if self.exact_scoring:
            return self.scorer().loglikelihood(context, continuation, priority)
        return super().loglikelihood(context, continuation, priority)

    def loglikelihood_batch(self, pairs, batch_size=16, priority=INTERACTIVE):
        if self.exact_scoring:
            return self.scorer().loglikelihood_batch(pairs, batch_size, priority)
        return super().loglikelihood_batch(pairs, batch_size, priority)

    def _score_windows(self, windows: list[tuple[list[int], int]], batch_size: int,
                       progress: Callable[[int, int], None] | None = None,
                       priority: int | str = INTERACTIVE) -> list[list[float]]:
        """Log-probabilities of the last ``n`` tokens of each window, read in slices of the scoring context's
        batch (512 tokens), one scheduler call each, so that generation steps run between two slices.

        One call per ``batch_size`` windows held the model for up to 4 x 4,096 tokens (~50 s of CPU here)
        and every visitor's stream waited behind it (a median 24.6 s per 1-token request during a
        perplexity run). The slices are the ones :meth:`_score_batch` reads, so the numbers are the same;
        only each slice's scored rows become log-probabilities, in the caller's thread, so memory holds one
        slice's logits (512 x V), not the window's. The scoring context is this model's own and one window
        at a time holds it (a lock), so its keys/values carry over from slice to slice.
        """
        if self.exact_scoring:
            return super()._score_windows(windows, batch_size, progress, priority)
        from ...engine.request import as_priority

        priority = as_priority(priority)
        results: list[list[float]] = []
        for ids, n in windows:
            with self._score_lock:
                llm = self.scheduler.call(self._scoring_context, priority)
                L, lps = len(ids), []
                for s in range(0, L, llm.n_batch):
                    piece = ids[s:s + llm.n_batch]
                    rows = self.scheduler.call(lambda piece=piece: _eval(llm, piece, all_logits=True), priority)
                    lo, hi = max(s, L - n - 1), min(s + len(piece), L - 1)  # rows whose next token is scored
                    if lo < hi:
                        lps.extend(_token_logprobs(rows[lo - s:hi - s], ids[lo + 1:hi + 1]))
                results.append(lps)
            if progress is not None:
                progress(len(results), len(windows))
        return results

    def _scoring_context(self):
        """The scoring context, emptied (made on first use)."""
        if self._scorer is None:
            from llama_cpp import Llama

            self._scorer = Llama(**{**self._kw, "n_ctx": self.context_length, "n_batch": 512,
                                    "n_threads": self.runner.threads, "n_threads_batch": self.runner.threads})
        self._scorer.n_tokens = 0
        return self._scorer

    def _score_batch(self, chunk: list[tuple[list[int], int]]) -> list[list[float]]:
        """Each window from an empty context; log p(token_i | tokens before i) from the logits at i - 1.

        Scoring has a llama.cpp context of its own (the weights are memory-mapped once and shared), so a
        perplexity run between two decode steps never touches a generation's keys and values.
        """
        llm, out = self._scoring_context(), []
        for ids, n in chunk:
            llm.n_tokens = 0
            rows = [_eval(llm, ids[s:s + llm.n_batch], all_logits=True) for s in range(0, len(ids), llm.n_batch)]
            logits = np.concatenate(rows)  # (T, V)
            L = len(ids)
            out.append(_token_logprobs(logits[L - n - 1: L - 1], ids[L - n:]))
        return out

    def _batching_extra(self) -> dict[str, Any]:
        return {"rows": "one llama.cpp batch per step, each sequence its own KV cells",
                "micro_batch_tokens": UBATCH, "prompt_tokens_per_step": self.runner.n_batch,
                "flash_attention": True,
                # evaluation rows (batch priority) never run as a micro-batch's only query: their numbers are the
                # same on any thread count (LlamaCppRunner._run)
                "lone_rows": "padded for batch-priority work"}

    def info(self) -> dict[str, Any]:
        import importlib.metadata as md

        from ...modelfiles import file_sha256

        if self._sha is None:
            self._sha = file_sha256(self.path)
        return {"name": self.name, "backend": "llamacpp", "kind": "gguf", "location": Path(self.path).name,
                "file_sha256": self._sha, "model_type": self._meta.get("general.architecture"),
                "style": self.style, "parameters": self.n_params, "dtype": f"GGUF {self.weights.type}",
                # the weight type llama.cpp runs and why; the file sha256 above stays the shipped file's
                "weights": {k: v for k, v in self.weights.to_dict().items() if k != "path"},
                "layers": self.n_layers, "heads": self.n_heads,
                "decode": "llamacpp", "device": "cpu", "context_length": self.context_length,
                # which engine made the text and which computed the scores (perplexity, log-likelihoods)
                "engine": {"generation": f"llama.cpp (GGUF {self.weights.type}, many sequences per step)",
                           "scoring": "transformers, float32 (the shipped GGUF de-quantized)" if self.exact_scoring
                           else f"llama.cpp (GGUF {self.weights.type})"},
                "load_s": round(self.load_s, 3), "threads": self.runner.threads,
                "thread_choice": {**self.thread_choice, **({"while_serving": self.runner.tuner.summary()}
                                                          if self.runner.tuner else {})},
                "sequences": self.runner.n_seq, "context_cells": self.runner.n_ctx,
                "llama_cpp_python": md.version("llama-cpp-python")}
