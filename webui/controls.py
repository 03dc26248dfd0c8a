"""The fields more than one tab builds: the decoding settings, and the languages offered.

The six decoding fields are built once here (:func:`decoding_controls`), and their six values become a
GenerationConfig in one place (:func:`decoding_config`), the server's limits checked.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.config import TASK_DEFAULTS, ConfigError, GenerationConfig

from .i18n import t
from .settings import AppSettings

LANG_CHOICES = [(f"{name} ({code})", code) for code, name in prompts.LANGUAGES.items()]


def decoding_config(task: str, settings: AppSettings, max_new_tokens: Any, temperature: Any, top_p: Any, top_k: Any,
                    repetition_penalty: Any, seed: Any) -> GenerationConfig:
    """The decoding fields' six values as ``task``'s GenerationConfig (None: the task's default)."""
    if isinstance(seed, str):  # the seed box is text: empty means random, and nothing turns it into 0
        seed = seed.strip() or None
        if seed is not None:
            try:
                seed = int(seed)
            except ValueError:
                raise ConfigError("config.whole", name="seed", value=seed) from None
    cfg = TASK_DEFAULTS[task].replace(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                      top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
    if cfg.max_new_tokens > settings.max_new_tokens:
        raise ConfigError("config.range_server", name="max_new_tokens", range=f"[1, {settings.max_new_tokens}]",
                          value=cfg.max_new_tokens)
    return cfg


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
