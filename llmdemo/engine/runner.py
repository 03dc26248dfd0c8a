"""Model runners: how the scheduler's sequences go through a forward pass (vLLM's "model runner").

A runner knows one way of computing logits and keeps each sequence's state (its KV cache) in
``seq.state``. The scheduler decides what runs when; the runner only computes:

    start(seq)            set up the sequence's state (reusing a kept prefix where it can)
    step(prefills, decodes)  prompt chunks and decode rows: each prefill's logits (V,) once its prompt is
                          read (None before), and the decode rows' logits (B, V)
    prefill(seq)          read the next chunk of the prompt; logits (V,) once the prompt is read
    decode(seqs, tokens)  one step for several sequences together (``tokens``: one id each): logits (B, V)
    finish(seq, keep)     release the state (or keep the prompt's keys/values for the next prompt)

Logits are float32 numpy arrays on the CPU, whatever the backend computes with: the sampler is numpy
(``sampler.py``), so the engine imports no torch.

The runners themselves live with their backends: ``backends/llamacpp/`` (many sequences in one
llama.cpp context) and ``backends/hf/runners.py`` (the lean Llama forward; transformers' own forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(eq=False)
class Sequence:
    """One request's decoding state, touched only by the scheduler's thread."""

    prompt: list[int]
    budget: int  # new tokens at most
    filled: int = 0  # prompt tokens already computed (reused from the prefix cache included)
    reused: int = 0  # prompt tokens whose keys/values came from the prefix cache
    state: Any = None  # the runner's: a KVCache, a transformers cache, ...
    seen: list[int] | None = None  # the ids the repetition penalty looks at (None: no penalty)
    last: int | None = None  # the token to feed next
    new: list[int] = field(default_factory=list)
    sampler: Any = None  # the request's own Sampler
    encoder: Any = None  # encoder-decoders: the encoder's output
    # its logits must not depend on the thread count or on the step's other rows (evaluation work, whose
    # numbers are reported): a runner may pay for it (llama.cpp pads a step it would run alone)
    exact: bool = False

    @property
    def prefilled(self) -> bool:
        return self.filled >= len(self.prompt)


class Runner(Protocol):
    """What the scheduler asks of a forward pass (its only view of one; see the module docstring).

    The scheduler's loop has one body: each step it calls ``step(prefills, decodes) -> (prefill logits,
    decode logits)`` with the prompt chunks to read (at most ``n_batch`` prompt tokens) and the decode rows.
    llama.cpp's runner reads them in one call; a runner that reads one prompt at a time inherits
    :class:`PromptThenDecode`. A runner with a fixed room (llama.cpp's cells) also has
    ``can_start(n_prompt, budget)``."""

    name: str
    n_batch: int

    def start(self, seq: Sequence) -> None: ...

    def step(self, prefills: list[tuple[Sequence, int]], decodes: list[Sequence]) -> tuple[list, Any]: ...

    def prefill(self, seq: Sequence) -> np.ndarray | None: ...  # (V,) once the prompt is read

    def decode(self, seqs: list[Sequence], tokens: list[int]) -> np.ndarray: ...  # (B, V)

    def finish(self, seq: Sequence, keep_prefix: bool) -> None: ...


class PromptThenDecode:
    """``step`` for a runner whose forward reads one prompt at a time (transformers'): the one prompt's next
    chunk (its size is the runner's: ``prefill`` reads it), then every decode row together."""

    # The scheduler fills a step with prompts up to n_batch tokens: 1 lets one prompt in per step
    n_batch = 1

    def step(self, prefills: list[tuple[Sequence, int]], decodes: list[Sequence]) -> tuple[list, Any]:
        import numpy as np

        pre = [self.prefill(seq) for seq, _ in prefills]
        dec = self.decode(decodes, [s.last for s in decodes]) if decodes else np.empty((0, 0), np.float32)
        return pre, dec
