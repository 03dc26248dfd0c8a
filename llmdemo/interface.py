"""The model interface: what the app, the CLI, eval and the tests' fake model rely on.

Three backends satisfy it: :class:`llmdemo.backends.hf.model.LM` (transformers, with the lean forward and the
scheduler), :class:`llmdemo.backends.llamacpp.LlamaCppLM` (a GGUF file in-process through
llama-cpp-python) and :class:`llmdemo.backends.openai.OpenAILM` (any OpenAI-compatible server:
vLLM, TGI, llama.cpp's server, hosted endpoints). What a backend cannot do is in
``capabilities`` (e.g. no attention maps), so the UI can say so instead of failing.

The methods, in lm-evaluation-harness terms: ``generate_batch`` is ``generate_until``,
``loglikelihood`` and ``loglikelihood_rolling`` are theirs; ``stream`` adds streaming for the app.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from .config import GenerationConfig
from .errors import Unavailable
from .engine.stream import Stream

# what a backend may offer
GENERATE = "generate"  # stream / generate / generate_batch
SCORE = "score"  # token_logprobs / loglikelihood(_rolling): perplexity, dialogue reference perplexity
INSIDE = "inside"  # next-token distributions and attention maps (the Inside-the-model tab)
BATCH = "batch"  # several requests computed together (the scheduler, or the server's own batching)
# per generated token (GenerationConfig.logprobs, llmdemo/tokenprobs.py): probabilities before and after the
# sampling settings, the top alternatives and the entropy, from the sampler's own logits; branching from a token
TOKEN_PROBS = "token_probs"
# a server's logprobs / top_logprobs where it returns them: before the settings only, no entropy, no branching
SERVER_TOKEN_PROBS = "server_token_probs"


@runtime_checkable
class LanguageModel(Protocol):
    name: str
    style: str  # how prompts are built: "chat", "base", "seq2seq", "t5"
    context_length: int
    is_encoder_decoder: bool
    pairs: tuple  # translation pairs a one-direction translator supports; () = any
    capabilities: frozenset

    def encode(self, prompt: Any) -> list[int]: ...
    def count_tokens(self, text: str) -> int: ...
    def truncate_text(self, text: str, max_tokens: int) -> tuple[str, bool]: ...
    def stream(self, prompt: Any, config: GenerationConfig | None = None,
               stop_event: threading.Event | None = None, priority: Any = ..., heartbeat: float | None = None
               ) -> Stream: ...
    def generate(self, prompt: Any, config: GenerationConfig | None = None,
                 stop_event: threading.Event | None = None, priority: Any = ...) -> str: ...
    def generate_batch(self, prompts: Sequence[Any], config: GenerationConfig | None = None, batch_size: int = 8,
                       on_done: Callable[[int, str], None] | None = None, stop_event: threading.Event | None = None,
                       max_new_tokens: Sequence[int] | None = None, priority: Any = ...,
                       on_error: Callable[[int, BaseException], None] | None = None,
                       on_progress: Callable[[int, int], None] | None = None) -> list[str]: ...
    def token_logprobs(self, text: str, max_length: int | None = None, stride: int | None = None,
                       batch_size: int = 4, progress: Callable[[int, int], None] | None = None,
                       priority: Any = ...) -> tuple[list[int], list[float]]: ...
    def loglikelihood_rolling(self, text: str, max_length: int | None = None, stride: int | None = None,
                              batch_size: int = 4, priority: Any = ...) -> tuple[float, int]: ...
    def loglikelihood(self, context: Any, continuation: str, priority: Any = ...) -> tuple[float, int]: ...
    def info(self) -> dict[str, Any]: ...
    def close(self, reason: str = ...) -> None: ...


def require(lm: Any, capability: str, what: str) -> None:
    """Refuse, with a message that names the backend, work the loaded model's backend cannot do."""
    caps = getattr(lm, "capabilities", None)
    if caps is not None and capability not in caps:
        backend = lm.info().get("backend", "this backend") if hasattr(lm, "info") else "this backend"
        raise Unavailable("backend.unavailable", what=what, backend=backend, model=lm.name)


def loglikelihood_batch(lm: Any, pairs: Sequence[tuple[Any, str]], priority: Any = "batch") -> list[tuple[float, int]]:
    """``lm.loglikelihood_batch(pairs)`` where the backend has it (one batched pass, shared contexts computed
    once), else one ``lm.loglikelihood`` call per pair: every backend that can score answers."""
    fn = getattr(lm, "loglikelihood_batch", None)
    if fn is not None:
        return list(fn(pairs, priority=priority))
    return [tuple(lm.loglikelihood(c, x, priority=priority)) for c, x in pairs]
