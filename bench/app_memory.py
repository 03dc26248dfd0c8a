"""Peak memory and start-up time of the web app on the default model.

    python bench/app_memory.py [--port 7891] [--decode auto] [--json]

Starts ``python app.py`` in its own process (warm model cache), waits until it answers HTTP, then
sends one request to each of /generate, /translate, /chat and /summarize (64 new tokens, greedy)
through ``gradio_client`` and reads the server's peak resident memory (VmHWM from /proc) before
stopping it. Linux only.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = ("The city council met on Tuesday to discuss the new park. Residents asked for more trees, a playground "
        "and better lighting. The council agreed to publish a plan next month and to hold a public vote in spring.")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7891)
    ap.add_argument("--decode", default="auto")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(a.port), "--decode", a.decode],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{a.port}/"
    try:
        while True:
            if proc.poll() is not None:
                sys.exit("app exited: " + proc.stderr.read().decode()[-2000:])
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        ready_s = time.time() - t0
        rss_ready = status_kb(proc.pid, "VmRSS") / 1024
        from gradio_client import Client

        c = Client(url, verbose=False)
        c.predict("Name three colours.", 64, 0, 0.9, 50, 1.0, 0, api_name="/generate")
        c.predict("The weather is nice today.", "en", "fr", 64, 0, 0.9, 50, 1.0, 0, api_name="/translate")
        c.predict("Hello, who are you?", [], "", 64, 0, 0.9, 50, 1.0, 0, api_name="/chat")
        c.predict(TEXT, "short", 64, 0, 0.9, 50, 1.0, 0, api_name="/summarize")
        res = {"ready_s": round(ready_s, 2), "rss_ready_mb": round(rss_ready),
               "rss_after_requests_mb": round(status_kb(proc.pid, "VmRSS") / 1024),
               "peak_rss_mb": round(status_kb(proc.pid, "VmHWM") / 1024), "decode": a.decode}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if a.json:
        print(json.dumps(res))
    else:
        print(f"app ready (HTTP answers) {res['ready_s']:.1f} s after start; RSS {res['rss_ready_mb']} MB at ready, "
              f"{res['rss_after_requests_mb']} MB after 4 requests; peak {res['peak_rss_mb']} MB (decode {a.decode})")


if __name__ == "__main__":
    main()
