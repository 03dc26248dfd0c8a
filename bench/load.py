"""Load against the real default model: concurrent gradio_client sessions on a local server.

    python bench/load.py [--sessions 20 --requests 5 --max-new-tokens 32] [--json]

Starts the app in this process on a free 127.0.0.1 port (loopback only), runs the sessions across
the four endpoints, and prints p50/p95 latency, failures, total generated tokens/s and the growth of
resident memory. Request loops are bounded in count and stop by themselves.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import psutil
    from gradio_client import Client

    from conftest import launch
    from llmdemo.host import ModelHost
    from llmdemo.model import LM
    from webui.settings import AppSettings

    host = ModelHost(LM.load())
    demo, url = launch(host, AppSettings(queue_size=max(64, a.sessions * 2), concurrency=a.concurrency))
    s = [a.max_new_tokens, 0.7, 0.9, 50, 1.1, 1]
    calls = [("/generate", ["Give me one tip for learning a language."]),
             ("/translate", ["The weather is nice today.", "en", "fr"]),
             ("/summarize", ["The council voted to build a bridge. It will take three years and cost 20 million.",
                             "short"]),
             ("/chat", ["Hello, who are you?", [], "Be brief."])]
    lat, errors = [], []
    rss0 = psutil.Process().memory_info().rss
    tok0 = host.tokens_generated

    def session(k):
        c = Client(url, verbose=False)
        for i in range(a.requests):
            name, args = calls[(k + i) % 4]
            t = time.perf_counter()
            try:
                c.predict(*args, *s, api_name=name)
                lat.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e)[:200])

    t0 = time.perf_counter()
    threads = [threading.Thread(target=session, args=(k,)) for k in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    res = {"sessions": a.sessions, "requests": a.sessions * a.requests, "failures": len(errors),
           "p50_s": round(statistics.median(lat), 2) if lat else None,
           "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
           "wall_s": round(wall, 1), "tokens_per_s": round((host.tokens_generated - tok0) / wall, 1),
           "rss_growth_mb": round((psutil.Process().memory_info().rss - rss0) / 1e6, 1),
           "concurrency": a.concurrency, "max_new_tokens": a.max_new_tokens}
    demo.close()
    print(json.dumps(res) if a.json else
          f"{res['requests']} requests from {a.sessions} sessions: {res['failures']} failed; latency p50 "
          f"{res['p50_s']} s, p95 {res['p95_s']} s (queue wait included); {res['tokens_per_s']} tokens/s overall; "
          f"RSS grew {res['rss_growth_mb']} MB; wall {res['wall_s']} s")
    if errors:
        print("first errors:", errors[:3], file=sys.stderr)


if __name__ == "__main__":
    main()
