"""``load(name, ...)``: the one factory for every backend.

A name is resolved by :func:`llmdemo.presets.resolve` (a preset, a hub id, a folder, a .gguf file,
``llamacpp:...``, ``openai:...``); what it resolves to picks the backend:

- ``llamacpp:PATH.gguf`` / ``llamacpp:default``: llama.cpp in-process (:mod:`llmdemo.backends.llamacpp`);
- ``openai:NAME`` / ``openai-base:NAME``: an OpenAI-compatible server (:mod:`llmdemo.backends.openai`);
- a GGUF file (the bundled default among them) with ``decode="auto"`` on a CPU where llama-cpp-python
  is installed: llama.cpp generates, the transformers forward of the same weights scores;
- anything else: the transformers backend, :class:`llmdemo.backends.hf.model.LM`.

Every backend satisfies :class:`llmdemo.interface.LanguageModel`.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable

from .config import DECODE_MODES
from .errors import ModelLoadError, first_line
from .interface import LanguageModel
from .presets import resolve


def has_llamacpp() -> bool:
    """Whether llama-cpp-python is installed (setup.sh compiles it; --no-llamacpp leaves it out) and not
    turned off (``LLMDEMO_ENGINE=torch``)."""
    return importlib.util.find_spec("llama_cpp") is not None and os.environ.get("LLMDEMO_ENGINE") != "torch"


def load(name: str | None = None, *, device: str | None = None, dtype: str | None = None,
         trust_remote_code: bool = False, allow_paths: bool = True, allow_hub_ids: bool = True,
         progress: Callable[[str], None] | None = None, decode: str = "auto", **backend_options) -> LanguageModel:
    """Load a preset, hub id, local folder or .gguf file (default: the bundled SmolLM2) on the backend it names.

    ``decode`` chooses the transformers backend's forward pass while generating (see
    :meth:`llmdemo.backends.hf.model.LM.set_decode`). ``backend_options`` go to the llama.cpp and server backends
    (``base_url``, ``api_key``, ``tokenizer``, ``concurrency``, ...). Failures raise
    :class:`~llmdemo.errors.ModelLoadError` with the first line of the cause.
    """
    if decode not in DECODE_MODES:
        raise ModelLoadError("model.decode_mode", mode=decode, choices=", ".join(DECODE_MODES))
    from .modelfiles import _stderr_progress

    source = resolve(name, allow_paths=allow_paths, allow_hub_ids=allow_hub_ids)
    if source.kind in ("llamacpp", "openai", "openai-base"):
        from .backends import load_backend

        return load_backend(source, **backend_options)
    if source.kind == "gguf" and decode == "auto" and (device or "cpu") in ("cpu", "auto") and has_llamacpp():
        # A GGUF file (the bundled default among them) generates on llama.cpp: it reads the
        # quantized blocks as stored, 4-6x faster than a torch forward of the same weights on
        # these CPUs, and maps the file in a fraction of a second. Scoring stays exact: the
        # transformers model of the same weights in float32, built on first use.
        from .backends.llamacpp import LlamaCppLM

        try:
            return LlamaCppLM(source.location, name=source.name, style=source.style,
                              pairs=source.preset.pairs if source.preset else (), exact_scoring=True,
                              progress=progress or _stderr_progress)
        except (OSError, ValueError, RuntimeError) as e:
            raise ModelLoadError("model.load", name=source.name, location=str(source.location),
                                 detail=first_line(e)) from e
    from .backends.hf.model import LM

    return LM.from_source(source, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                          progress=progress, decode=decode)
