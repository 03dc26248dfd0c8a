"""Start-up on a warm model cache: a one-token CLI call, and ``python app.py`` until its page answers.

    python bench/startup.py [--runs 5] [--no-app] [--torch-load]

- CLI: ``python -m llmdemo generate Hi --max-new-tokens 1`` in a fresh process, wall time, median of
  ``--runs``, and whether the process imported torch (the generation path on llama.cpp must not);
- app: ``python app.py`` on a free port until ``/config`` answers, median of 3;
- ``--torch-load``: the transformers-side default (``load(decode="float32")``): import torch, first
  load, second load (what the first one spent on one-time work), and whether transformers was imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cli(runs: int) -> None:
    code = ("import runpy, sys\nsys.argv = ['llmdemo', 'generate', 'Hi', '--max-new-tokens', '1', '-q']\n"
            "try:\n    runpy.run_module('llmdemo', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
    times, torch_line = [], ""
    for _ in range(runs + 1):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        torch_line = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "?"
    times = times[1:]  # the first warms the page cache
    print(f"one-token CLI: median {statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f}, "
          f"{runs} runs); {torch_line}")


def app(runs: int = 3) -> None:
    from bench.install import free_port

    ups = []
    for _ in range(runs):
        port = free_port()
        env = {**os.environ, "GRADIO_SERVER_PORT": str(port)}
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - t < 120 and proc.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).read()
                    ups.append(time.perf_counter() - t)
                    break
                except OSError:
                    time.sleep(0.1)
        finally:
            proc.kill()
            proc.wait()
    print(f"python app.py -> page answers: median {statistics.median(ups):.2f} s "
          f"({', '.join(f'{u:.2f}' for u in ups)})" if ups else "python app.py: the page never answered")


def torch_load() -> None:
    t0 = time.perf_counter()
    import torch  # noqa: F401

    t1 = time.perf_counter()
    from llmdemo.load import load

    t2 = time.perf_counter()
    load(decode="float32")
    t3 = time.perf_counter()
    load(decode="float32")
    t4 = time.perf_counter()
    print(f"import torch {t1 - t0:.2f} s; import llmdemo {t2 - t1:.2f} s; first load {t3 - t2:.2f} s; "
          f"second load {t4 - t3:.2f} s; transformers imported: {'transformers' in sys.modules}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-app", action="store_true")
    ap.add_argument("--torch-load", action="store_true")
    a = ap.parse_args()
    from bench.engine import _cpu

    print(_cpu())
    cli(a.runs)
    if not a.no_app:
        app()
    if a.torch_load:
        torch_load()


if __name__ == "__main__":
    main()
