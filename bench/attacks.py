"""A visitor's 1-token request under the attacks of issue 37, next to a same-minute baseline.

    python bench/attacks.py [--attacks long_prompts,reservations,perplexity] [--runs 3]
    python bench/attacks.py --http [--attacks queue_fill,chunked_body] [--runs 3]

On the bundled model through ``LM.stream`` (the app's path, without HTTP): the victim asks for one new
token of a short chat prompt; its time to the last token is measured alone (baseline), then while:

- long_prompts: two ~3,100-token prompts (14,000 characters each, 1 new token) were sent 2 s before
  (the issue measured 20,000 characters on a larger context; the bundled model reads 4,096 tokens);
- reservations: 16 greedy 1,024-token generations stream at once (one client's 16 ordinary requests);
- perplexity: an evaluation's perplexity run (batch priority, the eval's 1,024-token windows, stride 512,
  batch 8) on the first 60,000 characters of the shipped WikiText-2 runs meanwhile;
- rows (``--attacks rows,rows_fifo``): one client holds every row of the scheduler and queues as many again,
  its generations ending one by one; ``rows`` with the hog and the victim as two clients (scheduler.OWNER,
  as the app sets them), ``rows_fifo`` with neither owned (arrival order: the engine before owners).

With ``--http`` the app itself is served on 127.0.0.1 (the bundled model, hosted mode) and the victim is a
``/generate`` of one token through ``gradio_client`` from another address (``X-Forwarded-For`` with one
trusted proxy hop, as a Space):

- queue_fill: one address joins 90 generations of 512 tokens through the raw queue protocol and never
  reads them (the victim is asked 2 s later; the hog's joins past its cap are refused);
- chunked_body: one client sends 164 MB chunked behind ``Content-Length: 10`` while the victim asks.

Each figure is the median of ``--runs`` victims; the baseline is re-measured right before each attack.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VICTIM = [{"role": "user", "content": "Say hi."}]


def victim(lm) -> float:
    from llmdemo.config import GenerationConfig

    t0 = time.perf_counter()
    lm.stream(VICTIM, GenerationConfig(temperature=0, max_new_tokens=1, stop=())).text()
    return time.perf_counter() - t0


def baseline(lm, runs: int) -> float:
    return statistics.median(victim(lm) for _ in range(runs))


def attack_long_prompts(lm, runs: int) -> list[float]:
    from llmdemo.config import GenerationConfig

    words = ("the quick brown fox jumps over the lazy dog and " * 400)[:14_000]  # ~3,100 tokens: fits 4,096
    out = []
    for k in range(runs):
        threads = [threading.Thread(target=lambda i=i: lm.stream(f"{k} {i} {words}", GenerationConfig(
            temperature=0, max_new_tokens=1, stop=())).text()) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(2)
        out.append(victim(lm))
        for t in threads:
            t.join()
    return out


def attack_reservations(lm, runs: int) -> list[float]:
    from llmdemo.config import GenerationConfig

    stop = threading.Event()
    streams = []

    def hog(i):
        s = lm.stream([{"role": "user", "content": f"Write a very long story number {i}."}],
                      GenerationConfig(temperature=0, max_new_tokens=1024, stop=()), stop_event=stop)
        streams.append(s)
        for _ in s:
            if stop.is_set():
                break

    threads = [threading.Thread(target=hog, args=(i,), daemon=True) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(3)  # the hogs are admitted and decoding
    out = [victim(lm) for _ in range(runs)]
    stop.set()
    for t in threads:
        t.join(60)
    return out


def attack_rows(lm, runs: int, owners: bool = True) -> list[float]:
    """One client holds every row and queues as many again, its generations ending one by one (budgets
    64, 96, 128, ... tokens); the victim asks 3 s later. With ``owners`` the hog and the victim are two
    clients (scheduler.OWNER, as the app sets them); without, both are nobody's: arrival order, as before."""
    from llmdemo.config import GenerationConfig
    from llmdemo.engine.scheduler import OWNER

    out = []
    for _ in range(runs):
        stop = threading.Event()
        n = 2 * lm.scheduler.max_running

        def hog(i):
            if owners:
                OWNER.set("hog")  # this thread's context only
            s = lm.stream([{"role": "user", "content": f"Write a very long story number {i}."}],
                          GenerationConfig(temperature=0, max_new_tokens=64 + 32 * i, stop=()), stop_event=stop)
            for _ in s:
                if stop.is_set():
                    break

        threads = [threading.Thread(target=hog, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(3)  # every row taken, as many waiting
        token = OWNER.set("visitor" if owners else None)
        try:
            out.append(victim(lm))
        finally:
            OWNER.reset(token)
        stop.set()
        for t in threads:
            t.join(120)
    return out


def attack_rows_before(lm, runs: int) -> list[float]:
    return attack_rows(lm, runs, owners=False)


def attack_perplexity(lm, runs: int) -> list[float]:
    text = (Path(__file__).resolve().parent.parent / "benchmarks" / "wikitext2_raw_test.txt").read_text()[:60_000]
    done = threading.Event()

    def score():
        try:
            lm.token_logprobs(text, 1024, 512, batch_size=8, priority="batch")
        finally:
            done.set()

    t = threading.Thread(target=score, daemon=True)
    t.start()
    time.sleep(5)  # the scorer is loaded and scoring
    out = []
    for _ in range(runs):
        if done.is_set():
            print("note: the perplexity run ended before every victim ran")
            break
        out.append(victim(lm))
        time.sleep(1)
    t.join()
    return out


def http_app():
    from llmdemo.host import ModelHost
    from llmdemo.load import load
    from webui.layout import build_demo, launch_options
    from webui.settings import AppSettings

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import free_port

    settings = AppSettings(hosted=True, trusted_proxies=1)
    demo = build_demo(ModelHost(load()), settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(settings))
    return demo, f"http://127.0.0.1:{port}/"


def http_victim(url: str) -> float:
    from gradio_client import Client

    t0 = time.perf_counter()
    Client(url, verbose=False, headers={"x-forwarded-for": "10.0.0.7"}).predict(
        "Hello", 1, 0, 0.9, 0, 1.0, 1, api_name="/generate")
    return time.perf_counter() - t0


def attack_queue_fill(demo, url: str, runs: int) -> list[float]:
    import httpx

    fn_index = next(i for i, f in demo.fns.items() if f.api_name == "generate")
    codes = []
    for k in range(90):
        r = httpx.post(f"{url}gradio_api/queue/join", timeout=30, headers={"x-forwarded-for": "10.0.0.66"},
                       json={"data": ["Once upon a time", 512, 0, 0.9, 0, 1.0, 1], "fn_index": fn_index,
                             "session_hash": f"hog{k}-{time.time()}", "event_data": None, "trigger_id": None})
        codes.append(r.status_code)
    print(f"  queue_fill: the hog's 90 joins answered {codes.count(200)} x 200, {codes.count(503)} x 503")
    time.sleep(2)
    return [http_victim(url) for _ in range(runs)]


def attack_chunked_body(demo, url: str, runs: int) -> list[float]:
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    result = {}

    def send():
        with socket.create_connection((u.hostname, u.port), timeout=60) as sock:
            sock.sendall(b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent = 0
            try:
                chunk = b"x" * (1 << 20)
                for _ in range(164):
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += 1
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass
            try:
                result["status"] = sock.recv(64).split(b" ")[1].decode()
            except (OSError, IndexError):
                result["status"] = "closed"
            result["sent_mb"] = sent

    t = threading.Thread(target=send, daemon=True)
    t.start()
    out = [http_victim(url) for _ in range(runs)]
    t.join(120)
    print(f"  chunked_body: answered {result.get('status')} after {result.get('sent_mb')} MB sent")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attacks", default="long_prompts,reservations,perplexity")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--http", action="store_true", help="attack the app served on 127.0.0.1")
    a = ap.parse_args()
    if a.http:
        demo, url = http_app()
        try:
            http_victim(url)  # warm-up
            print(f"{'attack':<14} {'baseline s':>10} {'victim s (median)':>18} {'victims':>24}")
            names = "queue_fill,chunked_body" if a.attacks == ap.get_default("attacks") else a.attacks
            for name in names.split(","):
                base = statistics.median(http_victim(url) for _ in range(a.runs))
                times = {"queue_fill": attack_queue_fill, "chunked_body": attack_chunked_body}[name](demo, url, a.runs)
                print(f"{name:<14} {base:>10.2f} {statistics.median(times):>18.2f} "
                      f"{', '.join(f'{t:.2f}' for t in times):>24}")
        finally:
            demo.close()
        return
    from llmdemo.load import load

    lm = load()
    victim(lm)  # warm-up
    print(f"model {lm.name}; engine {getattr(lm, 'decode_mode', '?')}; context {lm.context_length}")
    print(f"{'attack':<14} {'baseline s':>10} {'victim s (median)':>18} {'victims':>24}")
    for name in a.attacks.split(","):
        base = baseline(lm, a.runs)
        times = {"long_prompts": attack_long_prompts, "reservations": attack_reservations,
                 "perplexity": attack_perplexity, "rows": attack_rows, "rows_fifo": attack_rows_before}[name](lm, a.runs)
        print(f"{name:<14} {base:>10.2f} {statistics.median(times):>18.2f} {', '.join(f'{t:.2f}' for t in times):>24}")


if __name__ == "__main__":
    main()
