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
import logging
import os
import statistics
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..generation import ScheduledModel, _env_int
from ..interface import BATCH, GENERATE, INSIDE, SCORE, TOKEN_PROBS
from ..engine.runner import Sequence as Seq
from ..engine.scheduler import INTERACTIVE, Scheduler
from ..tokenizer import render_chat

if TYPE_CHECKING:
    from .llamacpp_weights import Weights

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


class ThreadTuner:
    """Threads chosen while serving, not once at load: every ``interval_s`` of serving, the next
    ``2 x calls`` decode steps alternate the current thread count with one other, and the other is kept
    when its median step is ``margin`` faster.

    Why: the count timed at load was right for the machine as it was then. Beside a CPU-bound process
    on 2 vCPUs, 2 threads fell to 0.31x their quiet speed (one thread waits for the core it shares at
    every barrier) while 1 thread kept 0.98x of its own; when the other process ends, 2 threads are
    faster again (117 vs 78 tokens/s here). A trial runs on real steps, so it costs only the slower
    count's extra time on ``calls`` steps (about 1-2% of steps' time), and it changes no output: llama.cpp's
    logits are bit-equal with 1 and 2 threads (tests/test_engine_llamacpp.py). A trial compares steps
    of one batch size only (a step's time grows with its rows); one whose batch changes is dropped.

    >>> t = ThreadTuner([1, 2], current=2, interval_s=0, calls=2, clock=lambda: 0.0)
    >>> for ms in (10, 5, 10, 5):  # current (2), challenger (1), current, challenger
    ...     n = t.threads_for(rows=1); t.record(ms / 1000)
    >>> t.current, t.switches
    (1, 1)
    """

    def __init__(self, counts, current: int, *, interval_s: float = 3.0, calls: int = 3, margin: float = 0.9,
                 clock: Callable[[], float] = time.perf_counter):
        self.counts, self.current = sorted(set(counts)), current
        self.interval_s, self.calls, self.margin, self.clock = interval_s, calls, margin, clock
        self.next_at = clock() + interval_s
        self.trial: dict[str, Any] | None = None
        self.trials = self.switches = 0
        self._up = True  # with more than two counts, challengers alternate above and below the current one
        self._pending = current

    def _challenger(self) -> int | None:
        i = self.counts.index(self.current) if self.current in self.counts else 0
        up = self.counts[i + 1] if i + 1 < len(self.counts) else None
        down = self.counts[i - 1] if i > 0 else None
        self._up = not self._up
        return (up if self._up else down) or up or down

    def threads_for(self, rows: int) -> int:
        """The thread count for the next decode step of ``rows`` rows (then call :meth:`record`)."""
        if self.trial is None:
            challenger = self._challenger() if self.clock() >= self.next_at else None
            if challenger is None:
                self._pending = self.current
                return self.current
            self.trial = {"rows": rows, "challenger": challenger, "times": {self.current: [], challenger: []}, "n": 0}
        trial = self.trial
        if rows != trial["rows"]:  # another batch size: its steps would not compare; try again later
            self._end()
            self._pending = self.current
            return self.current
        self._pending = trial["challenger"] if trial["n"] % 2 else self.current
        return self._pending

    def record(self, seconds: float) -> None:
        """The time of the decode step that :meth:`threads_for` chose the count for."""
        trial = self.trial
        if trial is None:
            return
        trial["times"][self._pending].append(seconds)
        trial["n"] += 1
        if trial["n"] < 2 * self.calls:
            return
        now, other = (statistics.median(trial["times"][k]) for k in (self.current, trial["challenger"]))
        self.trials += 1
        if other < self.margin * now:
            self.current = trial["challenger"]
            self.switches += 1
        self._end()

    def _end(self) -> None:
        self.trial = None
        self.next_at = self.clock() + self.interval_s

    def summary(self) -> dict[str, Any]:
        return {"threads": self.current, "trials": self.trials, "switches": self.switches}


UBATCH = 32  # tokens per llama.cpp micro-batch (see LlamaCppRunner.__init__)


class LlamaCppRunner:
    """The scheduler's runner over one llama.cpp context that holds many sequences (llama.cpp's
    ``examples/batched`` and its server): every row of a scheduler step, decode tokens and prompt
    chunks alike, goes into one ``llama_decode``, and each row's logits are read by its index.

    Each running request owns a sequence id (a slot) in one unified key/value buffer of ``n_ctx``
    cells. A finished interactive request's slot is parked with its tokens, so the next prompt that
    starts with them (a chat's next turn) reuses their keys/values; parked slots are freed, oldest
    first, when a new request needs the room. Admission reserves each request's prompt + budget in
    cells (:meth:`can_start`), so a step never runs out of room half-way through a batch.
    """

    name = "llamacpp"

    def __init__(self, lm: "LlamaCppLM", *, n_seq: int, n_ctx: int, n_batch: int = 512,
                 threads: int | None = None):
        import llama_cpp
        from llama_cpp import _internals

        self.lm, self.llama_cpp = lm, llama_cpp
        params = llama_cpp.llama_context_params.from_buffer_copy(lm.llm.context_params)
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx, n_seq, True
        # Batch-invariance (a request's logits do not depend on who else is in the step), measured on
        # the bundled GGUF: with flash attention on and micro-batches of at most UBATCH tokens, 8 decode
        # rows stepped together equal each stepped alone, and 8 prompts read together equal each read
        # alone, bit for bit. Without flash attention, 8 decode rows differed from alone by up to 0.8 in
        # the logits; with 512-token micro-batches, prompts read together differed by up to 1.2 (the
        # attention kernel takes another path for many query rows). Small micro-batches cost ~6% of
        # prompt speed here (a 300-token prompt: 2.22 s against 2.10 s, 2 threads).
        params.n_batch, params.n_ubatch = n_batch, UBATCH
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = _internals.LlamaContext(model=lm.llm._model, params=params, verbose=False)
        self.mem = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.n_ctx, self.n_seq, self.n_batch = self.ctx.n_ctx(), n_seq, n_batch
        self.n_vocab = lm.llm.n_vocab()
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.free = list(range(n_seq))  # sequence ids nobody holds
        self.parked: dict[int, list[int]] = {}  # sequence id -> tokens whose keys/values it keeps (oldest first)
        self.reserved: dict[int, int] = {}  # sequence id -> cells a running request may fill
        self.running: dict[int, "_Slot"] = {}  # sequence id -> a running request's slot
        self.decodes = 0  # llama_decode calls (tests count them)
        self.threads = threads or 1
        self.ctx.set_n_threads(self.threads, self.threads)
        self.tuner: ThreadTuner | None = None  # set once the load-time choice is made (LlamaCppLM)

    def __del__(self):
        batch, self.batch = getattr(self, "batch", None), None
        if batch is not None:
            self.llama_cpp.llama_batch_free(batch)

    # ------------------------------------------------------------ sequences
    def held(self) -> int:
        """Sequences whose keys/values are in the context (running or parked)."""
        return self.n_seq - len(self.free)

    def _drop(self, sid: int) -> None:
        self.llama_cpp.llama_memory_seq_rm(self.mem, sid, -1, -1)
        self.parked.pop(sid, None)
        self.running.pop(sid, None)
        self.reserved.pop(sid, None)
        self.free.append(sid)

    def can_start(self, n_prompt: int, budget: int) -> bool:
        """Whether a request of this size fits now (freeing parked slots if that makes room)."""
        need = n_prompt + budget
        if need > self.n_ctx:
            return False
        while True:
            used = sum(self.reserved.values()) + sum(len(t) for t in self.parked.values())
            if (self.free or self.parked) and used + need <= self.n_ctx:
                return True
            running = len(self.reserved)
            if not self.parked or running >= self.n_seq:
                return False
            self._drop(next(iter(self.parked)))  # the oldest parked slot makes room

    def start(self, seq: Seq) -> None:
        """Give the request a sequence, reusing the longest prefix of its prompt that the context holds.

        The best match among parked slots (finished requests) is taken over: its cells past the common
        prefix are removed. A running request's prefix (the chat template's system prompt: 24 of the
        first 35 tokens of a short chat here) is shared instead: ``llama_memory_seq_cp`` adds this
        sequence's id to those cells, so they are neither computed nor stored twice. Reading a prompt
        after a kept prefix gives the same logits as reading it whole (flash attention, small
        micro-batches). A parked slot is not shared but taken over, because cells left behind change
        the attention's key/value range, and with it the rounding: with parked slots kept beside a
        shared prefix, the same prompt and seed sampled a different answer from its 5th token.
        """
        best, common, parked = None, 0, False
        for sid, toks in [*((s, t) for s, t in self.parked.items()), *((s, t.tokens) for s, t in self.running.items())]:
            n = 0
            for a, b in zip(toks, seq.prompt):
                if a != b:
                    break
                n += 1
            n = min(n, len(seq.prompt) - 1)  # at least one token to compute
            if n > common:
                best, common, parked = sid, n, sid in self.parked
        if best is not None and parked:
            del self.parked[best]  # take the slot over
            self.llama_cpp.llama_memory_seq_rm(self.mem, best, common, -1)
            sid = best
        else:
            if not self.free:  # can_start left a parked slot to free: not the one this prompt shares, if others
                victim = next((s for s in self.parked if s != best), best)
                self._drop(victim)
                if victim == best:
                    best, common = None, 0
            sid = self.free.pop()
            self.llama_cpp.llama_memory_seq_rm(self.mem, sid, -1, -1)
            if best is not None and common > 0:
                self.llama_cpp.llama_memory_seq_cp(self.mem, best, sid, 0, common)
            else:
                common = 0
        self.reserved[sid] = len(seq.prompt) + seq.budget
        seq.state = self.running[sid] = _Slot(sid, list(seq.prompt[:common]))
        seq.filled = seq.reused = common

    def finish(self, seq: Seq, keep_prefix: bool) -> None:
        slot, seq.state = seq.state, None
        if slot is None:
            return
        self.running.pop(slot.sid, None)
        if keep_prefix and slot.tokens:
            self.reserved.pop(slot.sid, None)
            self.parked[slot.sid] = slot.tokens  # newest last
        else:
            self._drop(slot.sid)

    # ------------------------------------------------------------ steps
    def step(self, prefills: list[tuple[Seq, int]], decodes: list[Seq]) -> tuple[list[np.ndarray | None], np.ndarray]:
        """The next ``n`` prompt tokens of each prefill, and one token of each decode row, computed together.

        Returns the logits (1, V) of each prefill whose prompt is now read (None for the others)
        and (B, V) for the decode rows.
        """
        # Prompt chunks and decode rows go in two calls: in one, the decode rows' logits changed (by up to
        # 0.8 with 8 rows and a 128-token chunk) against the same rows stepped alone.
        pre = self._prefill_call(prefills) if prefills else []
        dec = self._decode_call(decodes) if decodes else np.empty((0, self.n_vocab), np.float32)
        return pre, dec  # (V,) each, (B, V)

    def _run(self, n: int) -> None:
        if n > self.n_batch:
            raise ValueError(f"a step of {n} tokens is more than the batch of {self.n_batch}")
        self.batch.n_tokens = n
        self.decodes += 1
        rc = self.llama_cpp.llama_decode(self.ctx.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed (code {rc}: "
                               f"{'no room left in the context' if rc == 1 else 'see llama.cpp'})")

    def _decode_call(self, decodes: list[Seq]) -> np.ndarray:
        b, i, out_rows = self.batch, 0, []
        for seq in decodes:
            slot = seq.state
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = seq.last, len(slot.tokens), 1, True
            b.seq_id[i][0] = slot.sid
            slot.tokens.append(seq.last)
            out_rows.append(i)
            i += 1
        tuner = self.tuner
        if tuner is None:
            self._run(i)
        else:
            self._use_threads(tuner.threads_for(i))
            t = time.perf_counter()
            self._run(i)
            tuner.record(time.perf_counter() - t)
            self._use_threads(tuner.current)
        return np.stack([self._logits(r) for r in out_rows])  # (B, V)

    def _use_threads(self, n: int) -> None:
        if n != self.threads:
            self.threads = n
            self.ctx.set_n_threads(n, n)

    def _prefill_call(self, prefills: list[tuple[Seq, int]]) -> list[np.ndarray | None]:
        b, i, pre_rows = self.batch, 0, []
        for seq, n in prefills:
            slot, start = seq.state, seq.filled
            chunk = seq.prompt[start:start + n]
            for k, tok in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, start + k, 1, False
                b.seq_id[i][0] = slot.sid
                i += 1
            slot.tokens.extend(chunk)
            seq.filled = start + len(chunk)
            if seq.prefilled:
                b.logits[i - 1] = True
                pre_rows.append(i - 1)
            else:
                pre_rows.append(None)
        self._run(i)
        return [None if r is None else self._logits(r) for r in pre_rows]

    def _logits(self, row: int) -> np.ndarray:
        ptr = self.llama_cpp.llama_get_logits_ith(self.ctx.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()  # the buffer is reused by the next step

    # the scheduler's one-at-a-time protocol, as the same fused step
    def prefill(self, seq: Seq) -> np.ndarray | None:
        (logits,), _ = self.step([(seq, min(self.n_batch, len(seq.prompt) - seq.filled))], [])
        return logits

    def decode(self, seqs: list[Seq], tokens: Sequence[int]) -> np.ndarray:
        for s, t in zip(seqs, tokens):
            s.last = int(t)
        return self.step([], seqs)[1]

    def time_step(self, threads: int, steps: int = 8) -> float:
        """Seconds for one single-token decode step with ``threads`` threads (best of ``steps``)."""
        self.ctx.set_n_threads(threads, threads)
        sid = self.n_seq - 1 if self.n_seq - 1 in self.free else None
        if sid is None:
            raise RuntimeError("no free sequence to time with")
        b, best = self.batch, float("inf")
        for k in range(steps + 1):
            b.token[0], b.pos[0], b.n_seq_id[0], b.logits[0] = int(self.lm.prefix_token()), k, 1, True
            b.seq_id[0][0] = sid
            b.n_tokens = 1
            t = time.perf_counter()
            self.llama_cpp.llama_decode(self.ctx.ctx, b)
            if k:  # the first step warms up
                best = min(best, time.perf_counter() - t)
        self.llama_cpp.llama_memory_seq_rm(self.mem, sid, -1, -1)
        self.ctx.set_n_threads(self.threads, self.threads)
        return best


class _Slot:
    """A running sequence's place in the context: its id and the tokens whose keys/values it holds."""

    __slots__ = ("sid", "tokens")

    def __init__(self, sid: int, tokens: list[int]):
        self.sid, self.tokens = sid, tokens


def _weights(path: str, option: str | None, threads: int | None, progress) -> "Weights":
    """The file to run: the shipped GGUF or its Q8_0 re-encoding (llamacpp_weights.py); as shipped when
    the choice cannot be made (a read-only cache, a failed conversion), with the reason."""
    from .llamacpp_weights import Weights, choose, mode_from_env

    mode = mode_from_env(option)  # a wrong value is the user's error: raised, not hidden
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    try:
        return choose(path, mode=mode, threads=threads or max(1, min(cpus, 4)), progress=progress)
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
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:
            cpus = os.cpu_count() or 1
        counts = sorted({1, *range(2, min(cpus, 8) + 1)})
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
                    from .hf.model import LM
                    from ..presets import resolve

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
        from ..engine.scheduler import as_priority

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
                "flash_attention": True}

    def info(self) -> dict[str, Any]:
        import importlib.metadata as md

        from ..modelfiles import file_sha256

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
                           "scoring": "transformers, float32 (the same GGUF de-quantized)" if self.exact_scoring
                           else f"llama.cpp (GGUF {self.weights.type})"},
                "load_s": round(self.load_s, 3), "threads": self.runner.threads,
                "thread_choice": {**self.thread_choice, **({"while_serving": self.runner.tuner.summary()}
                                                          if self.runner.tuner else {})},
                "sequences": self.runner.n_seq, "context_cells": self.runner.n_ctx,
                "llama_cpp_python": md.version("llama-cpp-python")}
