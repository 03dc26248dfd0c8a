"""Gradio event handlers: build inputs, call the core, yield accumulated text.

Generation runs in the model's scheduler (llmdemo/scheduler.py); a streaming handler submits a
request and yields its text as tokens arrive. Stop (which cancels the event) or a closed browser
tab closes the handler's generator, which cancels the request: its row leaves the batch before the
next step. While a request waits for the model the handler still yields every half second, so
Gradio can close it at any time and the visitor sees that it waits.
"""

from __future__ import annotations

import functools
import html
import secrets
import inspect
import logging
import re
import traceback
from typing import Any, Iterator

import gradio as gr

from llmdemo import tasks
from llmdemo.config import TASK_DEFAULTS, ConfigError, GenerationConfig
from llmdemo.host import ModelHost
from llmdemo.interface import INSIDE, require
from llmdemo.model import ContextOverflowError, ModelLoadError
from llmdemo.presets import DEFAULT_MODEL, PRESETS, UnknownModelError
from llmdemo.backends.openai import LogprobsUnreliable, ServerError
from llmdemo.scheduler import RequestAborted, SchedulerBusy

from .settings import AppSettings

log = logging.getLogger("llmdemo.app")

USER_ERRORS = (ConfigError, tasks.InputError, ContextOverflowError, UnknownModelError, ModelLoadError, ValueError,
               TypeError, SchedulerBusy, RequestAborted, ServerError, LogprobsUnreliable)


def _as_gr_error(e: Exception) -> gr.Error:
    if isinstance(e, USER_ERRORS):
        return gr.Error(str(e))
    log.error("unexpected error: %s", traceback.format_exc())
    return gr.Error(f"Something went wrong ({type(e).__name__}); the server is still running. Details are in its log.")


def friendly(fn):
    """Turn user errors into a clear message in the UI; never a stack trace, never a dead server."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001 - every error becomes a message
                raise _as_gr_error(e) from None
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001
            raise _as_gr_error(e) from None
    return plain


_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]*)\)")


def safe_markdown(text: str) -> str:
    """Chat text for display: nothing in it loads by itself. Inline Markdown images become links,
    any other ``![`` (reference-style images) is escaped, and ``<`` is shown as text, so no HTML tag
    (``<img>``, ``<picture>``, ``<video poster>``, ...) reaches the page. Scripts never ran anyway:
    Gradio's Chatbot sanitizes HTML; this stops remote fetches, which it lets through."""
    # lone surrogates cannot be sent to the browser at all (Gradio's event stream fails on them)
    text = tasks.clean_text(text) if text.strip() else text
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _REMOTE_IMAGE.sub(lambda m: f"[image: {m.group(1) or 'link'}]({m.group(2)})", text)
    return text.replace("![", "!\\[")


def plain_text(shown: str) -> str:
    """The text behind :func:`safe_markdown`'s escapes (chat history comes back from the page escaped)."""
    return shown.replace("!\\[", "![").replace("&lt;", "<").replace("&amp;", "&")


def _shown_history(history: list[dict]) -> list[dict]:
    """History as the page shows it: unescaped and escaped again, so a hand-written one is as safe as ours
    and our own escapes do not double."""
    return [{"role": m["role"], "content": safe_markdown(plain_text(m["content"]))} for m in history]


def _plain_history(history: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": plain_text(m["content"])} for m in history]


def check_length(text: Any, limit: int, what: str = "text") -> Any:
    """Refuse text longer than the server's input limit, with a message that says the limit."""
    if isinstance(text, str) and len(text) > limit:
        raise tasks.InputError(f"the {what} is {len(text):,} characters; this server accepts at most "
                               f"{limit:,}. Shorten it and try again.")
    return text


INSIDE_MAX_TOKENS = 512  # what the Inside-the-model tab computes over (one uninterrupted call on the model)
MAX_HISTORY_MESSAGES = 1000  # a chat longer than this is refused before any work (trimming is linear anyway)
HEARTBEAT_S = 0.5  # how often a waiting handler yields (Gradio can only close a generator between yields)


class _Waiting:
    """Stands in for Stats while a request waits for the model: the stats line says so."""

    def __init__(self, lm, stream):
        self.lm, self.stream = lm, stream

    def line(self) -> str:
        req, sched = self.stream.request, getattr(self.lm, "scheduler", None)
        ahead = sched.queue_position(req) if req is not None and sched is not None else 0
        return f"waiting for the model ({ahead} request(s) ahead)…" if ahead else "reading the prompt…"


def stats_line(stats, extra: str = "") -> str:
    if isinstance(stats, _Waiting):
        return stats.line()
    parts = [stats.summary()] + stats.notices + ([extra] if extra else [])
    return " · ".join(parts)


class Handlers:
    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings

    # ------------------------------------------------------------ helpers
    def config(self, task: str, max_new_tokens: Any, temperature: Any, top_p: Any, top_k: Any,
               repetition_penalty: Any, seed: Any) -> GenerationConfig:
        if isinstance(seed, str) and not seed.strip():
            seed = None
        cfg = TASK_DEFAULTS[task].replace(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                          top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
        if cfg.max_new_tokens > self.settings.max_new_tokens:
            raise ConfigError(f"max_new_tokens must be in [1, {self.settings.max_new_tokens}] on this server, "
                              f"got {cfg.max_new_tokens}")
        return cfg

    def check_length(self, text: Any, what: str = "text") -> str:
        return check_length(text, self.settings.max_input_chars, what)

    def check_chat(self, history: Any, *texts: Any) -> None:
        """The whole conversation (history, system prompt, message) against the input limit, before any work.

        One pass over the raw history, counting characters without copying or normalising them.
        """
        if history is None:
            history = []
        if not isinstance(history, (list, tuple)):
            raise tasks.InputError("the chat history must be a list of messages")
        if len(history) > MAX_HISTORY_MESSAGES:
            raise tasks.InputError(f"the chat history has {len(history):,} messages; this server accepts at most "
                                   f"{MAX_HISTORY_MESSAGES:,}. Clear the chat and start again.")
        limit = self.settings.max_input_chars
        total = sum(len(t) for t in texts if isinstance(t, str))
        for m in history:
            content = m.get("content", "") if isinstance(m, dict) else m
            blocks = content if isinstance(content, (list, tuple)) else [content]
            for b in blocks:
                b = b.get("text", "") if isinstance(b, dict) else b
                total += len(b) if isinstance(b, str) else 0
            if total > limit:
                break
        if total > limit:
            raise tasks.InputError(f"the conversation (history, system prompt and message) is over {limit:,} "
                                   f"characters, this server's limit. Clear the chat or Undo some turns.")

    def _stream(self, prompt: tasks.TaskPrompt, cfg: GenerationConfig) -> Iterator[tuple[str, Any]]:
        if prompt.notice:
            gr.Warning(prompt.notice)
        lm = self.host.lm
        stream = lm.stream(prompt.input, prompt.config(cfg), heartbeat=HEARTBEAT_S)
        text = ""
        try:
            for chunk in stream:
                if not chunk:  # no token yet: say that it waits (the generator stays closable)
                    if not text:
                        yield text, _Waiting(lm, stream)
                    continue
                text += chunk
                self.host.count(1)
                yield text, stream.stats
        finally:
            stream.close()
        yield text, stream.stats

    # ------------------------------------------------------------ tabs
    @friendly
    def generate(self, prompt: str, max_new_tokens=None, temperature=None, top_p=None, top_k=None,
                 repetition_penalty=None, seed=None):
        """Continue a text (base models) or answer an instruction (chat models). Streams text."""
        cfg = self.config("generation", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = tasks.generation_prompt(self.host.lm, self.check_length(prompt), cfg.max_new_tokens)
        for text, stats in self._stream(p, cfg):
            yield text.lstrip(), stats_line(stats)

    @friendly
    def translate(self, text: str, source: str = "en", target: str = "fr", max_new_tokens=None, temperature=None,
                  top_p=None, top_k=None, repetition_penalty=None, seed=None):
        """Translate text from the source to the target language (codes or names). Streams text."""
        cfg = self.config("translation", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = tasks.translation_prompt(self.host.lm, self.check_length(text), source, target, cfg.max_new_tokens)
        out, stats = "", None
        for out, stats in self._stream(p, cfg):
            yield out.lstrip(), stats_line(stats)
        yield tasks.postprocess("translation", out), stats_line(stats)

    @friendly
    def summarize(self, document: str, length: str = "short", max_new_tokens=None, temperature=None, top_p=None,
                  top_k=None, repetition_penalty=None, seed=None):
        """Summarize a document; length is short, medium or long. Streams text."""
        if max_new_tokens in (None, "") and length in tasks.SUMMARY_LENGTHS:
            max_new_tokens = tasks.SUMMARY_LENGTHS[length][1]
        cfg = self.config("summarization", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        p = tasks.summarization_prompt(self.host.lm, self.check_length(document, "document"), length,
                                       cfg.max_new_tokens)
        out, stats = "", None
        n_doc = len(document.split())
        for out, stats in self._stream(p, cfg):
            yield out.lstrip(), stats_line(stats)
        out = tasks.postprocess("summarization", out)
        n_sum = max(1, len(out.split()))
        yield out, stats_line(stats, f"compression {n_doc / n_sum:.1f}x ({n_doc:,} → {len(out.split()):,} words)")

    def _chat_stream(self, message: str, history: list, system: str, cfg: GenerationConfig):
        shown = _shown_history(tasks.normalise_history(history))
        p = tasks.dialogue_prompt(self.host.lm, self.check_length(message, "message"), _plain_history(shown), system,
                                  cfg.max_new_tokens)
        shown += [{"role": "user", "content": safe_markdown(message)}, {"role": "assistant", "content": ""}]
        yield shown, "", "…"
        for text, stats in self._stream(p, cfg):
            shown[-1]["content"] = safe_markdown(text.strip())
            yield shown, "", stats_line(stats)

    @friendly
    def chat(self, message: str, history: list | None = None, system: str = tasks.DEFAULT_SYSTEM_PROMPT,
             max_new_tokens=None, temperature=None, top_p=None, top_k=None, repetition_penalty=None, seed=None):
        """One chat turn: returns the history with the new user message and the streamed reply."""
        self.check_chat(history, message, system)
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from self._chat_stream(message, list(history or []), system, cfg)

    @friendly
    def retry(self, history: list | None, system: str, max_new_tokens=None, temperature=None, top_p=None,
              top_k=None, repetition_penalty=None, seed=None):
        """Answer the last user message again."""
        self.check_chat(history, system)
        history = tasks.normalise_history(history)
        while history and history[-1]["role"] == "assistant":
            history.pop()
        if not history:
            raise tasks.InputError("nothing to retry yet: send a message first")
        last = plain_text(history.pop()["content"])
        cfg = self.config("dialogue", max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        yield from self._chat_stream(last, history, system, cfg)

    @friendly
    def undo(self, history: list | None):
        """Remove the last exchange and put its message back in the textbox."""
        self.check_chat(history)
        history = tasks.normalise_history(history)
        while history and history[-1]["role"] == "assistant":
            history.pop()
        last = plain_text(history.pop()["content"]) if history else ""
        return _shown_history(history), last

    # ------------------------------------------------------------ model
    def model_info(self) -> str:
        info = self.host.lm.info()
        src = info.get("file_sha256") or info.get("revision") or ""
        rows = [
            ("Model", f"`{html.escape(info['name'])}` ({info.get('model_type')}, {info['style']} prompts)"),
            # the file or folder name only: no server path reaches a visitor
            ("Source", f"{info.get('kind')}: `{html.escape(_display_location(info))}`"),
            ("Backend", {"llamacpp": "llama.cpp (in-process)", "openai": f"OpenAI-compatible server "
                         f"(`{html.escape(str(info.get('served_model')))}`)"}.get(info.get("backend"), "transformers")),
            ("Parameters", f"{info['parameters'] / 1e6:,.1f} M" if info.get("parameters") else "n/a"),
            ("Device / dtype", f"{info['device']} / {info['dtype']} · {info['threads']} threads"),
            ("Generation forward", {"float16": "lean Llama forward, float16 weights",
                                    "float32": "lean Llama forward, float32 weights",
                                    "bfloat16": "lean Llama forward, bfloat16 weights",
                                    "transformers": "the model's own (transformers)",
                                    "llamacpp": "llama.cpp", "server": "the server's"}.get(info.get("decode"), "n/a")),
            ("Context length", f"{info['context_length']:,} tokens"),
            ("Load time", f"{info['load_s']:.1f} s" if info.get("load_s") is not None else "n/a"),
        ]
        if src:
            rows.append(("File sha256 / revision", f"`{src[:16]}…`"))
        return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])

    def preset_choices(self) -> list[tuple[str, str]]:
        return [(f"{p.name}: {p.description}", p.name) for p in PRESETS.values()]

    @friendly
    def load_model(self, preset: str, custom: str = "", progress=gr.Progress()):
        """Load a preset (or, when not hosted, a hub id or local path); the previous model stays on failure."""
        name = (custom or "").strip() or preset or DEFAULT_MODEL
        if self.settings.hosted:  # one shared model, chosen by the operator: a visitor swapping it swaps everyone's
            raise tasks.InputError("the model is chosen by the operator on this server; it cannot be changed here")
        progress(0.05, desc=f"loading {name}…")
        try:
            self.host.swap(name, trust_remote_code=self.settings.trust_remote_code,
                           progress=lambda msg: progress(None, desc=msg))
        except Exception as e:
            raise gr.Error(f"{e}. Still using {self.host.lm.name}.") from None
        progress(1.0, desc="ready")
        return self.model_info()


class EvalHandlers:
    """The Evaluation tab: run eval/ on the shared model over a benchmark file, show and download the results."""

    # what a task needs comes from the registry (eval/tasks.py): file prefix, per-example score

    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings

    def benchmarks(self, task: str) -> list[str]:
        """Benchmark files in the data folder for a task (names only: nothing outside that folder is offered)."""
        d = self.settings.data_dir
        if not d.is_dir():
            return []
        from eval.tasks import TASKS

        prefix = TASKS[task].data_prefix if task in TASKS else ""
        return sorted(p.name for p in d.iterdir() if p.is_file() and p.suffix in (".jsonl", ".txt")
                      and p.name.startswith(prefix))

    def default(self, task: str) -> str | None:
        names = self.benchmarks(task)
        preferred = [n for n in names if "flores200_devtest_en-fr" in n or "xsum" in n or n.endswith(".txt")
                     or "crowspairs" in n]
        return (preferred or names or [None])[0]

    def choices(self, task: str):
        return gr.update(choices=self.benchmarks(task), value=self.default(task))

    def _data_path(self, name: str | None, upload: str | None):
        from pathlib import Path

        if upload:
            return Path(upload)  # a file Gradio stored in its own upload folder
        if not name:
            raise tasks.InputError("choose a benchmark file or upload a JSONL file")
        base = self.settings.data_dir.resolve()
        path = (base / name).resolve()
        if path.parent != base or not path.is_file():  # no path traversal out of the data folder
            raise tasks.InputError(f"no benchmark named {name!r} in the data folder")
        return path

    @friendly
    def run(self, task: str, name: str | None, upload: str | None, limit: Any):
        """Run an evaluation with the app's prompts on the loaded model; yields progress, then the results.

        The run works in a thread of its own at batch priority (visitors' requests go first). Stop,
        or the client leaving, closes this generator, which stops the run at its next step; what it
        finished stays in its folder.
        """
        import json as _json
        import threading
        import time as _time

        from eval.runner import RunSpec, RunStopped, run

        from eval.tasks import TASKS

        if task not in TASKS:
            raise tasks.InputError(f"unknown task {task!r}")
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise tasks.InputError("limit must be a whole number") from None
        if not 1 <= limit <= 1000:
            raise tasks.InputError("limit must be between 1 and 1000 in the app; use python -m eval for more")
        if limit > self.settings.eval_examples_cap:
            raise tasks.InputError(f"limit must be at most {self.settings.eval_examples_cap} on this server")
        path = self._data_path(name, upload)
        if upload:  # a visitor's file: the same size rules as the task tabs, before any work
            self._check_upload(path, task, limit)
        _remove_old_runs(self.settings.output_dir, self.settings.keep_runs_hours)
        stamp = _time.strftime("%Y%m%d-%H%M%S")
        # an unguessable name: run folders are never served as a folder, and no visitor can find another's
        out = self.settings.output_dir / f"{task}-{stamp}-{secrets.token_hex(8)}"
        lm = self.host.lm
        cfg = None
        if TASKS[task].kind == "generate":  # greedy, as python -m eval; leave room for the input in small contexts
            d = TASK_DEFAULTS[task]
            cfg = d.replace(temperature=0.0, max_new_tokens=min(d.max_new_tokens, lm.context_length // 4))
        spec = RunSpec(task=task, data=str(path), output=str(out), limit=limit, batch_size="auto", config=cfg,
                       max_length=min(1024, lm.context_length), stride=512)
        done = [0, limit]
        box: dict = {}
        stop = threading.Event()

        def work():
            try:
                box["res"] = run(spec, lm, progress_cb=lambda d, t: done.__setitem__(slice(0, 2), [d, t]),
                                 stop_event=stop)
            except BaseException as e:  # noqa: BLE001 - handed to the handler's thread
                box["err"] = e

        worker = threading.Thread(target=work, name="eval-run", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(HEARTBEAT_S)
                yield (f"Running: {done[0]} of {done[1]} examples done…", gr.skip(), gr.skip(), gr.skip(), gr.skip())
        finally:
            stop.set()  # Stop pressed or the client left: the run ends at its next step
        if isinstance(box.get("err"), RunStopped):  # its message names a server path: say it plainly instead
            raise tasks.InputError(f"the evaluation was stopped after {done[0]} of {done[1]} examples")
        if "err" in box:
            err = box["err"]
            if isinstance(err, (ValueError, RuntimeError)) and str(path) in str(err):  # no server path in messages
                raise tasks.InputError(str(err).replace(str(path), "the uploaded file" if upload else name)) from None
            raise err
        res = box["res"]
        rows = [_json.loads(line) for line in open(out / "predictions.jsonl", encoding="utf-8")]
        key = TASKS[task].per_example
        table = [[r["id"], str(r.get("input") or r.get("source") or "")[:300],
                  str(r.get("reference", r.get("sent_less", "")))[:300],
                  str(r.get("prediction", f"{r.get('ll_more', 0):.2f} vs {r.get('ll_less', 0):.2f}"))[:300],
                  round(r.get(key) or 0.0, 2)] for r in rows]
        metrics_md = "\n".join(["| metric | value | 95% CI |", "|---|---|---|"] + [
            f"| {k} | {v:,.2f} | {_ci(res, k)} |" for k, v in res["metrics"].items() if isinstance(v, (int, float))])
        # handed out as copies in a private temporary folder: Gradio moves them into its cache under a
        # content hash, served to this visitor's page only; the output folder itself is not served
        share = _private_copy(out, ["plot-1.png", "report.html", "report.md", "results.json", "predictions.jsonl"])
        plot = share.get("plot-1.png")
        files = [share[f] for f in ("report.html", "report.md", "results.json", "predictions.jsonl") if f in share]
        yield metrics_md, plot, table, files, rows

    def _check_upload(self, path, task: str, limit: int) -> None:
        from eval.datasets import DataError, load_records

        try:
            records = load_records(str(path), task, limit)
        except DataError as e:
            raise tasks.InputError(str(e).replace(str(path), "the uploaded file")) from None
        cap = self.settings.max_input_chars
        for r in records:
            size = sum(len(v) if isinstance(v, str) else sum(len(x) for x in v if isinstance(x, str))
                       for k, v in r.items() if k != "id" and isinstance(v, (str, list)))
            if size > cap:
                raise tasks.InputError(f"example {str(r.get('id'))[:40]!r} of the uploaded file has {size:,} "
                                       f"characters; this server accepts at most {cap:,} per example")

    @staticmethod
    def send(rows: list | None, index: Any, task: str):
        """Put example ``index`` (0-based row of the table) into its task tab, from the row's stored raw input."""
        try:
            i = int(index)
            r = (rows or [])[i]
        except (TypeError, ValueError, IndexError):
            raise gr.Error("run an evaluation first, then give a row number from the table") from None
        text = str(r.get("input") or r.get("source") or "")
        if task == "translation":
            return gr.update(selected="translation"), text, "", ""
        if task == "summarization":
            return gr.update(selected="summarization"), "", text, ""
        if task == "dialogue":
            return gr.update(selected="dialogue"), "", "", text
        raise gr.Error(f"{task} examples have no task tab to open them in")


_SHARED: list[tuple[float, str]] = []  # (created, folder) of private copies, removed after an hour


def _private_copy(out, names: list[str]) -> dict[str, str]:
    import shutil
    import tempfile
    import time as _time
    from pathlib import Path

    now = _time.time()
    while _SHARED and now - _SHARED[0][0] > 3600:
        shutil.rmtree(_SHARED.pop(0)[1], ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="llmdemo-")
    _SHARED.append((now, folder))
    copies = {}
    for n in names:
        if (Path(out) / n).exists():
            copies[n] = str(shutil.copy(Path(out) / n, Path(folder) / n))
    return copies


def _remove_old_runs(folder, hours: float) -> None:
    """Visitors' run folders older than ``hours`` go (run folders only: nothing else in the folder is touched)."""
    import shutil
    import time as _time

    from eval.runner import _is_run_file

    if not folder.is_dir():
        return
    cutoff = _time.time() - hours * 3600
    for d in folder.iterdir():
        try:
            if d.is_dir() and not d.is_symlink() and d.stat().st_mtime < cutoff \
                    and all(_is_run_file(p.name) for p in d.iterdir()) and not (d / "run.lock").exists():
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


def _display_location(info: dict) -> str:
    from pathlib import PurePath

    loc = str(info.get("location", ""))
    return PurePath(loc).name if info.get("kind") in ("gguf", "local") or loc.startswith("/") else loc


def _ci(res: dict, k: str) -> str:
    ci = res.get("ci95", {}).get(k)
    return f"{ci[0]:.2f} – {ci[1]:.2f}" if ci else ""


_CHIP_COLOURS = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f2f7", "#fce1c8", "#e0f0d0"]


def token_chips(toks) -> str:
    """Tokens as coloured chips with their ids (HTML-escaped: a token is never markup)."""
    chips = []
    for i, t in enumerate(toks):
        shown = html.escape(t.text).replace(" ", "␣").replace("\n", "↵") or "∅"
        chips.append(f"<span class='chip' style='background:{_CHIP_COLOURS[i % len(_CHIP_COLOURS)]}' "
                     f"title='id {t.id}'>{shown}<sub>{t.id}</sub></span>")
    return "<div class='chips'>" + "".join(chips) + "</div>"


class InsideHandlers:
    """The "Inside the model" tab: thin wrappers over llmdemo.internals."""

    def __init__(self, host: ModelHost, settings: AppSettings):
        self.host = host
        self.settings = settings

    @friendly
    def analyze(self, text: str, layer: Any = -1, head: Any = -1):
        from llmdemo import internals

        lm = self.host.lm
        require(lm, INSIDE, "Looking inside the model")
        text = tasks.clean_text(check_length(text, self.settings.max_input_chars))
        toks = internals.tokens(lm, text)
        summary = f"{len(toks):,} tokens for {len(text):,} characters ({len(text) / max(1, len(toks)):.1f} characters per token)"
        if len(toks) > INSIDE_MAX_TOKENS:
            # each look is one uninterrupted call on the model's thread: a 20,000-character text held every
            # visitor up for ~40 s, so the model looks at the first INSIDE_MAX_TOKENS tokens only
            text = "".join(t.text for t in toks[:INSIDE_MAX_TOKENS])
            summary += f" · the model looks at the first {INSIDE_MAX_TOKENS} tokens"
        if lm.is_encoder_decoder:
            gr.Warning(f"{lm.name} is an encoder-decoder model: only the tokenization applies here")
            return token_chips(toks), summary, {}, gr.update(choices=[]), [], None
        top, _ = internals.next_token_distribution(lm, text, k=10)
        labels = {f"{t.text!r} ({t.id})": p for t, p in top}
        scores = internals.surprisal(lm, text)
        hi = max((s for _, s in scores), default=1.0) or 1.0
        heat = [(t.text, s / hi) for t, s in scores]  # 0 = expected, 1 = most surprising in this text
        ppl = internals.perplexity_of(scores)
        summary += (f" · surprisal {sum(s for _, s in scores):.1f} nats in total, perplexity {ppl:.2f}"
                    " (the same number the Evaluation tab's perplexity would give for this text)")
        fig = self._heatmap(lm, text, layer, head)
        choices = [(f"{t.text!r} · {p:.1%}", t.id) for t, p in top]
        return (token_chips(toks), summary, labels, gr.update(choices=choices, value=choices[0][1]), heat, fig)

    def _heatmap(self, lm, text: str, layer: Any, head: Any):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from llmdemo import internals

        layer, head = int(layer), int(head)
        toks, att, notice = internals.attention(lm, text, layer=layer, head=None if head < 0 else head)
        if notice:
            gr.Warning(notice)
        n = len(toks)
        fig, ax = plt.subplots(figsize=(min(12, 2 + n * 0.3), min(12, 2 + n * 0.3)))
        ax.imshow(att.numpy(), cmap="viridis", vmin=0)
        labels = [t.text.replace("\n", "↵") or "∅" for t in toks]
        if n <= 64:
            ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
            ax.set_yticks(range(n), labels, fontsize=8)
        ax.set_xlabel("attends to (earlier tokens)")
        ax.set_ylabel("token")
        ax.set_title(f"layer {layer if layer >= 0 else internals.layer_head_counts(lm)[0] + layer}, "
                     + ("average over heads" if head < 0 else f"head {head}"))
        fig.tight_layout()
        return fig

    @friendly
    def step(self, text: str, choice: Any, mode: str, seed: Any = None):
        """Append a token: the chosen candidate, the most likely one (greedy) or a sampled one."""
        from llmdemo import internals

        lm = self.host.lm
        require(lm, INSIDE, "Looking inside the model")
        text = tasks.clean_text(check_length(text, self.settings.max_input_chars))
        if lm.count_tokens(text) > INSIDE_MAX_TOKENS:
            raise tasks.InputError(f"stepping works on texts of at most {INSIDE_MAX_TOKENS} tokens; shorten the text")
        if mode == "chosen":
            if choice in (None, ""):
                raise tasks.InputError("analyze the text first, then pick a candidate")
            tok_id = int(choice)
        else:
            top, _ = internals.next_token_distribution(lm, text, k=50)
            if mode == "greedy":
                tok_id = top[0][0].id
            else:
                gen = torch_generator(seed)
                import torch

                probs = torch.tensor([p for _, p in top])
                tok_id = top[int(torch.multinomial(probs / probs.sum(), 1, generator=gen))][0].id
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"] + [tok_id]
        return lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


def torch_generator(seed: Any):
    import torch

    g = torch.Generator()
    if seed not in (None, ""):
        g.manual_seed(int(seed))
    else:
        g.seed()
    return g
