"""Load against the real default model: concurrent gradio_client sessions on a local server.

    python bench/load.py [--scenarios sessions,streams,eval] [--max-running 16] [--json]

Starts the app in this process on a free 127.0.0.1 port (loopback only) and measures, each
scenario bounded in requests and time:

- ``sessions``: ``--sessions`` clients (each a process of its own) x ``--requests`` requests of
  ``--max-new-tokens`` tokens across the four endpoints; p50/p95 latency (queue wait included),
  failures, text chunks/s.
- ``streams``: one /generate stream of ``--stream-tokens`` tokens, then ``--streams`` of them at
  once (greedy, clients in processes of their own); each stream's decode speed (from the app's own
  stats line) and the aggregate tokens/s. Before that, the model's own decode speed: a plain loop of
  the same forward with greedy argmax, no scheduler, no app (what one visitor could get at most).
- ``eval``: time to first token of a short /generate request while an evaluation (FLORES en-fr
  through ``generate_batch`` at batch priority, batch ``--eval-batch``) runs, against the same
  request on an idle server (its own prefill).

``--max-running 1`` gives one request at a time (the old single slot) for comparison.
"""

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH = Path(os.environ.get("LLMDEMO_BENCHMARKS", ROOT / "benchmarks"))
STORY = "Write a long story about a dragon who learns to bake bread in a small village."


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[int(q * (len(xs) - 1))], 2) if xs else None


CALLS = [("/generate", ["Give me one tip for learning a language."]),
         ("/translate", ["The weather is nice today.", "en", "fr"]),
         ("/summarize", ["The council voted to build a bridge. It will take three years and cost 20 million.", "short"]),
         ("/chat", ["Hello, who are you?", [], "Be brief."])]


def session(url, k, requests, max_new_tokens):
    """One visitor (in a process of its own): ``requests`` requests in turn; their latencies and errors."""
    from gradio_client import Client

    if requests == 0:
        return [], []  # warm-up: the import above
    c = Client(url, verbose=False)
    lat, errors = [], []
    for i in range(requests):
        name, args = CALLS[(k + i) % 4]
        t = time.perf_counter()
        try:
            c.predict(*args, max_new_tokens, 0.7, 0.9, 50, 1.1, 1, api_name=name)
            lat.append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e)[:200])
    return lat, errors


def sessions(url, host, a):
    """Clients run in processes of their own: the visitors' side must not share the server's interpreter."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    tok0 = host.tokens_generated
    with ProcessPoolExecutor(a.sessions, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(session, [url] * a.sessions, range(a.sessions), [0] * a.sessions, [0] * a.sessions))
        t0 = time.perf_counter()
        res = list(pool.map(session, [url] * a.sessions, range(a.sessions), [a.requests] * a.sessions,
                            [a.max_new_tokens] * a.sessions))
        wall = time.perf_counter() - t0
    lat = [x for r, _ in res for x in r]
    errors = [e for _, es in res for e in es]
    return {"sessions": a.sessions, "requests": a.sessions * a.requests, "failures": len(errors),
            "p50_s": pct(lat, 0.5), "p95_s": pct(lat, 0.95), "wall_s": round(wall, 1),
            "chunks_per_s": round((host.tokens_generated - tok0) / wall, 1), "max_new_tokens": a.max_new_tokens,
            "first_errors": errors[:3]}


def raw_decode_speed(lm, n_tokens):
    """The forward alone: prefill, then n greedy steps of the runner, no scheduler, no app (tokens/s)."""

    from llmdemo.engine.runner import Sequence

    seq = Sequence(prompt=lm.encode([{"role": "user", "content": f"{STORY} Story number 0."}]), budget=n_tokens)
    runner = lm.runner

    def work():
        runner.start(seq)
        logits = None
        while not seq.prefilled:
            logits = runner.prefill(seq)
        tok = int(logits.argmax(-1))
        t = time.perf_counter()
        for _ in range(n_tokens - 1):
            seq.new.append(tok)
            tok = int(runner.decode([seq], [tok])[0].argmax())
        dt = time.perf_counter() - t
        runner.finish(seq, keep_prefix=False)
        return (n_tokens - 1) / dt

    return lm.call(work)  # on the model's thread, nothing else running


def stream_once(url, n_tokens, i):
    """One greedy /generate stream (a story prompt numbered i); its tokens and decode speed from the app's stats."""
    from gradio_client import Client

    job = Client(url, verbose=False).submit(f"{STORY} Story number {i}.", n_tokens, 0, 1.0, 0, 1.0, 1,
                                            api_name="/generate")
    text, stats = job.result(timeout=600)
    m = re.search(r"(\d+) tokens · ([\d.]+) tokens/s", stats)
    return (int(m.group(1)), float(m.group(2))) if m else (0, 0.0)


def streams(url, host, a):
    """Clients run in processes of their own: the visitors' side must not share the server's interpreter."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # the model's own loop: in-process backends only (a server's own speed is the server's business)
    raw = statistics.median(raw_decode_speed(host.lm, a.stream_tokens) for _ in range(2)) \
        if hasattr(host.lm, "runner") and host.lm.runner.name != "llamacpp" else None
    with ProcessPoolExecutor(a.streams, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(stream_once, [url] * a.streams, [4] * a.streams, range(a.streams)))  # warm-up, imports
        one = [pool.submit(stream_once, url, a.stream_tokens, 100 + i).result() for i in range(2)]
        one_speed = statistics.median(s for _, s in one)
        t0 = time.perf_counter()
        res = list(pool.map(stream_once, [url] * a.streams, [a.stream_tokens] * a.streams, range(a.streams)))
        wall = time.perf_counter() - t0
    total = sum(n for n, _ in res)
    speeds = [s for _, s in res]
    return {"raw_decode_tok_s": round(raw, 1) if raw else None, "one_stream_tok_s": round(one_speed, 1),
            "one_stream_vs_raw": round(one_speed / raw, 2) if raw else None, "streams": a.streams, "tokens": total,
            "aggregate_tok_s": round(total / wall, 1), "aggregate_vs_one": round(total / wall / one_speed, 2),
            "slowest_stream_tok_s": round(min(speeds), 1), "slowest_vs_one": round(min(speeds) / one_speed, 2),
            "per_stream_tok_s": [round(s, 1) for s in speeds], "stream_tokens": a.stream_tokens,
            "wall_s": round(wall, 1)}


def ttft(client):
    job = client.submit("Name three colours.", 4, 0, 0.9, 0, 1.0, 1, api_name="/generate")
    t = time.perf_counter()
    while True:
        outs = job.outputs()
        if any(o and o[0] for o in outs) or job.done():
            return time.perf_counter() - t
        time.sleep(0.005)


def eval_interactive(url, host, a):
    from gradio_client import Client

    from llmdemo import prompts
    from llmdemo.config import TASK_DEFAULTS

    lm = host.lm
    c = Client(url, verbose=False)
    ttft(c)
    idle = statistics.median(ttft(c) for _ in range(3))
    rows = [json.loads(line) for line in open(BENCH / "translation_flores200_devtest_en-fr.jsonl", encoding="utf-8")]
    cfg0 = TASK_DEFAULTS["translation"].replace(seed=0)
    built = [prompts.translation_prompt(lm, r["source"], r["src_lang"], r["tgt_lang"], cfg0.max_new_tokens)
             for r in rows[:200]]
    stop = threading.Event()
    bg = threading.Thread(target=lm.generate_batch, args=([p.input for p in built], cfg0),
                          kwargs=dict(batch_size=a.eval_batch, stop_event=stop, priority="batch",
                                      max_new_tokens=[p.config(cfg0).max_new_tokens for p in built]), daemon=True)
    bg.start()
    time.sleep(10)  # the evaluation is well under way
    during = []
    for _ in range(5):
        during.append(ttft(c))
        time.sleep(1.0)
    stop.set()
    bg.join(60)
    return {"ttft_idle_s": round(idle, 3), "ttft_during_eval_s": [round(x, 3) for x in during],
            "ttft_during_eval_median_s": round(statistics.median(during), 3),
            "over_idle_s": round(statistics.median(during) - idle, 3), "eval_batch": a.eval_batch}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="sessions,streams,eval")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--stream-tokens", type=int, default=128)
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--max-running", type=int, default=16, help="rows per scheduler step (1 = one request at a time)")
    ap.add_argument("--decode", default="auto")
    ap.add_argument("--model", default=None, help="any --model the app takes, e.g. openai:NAME with --base-url")
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import psutil

    from conftest import launch
    from llmdemo.host import ModelHost
    from llmdemo.load import load
    from webui.settings import AppSettings

    host = ModelHost(load(a.model, decode=a.decode, base_url=a.base_url, concurrency=a.streams))
    demo, url = launch(host, AppSettings(queue_size=max(64, a.sessions * 2), max_running=a.max_running))
    rss0 = psutil.Process().memory_info().rss
    out = {"model": host.lm.name, "max_running": a.max_running, "decode": host.lm.decode_mode,
           "threads": __import__("torch").get_num_threads()}
    for name in a.scenarios.split(","):
        fn = {"sessions": sessions, "streams": streams, "eval": eval_interactive}[name]
        out[name] = fn(url, host, a)
        print(f"{name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    out["rss_growth_mb"] = round((psutil.Process().memory_info().rss - rss0) / 1e6, 1)
    demo.close()
    host.lm.close()
    print(json.dumps(out) if a.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
