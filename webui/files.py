"""Files handed out to a visitor, and what is cleaned up after them.

Exports and an evaluation's results reach the page as private copies in temporary folders (Gradio
copies them into its cache, served to that visitor's page only); the copies are removed after an
hour, and visitors' run folders after ``keep_runs_hours``. The output folder itself is never served.
"""

from __future__ import annotations

def _export_file(name: str, content: str) -> str:
    """A download: the file in a private temporary folder (Gradio copies it into its cache, removed after an hour)."""
    import tempfile
    import time as _time
    from pathlib import Path

    folder = tempfile.mkdtemp(prefix="llmdemo-export-")
    _SHARED.append((_time.time(), folder))
    path = Path(folder) / name
    path.write_text(content, encoding="utf-8")
    return str(path)


_SHARED: list[tuple[float, str]] = []  # (created, folder) of private copies, removed after an hour


def _private_copy(out, names: list[str]) -> dict[str, str]:
    import shutil
    import tempfile
    import time as _time
    from pathlib import Path

    now = _time.time()
    while _SHARED and now - _SHARED[0][0] > 3600:
        shutil.rmtree(_SHARED.pop(0)[1], ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="llmdemo-")
    _SHARED.append((now, folder))
    copies = {}
    for n in names:
        if (Path(out) / n).exists():
            copies[n] = str(shutil.copy(Path(out) / n, Path(folder) / n))
    return copies


def _remove_old_runs(folder, hours: float) -> None:
    """Visitors' run folders older than ``hours`` go (run folders only: nothing else in the folder is touched)."""
    import shutil
    import time as _time

    from eval.runfolder import is_run_file

    if not folder.is_dir():
        return
    cutoff = _time.time() - hours * 3600
    for d in folder.iterdir():
        try:
            if d.is_dir() and not d.is_symlink() and d.stat().st_mtime < cutoff \
                    and all(is_run_file(p.name) for p in d.iterdir()) and not (d / "run.lock").exists():
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue
