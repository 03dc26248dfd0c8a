"""One line for people (the Model tab) on the forward a loaded model generates with and how it was chosen.

It reads ``info()`` only, so the page can say it without importing torch (the lean forward's own module,
``hf/lean/tuning.py``, does).
"""

from __future__ import annotations

from typing import Any


def _llamacpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def describe(info: dict[str, Any]) -> str:
    """One line for people (the app's Model tab): the forward used while generating and how it was chosen."""
    decode = info.get("decode")
    if decode == "llamacpp":
        tc = info.get("thread_choice") or {}
        how = "measured fastest here" if tc.get("source") == "measured" else "set by LLMDEMO_LLAMACPP_THREADS"
        if tc.get("while_serving"):
            how += ", re-checked every few seconds while serving"
        seqs = f", up to {info['sequences']} sequences per step" if info.get("sequences") else ""
        return f"llama.cpp, {info.get('threads')} thread(s) ({how}){seqs}"
    if decode in (None, "server"):
        return {"server": "the server's"}.get(decode, "n/a")
    # a GGUF file that could have run on llama.cpp says why it does not
    note = "; llama.cpp is not installed (setup.sh without --no-llamacpp adds it: 4-6x faster on CPUs)" \
        if info.get("kind") == "gguf" and not _llamacpp_installed() else ""
    if decode == "transformers":
        return "the model's own (transformers)" + note
    prefill = info.get("prefill") or decode
    kernels = f"{decode}" if prefill == decode else f"{decode} for decode steps, {prefill} for prompts"
    choice = info.get("decode_choice") or {}
    how = {"measured": "measured on this CPU", "cache": "measured earlier on this CPU",
           "forced": "set with --decode",
           "only": "the only candidate in LLMDEMO_DECODE_CANDIDATES"}.get(choice.get("source"), "")
    timing = choice.get("measured", {}).get(decode, {})
    if "decode_ms" in timing:
        how += f": {timing['decode_ms']:.0f} ms per decode step"
    return f"lean Llama forward, {kernels}" + (f" ({how})" if how else "") + note
