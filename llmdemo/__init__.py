"""llmdemo: try a language model and measure it honestly.

>>> from llmdemo import GenerationConfig, load
>>> lm = load()                                   # doctest: +SKIP
>>> lm.generate("Name three colours.", GenerationConfig(temperature=0))  # doctest: +SKIP

The package imports no gradio and nothing from eval/: the app and the evaluation
harness both sit on top of it.
"""

from .config import TASK_DEFAULTS, ConfigError, GenerationConfig
from .presets import DEFAULT_MODEL, PRESETS, UnknownModelError

__all__ = ["load", "LM", "GenerationConfig", "ConfigError", "TASK_DEFAULTS", "DEFAULT_MODEL", "PRESETS",
           "UnknownModelError"]
__version__ = "0.1.0"


def __getattr__(name):
    # torch and transformers load only when a model is needed
    if name == "LM":
        from .backends.hf.model import LM

        return LM
    if name == "load":
        from .load import load

        return load
    raise AttributeError(name)
