"""A GGUF file run in-process by llama.cpp (``llama-cpp-python``): ``--model llamacpp:PATH.gguf``
or ``--model llamacpp:default`` (the bundled SmolLM2).

llama.cpp computes the logits; everything else is llmdemo's own, so results compare with the
transformers backend: the same scheduler (interactive before batch work, Stop, budgets), the same
samplers and seeds, the same chat template (the GGUF's own, rendered with jinja2 as transformers
renders it) and the same rolling-window perplexity, with each token's log-probability computed
here from the logits at the position before it (llama-cpp-python's own ``echo`` log-probabilities
are one position off, its issue #1983).

One llama.cpp context holds one sequence, so requests take turns (a finished chat turn's prefix is
kept in the context for the next one); for many visitors at once, serve the model with a server
that batches (vLLM, ``llama-server``) and use the ``openai`` backend.
"""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..generation import ScheduledModel, _env_int
from ..interface import GENERATE, SCORE
from ..runner import Sequence as Seq
from ..scheduler import Scheduler
from ..tokenizer import render_chat


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


class LlamaCppRunner:
    """The scheduler's runner over one llama.cpp context (one sequence at a time)."""

    name = "llamacpp"
    max_sequences = 1

    def __init__(self, lm: "LlamaCppLM"):
        self.lm = lm
        self.llm = lm.llm

    def _eval(self, tokens: Sequence[int], all_logits: bool = False) -> np.ndarray:
        return _eval(self.llm, tokens, all_logits)

    def start(self, seq: Seq) -> None:
        llm = self.llm
        held = llm.input_ids[: llm.n_tokens].tolist()
        common = 0
        for a, b in zip(held, seq.prompt):
            if a != b:
                break
            common += 1
        # As llama-cpp-python does (so a result here equals its server's for the same requests in the same
        # order): keep the longest common prefix, read the rest in batches of n_batch. llama.cpp's numbers
        # depend a little on how tokens are batched, so a greedy output can depend on what ran before.
        common = min(common, len(seq.prompt) - 1)  # at least one token to compute
        llm.n_tokens = common  # the rest of the cache is dropped by the next _eval
        seq.filled = seq.reused = common

    def prefill(self, seq: Seq) -> torch.Tensor | None:
        end = min(len(seq.prompt), seq.filled + self.llm.n_batch)
        logits = self._eval(seq.prompt[seq.filled:end])
        seq.filled = end
        return torch.from_numpy(logits) if seq.prefilled else None  # (1, V)

    def decode(self, seqs: list[Seq], tokens: torch.Tensor) -> torch.Tensor:
        (seq,) = seqs
        return torch.from_numpy(self._eval([int(tokens[0])]))

    def finish(self, seq: Seq, keep_prefix: bool) -> None:
        pass  # the context keeps its tokens: the next prompt reuses their common prefix


class LlamaCppLM(ScheduledModel):
    """A GGUF model in llama.cpp, behind llmdemo's scheduler (see the module docstring)."""

    def __init__(self, path: str, *, name: str | None = None, n_ctx: int | None = None,
                 n_threads: int | None = None, style: str | None = None, pairs: tuple = ()):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ImportError("the llamacpp backend needs llama-cpp-python: "
                              "pip install 'llama-cpp-python[server]' (it compiles llama.cpp, 5-12 minutes)") from e
        t0 = time.perf_counter()
        self.path = str(Path(path).resolve())
        kw: dict[str, Any] = dict(model_path=self.path, n_ctx=n_ctx or _env_int("LLMDEMO_LLAMACPP_CTX", 4096),
                                  logits_all=False, verbose=False)
        # llama-cpp-python's default is half the logical CPUs (physical cores). Its workers spin while they
        # wait, so more threads than that fight our own Python threads: on 2 vCPUs, 2 threads decoded at
        # 29 tokens/s against 50 with 1 (bench/llamacpp.py)
        threads = n_threads or int(os.environ.get("LLMDEMO_LLAMACPP_THREADS") or 0)
        if threads:
            kw["n_threads"] = threads
        if os.environ.get("LLMDEMO_LLAMACPP_EXTRA_BUFTS") == "0" and \
                "use_extra_bufts" in inspect.signature(Llama.__init__).parameters:
            # a llama-cpp-python built with -march=native crashed in its AMX path on an Intel CPU here;
            # this turns llama.cpp's extra buffer types (AMX, repacked weights) off. Left on by default, as
            # its server has them, so that results here equal the server's.
            kw["use_extra_bufts"] = False
        self.llm = Llama(**kw)
        self._kw = kw  # a second context for scoring is made with the same settings, on first use
        self._scorer = None
        self.load_s = time.perf_counter() - t0
        meta = self.llm.metadata
        self.name = name or f"llamacpp:{Path(path).name}"
        self.chat_template = meta.get("tokenizer.chat_template")
        self.style = style or ("chat" if self.chat_template else "base")
        self.pairs = pairs
        self.is_encoder_decoder = False
        self.device = torch.device("cpu")
        self.context_length = self.llm.n_ctx()
        self.decode_mode = "llamacpp"
        self.capabilities = frozenset({GENERATE, SCORE})
        self._bos = self.llm.token_bos()
        self._eos = self.llm.token_eos()
        self.eos_ids = {int(self._eos)}
        eot = getattr(self.llm._model, "token_eot", lambda: -1)()
        if eot is not None and eot >= 0:
            self.eos_ids.add(int(eot))
        self._suppress: list[int] = []
        self._meta = meta
        self._sha: str | None = None
        self.runner = LlamaCppRunner(self)
        self.scheduler = Scheduler(self, max_running=1, max_waiting=_env_int("LLMDEMO_MAX_WAITING", 256))
        self.last_prefix_reused = 0

    @classmethod
    def load(cls, location: str, name: str | None = None, **kw) -> "LlamaCppLM":
        return cls(location, name=name, **kw)

    # ------------------------------------------------------------ tokens
    def _piece(self, i: int) -> str:
        return self.llm.detokenize([i], special=True).decode("utf-8", errors="replace")

    def _text_ids(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else []

    def encode(self, prompt: Any) -> list[int]:
        """Token ids: text as is; chat messages through the GGUF's chat template (as transformers renders it)."""
        if isinstance(prompt, str):
            return self._text_ids(prompt)
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
    def _score_batch(self, chunk: list[tuple[list[int], int]]) -> list[list[float]]:
        """Each window from an empty context; log p(token_i | tokens before i) from the logits at i - 1.

        Scoring has a llama.cpp context of its own (the weights are memory-mapped once and shared), so a
        perplexity run between two decode steps never touches a generation's keys and values.
        """
        if self._scorer is None:
            from llama_cpp import Llama

            self._scorer = Llama(**{**self._kw, "n_ctx": self.context_length})
        llm, out = self._scorer, []
        for ids, n in chunk:
            llm.n_tokens = 0
            rows = [_eval(llm, ids[s:s + llm.n_batch], all_logits=True) for s in range(0, len(ids), llm.n_batch)]
            logits = torch.from_numpy(np.concatenate(rows))  # (T, V)
            L = len(ids)
            targets = torch.tensor(ids[L - n:])
            lp = torch.log_softmax(logits[L - n - 1: L - 1].float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
            out.append(lp.tolist())
        return out

    def info(self) -> dict[str, Any]:
        import importlib.metadata as md

        from ..loading import file_sha256

        if self._sha is None:
            self._sha = file_sha256(self.path)
        return {"name": self.name, "backend": "llamacpp", "kind": "gguf", "location": Path(self.path).name,
                "file_sha256": self._sha, "model_type": self._meta.get("general.architecture"),
                "style": self.style, "parameters": None, "dtype": "GGUF (as stored)",
                "decode": "llamacpp", "device": "cpu", "context_length": self.context_length,
                "load_s": round(self.load_s, 3), "threads": self.llm.n_threads if hasattr(self.llm, "n_threads") else None,
                "llama_cpp_python": md.version("llama-cpp-python")}
