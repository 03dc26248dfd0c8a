"""App settings as data, read from the environment (flags in app.py override them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from llmdemo.compare.contestants import parse_list


def _bool(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    return default if v is None else v.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class AppSettings:
    host: str = field(default_factory=lambda: os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))  # bind address
    port: int = field(default_factory=lambda: _int("GRADIO_SERVER_PORT", 7860))  # bind port
    share: bool = False  # a public gradio.live link: off unless asked for
    # hosted: visitors may pick presets only (no hub ids, no local paths); on by default on a Space
    hosted: bool = field(default_factory=lambda: _bool("LLMDEMO_HOSTED", bool(os.environ.get("SPACE_ID"))))
    max_input_chars: int = field(default_factory=lambda: _int("LLMDEMO_MAX_INPUT_CHARS", 20_000))  # longer input is refused
    max_new_tokens: int = field(default_factory=lambda: _int("LLMDEMO_MAX_NEW_TOKENS", 1024))  # slider and API limit
    # Capacity. max_running: rows the scheduler steps together (16: on 2 CPU cores one step of 16 rows
    # costs ~3x a step of one, so 16 streams each keep a third of one stream's speed; a GPU has room
    # for more). concurrency: generation events Gradio runs at once, each handing its request to the
    # scheduler; set above max_running so requests reach the scheduler's queue, which shows its place
    # in line. queue_size: events waiting in Gradio's queue before new ones are refused.
    max_running: int = field(default_factory=lambda: _int("LLMDEMO_MAX_RUNNING", 16))
    concurrency: int = field(default_factory=lambda: _int("LLMDEMO_CONCURRENCY", 24))
    queue_size: int = field(default_factory=lambda: _int("LLMDEMO_QUEUE_SIZE", 64))
    # sessions whose server-side state is kept (Gradio's state_session_capacity, least recently used out
    # first): ~0.67 MB each on the bundled app (docs/hosting.md), so 1,000 hold ~0.7 GB, Gradio's 10,000 ~6.7 GB
    max_sessions: int = field(default_factory=lambda: _int("LLMDEMO_MAX_SESSIONS", 1000))
    # events one client address may have queued or running at once (a page needs one or two; a classroom
    # behind one address shares it: raise it there, or declare the proxy with LLMDEMO_TRUSTED_PROXIES)
    events_per_client: int = field(default_factory=lambda: _int("LLMDEMO_EVENTS_PER_CLIENT", 8))
    # Evaluation-tab runs (and site exports) queued or running at once, all visitors together: they run one
    # at a time, so a longer line would only wait
    eval_runs: int = field(default_factory=lambda: _int("LLMDEMO_EVAL_RUNS", 4))
    # the benchmark files the Evaluation tab offers: the slices shipped in benchmarks/ unless told otherwise
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get(
        "LLMDEMO_DATA_DIR", Path(__file__).resolve().parent.parent / "benchmarks")))
    output_dir: Path = field(default_factory=lambda: Path(os.environ.get(
        "LLMDEMO_OUTPUT_DIR", Path.home() / ".cache" / "llmdemo" / "runs")))  # eval reports written here
    max_upload_mb: int = field(default_factory=lambda: _int("LLMDEMO_MAX_UPLOAD_MB", 10))  # larger uploads refused
    # what one client address may upload in an hour (an upload request carries one file at most that large)
    upload_mb_per_hour: int = field(default_factory=lambda: _int("LLMDEMO_UPLOAD_MB_PER_HOUR", 100))
    # examples one Evaluation-tab run may score (python -m eval has no such limit); None = 1000, or 100 when hosted
    max_eval_examples: int | None = field(default_factory=lambda: _int("LLMDEMO_MAX_EVAL_EXAMPLES", 0) or None)
    # uploads and files handed out (Gradio's cache) older than this are deleted, checked as often
    keep_files_s: int = field(default_factory=lambda: _int("LLMDEMO_KEEP_FILES_S", 3600))
    # Evaluation-tab run folders older than this are deleted when a new run starts
    keep_runs_hours: float = field(default_factory=lambda: float(_int("LLMDEMO_KEEP_RUNS_HOURS", 24)))
    # ...and the oldest go first while visitors' finished runs take more than this (many runs fill a disk)
    runs_budget_mb: int = field(default_factory=lambda: _int("LLMDEMO_RUNS_BUDGET_MB", 1024))
    # request bodies over this are refused before Gradio parses them (uploads have their own limit)
    max_request_kb: int = field(default_factory=lambda: _int("LLMDEMO_MAX_REQUEST_KB", 1024))
    # ...and answered 408 unless the whole body arrives within this many seconds (slow senders hold connections)
    body_read_s: int = field(default_factory=lambda: _int("LLMDEMO_BODY_READ_S", 30))

    # tokens of each text an Evaluation-tab perplexity run reads; 0 = from hosted: 8,192 when hosted (the
    # shipped WikiText-2 is one text of ~300,000 tokens: minutes of the shared model), else the whole text
    max_eval_tokens: int = field(default_factory=lambda: _int("LLMDEMO_MAX_EVAL_TOKENS", 0))
    # tokens of all the texts of one uploaded example (a context, a question, its choices: each scored); 0 =
    # from hosted: 2,048 when hosted (a BBQ upload of 19,000-character contexts took ~48 s a record), else none
    max_example_tokens: int = field(default_factory=lambda: _int("LLMDEMO_MAX_EXAMPLE_TOKENS", 0))

    @property
    def eval_examples_cap(self) -> int:
        return self.max_eval_examples or (100 if self.hosted else 1000)

    @property
    def eval_tokens_cap(self) -> int | None:
        return self.max_eval_tokens or (8192 if self.hosted else None)

    @property
    def example_tokens_cap(self) -> int | None:
        return self.max_example_tokens or (2048 if self.hosted else None)
    # the Compare tab's contestants, named by the operator ("PRESET" or "PRESET @ MODEL", comma-separated):
    # visitors pick among these only; empty = every preset of the loaded model (and, unless hosted, any model)
    contestants: tuple[str, ...] = field(default_factory=lambda: parse_list(os.environ.get("LLMDEMO_CONTESTANTS")))
    # what the models loaded beside the loaded one (Compare) may take together
    compare_memory_mb: int = field(default_factory=lambda: _int("LLMDEMO_COMPARE_MEMORY_MB", 4096))
    # proxy hops in front of the app whose X-Forwarded-For is believed (webui/clients.py): a Space has one
    trusted_proxies: int = field(default_factory=lambda: _int("LLMDEMO_TRUSTED_PROXIES", 1 if os.environ.get("SPACE_ID") else 0))
    # votes one client (address) may cast per 10 minutes: a person reads two outputs before voting
    votes_per_10min: int = field(default_factory=lambda: _int("LLMDEMO_VOTES_PER_10MIN", 30))
    trust_remote_code: bool = field(default_factory=lambda: _bool("LLMDEMO_TRUST_REMOTE_CODE", False))
