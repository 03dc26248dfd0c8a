"""FakeLM: speaks LM's interface for logic tests (simonw/llm's MockModel shape)."""

from __future__ import annotations

import time

from llmdemo.config import GenerationConfig
from llmdemo.engine.stream import Stats, Stream


class FakeLM:
    """Replies with queued texts (word by word) and records every prompt it was given."""

    def __init__(self, name="fake", style="chat", context_length=512, delay=0.0):
        self.name, self.style, self.context_length = name, style, context_length
        self.is_encoder_decoder = False
        self.pairs = ()
        self.device = "cpu"
        self.delay = delay
        self.queue: list[str] = []
        self.history: list[tuple] = []
        self.steps = 0  # words produced, across all streams
        self.capabilities = frozenset({"generate", "score"})

    def enqueue(self, *texts: str) -> None:
        self.queue.extend(texts)

    # tokenizer-level methods: one token per whitespace-separated word
    def encode(self, prompt):
        if isinstance(prompt, str):
            return prompt.split()
        return [w for m in prompt for w in (m["role"] + " " + m["content"]).split()]

    def count_tokens(self, text):
        return len(text.split())

    def truncate_text(self, text, n):
        words = text.split()
        return " ".join(words[:n]), len(words) > n

    def stream(self, prompt, config=None, stop_event=None, priority=None, heartbeat=None):
        self.history.append((prompt, config))
        reply = self.queue.pop(0) if self.queue else "ok"
        stats = Stats(prompt_tokens=len(self.encode(prompt)))

        def chunks(_):
            t0 = time.perf_counter()
            for i, w in enumerate(reply.split(" ")):
                if self.delay:
                    time.sleep(self.delay)
                self.steps += 1
                stats.new_tokens += 1
                stats.ttft_s = stats.ttft_s or time.perf_counter() - t0
                stats.total_s = time.perf_counter() - t0
                yield (" " if i else "") + w

        return Stream(chunks, stats)

    def generate(self, prompt, config=None, stop_event=None, priority=None):
        return self.stream(prompt, config, stop_event).text()

    def chat(self, messages, config=None, stop_event=None):
        return self.stream(list(messages), config, stop_event)

    def generate_batch(self, prompts, config=None, batch_size=8, on_done=None, stop_event=None,
                       max_new_tokens=None, priority=None, on_error=None, on_progress=None):
        """As the interface's: each prompt in turn; a failing one goes to ``on_error`` when given (the runner
        passes it), else raises; ``on_progress`` gets the words so far and the budget after each prompt."""
        config = config or GenerationConfig()
        out = []
        for i, p in enumerate(prompts):
            try:
                out.append(self.generate(p, config))
            except Exception as e:  # noqa: BLE001 - handed to on_error, as ScheduledModel does
                if on_error is None:
                    raise
                out.append("")
                on_error(i, e)
                continue
            if on_done is not None:
                on_done(i, out[-1])
            if on_progress is not None:
                on_progress(sum(len(o.split()) for o in out), config.max_new_tokens * len(prompts))
        return out

    # scoring: one token per word, each with log-probability -1
    def token_logprobs(self, text, max_length=None, stride=None, batch_size=4, progress=None, priority=None):
        ids = list(range(len(text.split())))
        return ids, [-1.0] * len(ids)

    def loglikelihood_rolling(self, text, max_length=None, stride=None, batch_size=4, priority=None):
        _, lps = self.token_logprobs(text)
        return sum(lps), len(lps)

    def loglikelihood(self, context, continuation, priority=None):
        return self.loglikelihood_rolling(continuation)

    def close(self, reason=""):
        pass

    def info(self):
        return {"name": self.name, "kind": "fake", "location": "-", "model_type": "fake", "style": self.style,
                "parameters": 0, "dtype": "float32", "device": "cpu", "threads": 1,
                "context_length": self.context_length, "load_s": 0.0}
