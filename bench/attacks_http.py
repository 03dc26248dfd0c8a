"""A visitor's 1-token request while a hostile client attacks the served app, next to a same-minute baseline.

    python bench/attacks_http.py [--attacks queue_fill,chunked_body,slow_body,uploads,votes,contestants,sessions]
                                 [--runs 3]
    python bench/attacks_http.py --attacks upstream

The app is served on 127.0.0.1 in hosted mode on the bundled model, with one trusted proxy hop (as on a
Space: ``X-Forwarded-For``'s last address is the client's). The victim asks ``/generate`` for one token
through ``gradio_client`` from its own address; the attacker's address is 10.0.0.66 unless said. Each
figure is the median of ``--runs`` victims; the baseline is re-measured right before each attack.

- queue_fill: one address joins 90 generations of 512 tokens through the raw queue protocol and never
  reads them; the victim asks 2 s later.
- chunked_body: 164 MB sent chunked behind ``Content-Length: 10`` while the victim asks.
- slow_body: 200 connections send a request's headers and one byte of its 1,000-byte body, then nothing;
  the victim asks meanwhile; then how many of them the app has closed after ``body_read_s`` + 5 s.
- uploads: one request of 30 files of 9.9 MB, then 20 requests of one 9.9 MB file, from one address,
  while the victim asks; the bytes the app kept on disk.
- votes: one address runs 40 blind comparisons (two sides, one token) and votes on each; how many sides'
  shown stats named their contestant before the vote, how many votes were taken; the victim asks during.
- contestants: the vote store holds blind votes for 300 visitor-made contestants (temperature 0.001 ...
  0.300 against greedy, and 40 greedy against top-p 0.5: what 340 comparisons from as many addresses
  leave); four leaderboard views start at once (the Compare tab's handler) while the victim asks and
  votes; ``--full-fit`` also times one fit of every contestant, which each view and vote ran before.
- sessions: 1,600 visitors, each a new session and address, ask ``/generate`` for one token through the
  raw queue protocol, 8 at a time; the sessions kept and the process's resident memory after.
- upstream (no app): the ``openai:`` backend against a hostile server (tests/openai_server.py serving the
  bundled model): a stream that ignores ``max_tokens``, a line that never ends, a chunk every 2 s (with a
  10 s budget per completion; the default is 600 s), a chunk that is not JSON, a 40 MB model list. For
  each: how long the request took to end, how, and the memory Python held reading it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
TMP = Path(tempfile.mkdtemp(prefix="llmdemo-attacks-"))
os.environ.setdefault("GRADIO_TEMP_DIR", str(TMP / "gradio"))  # before gradio is imported: uploads land here
ATTACKER = {"x-forwarded-for": "10.0.0.66"}


def http_app():
    from conftest import free_port

    from llmdemo.compare.votes import VoteStore
    from llmdemo.host import ModelHost
    from llmdemo.load import load
    from webui.layout import build_demo, launch_options
    from webui.settings import AppSettings

    settings = AppSettings(hosted=True, trusted_proxies=1, output_dir=TMP / "runs")
    store = VoteStore(TMP / "votes.sqlite3")
    demo = build_demo(ModelHost(load()), settings, votes=store)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(settings))
    return demo, f"http://127.0.0.1:{port}/", settings


def http_victim(url: str) -> float:
    from gradio_client import Client

    t0 = time.perf_counter()
    Client(url, verbose=False, headers={"x-forwarded-for": "10.0.0.7"}).predict(
        "Hello", 1, 0, 0.9, 0, 1.0, 1, api_name="/generate")
    return time.perf_counter() - t0


def victims_during(url: str, runs: int, attack, settle_s: float = 1.0) -> list[float]:
    """Run ``attack()`` in a thread and measure ``runs`` victims while it runs (``settle_s`` after its start)."""
    t = threading.Thread(target=attack, daemon=True)
    t.start()
    time.sleep(settle_s)
    out = [http_victim(url) for _ in range(runs)]
    t.join(600)
    return out


def _fn_index(demo, api_name: str) -> int:
    return next(i for i, f in demo.fns.items() if f.api_name == api_name)


def attack_queue_fill(demo, url, settings, runs):
    import httpx

    fn_index = _fn_index(demo, "generate")
    codes = []
    for k in range(90):
        r = httpx.post(f"{url}gradio_api/queue/join", timeout=30, headers=ATTACKER,
                       json={"data": ["Once upon a time", 512, 0, 0.9, 0, 1.0, 1], "fn_index": fn_index,
                             "session_hash": f"hog{k}-{time.time()}", "event_data": None, "trigger_id": None})
        codes.append(r.status_code)
    time.sleep(2)
    return [http_victim(url) for _ in range(runs)], \
        f"the hog's 90 joins: {codes.count(200)} accepted, {len(codes) - codes.count(200)} refused"


def attack_chunked_body(demo, url, settings, runs):
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

    times = victims_during(url, runs, send, settle_s=0.2)
    return times, f"answered {result.get('status')} after {result.get('sent_mb')} MB sent"


def attack_slow_body(demo, url, settings, runs):
    u = urlparse(url)
    socks = []
    for _ in range(200):
        s = socket.create_connection((u.hostname, u.port), timeout=5)
        s.sendall(b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Forwarded-For: 10.0.0.66\r\nContent-Length: 1000\r\n\r\n{")
        socks.append(s)
    times = [http_victim(url) for _ in range(runs)]
    time.sleep(settings.body_read_s + 5)
    answered = {}
    for s in socks:
        s.settimeout(0.5)
        try:
            head = s.recv(64)
            key = head.split(b" ")[1].decode() if head else "closed"
        except (OSError, IndexError):
            key = "open"
        answered[key] = answered.get(key, 0) + 1
        s.close()
    return times, (f"200 stalled bodies, {settings.body_read_s + 5} s later: "
                   + ", ".join(f"{n} {k}" for k, n in sorted(answered.items())))


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def attack_uploads(demo, url, settings, runs):
    import httpx

    folder = Path(os.environ["GRADIO_TEMP_DIR"])
    before = _disk(folder)
    size = int(9.9 * (1 << 20))
    codes = []

    def post(n_files):  # random bytes: Gradio keeps one copy of files with the same content
        try:
            return httpx.post(f"{url}gradio_api/upload", headers=ATTACKER, timeout=60,
                              files=[("files", (f"f{i}.jsonl", os.urandom(size))) for i in range(n_files)]).status_code
        except httpx.TransportError:
            return "cut off"

    def flood():
        codes.append(post(30))
        for _ in range(20):
            codes.append(post(1))

    times = victims_during(url, runs, flood, settle_s=0.5)
    kept = (_disk(folder) - before) / (1 << 20)
    return times, (f"30 files in one request: {codes[0]}; then 20 single files: {codes[1:].count(200)} accepted; "
                   f"{kept:.1f} MB kept on disk")


def attack_votes(demo, url, settings, runs):
    from gradio_client import Client

    attacker = Client(url, verbose=False, headers=ATTACKER)
    tally = {"named": 0, "sides": 0, "taken": 0, "refused": 0}
    words = ("greedy", "seed", "temperature", "top-p", "top-k")

    def flood():
        for _ in range(40):
            shown = attacker.predict(task="generation", prompt="Say hi.", max_new_tokens=1, api_name="/compare")
            for side in shown["sides"]:
                tally["sides"] += 1
                tally["named"] += any(w in (side["stats"] or "").lower() or side["name"] for w in words)
            try:
                attacker.predict("A", shown["comparison_id"], api_name="/vote")
                tally["taken"] += 1
            except Exception:  # noqa: BLE001 - refused (the rate limit)
                tally["refused"] += 1

    times = victims_during(url, runs, flood, settle_s=2.0)
    return times, (f"sides whose stats named them before the vote: {tally['named']} of {tally['sides']}; "
                   f"votes taken {tally['taken']}, refused {tally['refused']}")


def _handlers_of(demo, name: str):
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name).__self__


def attack_contestants(demo, url, settings, runs, full_fit=False):
    import random

    from gradio_client import Client

    from llmdemo.compare import ratings
    from llmdemo.compare.votes import new_session_id

    cmp = _handlers_of(demo, "leaderboard")
    store, rnd = cmp.store, random.Random(0)
    pairs = [(["greedy", "top-p 0.5"], rnd.choice("AB")) for _ in range(40)]
    pairs += [([f"temperature {k / 1000:g}", "greedy"], "B") for k in range(1, 301)]
    for sides, winner in pairs:
        sid = new_session_id()
        cid = store.new_comparison(sid, "p", "generation", [{"name": n} for n in sides], ["1", "2"], True, [0, 1])
        store.vote(sid, cid, winner)
    views = []

    def view():
        t0 = time.perf_counter()
        cmp.leaderboard(None)
        views.append(time.perf_counter() - t0)

    victim = Client(url, verbose=False, headers={"x-forwarded-for": "10.0.0.8"})
    shown = victim.predict(task="generation", prompt="Say hi.", max_new_tokens=1, api_name="/compare")
    threads = [threading.Thread(target=view, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    victim.predict("A", shown["comparison_id"], api_name="/vote")
    vote_s = time.perf_counter() - t0
    times = [http_victim(url) for _ in range(runs)]
    for t in threads:
        t.join(600)
    note = (f"four views at once took {', '.join(f'{v:.2f}' for v in sorted(views))} s ({cmp.board.fits} fit(s)); "
            f"the victim's vote {vote_s:.2f} s")
    if full_fit:
        t0 = time.perf_counter()
        board = ratings.leaderboard(list(store.votes()), rounds=1000, seed=0)
        note += f"; one fit of all {len(board.ratings)} contestants (each view and vote before): {time.perf_counter() - t0:.1f} s"
    return times, note


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def attack_sessions(demo, url, settings, runs):
    import httpx

    fn_index = _fn_index(demo, "generate")
    rss0 = _rss_mb()

    def visit(k):
        sh = f"s{k}x{time.time_ns()}"
        head = {"x-forwarded-for": f"10.{k // 250}.{k % 250}.9"}
        with httpx.Client(timeout=60) as c:
            c.post(f"{url}gradio_api/queue/join", headers=head,
                   json={"data": ["Hello", 1, 0, 0.9, 0, 1.0, 1], "fn_index": fn_index, "session_hash": sh,
                         "event_data": None, "trigger_id": None})
            with c.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": sh}, headers=head) as r:
                for line in r.iter_lines():
                    if "process_completed" in line:
                        break

    def flood():
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(visit, range(1600)))

    t0 = time.perf_counter()
    times = victims_during(url, runs, flood, settle_s=3.0)
    took = time.perf_counter() - t0
    kept = len(demo.state_holder.session_data)
    return times, (f"1,600 sessions in {took:.0f} s: {kept} kept (cap {settings.max_sessions}); resident memory "
                   f"{rss0:.0f} -> {_rss_mb():.0f} MB")


def upstream() -> None:
    import tracemalloc

    from conftest import free_port
    from openai_server import ServerThread, make_app

    from llmdemo.backends.openai import OpenAILM
    from llmdemo.config import GenerationConfig
    from llmdemo.load import load

    srv = ServerThread(make_app(load(), "bundled"), free_port())
    lm = OpenAILM("bundled", base_url=srv.url, api_key="sk-bench-SECRET", retries=0, request_budget_s=10)
    cfg = GenerationConfig(temperature=0, max_new_tokens=64, stop=())
    print(f"{'upstream':<12} {'ended after s':>13} {'peak MB held':>12}  how")
    for mode in ("none", "endless", "no_newline", "slow", "bad_json", "huge_models"):
        srv.app.state.hostile, srv.app.state.slow_s = (None if mode == "none" else mode), 2.0
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            if mode == "huge_models":
                OpenAILM("bundled", base_url=srv.url, retries=0)
                how = "accepted"
            else:
                s = lm.stream("Once upon a time", cfg)
                text = "".join(s)
                how = f"{s.stats.new_tokens} tokens, {s.stats.finish_reason} ({len(text)} characters)"
        except Exception as e:  # noqa: BLE001 - the outcome is what is measured
            how = f"{type(e).__name__}: {str(e)[:90]}"
        took = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
        tracemalloc.stop()
        print(f"{mode:<12} {took:>13.2f} {peak:>12.1f}  {how}")
    srv.app.state.hostile = None
    lm.close()
    srv.stop()


ATTACKS = {"queue_fill": attack_queue_fill, "chunked_body": attack_chunked_body, "slow_body": attack_slow_body,
           "uploads": attack_uploads, "votes": attack_votes, "contestants": attack_contestants,
           "sessions": attack_sessions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--full-fit", action="store_true", help="contestants: also time the fit every view ran before")
    a = ap.parse_args()
    if a.attacks == "upstream":
        return upstream()
    demo, url, settings = http_app()
    try:
        http_victim(url)  # warm-up
        print(f"{'attack':<14} {'baseline s':>10} {'victim s (median)':>18} {'victims':>20}  what the attacker got")
        for name in a.attacks.split(","):
            base = statistics.median(http_victim(url) for _ in range(a.runs))
            kw = {"full_fit": a.full_fit} if name == "contestants" else {}
            times, note = ATTACKS[name](demo, url, settings, a.runs, **kw)
            print(f"{name:<14} {base:>10.2f} {statistics.median(times):>18.2f} "
                  f"{', '.join(f'{t:.2f}' for t in times):>20}  {note}", flush=True)
    finally:
        demo.close()


if __name__ == "__main__":
    main()
