"""Ways of running a model besides transformers in-process (``llmdemo.backends.hf.model.LM``).

- ``llamacpp:PATH.gguf`` / ``llamacpp:default``: :mod:`llmdemo.backends.llamacpp` (llama-cpp-python);
- ``openai:NAME`` (chat completions) / ``openai-base:NAME`` (completions) on any OpenAI-compatible
  server: :mod:`llmdemo.backends.openai` (``base_url`` or ``OPENAI_BASE_URL``).

All satisfy :class:`llmdemo.interface.LanguageModel`.
"""

from __future__ import annotations

from typing import Any


def load_backend(source, *, base_url: str | None = None, api_key: str | None = None, tokenizer: str | None = None,
                 concurrency: int | str = "auto", context_length: int | None = None, **ignored: Any):
    """Load a resolved :class:`llmdemo.presets.ModelSource` of kind llamacpp / openai / openai-base."""
    from ..errors import ModelLoadError, first_line

    try:
        if source.kind == "llamacpp":
            from .llamacpp import LlamaCppLM

            return LlamaCppLM(source.location, name=source.name, style=source.style,
                              pairs=source.preset.pairs if source.preset else ())
        from .openai import OpenAILM

        return OpenAILM(source.location, base_url=base_url, api_key=api_key, chat=source.kind == "openai",
                        tokenizer=tokenizer, concurrency=concurrency, context_length=context_length)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        raise ModelLoadError("model.load_backend", name=source.name, detail=first_line(e)) from e
