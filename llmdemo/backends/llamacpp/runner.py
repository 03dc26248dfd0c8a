"""llama.cpp's runner for the scheduler: many sequences in one context, each step one ``llama_decode``
of every decode row (and one of the prompt chunks), with the thread count re-chosen while serving."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ...engine.runner import Sequence as Seq

if TYPE_CHECKING:
    from .model import LlamaCppLM


class ThreadTuner:
    """Threads chosen while serving, not once at load: every ``interval_s`` of serving, the next
    ``2 x calls`` decode steps alternate the current thread count with one other, and the other is kept
    when its median step is ``margin`` faster.

    Why: the count timed at load was right for the machine as it was then. Beside a CPU-bound process
    on 2 vCPUs, 2 threads fell to 0.31x their quiet speed (one thread waits for the core it shares at
    every barrier) while 1 thread kept 0.98x of its own; when the other process ends, 2 threads are
    faster again (117 vs 78 tokens/s here). A trial runs on real steps, so it costs only the slower
    count's extra time on ``calls`` steps (about 1-2% of steps' time). It changes no evaluation's output: an
    exact sequence's logits are bit-equal with 1 and 2 threads (see :meth:`LlamaCppRunner._run`); a visitor's
    row alone past 512 cells can round differently on another count (tests/test_engine_llamacpp.py). A trial
    compares steps of one batch size only (a step's time grows with its rows); one whose batch changes is
    dropped.

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
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx, n_seq + 1, True  # + the padding row's
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
        # A step of one token is padded with a second (see _run): one cell is kept for it, and a sequence id
        self.n_ctx, self.n_seq, self.n_batch = self.ctx.n_ctx() - 1, n_seq, n_batch
        self.pad_sid = n_seq
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

    def clear(self) -> None:
        """Forget every parked sequence and empty the context, as freshly made: the next request's cells land
        where a new context's would (where they land changes the attention's rounding). Nothing may be
        running; call it on the scheduler's thread (``Scheduler.call``)."""
        if self.running:
            raise RuntimeError(f"{len(self.running)} request(s) still running; clear only an idle context")
        self.llama_cpp.llama_memory_clear(self.mem, True)
        self.parked.clear()
        self.reserved.clear()
        self.free = list(range(self.n_seq))

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

        Returns the logits (V,) of each prefill whose prompt is now read (None for the others)
        and (B, V) for the decode rows.
        """
        # Prompt chunks and decode rows go in two calls: in one, the decode rows' logits changed (by up to
        # 0.8 with 8 rows and a 128-token chunk) against the same rows stepped alone.
        pre = self._prefill_call(prefills) if prefills else []
        dec = self._decode_call(decodes) if decodes else np.empty((0, self.n_vocab), np.float32)
        return pre, dec  # (V,) each, (B, V)

    def _run(self, n: int, exact: bool = False) -> None:
        if n > self.n_batch:
            raise ValueError(f"a step of {n} tokens is more than the batch of {self.n_batch}")
        b, pad = self.batch, exact and n % UBATCH == 1
        if pad:
            # A micro-batch of one token (one decode row, or a step's last token past a multiple of UBATCH): for
            # a single query over 512 cells or more, llama.cpp's CPU attention splits the cells among the
            # threads and adds the parts up, so the logits depend on the thread count and differ from the same
            # row stepped beside others (up to 35 apart, the greedy token from step 16 on, after a 600-token
            # prompt here). Two queries take the per-row path, the same for any thread count and batch; so a
            # sequence that must be exact gets a throwaway token of a sequence of its own beside it. Not for a
            # visitor's lone row: two queries cost a third to a half of one stream's decode speed here
            # (bench/threads_equal.py, docs/engine.md).
            b.token[n], b.pos[n], b.n_seq_id[n], b.logits[n] = int(self.lm.prefix_token()), 0, 1, False
            b.seq_id[n][0] = self.pad_sid
            n += 1
        b.n_tokens = n
        self.decodes += 1
        try:
            rc = self.llama_cpp.llama_decode(self.ctx.ctx, b)
        finally:
            if pad:
                self.llama_cpp.llama_memory_seq_rm(self.mem, self.pad_sid, -1, -1)
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
        tuner, exact = self.tuner, any(s.exact for s in decodes)
        if tuner is None:
            self._run(i, exact)
        else:
            self._use_threads(tuner.threads_for(i))
            t = time.perf_counter()
            try:
                self._run(i, exact)
                tuner.record(time.perf_counter() - t)
            finally:  # a failed step leaves the context on the current count, not a trial's
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
        self._run(i, any(seq.exact for seq, _ in prefills))
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
