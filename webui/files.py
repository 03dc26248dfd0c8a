"""Files handed out to a visitor, and what is cleaned up after them.

Exports and an evaluation's results reach the page as private copies in temporary folders (Gradio
copies them into its cache, served to that visitor's page only); the copies are removed after an
hour, and visitors' run folders after ``keep_runs_hours``. The output folder itself is never served.
"""

from __future__ import annotations

import re

KEEP_SHARED_S = 3600  # private copies and exports are removed after this long...
SHARED_BUDGET = 256 << 20  # ...or sooner, oldest first, while all of them together take more than this
_SHARED: list[tuple[float, str, int]] = []  # (created, folder, bytes) of private copies and exports, oldest first


def _sweep_shared(now: float, adding: int = 0) -> None:
    """Remove private copies and exports older than KEEP_SHARED_S, then the oldest while over SHARED_BUDGET
    (every export click once left a copy that nothing removed: 100 clicks, 86 MB). Gradio's own copy in its
    cache goes with its ``delete_cache``."""
    import shutil

    while _SHARED and (now - _SHARED[0][0] > KEEP_SHARED_S or sum(n for *_, n in _SHARED) + adding > SHARED_BUDGET):
        shutil.rmtree(_SHARED.pop(0)[1], ignore_errors=True)


def _track_shared(folder: str) -> None:
    """A private folder made elsewhere (the Evaluation tab's site zip), removed as the copies are."""
    import time as _time
    from pathlib import Path

    size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    _sweep_shared(_time.time(), size)
    _SHARED.append((_time.time(), folder, size))


def _export_file(name: str, content: str) -> str:
    """A download: the file in a private temporary folder (Gradio copies it into its cache)."""
    import tempfile
    import time as _time
    from pathlib import Path

    now = _time.time()
    folder = tempfile.mkdtemp(prefix="llmdemo-export-")
    path = Path(folder) / name
    path.write_text(content, encoding="utf-8")
    size = path.stat().st_size
    _sweep_shared(now, size)  # the older ones make room; the new one is always kept
    _SHARED.append((now, folder, size))
    return str(path)


def _private_copy(out, names: list[str]) -> dict[str, str]:
    import shutil
    import tempfile
    import time as _time
    from pathlib import Path

    now = _time.time()
    folder = tempfile.mkdtemp(prefix="llmdemo-")
    copies = {}
    for n in names:
        if (Path(out) / n).exists():
            copies[n] = str(shutil.copy(Path(out) / n, Path(folder) / n))
    size = sum(Path(p).stat().st_size for p in copies.values())
    _sweep_shared(now, size)
    _SHARED.append((now, folder, size))
    return copies


# the name the Evaluation tab gives a visitor's run folder (visitor_run_name): only such folders are ever
# removed, so a run made with `python -m eval --output` in the same folder is never touched
VISITOR_RUN = re.compile(r"[A-Za-z0-9_.-]+-\d{8}-\d{6}-[0-9a-f]{16}")


def visitor_run_name(task: str) -> str:
    """A visitor's run folder: the task, the time, and an unguessable part (run folders are never served
    as a folder, and no visitor can find another's). Matches VISITOR_RUN."""
    import secrets
    import time as _time

    return f"{task}-{_time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(8)}"


def _remove_old_runs(folder, hours: float, budget_bytes: int | None = None) -> None:
    """Visitors' run folders older than ``hours`` go, then, while the rest take more than ``budget_bytes``,
    the oldest of them (a disk is filled by many runs of any age). Only folders named as the app names them,
    holding run files only, each a plain file (``lstat``: a link or a folder named ``report.md`` keeps the
    folder), and not being written (``run.lock``)."""
    import shutil
    import stat
    import time as _time

    from eval.runfolder import is_run_file

    if not folder.is_dir():
        return
    cutoff = _time.time() - hours * 3600
    ours = []  # (mtime, bytes, folder) of the app's finished visitor runs
    busy = 0  # bytes of the runs being written: they count against the budget, and stay
    for d in folder.iterdir():
        try:
            st = d.lstat()
            if not (stat.S_ISDIR(st.st_mode) and VISITOR_RUN.fullmatch(d.name)):
                continue
            entries = [(p, p.lstat()) for p in d.iterdir()]
            if not all(is_run_file(p.name) and stat.S_ISREG(e.st_mode) for p, e in entries):
                continue
            if (d / "run.lock").exists():
                busy += sum(e.st_size for _, e in entries)
                continue
            if st.st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)
            else:
                ours.append((st.st_mtime, sum(e.st_size for _, e in entries), d))
        except OSError:
            continue
    if budget_bytes is None:
        return
    total = busy + sum(n for _, n, _ in ours)
    for _, n, d in sorted(ours, key=lambda x: x[0]):  # oldest first
        if total <= budget_bytes:
            break
        shutil.rmtree(d, ignore_errors=True)
        total -= n