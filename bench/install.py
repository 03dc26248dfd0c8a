"""What a host does, timed: a fresh venv from requirements.txt alone, then ``app.py`` in hosted mode.

    python bench/install.py                 # a temporary venv (removed after), pip's cache as it is
    python bench/install.py --venv /tmp/v   # keep the venv (a second run skips the install)

Prints the install's time, then the time from ``python app.py`` (``SPACE_ID`` set: hosted mode, as on a
Space; ``HF_HUB_OFFLINE=1``) to the page answering, and what the page says of its engine. Exits 1 when the
app does not come up on the bundled model on llama.cpp.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # llmdemo, for the CPU's name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_name() -> str:
    from llmdemo.backends.hf.lean.tuning import cpu_signature  # the CPU's name as speed caches record it

    return cpu_signature()["cpu"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", default=None, help="venv folder to make (and keep); default: a temporary one")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the page")
    args = p.parse_args()
    tmp = None if args.venv else tempfile.mkdtemp(prefix="llmdemo-install-")
    venv = Path(args.venv or Path(tmp) / "v")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs")
    try:
        py = venv / "bin" / "python"
        if not py.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True)
            print(f"python -m venv + pip install -r requirements.txt: {time.perf_counter() - t0:.1f} s")
        else:
            print(f"{venv} exists: install skipped")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMDEMO_", "GRADIO_"))}
        cache = Path(tmp or tempfile.mkdtemp(prefix="llmdemo-cache-")) / "cache"
        env.update(SPACE_ID="x/y", HF_HUB_OFFLINE="1", GRADIO_SERVER_PORT=str(port), LLMDEMO_CACHE=str(cache),
                   LLMDEMO_OUTPUT_DIR=str(cache / "runs"))
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(py), "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            page = None
            while time.perf_counter() - t0 < args.timeout and proc.poll() is None:
                try:
                    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).read().decode()
                    break
                except OSError:
                    time.sleep(0.2)
            up = time.perf_counter() - t0
            if page is None:
                out = proc.stdout.read() if proc.poll() is not None else ""
                print(f"the page did not answer within {args.timeout:.0f} s\n{out[-2000:]}")
                return 1
            print(f"python app.py (hosted, empty model cache) -> page answers: {up:.1f} s")
            # through the page's API, as a visitor: a translation into Chinese on the tab's default model
            code = ("import sys; from gradio_client import Client; c = Client(sys.argv[1], verbose=False); "
                    "print(c.predict('Please book a table for four people at eight o\\'clock tonight.', 'en', 'zh', "
                    "api_name='/translate')[0])")
            t1 = time.perf_counter()
            out = subprocess.run([str(py), "-c", code, f"http://127.0.0.1:{port}/"], env=env, capture_output=True,
                                 text=True, timeout=300)
            print(f"/translate en->zh: {out.stdout.strip() or out.stderr.strip()[-500:]} "
                  f"({time.perf_counter() - t1:.1f} s, the first use loads Gemma)")
            # what the app loaded, by the same load() in the same environment
            info = subprocess.run([str(py), "-c", "from llmdemo.load import load; i = load().info(); "
                                   "print(i.get('backend'), i.get('name'))"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=300).stdout.strip()
            print(f"the default model's backend: {info}")
            return 0 if info.startswith("llamacpp") and out.returncode == 0 else 1
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
