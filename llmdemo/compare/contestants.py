"""Contestants for side-by-side comparisons: decoding-settings presets of the one loaded model, as data.

A contestant is a name and the settings it changes over the task's defaults (``config.TASK_DEFAULTS``);
the name is what a blind vote reveals and the leaderboard ranks, so two sides of one comparison must
have different names. A visitor's own temperature or top-p makes a new name (the settings differ);
a seed does not (a seed is one draw of the same settings, not another contestant).

>>> name, cfg = contestant("top-p 0.5", task="generation", max_new_tokens=16)
>>> name, cfg.temperature, cfg.top_p, cfg.top_k
('top-p 0.5', 1.0, 0.5, 0)
>>> contestant("greedy", temperature=0.8)[0]
'temperature 0.8 (from greedy)'
>>> contestant("greedyy")
Traceback (most recent call last):
...
llmdemo.config.ConfigError: unknown contestant 'greedyy'; did you mean 'greedy'?

An entry may name a model besides the preset, ``"PRESET @ MODEL"`` (any name the Model tab loads): that
contestant is the preset on that model, loaded beside the loaded one (``llmdemo/compare/models.py``). An
operator names the allowed entries at start (``LLMDEMO_CONTESTANTS`` / ``--contestants``, comma-separated):

>>> parse_list("greedy, top-p 0.95 @ llamacpp:default")
('greedy', 'top-p 0.95 @ llamacpp:default')
>>> split_entry("top-p 0.95 @ llamacpp:default")
('top-p 0.95', 'llamacpp:default')
"""

from __future__ import annotations

import difflib
from typing import Any

from ..config import TASK_DEFAULTS, ConfigError, GenerationConfig

# name -> the settings it sets (everything else: the task's defaults). Sampling presets turn top-k off,
# so that each one differs from the others in the one setting its name says.
CONTESTANTS: dict[str, dict[str, Any]] = {
    "greedy": {"temperature": 0.0, "repetition_penalty": 1.0},
    "temperature 0.7": {"temperature": 0.7, "top_p": 1.0, "top_k": 0},
    "temperature 1.0": {"temperature": 1.0, "top_p": 1.0, "top_k": 0},
    "top-p 0.5": {"temperature": 1.0, "top_p": 0.5, "top_k": 0},
    "top-p 0.95": {"temperature": 1.0, "top_p": 0.95, "top_k": 0},
    "repetition penalty 1.3": {"temperature": 0.0, "repetition_penalty": 1.3},
}
DEFAULT_PAIR = ("greedy", "temperature 1.0")


def split_entry(entry: str) -> tuple[str, str]:
    """``"PRESET @ MODEL"`` -> (preset, model); a bare preset -> (preset, "")."""
    preset, _, model = str(entry).partition("@")
    return preset.strip(), model.strip()


def parse_list(text: str | None) -> tuple[str, ...]:
    """An operator's contestants (comma-separated entries), each checked now: a typo fails the start, not a visitor."""
    out = []
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        preset, model = split_entry(entry)
        contestant(preset)  # raises ConfigError with the closest name
        if model:  # a model that cannot be found fails now too (resolving loads nothing)
            from ..presets import resolve

            resolve(model, allow_paths=True, allow_hub_ids=True)
        out.append(f"{preset} @ {model}" if model else preset)
    if len(out) == 1 or len(set(out)) != len(out):
        raise ConfigError("contestant.list", given=str(text)[:200])
    return tuple(out)


def contestant(name: str, task: str = "generation", max_new_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None,
               seed: int | None = None) -> tuple[str, GenerationConfig]:
    """The contestant's name (with the visitor's own settings in it) and its validated settings."""
    if not isinstance(name, str) or name not in CONTESTANTS:
        close = difflib.get_close_matches(str(name), list(CONTESTANTS), n=1)
        if close:
            raise ConfigError("contestant.unknown_close", name=str(name)[:80], close=close[0])
        raise ConfigError("contestant.unknown", name=str(name)[:80], choices=", ".join(CONTESTANTS))
    if task not in TASK_DEFAULTS:
        raise ConfigError("input.task", task=str(task)[:80], choices=", ".join(TASK_DEFAULTS))
    cfg = TASK_DEFAULTS[task].replace(**CONTESTANTS[name]).replace(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    base = TASK_DEFAULTS[task].replace(**CONTESTANTS[name])
    own = [f"temperature {cfg.temperature:g}" if cfg.temperature != base.temperature else "",
           f"top-p {cfg.top_p:g}" if cfg.top_p != base.top_p else ""]
    own = [o for o in own if o]
    # named by what it does, then the preset it started from ("greedy (own: temperature 0.8)" named a sampled
    # contestant greedy)
    return (f"{', '.join(own)} (from {name})" if own else name), cfg
