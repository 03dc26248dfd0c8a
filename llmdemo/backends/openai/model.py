"""``OpenAILM``: a model behind an OpenAI-compatible server (see the package's docstring): its settings,
generation (streams for the app, many requests at once for ``generate_batch``) and what it reports."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

from ...config import GenerationConfig
from ...engine.stream import Completion, Stats, StopText, Stream
from ...interface import BATCH, GENERATE, SCORE, SERVER_TOKEN_PROBS
from ...tokenprobs import Alternative, TokenInfo, trim
from .. import llamaserver
from ..concurrency import OVERLOAD_STATUS, Concurrency
from ..server_errors import CompletionAborted, ServerError
from .scoring import _Scoring
from .tokens import _Tokens, _load_tokenizer
from .transport import OVERLOAD_BUDGET_S, REQUEST_BUDGET_S, Retries, _json_body, _strip_userinfo, _Transport


class OpenAILM(_Transport, _Tokens, _Scoring):
    """A model behind an OpenAI-compatible HTTP API (see the package's docstring, llmdemo/backends/openai/)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, chat: bool = True,
                 tokenizer: str | None = None, concurrency: int | str | Concurrency = "auto",
                 max_concurrency: int = 100, timeout_s: float = 120.0, retries: int = 3,
                 context_length: int | None = None, request_budget_s: float = REQUEST_BUDGET_S):
        """``concurrency``: requests in flight at once, streams included: ``"auto"`` (adaptive, from 20 up to
        ``max_concurrency``), a number (fixed), or a :class:`Concurrency` (shared with another model on the
        same server). ``retries``: how many times one request is asked again (429/5xx, connection errors)."""
        import httpx

        base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "").strip().rstrip("/")
        if not base_url:
            raise ValueError("an OpenAI-compatible model needs a server: pass --base-url URL or set OPENAI_BASE_URL")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"--base-url must start with http:// or https://, got {_strip_userinfo(base_url)[0]!r}")
        # credentials in the URL (https://user:pass@host) go to the HTTP client, never into a name, a message,
        # the Model tab or a results file: every URL kept here is without them
        base_url, userinfo = _strip_userinfo(base_url)
        self.controller = Concurrency.of(concurrency, max_concurrency)
        if not base_url.endswith("/v1"):
            base_url += "/v1"
        self.base_url = base_url
        self.root_url = base_url[: -len("/v1")]
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        auth = httpx.BasicAuth(*userinfo) if userinfo else None
        self._secrets = [x for x in (key, *(userinfo or ())) if x and len(x) >= 3]
        self._http = httpx.Client(headers=headers, auth=auth, timeout=httpx.Timeout(timeout_s, connect=10.0))
        self.request_budget_s = float(request_budget_s)
        self.overload_budget_s = OVERLOAD_BUDGET_S
        self.retries = retries
        self.model = model
        self.name = f"openai:{model}" if chat else f"openai-base:{model}"
        self.chat_api = chat
        self.style = "chat" if chat else "base"
        self.is_encoder_decoder = False
        self.pairs = ()
        self.device = "server"
        self.decode_mode = "server"
        # token probabilities as the server returns them (logprobs / top_logprobs), if it does: before the
        # sampling settings only (servers report the model's distribution), no entropy, no branching
        self.capabilities = frozenset({GENERATE, SCORE, BATCH, SERVER_TOKEN_PROBS})
        self._checked: bool | None = None
        self._check_lock = threading.Lock()
        self.retried = 0  # completions asked for again after the server aborted them
        t0 = time.perf_counter()
        served = self._models()  # fails here, with a clear message, when the server is not there
        ids = [m.get("id") for m in served]
        if ids and model not in ids:
            raise ValueError(f"the server at {self.base_url} does not serve {model!r}; it serves: {', '.join(ids)}")
        entry = next((m for m in served if m.get("id") == model), {})
        # llama.cpp's llama-server: scored by forced tokens on its slots (llamaserver.py), tokenized by its own
        # /tokenize (whose vLLM-style call it answers with no tokens at all), its slots the default concurrency
        self._props = llamaserver.detect(self)
        self._scorer = llamaserver.SlotScorer(self, self._props) if self._props else None
        slot_ctx = ((self._props or {}).get("default_generation_settings") or {}).get("n_ctx")
        if self._scorer is not None and isinstance(concurrency, str) and concurrency.strip().lower() == "auto":
            self.controller = Concurrency.of(self._scorer.slots, max_concurrency)
        known_ctx = context_length or entry.get("max_model_len") or slot_ctx
        self.context_length = int(known_ctx or 2048)
        self._context_assumed = not known_ctx
        self._tok = _load_tokenizer(tokenizer) if tokenizer else None
        self._tokenizer_source = tokenizer or ("llama-server" if self._scorer else self._find_tokenize_route())
        self.load_s = time.perf_counter() - t0

    @property
    def concurrency(self) -> int:
        """Requests in flight allowed now (the controller's current limit)."""
        return self.controller.limit

    @property
    def max_concurrency(self) -> int:
        """The most the limit can grow to: what callers size thread pools and batches by."""
        return self.controller.maximum


    # ------------------------------------------------------------ generation
    def _body(self, prompt: Any, config: GenerationConfig, budget: int, seed: int, stream: bool) -> tuple[str, dict]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": budget, "stream": stream, "seed": seed,
                                "temperature": config.temperature, "top_p": config.top_p}
        # sent even at their neutral values: servers have their own defaults (llama-cpp-python's server
        # applies repeat_penalty 1.1, top_k 40 and min_p 0.05 unless told otherwise). vLLM, TGI and
        # llama.cpp read these fields.
        body["top_k"] = config.top_k  # 0 = off (vLLM also takes 0; llama-cpp-python refuses -1)
        body["min_p"] = 0.0
        body["repetition_penalty"] = body["repeat_penalty"] = config.repetition_penalty
        if config.stop:
            body["stop"] = list(config.stop)
        if config.logprobs:  # the chat API takes a flag and a count, completions a count
            if self.chat_api:
                body["logprobs"], body["top_logprobs"] = True, config.logprobs
            else:
                body["logprobs"] = config.logprobs
        if self.chat_api:
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            body["messages"] = list(prompt)
            return "/chat/completions", body
        body["prompt"] = prompt if isinstance(prompt, str) else [int(i) for i in prompt]
        return "/completions", body

    def stream(self, prompt: Any, config: GenerationConfig | None = None,
               stop_event: threading.Event | None = None, priority: Any = None,
               heartbeat: float | None = None) -> Stream:
        """Stream new text from the server; closing the stream closes the connection (the server stops)."""
        import httpx

        config = config or GenerationConfig()
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict) and not self.chat_api:
            raise ValueError(f"{self.name} is a completions model; give a plain text prompt")
        n_prompt = len(self.encode(prompt))
        stats = Stats(prompt_tokens=n_prompt, seed=config.seed if config.seed is not None else secrets.randbelow(2**31))
        room = self.context_length - n_prompt
        if room < 1:
            from ..engine.model import ContextOverflowError

            raise ContextOverflowError("context.prompt", n=n_prompt, model=self.name, limit=self.context_length)
        budget = min(config.max_new_tokens, room)
        path, body = self._body(prompt, config, budget, stats.seed, stream=True)

        def chunks(handle) -> Iterator[str]:
            t0 = time.perf_counter()
            out = StopText(config.stop)
            stats.finish_reason = "stopped"

            def stopped() -> bool:
                return (stop_event is not None and stop_event.is_set()) or handle.closed.is_set()

            try:
                with self._model_stream(path, body, stopped) as r:
                    if r is None:
                        return  # stopped while waiting for room, or to be let in again
                    deadline = time.perf_counter() + self.request_budget_s  # the server's time, not the wait
                    for line in self._lines(r):
                        if stopped():
                            return  # leaving the block closes the connection: the server stops
                        if time.perf_counter() > deadline:
                            raise ServerError(f"the model server at {self.root_url} took over "
                                              f"{self.request_budget_s:g} s for one completion; stopped")
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        try:
                            choice = (json.loads(data).get("choices") or [{}])[0]
                            lps = choice.get("logprobs") if config.logprobs else None
                            if lps:
                                handle.token_info.extend(_server_token_info(lps, self.chat_api))
                            piece = (choice.get("delta") or {}).get("content") if self.chat_api else choice.get("text")
                            if piece is not None and not isinstance(piece, str):
                                raise TypeError(piece)
                        except (ValueError, AttributeError, TypeError, IndexError, KeyError):
                            raise ServerError(f"the model server at {self.root_url} sent a stream chunk that is "
                                              f"not OpenAI's format: {self._short(data, 80)}") from None
                        if piece and stats.new_tokens >= budget:  # it ignores max_tokens: stop reading
                            stats.finish_reason = "length"
                            break
                        if piece:
                            stats.new_tokens += 1  # one chunk per token on vLLM and llama.cpp
                            if stats.ttft_s is None:
                                stats.ttft_s = time.perf_counter() - t0
                            chunk = out.update(out.text + piece) if not out.hit else ""
                            if chunk:
                                yield chunk
                            if out.hit:
                                stats.finish_reason = "stop_string"
                                break
                        reason = choice.get("finish_reason")
                        if reason and isinstance(reason, str):
                            stats.finish_reason = {"stop": "eos", "length": "length"}.get(reason, reason)
                    else:
                        if stats.finish_reason == "stopped":  # no finish reason and no [DONE]: cut off
                            raise CompletionAborted(f"the model server at {self.root_url} closed the stream "
                                                    "before it ended; try again")
                    if stats.finish_reason == "stopped":  # [DONE] without a finish reason: aborted, not ended
                        raise CompletionAborted(
                            f"the model server at {self.root_url} ended a completion without a finish reason "
                            f"after {stats.new_tokens} tokens (aborted; llama-cpp-python's server does this when "
                            "another request arrives unless started with --interrupt_requests false)")
            except (httpx.TransportError, httpx.TimeoutException) as e:
                raise ServerError(f"the model server at {self.root_url} failed mid-stream ({type(e).__name__}); "
                                  "try again") from None
            finally:
                stats.total_s = time.perf_counter() - t0
            tail = out.rest()
            if handle.token_info:
                trim(handle.token_info, out.text)
            if tail:
                yield tail

        return Stream(chunks, stats)

    @contextlib.contextmanager
    def _model_stream(self, path: str, body: dict, stopped: Callable[[], bool]) -> Iterator[Any]:
        """An open streamed response holding a concurrency slot until the block ends, or None if ``stopped()``
        turned true first. A 429 (a full server) is asked again, after its ``Retry-After`` or a backoff, for up
        to ``overload_budget_s`` (a 503 up to ``retries`` times): nothing was streamed yet. Other errors
        raise, as before."""
        tries = Retries(self.retries, self.overload_budget_s)
        while True:
            slot = self.controller.acquire(stopped)
            if slot is None:
                yield None
                return
            try:
                with self._http.stream("POST", self.base_url + path, **_json_body(body)) as r:
                    status = r.status_code
                    if status >= 400:
                        detail = self._short(self._read(r, 4096, path).decode("utf-8", "replace"))
                        wait = (self._overloaded(slot, r.headers.get("retry-after"))
                                if status in OVERLOAD_STATUS else None)
                        # nothing was streamed yet: a full or unavailable server is asked again
                        if status not in OVERLOAD_STATUS or not tries.again(overloaded=status == 429):
                            raise ServerError(f"the model server at {self.root_url} answered {status}: {detail}")
                    else:
                        yield r
                        slot.success(clean=tries.clean)
                        return
            finally:
                slot.release()  # not held while waiting: a request that is not at the server takes no room
            if self._pause(tries.pause_s(wait), stopped):
                yield None
                return

    def generate(self, prompt: Any, config: GenerationConfig | None = None,
                 stop_event: threading.Event | None = None, priority: Any = None) -> str:
        return self.stream(prompt, config, stop_event).text()

    def chat(self, messages: Sequence[dict], config: GenerationConfig | None = None,
             stop_event: threading.Event | None = None) -> Stream:
        return self.stream(list(messages), config, stop_event)

    def generate_batch(self, prompts: Sequence[Any], config: GenerationConfig | None = None,
                       batch_size: int | None = None, on_done: Callable[[int, str], None] | None = None,
                       stop_event: threading.Event | None = None, max_new_tokens: Sequence[int] | None = None,
                       priority: Any = None, on_error: Callable[[int, BaseException], None] | None = None,
                       on_progress: Callable[[int, int], None] | None = None) -> list[Completion]:
        """Up to ``batch_size`` (default: ``max_concurrency``) requests at once, as many in flight as the
        concurrency controller lets through; the server batches them.

        A completion the server aborted (:class:`CompletionAborted`) is asked for again, with backoff, up to
        ``retries`` times (``self.retried`` counts them); one that still fails raises, or goes to ``on_error``.
        ``on_progress`` is never called: a server's tokens are counted as each answer ends.
        """
        config = config or GenerationConfig()
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        results: list[Completion] = [Completion("", None)] * len(prompts)

        def one(i: int) -> Completion:
            if stop_event is not None and stop_event.is_set():
                return Completion("", "stopped")
            cfg = config.replace(seed=seed, max_new_tokens=min(config.max_new_tokens, max_new_tokens[i])
                                 if max_new_tokens is not None else None)
            tries = Retries(self.retries)
            while True:
                s = self.stream(prompts[i], cfg, stop_event)
                try:
                    text = s.text()
                    return Completion(text, s.stats.finish_reason)
                except CompletionAborted:
                    if not tries.again() or (stop_event is not None and stop_event.is_set()):
                        raise
                    with self._check_lock:
                        self.retried += 1
                    time.sleep(tries.pause_s())

        # threads up to the controller's maximum, not its limit now: each waits for a slot, so the limit
        # can grow without a new pool
        pool = ThreadPoolExecutor(max(1, min(len(prompts), batch_size or self.max_concurrency)))
        try:
            futs = {pool.submit(one, i): i for i in range(len(prompts))}
            for fut in as_completed(futs):
                i = futs[fut]
                try:
                    results[i] = fut.result()
                except Exception as e:  # noqa: BLE001 - handed to on_error, or raised as before
                    if on_error is None:
                        raise
                    results[i] = Completion("", "error")
                    on_error(i, e)
                    continue
                if on_done is not None and not (stop_event is not None and stop_event.is_set()):
                    on_done(i, results[i])
        finally:
            # on an error (or when done) nothing still queued is sent: a failed run costs no more requests
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    # ------------------------------------------------------------ about
    def batching(self) -> dict[str, Any]:
        """What results files record of how requests shared the server (it batches what is in flight)."""
        return {"engine": "server: it batches the requests in flight itself",
                "server": f"llama-server, {self._scorer.slots} slots" if self._scorer else None,
                "concurrency": self.controller.info()}

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "backend": "openai", "kind": "server", "base_url": self.root_url,
                "served_model": self.model, "api": "chat completions" if self.chat_api else "completions",
                "server": f"llama-server, {self._scorer.slots} slots" if self._scorer else None,
                "logprobs": llamaserver.METHOD if self._scorer else "completions with echo and logprobs",
                "style": self.style, "context_length": self.context_length,
                "context_length_assumed": self._context_assumed, "tokenizer": self._tokenizer_source or "local",
                "decode": "server", "device": "server", "dtype": "server", "parameters": None, "threads": None,
                "model_type": None, "load_s": round(self.load_s, 3), "location": self.root_url,
                "concurrency": self.controller.info()}

    def close(self, reason: str = "the model was unloaded") -> None:
        self._http.close()


def _server_token_info(lp: dict, chat: bool) -> list[TokenInfo]:
    """A stream chunk's ``logprobs`` as TokenInfo: the chat API's ``content`` list, or completions' parallel lists.

    Servers give token texts, not ids, and only their top-N: ``p_after`` and ``entropy`` stay None."""
    out = []
    if chat:
        for item in lp.get("content") or []:
            if item.get("logprob") is None:
                continue
            alts = [Alternative(None, a.get("token", ""), math.exp(a["logprob"]), None)
                    for a in item.get("top_logprobs") or [] if a.get("logprob") is not None]
            out.append(TokenInfo(None, item.get("token", ""), math.exp(item["logprob"]), None, None, alts))
        return out
    tops = lp.get("top_logprobs") or []
    for k, (tok, l) in enumerate(zip(lp.get("tokens") or [], lp.get("token_logprobs") or [])):
        if l is None:
            continue
        top = tops[k] if k < len(tops) and isinstance(tops[k], dict) else {}
        alts = [Alternative(None, t, math.exp(v), None) for t, v in sorted(top.items(), key=lambda kv: -kv[1])]
        out.append(TokenInfo(None, tok, math.exp(l), None, None, alts))
    return out
