"""The adaptive concurrency controller against servers that take N requests at once.

    python bench/concurrency.py [--limits 2,4,8,16] [--requests 200] [--cooldowns 15,0.2] [--retries 3]
                                [--retry-after S] [--tokens 8] [--token-ms 5] [--json]

For each N: the tests' fake OpenAI server (tests/openai_server.py) with ``max_concurrent = N`` (a
completion arriving while N are served is answered 429, with ``Retry-After: S`` when given) over a
stand-in model that streams ``--tokens`` fixed tokens ``--token-ms`` apart (the server's capacity is
the point, not a model), and ``--requests`` chat prompts through ``OpenAILM.generate_batch`` with the
adaptive controller (start 20, max 100, ``--retries`` retries per request), once per cool-down in
``--cooldowns``. One row per run: the limit it ended at, the lowest it reached, the most requests in
flight (the client's and the server's), cut episodes, 429s, failed examples, wall time.

The default cool-down (15 s, as Inspect AI's) allows one cut per 15 s: from 20 to 2 takes nine
episodes, over two minutes, longer than these runs, and meanwhile most requests are refused; a
request refused ``--retries`` + 1 times fails. A short cool-down (0.2 s) shows where the limit settles.
"""

import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from llmdemo.backends.concurrency import Concurrency  # noqa: E402
from llmdemo.backends.openai import OpenAILM  # noqa: E402
from llmdemo.config import GenerationConfig  # noqa: E402
from llmdemo.engine.stream import Stats, Stream  # noqa: E402
from openai_server import ServerThread, make_app  # noqa: E402


class QuickLM:
    """What the fake server needs of a model: a word tokenizer and streams of fixed tokens, ``token_s`` apart."""

    context_length = 4096

    def __init__(self, tokens: int, token_s: float):
        self.tokens, self.token_s = tokens, token_s

    def tokenizer(self, text, add_special_tokens=False):
        return {"input_ids": [len(w) for w in str(text).split()]}

    def encode(self, prompt):
        if isinstance(prompt, str):
            return self.tokenizer(prompt)["input_ids"]
        if prompt and isinstance(prompt[0], dict):
            return [len(w) for m in prompt for w in str(m.get("content", "")).split()]
        return [int(i) for i in prompt]

    def decode(self, ids):
        return " ".join("w" for _ in ids)

    def prefix_token(self):
        return 0

    def stream(self, prompt, config=None):
        stats = Stats(prompt_tokens=len(self.encode(prompt)))
        n = min(self.tokens, (config or GenerationConfig()).max_new_tokens)

        def chunks(_):
            for i in range(n):
                time.sleep(self.token_s)  # the server runs each next() in a thread: this is its work
                stats.new_tokens += 1
                yield " ok" if i else "ok"
            stats.finish_reason = "length"

        return Stream(chunks, stats)

    def generate(self, prompt, config=None):
        return self.stream(prompt, config).text()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_one(n: int, cooldown: float, a) -> dict:
    app = make_app(QuickLM(a.tokens, a.token_ms / 1000), "quick")

    # the server steps each stream in asyncio's default thread pool (min(32, CPUs + 4) threads): a bigger one,
    # so that N, not the pool, is what limits the server
    def bigger_pool():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(256))

    app.router.on_startup.append(bigger_pool)
    server = ServerThread(app, free_port())
    st = server.app.state
    st.max_concurrent, st.retry_after = n, a.retry_after
    lm = OpenAILM("quick", base_url=server.url, concurrency=Concurrency(cooldown_s=cooldown), retries=a.retries)
    cfg = GenerationConfig(temperature=0, max_new_tokens=a.tokens, stop=())
    failed = []
    try:
        t0 = time.perf_counter()
        out = lm.generate_batch([f"request number {i}" for i in range(a.requests)], cfg,
                                on_error=lambda i, e: failed.append((i, str(e)[:120])))
        wall = time.perf_counter() - t0
    finally:
        lm.close()
        server.stop()
    info = lm.controller.info()
    return {"server_limit": n, "cooldown_s": cooldown, "limit": info["limit"], "lowest": info["lowest"],
            "peak": info["peak"],
            "server_peak": st.peak_in_flight, "episodes": info["episodes"], "rate_limited": info["rate_limited"],
            "server_429s": st.rejected, "failed": len(failed), "answered": sum(1 for x in out if x),
            "wall_s": round(wall, 2), "first_failure": failed[0][1] if failed else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limits", default="2,4,8,16", help="the servers' requests at once, one run each")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--cooldowns", default="15,0.2", help="seconds between cuts, one run each (the default: 15)")
    ap.add_argument("--retries", type=int, default=3, help="per request (OpenAILM's default: 3)")
    ap.add_argument("--retry-after", default=None, help="the servers' Retry-After header on a 429 (default: none)")
    ap.add_argument("--tokens", type=int, default=8, help="tokens per answer")
    ap.add_argument("--token-ms", type=float, default=5.0, help="the stand-in model's time per token")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = [run_one(int(n), float(c), a) for c in a.cooldowns.split(",") for n in a.limits.split(",")]
    if a.json:
        print(json.dumps({"settings": vars(a), "rows": rows}, indent=1))
        return
    print(f"{a.requests} requests of {a.tokens} tokens ({a.token_ms:g} ms each) per server; adaptive controller "
          f"start 20 max 100, {a.retries} retries, Retry-After {a.retry_after or 'none'}")
    head = ["cool-down s", "server N", "limit", "lowest", "peak", "server peak", "episodes", "429s", "failed",
            "wall s"]
    print("  ".join(f"{h:>11}" for h in head))
    for r in rows:
        cells = [f"{r['cooldown_s']:g}", r["server_limit"], r["limit"], r["lowest"], r["peak"], r["server_peak"],
                 r["episodes"], r["rate_limited"], r["failed"], f"{r['wall_s']:.2f}"]
        print("  ".join(f"{c:>11}" for c in cells))
    for r in rows:
        if r["first_failure"]:
            print(f"cool-down {r['cooldown_s']:g} s, N={r['server_limit']}: first failure: {r['first_failure']}")


if __name__ == "__main__":
    main()
