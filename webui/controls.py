"""The fields more than one tab builds: the decoding settings, and the languages offered.

The six decoding fields are built once here (:func:`decoding_controls`); their six values travel as one
:class:`Decoding` (handlers take it through :func:`takes_decoding`) and become a GenerationConfig in one
place (:meth:`Decoding.config`), the server's limits checked.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.config import TASK_DEFAULTS, ConfigError, GenerationConfig

from .i18n import t
from .settings import AppSettings

LANG_CHOICES = [(f"{name} ({code})", code) for code, name in prompts.LANGUAGES.items()]


DECODING_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed")


@dataclass(frozen=True)
class Decoding:
    """The six decoding fields' values as one (None: the task's default), as a page or an API caller sends them."""

    max_new_tokens: Any = None
    temperature: Any = None
    top_p: Any = None
    top_k: Any = None
    repetition_penalty: Any = None
    seed: Any = None

    def config(self, task: str, settings: AppSettings) -> GenerationConfig:
        """``task``'s GenerationConfig with these values, the server's limits checked."""
        seed = self.seed
        if isinstance(seed, str):  # the seed box is text: empty means random, and nothing turns it into 0
            seed = seed.strip() or None
            if seed is not None:
                try:
                    seed = int(seed)
                except ValueError:
                    raise ConfigError("config.whole", name="seed", value=seed) from None
        cfg = TASK_DEFAULTS[task].replace(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                          top_p=self.top_p, top_k=self.top_k,
                                          repetition_penalty=self.repetition_penalty, seed=seed)
        if cfg.max_new_tokens > settings.max_new_tokens:
            raise ConfigError("config.range_server", name="max_new_tokens", range=f"[1, {settings.max_new_tokens}]",
                              value=cfg.max_new_tokens)
        return cfg

    def fields(self) -> dict[str, Any]:
        """The six values by name: what a handler that takes a Decoding is called with (see takes_decoding)."""
        return {f: getattr(self, f) for f in DECODING_FIELDS}


def takes_decoding(fn):
    """A handler written with one ``decoding: Decoding`` parameter, as Gradio and API callers see it: the six
    fields as parameters in its place (Gradio names an endpoint's parameters after the function's, and the
    page's six fields arrive as six values), packed into one Decoding before the handler runs.
    Put it under ``@friendly`` (which reads the request from the signature callers see). A wrapper of the
    bound method must not copy its ``__dict__`` (``functools.wraps(fn, updated=())``): that would copy the
    function's ``__signature__``, ``self`` included."""
    sig = inspect.signature(fn)
    params = []
    for p in sig.parameters.values():
        if p.name == "decoding":
            params += [inspect.Parameter(f, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                       for f in DECODING_FIELDS]
        else:
            params.append(p)
    outer = sig.replace(parameters=params)

    def pack(args, kwargs) -> dict:
        given = outer.bind(*args, **kwargs).arguments
        given["decoding"] = Decoding(**{f: given.pop(f, None) for f in DECODING_FIELDS})
        return given

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return (yield from fn(**pack(args, kwargs)))
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(**pack(args, kwargs))
    wrapper.__signature__ = outer
    return wrapper


def decoding_controls(task: str, settings: AppSettings, max_new_tokens: int | None = None) -> list:
    """The collapsible panel of decoding settings, with this task's defaults."""
    d = TASK_DEFAULTS[task].replace(max_new_tokens=max_new_tokens)
    with gr.Accordion(t("decoding"), open=False):
        with gr.Row():
            max_new = gr.Slider(1, settings.max_new_tokens, value=min(d.max_new_tokens, settings.max_new_tokens),
                                step=1, label=t("max_new"))
            temperature = gr.Slider(0, 2, value=d.temperature, step=0.05, label=t("temperature"))
            top_p = gr.Slider(0.05, 1, value=d.top_p, step=0.05, label=t("top_p"))
        with gr.Row():
            top_k = gr.Slider(0, 200, value=d.top_k, step=1, label=t("top_k"))
            rep = gr.Slider(1.0, 2.0, value=d.repetition_penalty, step=0.05, label=t("rep"))
            # a text box: gr.Number turned "empty" into 0 when the panel opened, fixing every run's seed
            seed = gr.Textbox(value="", label=t("seed"), placeholder=t("seed_ph"), max_lines=1, elem_classes="seed")
    return [max_new, temperature, top_p, top_k, rep, seed]
