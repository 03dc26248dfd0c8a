"""The weight type llama.cpp runs: the shipped GGUF or its Q8_0 re-encoding, whichever is faster here.

A GGUF's type decides which of llama.cpp's CPU kernels run, and the fastest depends on the CPU: the
bundled SmolLM2 ships as Q4_1, which has no repacked x86 kernel; re-encoded as Q8_0 it read a 300-token
prompt 1.3-1.6x faster and decoded up to 1.3x faster on an AMD EPYC Zen 4 (docs/engine.md, runs differ on
a shared machine). Q8_0 keeps 8 bits for each of a 4-6-bit type's values, so the model is the same in
practice (llama.cpp perplexity +0.15% on 9,471 WikiText-2 tokens here; tests/test_weights.py holds it to
0.5%). A lower type (Q4_0) would be faster still but quantizes a second time (+20% perplexity), so it is
never chosen for the user.

At first use on a machine :func:`choose` converts the file (``llama_model_quantize``, half a second
for 135M parameters), times a short prompt and decode probe on both, keeps the faster and remembers the
choice, so later starts only read a small JSON file. Everything lives in the model cache
(``~/.cache/llmdemo`` or ``$LLMDEMO_CACHE``, under ``llamacpp/<source sha256 prefix>-<llama.cpp version and
build hash>/``), written whole or not at all, one process at a time (a lock); the choice is per CPU (its
model, flags and the CPUs this process may use), thread count and ``LLMDEMO_LLAMACPP_EXTRA_BUFTS``.
``LLMDEMO_LLAMACPP_WEIGHTS=shipped`` runs the file as given; ``q8_0`` converts any type below 8 bits
without timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

MODES = ("auto", "shipped", "q8_0")
# llama_ftype values (llama.h) of types below 8 bits a weight, which Q8_0 holds without loss in practice
LOW_BIT = {2: "Q4_0", 3: "Q4_1", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L",
           14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
           21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
           28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M"}
FTYPE_Q8_0 = 7
MARGIN = 0.95  # the re-encoding must be 5% faster on the probe: not worth a second file otherwise
PROBE_TEXT = ("The committee met on Tuesday to discuss the new budget for the city's public libraries, which "
              "had seen a sharp rise in visitors since the winter. ") * 8


@dataclass
class Weights:
    """What llama.cpp runs and why (the Model tab and ``info()`` show it)."""

    path: str  # the file llama.cpp loads
    type: str  # "Q8_0", "Q4_1", ... ("as shipped" when not read)
    shipped_type: str
    reason: str
    probe: dict[str, Any] = field(default_factory=dict)  # seconds per candidate: prompt, decode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mode_from_env(option: str | None = None) -> str:
    mode = (option or os.environ.get("LLMDEMO_LLAMACPP_WEIGHTS") or "auto").strip().lower()
    if mode not in MODES:
        raise ValueError(f"LLMDEMO_LLAMACPP_WEIGHTS must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _build_key() -> str:
    """llama.cpp's version and compiled CPU features: another build may pick other kernels."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return f"{llama_cpp.__version__}-{hashlib.sha256(info.encode()).hexdigest()[:8]}"


def _cpu_key() -> str:
    from ...modelfiles import cpu_identity, usable_cpus

    model, flags = cpu_identity()
    return hashlib.sha256(f"{model}|{flags}|{usable_cpus()}".encode()).hexdigest()[:12]


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def file_type(path: str | Path) -> int | None:
    """``general.file_type`` of a GGUF (None when absent), read from its key/value header.

    A few lines of the format (ggml's docs/gguf.md) instead of ``gguf.GGUFReader``, which maps every field
    and took 2.5 s on the bundled file for this one number.

    >>> import tempfile, struct
    >>> head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    >>> key = lambda k: struct.pack("<Q", len(k)) + k
    >>> head += key(b"general.name") + struct.pack("<IQ", 8, 3) + b"abc"
    >>> head += key(b"general.file_type") + struct.pack("<II", 4, 3)
    >>> f = tempfile.NamedTemporaryFile(suffix=".gguf", delete=False); _ = f.write(head); f.close()
    >>> file_type(f.name)
    3
    """
    import struct

    with open(path, "rb") as f:
        def read(fmt: str):
            size = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(size))[0]

        def skip(vtype: int) -> None:
            if vtype == 8:  # a string: its length, then its bytes
                f.seek(read("Q"), 1)
            elif vtype == 9:  # an array: element type, count, elements
                etype, count = read("I"), read("Q")
                if etype in _SCALAR:
                    f.seek(struct.calcsize("<" + _SCALAR[etype]) * count, 1)
                else:
                    for _ in range(count):
                        skip(etype)
            else:
                f.seek(struct.calcsize("<" + _SCALAR[vtype]), 1)

        if f.read(4) != b"GGUF":
            raise ValueError(f"{Path(path).name} is not a GGUF file")
        version = read("I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        read("Q")  # tensors
        for _ in range(read("Q")):
            key = f.read(read("Q")).decode("utf-8", "replace")
            vtype = read("I")
            if key == "general.file_type" and vtype in _SCALAR:
                return int(read(_SCALAR[vtype]))
            skip(vtype)
    return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def quantize_q8_0(src: str | Path, dst: Path) -> None:
    """Re-encode ``src`` as Q8_0 into ``dst``, whole or not at all (a temporary file, then renamed)."""
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    from ...modelfiles import usable_cpus

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = FTYPE_Q8_0, True
    params.nthread = min(usable_cpus(), 8)
    try:
        with suppress_stdout_stderr(disable=False):  # llama.cpp prints a line per tensor
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize failed (code {rc})")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def extra_bufts() -> bool:
    """Whether llama.cpp may use its extra buffer types (AMX, repacked weights): off with
    ``LLMDEMO_LLAMACPP_EXTRA_BUFTS=0``, for a ``-march=native`` build that crashed in them. The probe and the
    engine use the same setting, and the choice is remembered per setting."""
    return os.environ.get("LLMDEMO_LLAMACPP_EXTRA_BUFTS") != "0"


def probe(path: str | Path, threads: int) -> dict[str, float]:
    """Seconds to read a 128-token prompt and to decode 32 tokens one by one, with the engine's kernel
    settings (flash attention, 32-token micro-batches, the same extra buffer types)."""
    import inspect

    from llama_cpp import Llama

    kw: dict[str, Any] = {}
    if not extra_bufts() and "use_extra_bufts" in inspect.signature(Llama.__init__).parameters:
        kw["use_extra_bufts"] = False
    llm = Llama(model_path=str(path), n_ctx=256, n_batch=256, n_ubatch=32, flash_attn=True, n_threads=threads,
                n_threads_batch=threads, verbose=False, **kw)
    try:
        ids = list(llm.tokenize(PROBE_TEXT.encode(), add_bos=False))[:128]
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        prompt = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(32):
            llm.eval([ids[i]])
        decode = time.perf_counter() - t
        return {"prompt_s": prompt, "decode_s": decode}
    finally:
        llm.close()


def _saved(choice: Path, q8: Path, path: str) -> Weights | None:
    try:
        saved = json.loads(choice.read_text(encoding="utf-8"))
        if saved["type"] != "Q8_0" or q8.is_file():
            saved["path"] = str(q8) if saved["type"] == "Q8_0" else path
            return Weights(**saved)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not chosen yet on this machine (or an unreadable choice: chosen again)
    return None


def choose(path: str | Path, *, mode: str = "auto", threads: int = 2,
           progress: Callable[[str], None] | None = None, probe_fn: Callable[..., dict] = probe) -> Weights:
    """The file llama.cpp should run for the GGUF at ``path`` (see the module docstring)."""
    import fcntl

    from ...modelfiles import cache_root, file_sha256

    path = str(path)
    if mode == "shipped":
        return Weights(path, "as shipped", "as shipped", "LLMDEMO_LLAMACPP_WEIGHTS=shipped")
    folder = cache_root() / "llamacpp" / f"{file_sha256(path)[:16]}-{_build_key()}"
    choice = folder / f"choice-{mode}-{_cpu_key()}{'' if extra_bufts() else '-noextra'}-t{threads}.json"
    q8 = folder / "q8_0.gguf"
    w = _saved(choice, q8, path)
    if w is not None:
        return w
    folder.mkdir(parents=True, exist_ok=True)
    # one process converts and probes at a time: two probing at once would slow each other and the
    # disturbed result would be remembered; the second reads the first one's choice
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        w = _saved(choice, q8, path)
        if w is not None:
            return w
        for stale in folder.glob(".*.tmp"):  # a conversion or write killed part-way (we hold the lock)
            stale.unlink(missing_ok=True)
        w = _choose_locked(path, mode, threads, q8, progress, probe_fn)
        _write_json(choice, {k: v for k, v in w.to_dict().items() if k != "path"} | {"path": ""})
        return w


def _choose_locked(path: str, mode: str, threads: int, q8: Path, progress, probe_fn) -> Weights:
    ftype = file_type(path)
    named = {0: "F32", 1: "F16", 7: "Q8_0", 32: "BF16"}
    shipped = LOW_BIT.get(ftype) or named.get(ftype) or f"type {ftype}"
    if ftype is None:
        return Weights(path, "as shipped", "as shipped", "the GGUF does not say its weight type: run as shipped")
    if ftype in named:
        return Weights(path, shipped, shipped, f"{shipped} already has 8 bits or more a weight: run as shipped")
    if ftype not in LOW_BIT:
        return Weights(path, shipped, shipped, f"{shipped} is not a type this re-encodes: run as shipped")
    if not q8.is_file():
        if progress:
            progress(f"Re-encoding the {shipped} model as Q8_0 (once on this machine)")
        quantize_q8_0(path, q8)
    if mode == "q8_0":
        return Weights(str(q8), "Q8_0", shipped, "LLMDEMO_LLAMACPP_WEIGHTS=q8_0")
    if progress:
        progress(f"Timing {shipped} against Q8_0 on this CPU (once)")
    times: dict[str, list[dict]] = {shipped: [], "Q8_0": []}
    for _ in range(2):  # interleaved, best of two each: one burst of load does not decide
        for name, p in ((shipped, path), ("Q8_0", q8)):
            times[name].append(probe_fn(p, threads))
    best = {k: min(v, key=lambda t: t["prompt_s"] + t["decode_s"]) for k, v in times.items()}
    cost = {k: v["prompt_s"] + v["decode_s"] for k, v in best.items()}
    faster = cost["Q8_0"] < MARGIN * cost[shipped]
    how = (f"128-token prompt + 32 decode steps: Q8_0 {cost['Q8_0'] * 1000:.0f} ms, {shipped} "
           f"{cost[shipped] * 1000:.0f} ms")
    return Weights(str(q8) if faster else path, "Q8_0" if faster else shipped, shipped,
                   (f"faster on this CPU than the shipped {shipped} ({how}); Q8_0 holds its values"
                    if faster else f"the shipped {shipped} is as fast here ({how})"),
                   {k: {m: round(x, 4) for m, x in v.items()} for k, v in best.items()})
