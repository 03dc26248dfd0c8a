"""Generation and scoring on top of a scheduler, shared by the in-process backends.

:class:`ScheduledModel` turns the scheduler's requests into what the interface promises
(``stream`` / ``generate`` / ``chat`` / ``generate_batch``, ``token_logprobs`` / ``loglikelihood``).
A backend (``LM`` for transformers, ``LlamaCppLM`` for llama.cpp) supplies the tokens (``encode``,
``decode``, ``_text_ids``, ``prefix_token``), a runner for the scheduler, and ``_score_batch``; the
scoring side is :class:`~llmdemo.engine.scoring.ScoredModel`.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from queue import Empty, SimpleQueue
from typing import Any, Callable, Iterator, Sequence

from ..config import GenerationConfig
from ..errors import InputError, Notice, UserError
from .request import BATCH, INTERACTIVE, Request, SchedulerBusy, as_priority
from .scoring import ScoredModel
from ..tokenprobs import info_of, trim
from .stream import Completion, CompletionFailed, IncrementalText, Stats, StopText, Stream, _find_stop, whole_chars

PROGRESS_S = 0.5  # generate_batch's on_progress: about this often while rows run


class ContextOverflowError(UserError, ValueError):
    """The prompt alone does not fit in the model's context window."""


class ScheduledModel(ScoredModel):
    """Generation through ``self.scheduler`` and scoring through ``self._score_batch`` (see the module docstring)."""

    # --------------------------------------------------------------- decoding
    def call(self, fn: Callable[[], Any], priority: int | str = INTERACTIVE) -> Any:
        """Run ``fn()`` on the model's thread between two scheduler steps (for work that uses the model directly)."""
        priority = as_priority(priority)
        return self.scheduler.call(fn, priority)

    def clear_prefix_cache(self) -> None:
        self.prefix_cache.clear()

    def batching(self) -> dict[str, Any]:
        """How sequences share a step, as results files record it: greedy text under batching can differ
        from one-at-a-time text (padding, other kernels for more rows), so a number says what it ran under."""
        return {"engine": "in-process scheduler (continuous batching)",
                "max_sequences_per_step": self.scheduler.max_running, **self._batching_extra()}

    def _batching_extra(self) -> dict[str, Any]:
        return {"rows": "padded to the longest row of the step (transformers)"}

    def close(self, reason: str = "the model was unloaded") -> None:
        """Stop this model's scheduler; requests still running end with an error that says why."""
        self.scheduler.close(reason)
    def _budget(self, n_prompt: int, config: GenerationConfig, stats: Stats) -> int:
        if self.is_encoder_decoder:
            limit = getattr(self.model.generation_config, "max_length", None) or self.context_length
            if n_prompt > self.context_length:
                raise ContextOverflowError("context.input", n=n_prompt, model=self.name, limit=self.context_length)
            budget = min(config.max_new_tokens, max(1, self.context_length, limit))
        else:
            room = self.context_length - n_prompt
            if room < 1:
                raise ContextOverflowError("context.prompt", n=n_prompt, model=self.name, limit=self.context_length)
            budget = min(config.max_new_tokens, room)
        if budget < config.max_new_tokens:
            stats.notices.append(Notice("notice.budget", asked=config.max_new_tokens, budget=budget,
                                        context=self.context_length))
        return budget

    def submit(self, ids: list[int], config: GenerationConfig, *, budget: int, seed: int,
               priority: int | str = INTERACTIVE, stop_event: threading.Event | None = None,
               on_finish: Callable[[Request], None] | None = None) -> Request:
        """Hand one prompt (token ids) to the scheduler; the returned :class:`Request` fills as it runs."""
        priority = as_priority(priority)
        return self.scheduler.submit(Request(ids, config, budget=budget, seed=seed, priority=priority,
                                             stop_event=stop_event, on_finish=on_finish))

    def stream(self, prompt: Any, config: GenerationConfig | None = None,
               stop_event: threading.Event | None = None, priority: int | str = INTERACTIVE,
               heartbeat: float | None = None) -> Stream:
        """Stream new text for one prompt.

        The request is submitted when iteration starts and cancelled when the stream is closed (or
        garbage-collected) or ``stop_event`` is set: its row leaves the batch before the next step.
        With ``heartbeat`` set, an empty chunk comes every ``heartbeat`` seconds while no token does
        (so a caller waiting in the queue can still be closed, and can show that it waits).
        """
        config = config or GenerationConfig()
        ids = self.encode(prompt)
        if not ids:
            raise InputError("input.empty_prompt")
        stats = Stats(prompt_tokens=len(ids), seed=config.seed if config.seed is not None else secrets.randbelow(2**31))
        budget = self._budget(len(ids), config, stats)

        def chunks(handle) -> Iterator[str]:
            t0 = time.perf_counter()
            req = self.submit(ids, config, budget=budget, seed=stats.seed, priority=priority, stop_event=stop_event)
            handle.request = req
            n, out, inc = 0, StopText(config.stop), IncrementalText(self.decode)
            record = config.logprobs > 0
            try:
                while True:
                    if not req.wait(n, heartbeat):
                        yield ""  # still waiting: lets the caller show it, or close the stream
                        continue
                    new = len(req.tokens)
                    if new == n:
                        if req.done or req.cancelled:
                            break
                        continue
                    if stats.ttft_s is None:
                        stats.ttft_s = time.perf_counter() - t0
                        self.last_prefix_reused = req.prefix_reused
                    fresh = req.tokens[n:new]
                    if record:  # token by token, so each gets the text it adds (a split character: "", then all)
                        pieces = [inc.add([t]) for t in fresh]
                        handle.token_info.extend(info_of(p, piece, self._alt_text)
                                                 for p, piece in zip(req.token_probs[n:new], pieces))
                        added = any(pieces)
                    n = new
                    stats.new_tokens = n
                    stats.total_s = time.perf_counter() - t0
                    if not (added if record else inc.add(fresh)):
                        continue  # nothing new to show yet (half a multi-byte character: wait for the rest)
                    chunk = out.update(inc.text)
                    if chunk:
                        yield chunk
                    if out.hit:
                        req.cancel()
                        stats.finish_reason = "stop_string"
                        break
            finally:
                req.cancel()  # no effect if it finished; otherwise its row leaves the batch
                stats.total_s = time.perf_counter() - t0
                stats.steps = req.steps
            if req.error is not None:
                raise req.error
            if stats.finish_reason is None:
                stats.finish_reason = "stopped" if req.finish_reason in (None, "stopped") else req.finish_reason
            if stats.finish_reason != "stopped":
                # the last text too, when it ended in half a multi-byte character and was held back above
                last = inc.flush()
                if record and handle.token_info:
                    handle.token_info[-1].text += last
                tail = ("" if out.hit else out.update(inc.text)) + out.rest()
                if record:
                    trim(handle.token_info, out.text)
                if tail:
                    yield tail
            elif record:
                trim(handle.token_info, out.text)

        return Stream(chunks, stats)

    def _alt_text(self, token: int) -> str:
        """An alternative token's text on its own (token probabilities)."""
        return self.decode([token]) if token not in self.eos_ids else "<eos>"

    def generate(self, prompt: Any, config: GenerationConfig | None = None,
                 stop_event: threading.Event | None = None, priority: int | str = INTERACTIVE) -> str:
        """Non-streaming generation: the join of :meth:`stream`."""
        return self.stream(prompt, config, stop_event, priority).text()

    def chat(self, messages: Sequence[dict], config: GenerationConfig | None = None,
             stop_event: threading.Event | None = None) -> Stream:
        """Stream the assistant's reply to a list of ``{"role", "content"}`` messages."""
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise InputError("input.chat_message")
        return self.stream(list(messages), config, stop_event)

    def _batch_inputs(self, prompts: Sequence[Any], config: GenerationConfig,
                      max_new_tokens: Sequence[int] | None) -> tuple[list[list[int]], list[int]]:
        """generate_batch's prompts as token ids (none may be empty) and each one's token budget."""
        encoded = [self.encode(p) for p in prompts]
        empty = [i for i, ids in enumerate(encoded) if not ids]
        if empty:
            raise InputError("input.empty_prompt_of", i=empty[0], n=len(encoded))
        budgets = [min(self._budget(len(ids), config, Stats()),
                       max_new_tokens[i] if max_new_tokens is not None else config.max_new_tokens)
                   for i, ids in enumerate(encoded)]
        return encoded, budgets

    def _completion(self, req: Request, config: GenerationConfig) -> Completion:
        """A finished request's text, as the stream's flush ends it (whole characters), cut at a stop string."""
        text = whole_chars(self.decode(req.tokens))
        cut = _find_stop(text, config.stop) if config.stop else None
        return Completion(text[:cut], "stop_string") if cut is not None else Completion(text, req.finish_reason)

    def generate_batch(self, prompts: Sequence[Any], config: GenerationConfig | None = None,
                       batch_size: int = 8, on_done: Callable[[int, str], None] | None = None,
                       stop_event: threading.Event | None = None,
                       max_new_tokens: Sequence[int] | None = None, priority: int | str = BATCH,
                       on_error: Callable[[int, BaseException], None] | None = None,
                       on_progress: Callable[[int, int], None] | None = None) -> list[Completion]:
        """Generate for many prompts with ``batch_size`` of them running at once, refilled as each finishes.

        Each prompt is a request of its own (batch priority: visitors' requests go first) with the
        config's seed, so its output is what ``generate(prompt)`` gives with ``config.max_new_tokens``
        lowered to ``max_new_tokens[i]`` where given: exactly in float32 up to float rounding of the
        batched matrix products (see ``bench/batch_agreement.py``). ``on_done(index, text)`` is
        called as each prompt finishes, with a :class:`Completion` (the text and its ``finish_reason``).
        Setting ``stop_event`` cancels the prompts still running; their results stay ``""`` and
        ``on_done`` is not called for them. A prompt whose generation fails raises, unless ``on_error``
        is given: then ``on_error(index, error)`` is called instead of ``on_done`` and the others go on
        (its result is ``Completion("", "error")``, never taken for an output). ``on_progress(generated,
        budget)`` is called about every ``PROGRESS_S`` seconds while rows run: the tokens generated so far
        and the most all prompts may take (their budgets), so a caller can show progress while every row
        is still running (rows of one batch often end together, at their token cap).
        """
        config = config or GenerationConfig()
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        encoded, budgets = self._batch_inputs(prompts, config, max_new_tokens)
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        results: list[Completion] = [Completion("", None)] * len(encoded)
        pending = deque(range(len(encoded)))
        finished: SimpleQueue = SimpleQueue()
        running: dict[int, Request] = {}
        lock = threading.Lock()
        spent = [0]  # tokens of the rows that finished (for on_progress)

        def submit_next() -> None:  # with the lock held
            if pending and not (stop_event is not None and stop_event.is_set()):
                i = pending.popleft()
                try:
                    running[i] = self.submit(encoded[i], config, budget=budgets[i], seed=seed, priority=priority,
                                             stop_event=stop_event, on_finish=lambda r, i=i: finish(i))
                except SchedulerBusy:
                    pending.appendleft(i)  # the queue is full: the loop below tries again as rows finish

        def finish(i: int) -> None:
            # on the scheduler's thread, as the row finishes: the next prompt is queued before the next step,
            # so the batch never waits for this thread to wake up (refill, not a fixed batch)
            finished.put(i)
            with lock:
                submit_next()

        try:
            with lock:
                for _ in range(batch_size):
                    submit_next()
            while True:
                with lock:
                    while pending and len(running) < batch_size and not (stop_event and stop_event.is_set()):
                        n = len(pending)
                        submit_next()
                        if len(pending) == n:
                            break
                    if not running:
                        if pending and not (stop_event and stop_event.is_set()):
                            raise SchedulerBusy("busy.full")
                        break
                try:
                    i = finished.get(timeout=PROGRESS_S) if on_progress is not None else finished.get()
                except Empty:
                    with lock:
                        live = sum(len(r.tokens) for r in running.values())
                    on_progress(spent[0] + live, sum(budgets))
                    continue
                with lock:
                    req = running.pop(i)
                spent[0] += len(req.tokens)
                if req.error is not None or req.finish_reason == "error":
                    err = req.error or CompletionFailed("the generation failed")
                    if on_error is None:
                        raise err
                    results[i] = Completion("", "error")
                    on_error(i, err)
                    continue
                if req.finish_reason == "stopped":
                    continue
                results[i] = self._completion(req, config)
                if on_done is not None:
                    on_done(i, results[i])
        finally:
            with lock:
                pending.clear()
                for req in running.values():
                    req.cancel()
        return results


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default
