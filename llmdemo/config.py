"""Decoding settings as data: one frozen, validated dataclass.

>>> GenerationConfig(temperature=0).greedy
True
>>> GenerationConfig(top_p=2)
Traceback (most recent call last):
...
llmdemo.config.ConfigError: top_p must be in (0, 1], got 2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A setting is out of range or of the wrong type; the message names the field."""


# Upper bounds that keep one request from holding the shared model for hours.
MAX_NEW_TOKENS_LIMIT = 4096
MAX_SEED = 2**32 - 1
MAX_LOGPROBS = 20  # alternatives recorded per token at most (OpenAI's top_logprobs allows 20)

# The forward pass used while generating (see llmdemo.load and LM.set_decode): "auto" runs a GGUF file on
# llama.cpp when it is installed; otherwise it measures the lean Llama forward's kernels on this CPU
# once and keeps the fastest (llmdemo/backends/hf/lean/tuning.py), else the model's own forward. A kernel name forces
# that kernel of the lean forward for prompts and decode steps; "transformers" the model's own.
DECODE_MODES = ("auto", "float32", "float16", "bfloat16", "bfloat16-onednn", "float16-onednn", "transformers")


MIN_TEMPERATURE = 0.01  # above 0 and below this, sampling is greedy in effect and overflows at the extreme
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 64


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 256  # tokens to generate at most, 1..4096
    temperature: float = 0.7  # 0 means greedy decoding; sampling otherwise, 0..5
    top_p: float = 0.9  # nucleus sampling: keep the smallest set with this much mass, (0, 1]
    top_k: int = 50  # keep the k most likely tokens; 0 disables, 0..100000
    repetition_penalty: float = 1.0  # >1 discourages tokens already seen (CTRL-style), 0.5..3
    seed: int | None = None  # seed for sampling; None draws a fresh one per call
    stop: tuple[str, ...] = field(default_factory=tuple)  # strings that end generation (not emitted)
    # token probabilities: record, for each generated token, its probability before and after the settings
    # above and this many most likely alternatives (Stream.token_info); 0 = off (nothing extra computed), 0..20
    logprobs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_new_tokens", _int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS_LIMIT))
        object.__setattr__(self, "temperature", _float("temperature", self.temperature, 0.0, 5.0))
        if 0.0 < self.temperature < MIN_TEMPERATURE:  # logits / 1e-300 overflow: an internal error, not a choice
            raise ConfigError("config.temperature_tiny", min=MIN_TEMPERATURE, value=self.temperature)
        top_p = _number("top_p", self.top_p)
        if not 0.0 < top_p <= 1.0:
            raise ConfigError("config.range", name="top_p", range="(0, 1]", value=self.top_p)
        object.__setattr__(self, "top_p", top_p)
        object.__setattr__(self, "top_k", _int("top_k", self.top_k, 0, 100_000))
        object.__setattr__(
            self, "repetition_penalty", _float("repetition_penalty", self.repetition_penalty, 0.5, 3.0)
        )
        if self.seed is not None:
            object.__setattr__(self, "seed", _int("seed", self.seed, 0, MAX_SEED))
        stop = self.stop
        if isinstance(stop, str):
            stop = (stop,)
        if not all(isinstance(s, str) for s in stop):
            raise ConfigError("config.stop_list", value=self.stop)
        # each stop string is looked for after every token: 1,000 of them halved the speed of every row
        if len(stop) > MAX_STOP_STRINGS or any(len(s) > MAX_STOP_CHARS for s in stop):
            raise ConfigError("config.stop_size", n=MAX_STOP_STRINGS, chars=MAX_STOP_CHARS)
        object.__setattr__(self, "stop", tuple(s for s in stop if s))
        object.__setattr__(self, "logprobs", _int("logprobs", self.logprobs, 0, MAX_LOGPROBS))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def replace(self, **changes: Any) -> "GenerationConfig":
        """A copy with some fields changed (validated again); None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        if not d["logprobs"]:
            del d["logprobs"]  # off: the dict is as before the field existed (eval run folders compare it)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GenerationConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError("config.unknown", names=", ".join(sorted(unknown)))
        return cls(**{k: (tuple(v) if k == "stop" and v is not None else v) for k, v in d.items()})


def _number(name: str, value: Any) -> float:
    # bool is an int subclass; "True" as a temperature is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError("config.number", name=name, value=value) from None
        else:
            raise ConfigError("config.number", name=name, value=value)
    if not math.isfinite(value):
        raise ConfigError("config.finite", name=name, value=value)
    return float(value)


def _float(name: str, value: Any, lo: float, hi: float) -> float:
    v = _number(name, value)
    if not lo <= v <= hi:
        raise ConfigError("config.range", name=name, range=f"[{lo:g}, {hi:g}]", value=value)
    return v


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    v = _number(name, value)
    if v != int(v):
        raise ConfigError("config.whole", name=name, value=value)
    if not lo <= v <= hi:
        raise ConfigError("config.range", name=name, range=f"[{lo}, {hi}]", value=value)
    return int(v)


# Defaults that suit each task: deterministic output where there is one right answer.
TASK_DEFAULTS: dict[str, GenerationConfig] = {
    "generation": GenerationConfig(max_new_tokens=200, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
    "translation": GenerationConfig(max_new_tokens=256, temperature=0.0, repetition_penalty=1.0),
    "dialogue": GenerationConfig(max_new_tokens=256, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1),
    "summarization": GenerationConfig(max_new_tokens=160, temperature=0.0, repetition_penalty=1.1),
}
