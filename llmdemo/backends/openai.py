"""Any OpenAI-compatible server as a backend: vLLM, TGI, llama.cpp's server, hosted endpoints.

``--model openai:NAME`` talks to chat completions (the server applies the chat template);
``--model openai-base:NAME`` to completions with the task's plain prompt. The server is named by
``--base-url`` or ``OPENAI_BASE_URL``; the key by ``OPENAI_API_KEY`` (sent as a bearer token, never
printed, logged, written to results or shown). The server batches concurrent requests itself
(vLLM's continuous batching), so this backend just sends them: streams for the app, many requests at
once for ``generate_batch``. How many are in flight at once (streams included) is a
:class:`~llmdemo.backends.concurrency.Concurrency`: adaptive by default (from 20 up to
``max_concurrency``, cut on 429/503, ``Retry-After`` honoured), or fixed (``concurrency=N``).

Log-likelihoods (perplexity, the dialogue reference score) use completions with ``echo`` and
``logprobs`` over token ids, as lm-evaluation-harness's ``local-completions`` does. Servers get
this wrong (llama-cpp-python's server shifts prompt log-probabilities by one position;
llama.cpp's ``llama-server`` returns none), so before the first score the server is checked
against itself: the log-probability it gives a greedy token when generating it must equal the one
it gives the same token as the last token of an echoed prompt. A server that fails is refused.

Tokens come from the server (vLLM's ``/tokenize``, llama-cpp-python's ``/extras/tokenize``) or
from a local tokenizer (``--tokenizer HUB_ID_OR_PATH``), which also counts chat prompts exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from ..config import GenerationConfig
from ..interface import BATCH, GENERATE, SCORE, SERVER_TOKEN_PROBS
from ..prompts import _SURROGATE  # the pattern clean_text replaces
from ..engine.stream import Completion, Stats, StopText, Stream, rolling_windows
from ..tokenprobs import Alternative, TokenInfo, trim
from . import llamaserver
from .server_errors import CompletionAborted, LogprobsUnreliable, ServerError  # noqa: F401 (also imported from here)
from .concurrency import OVERLOAD_STATUS, Concurrency, parse_retry_after

log = logging.getLogger("llmdemo.openai")

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MODEL_PATHS = frozenset({"/completions", "/chat/completions"})  # the requests that hold a concurrency slot
# An upstream server is not trusted (issue 37): a body read whole, a line that never ends, a stream that
# ignores max_tokens or trickles for ever would each hang or exhaust the app that serves every visitor.
MAX_BODY_BYTES = 8 << 20  # a non-streamed answer (model list, scores, tokens)
MAX_LINE_BYTES = 1 << 20  # one line of a stream (a chunk with 20 top log-probabilities is ~10 KB)
REQUEST_BUDGET_S = 600.0  # one completion, first byte to last (the read timeout bounds each wait)
OVERLOAD_BUDGET_S = 600.0  # how long one request keeps asking a full server (429) again
MAX_BACKOFF_S = 30.0  # the longest wait between two tries without a Retry-After


class Retries:
    """One call's tries, as every retry loop here counts them: a full server (429) is asked again while the
    overload budget lasts (a controller needs several cool-downs to come down to the server's size, and a
    request refused meanwhile is no failure, as Inspect retries rate limits); any other retryable error gets
    ``retries`` more tries; between two, the server's ``Retry-After`` or an exponential backoff, with jitter."""

    def __init__(self, retries: int, overload_budget_s: float = 0.0):
        self.retries, self.tries, self.delay = retries, 0, 0.5
        self.overload_until = time.monotonic() + overload_budget_s
        self.clean = True  # no try failed yet: a success now is evidence the server keeps up

    def again(self, overloaded: bool = False) -> bool:
        """After a failed try: whether to try again (and it is counted)."""
        self.clean = False
        if overloaded:
            return time.monotonic() < self.overload_until
        self.tries += 1
        return self.tries <= self.retries

    def pause_s(self, server_wait: float | None = None) -> float:
        """How long to wait before the next try; the backoff doubles, up to MAX_BACKOFF_S."""
        # Retry-After is a minimum; jitter on top (up to half as long again) keeps the requests it sent away
        # together from all coming back in the same instant
        s = server_wait * (1 + 0.5 * random.random()) if server_wait is not None else self.delay * (1 + random.random())
        self.delay = min(self.delay * 2, MAX_BACKOFF_S)
        return s
_SECRETISH = re.compile(r"\b(Bearer|Basic)\s+[^\s\"',;]+|\bsk-[A-Za-z0-9_\-]{6,}", re.IGNORECASE)


class OpenAILM:
    """A model behind an OpenAI-compatible HTTP API (see the module docstring)."""

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

    # ------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, *, root: bool = False, **kw) -> Any:
        """One call with retries (bounded, exponential backoff with jitter) on connection errors and 429/5xx;
        a 429/503 waits its ``Retry-After`` instead when it has one. Model work (completions) holds a slot."""
        import httpx

        url = (self.root_url if root else self.base_url) + path
        gated = not root and path in MODEL_PATHS
        if "json" in kw:
            kw.update(_json_body(kw.pop("json")))
        tries = Retries(self.retries, self.overload_budget_s)
        while True:
            wait, overloaded = None, False
            slot = self.controller.acquire() if gated else None
            try:
                try:
                    with self._http.stream(method, url, **kw) as r:  # read at most MAX_BODY_BYTES of the answer
                        status = r.status_code
                        retry_after = r.headers.get("retry-after")
                        body = self._read(r, MAX_BODY_BYTES if status < 400 else 4096, path)
                except (httpx.TransportError, httpx.TimeoutException) as e:
                    err: Exception = ServerError(f"could not reach the model server at {self.root_url}: "
                                                 f"{type(e).__name__}")
                else:
                    if status < 400:
                        try:
                            out = json.loads(body)
                        except ValueError:
                            raise ServerError(f"the model server at {self.root_url} answered {path} with something "
                                              f"that is not JSON: {self._short(body.decode('utf-8', 'replace'))}"
                                              ) from None
                        if slot is not None:
                            slot.success(clean=tries.clean)
                        return out
                    err = ServerError(f"the model server at {self.root_url} answered {status} to {path}: "
                                      f"{self._short(body.decode('utf-8', 'replace'))}")
                    if status not in RETRY_STATUS:
                        raise err
                    if status in OVERLOAD_STATUS:
                        # only a 429 gets the overload budget: a 503 is as often a server that is down
                        wait, overloaded = self._overloaded(slot, retry_after), status == 429
            finally:
                if slot is not None:
                    slot.release()  # not held while waiting: a request that is not at the server takes no room
            if not tries.again(overloaded):
                raise err
            self._pause(tries.pause_s(wait))

    def _overloaded(self, slot, retry_after: str | None) -> float | None:
        """A 429/503: the controller hears of it (model work only); the wait the server asked for, capped."""
        seconds = parse_retry_after(retry_after)
        if slot is not None:
            return slot.overloaded(seconds)
        return None if seconds is None else min(seconds, self.controller.max_wait_s)

    def _pause(self, seconds: float, stopped: Callable[[], bool] | None = None) -> bool:
        """Sleep ``seconds``; True, at once, if ``stopped()`` turns true meanwhile (looked at every 0.1 s)."""
        if stopped is None:
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while not stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.1, left))
        return True

    def _read(self, r, cap: int, path: str) -> bytes:
        """A response body, refused past ``cap`` bytes (an error body is cut there instead)."""
        parts, n = [], 0
        for chunk in r.iter_bytes():
            parts.append(chunk)
            n += len(chunk)
            if n > cap:
                if r.status_code >= 400:
                    break
                raise ServerError(f"the model server at {self.root_url} answered {path} with over "
                                  f"{cap >> 20} MB; refused")
        return b"".join(parts)[:cap]

    def _lines(self, r) -> Iterator[str]:
        """A stream's lines, each at most MAX_LINE_BYTES (``iter_lines`` holds a line that never ends whole)."""
        buf = b""
        for chunk in r.iter_bytes():
            *lines, buf = (buf + chunk).split(b"\n")  # buf: the line not ended yet
            for line in [*lines, buf]:
                if len(line) > MAX_LINE_BYTES:
                    raise ServerError(f"the model server at {self.root_url} sent a stream line over "
                                      f"{MAX_LINE_BYTES >> 20} MB; stopped")
            yield from (line.rstrip(b"\r").decode("utf-8", "replace") for line in lines)
        if buf:
            yield buf.rstrip(b"\r").decode("utf-8", "replace")

    def _short(self, text: str, n: int = 200) -> str:
        """A server's words for a message: shortened, any key or password it echoed taken out."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _short(_SECRETISH.sub(lambda m: (m.group(1) + " [redacted]") if m.group(1) else "sk-[redacted]",
                                     text), n)

    def _models(self) -> list[dict]:
        return self._request("GET", "/models").get("data", [])

    def _find_tokenize_route(self) -> str | None:
        for path, body in (("/tokenize", {"model": self.model, "prompt": "a"}), ("/extras/tokenize", {"input": "a"})):
            try:
                self._request("POST", path, root=True, json=body)
                return path
            except ServerError:
                continue
        return None

    # ------------------------------------------------------------ tokens
    def _tokenize(self, text: str, special: bool = False) -> list[int]:
        if self._tok is not None:
            return list(self._tok(text, add_special_tokens=special)["input_ids"])
        if self._tokenizer_source == "llama-server":
            return self._scorer.tokenize(text, special)
        if self._tokenizer_source == "/tokenize":
            out = self._request("POST", "/tokenize", root=True,
                                json={"model": self.model, "prompt": text, "add_special_tokens": special})
        elif self._tokenizer_source == "/extras/tokenize":
            out = self._request("POST", "/extras/tokenize", root=True, json={"input": text})
        else:
            raise ValueError(f"{self.name}: the server has no tokenize route; pass --tokenizer HUB_ID_OR_PATH")
        return list(out["tokens"])

    def _detokenize(self, ids: Sequence[int]) -> str:
        if self._tok is not None:
            return self._tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if self._tokenizer_source == "llama-server":
            return self._scorer.detokenize(ids)
        if self._tokenizer_source == "/tokenize":
            return self._request("POST", "/detokenize", root=True, json={"model": self.model, "tokens": list(ids)})["prompt"]
        return self._request("POST", "/extras/detokenize", root=True, json={"tokens": list(ids)})["text"]

    def encode(self, prompt: Any) -> list[int]:
        """Token ids of a prompt. Chat messages: exact with a local tokenizer or vLLM's /tokenize, otherwise
        the messages' tokens plus 4 per message for the template (an estimate, used to fit the context)."""
        if isinstance(prompt, str):
            return self._tokenize(prompt)
        prompt = list(prompt)
        if prompt and isinstance(prompt[0], dict):
            if self._tok is not None and getattr(self._tok, "chat_template", None):
                ids = self._tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False)
                return [int(i) for i in (ids["input_ids"] if hasattr(ids, "keys") else ids)]
            if self._tokenizer_source == "/tokenize":
                try:
                    return list(self._request("POST", "/tokenize", root=True, json={
                        "model": self.model, "messages": prompt, "add_generation_prompt": True})["tokens"])
                except ServerError:
                    pass
            return [t for m in prompt for t in [0] * 4 + self._tokenize(str(m.get("content", "")))]
        return [int(i) for i in prompt]

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def truncate_text(self, text: str, max_tokens: int) -> tuple[str, bool]:
        ids = self._tokenize(text)
        if len(ids) <= max_tokens:
            return text, False
        return self._detokenize(ids[: max(0, max_tokens)]), True

    def decode(self, ids: Sequence[int]) -> str:
        return self._detokenize(ids)

    def prefix_token(self) -> int:
        if self._tok is not None:
            bos = self._tok.bos_token_id if self._tok.bos_token_id is not None else self._tok.eos_token_id
            if bos is not None:
                return int(bos)
        bos = (self._props or {}).get("bos_token")
        ids = self._scorer.tokenize(bos) if self._scorer is not None and bos else self._tokenize("", special=True)
        if ids:
            return int(ids[0])
        raise ValueError(f"{self.name}: cannot tell the server's BOS token; pass --tokenizer HUB_ID_OR_PATH")

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

    # ------------------------------------------------------------ scoring
    def _echo(self, ids: list[int]) -> list[float | None]:
        """The server's log-probability of each prompt token given those before it (first: None)."""
        out = self._request("POST", "/completions", json={
            "model": self.model, "prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0.0})
        lp = ((out.get("choices") or [{}])[0].get("logprobs") or {}).get("token_logprobs") or []
        return list(lp[: len(ids)])

    def check_logprobs(self) -> None:
        """Refuse scoring unless the server's echoed prompt log-probabilities agree with its own generation."""
        with self._check_lock:
            if self._checked:
                return
            if self._scorer is not None:  # no prompt log-probabilities here: forced tokens instead
                self._scorer.check()
                self._checked = True
                return
            # text prompts: every server takes them (llama-cpp-python's refuses token ids)
            ctx = "The capital of France is"
            out = self._request("POST", "/completions", json={
                "model": self.model, "prompt": ctx, "max_tokens": 1, "logprobs": 1, "temperature": 0.0})
            choice = (out.get("choices") or [{}])[0]
            gen_lps = (choice.get("logprobs") or {}).get("token_logprobs") or []
            g_text = choice.get("text", "")
            if not gen_lps or gen_lps[0] is None or not g_text:
                raise LogprobsUnreliable(f"{self.name}: the server at {self.root_url} returned no log-probability "
                                         "for a generated token; it cannot score texts")
            out = self._request("POST", "/completions", json={
                "model": self.model, "prompt": ctx + g_text, "max_tokens": 1, "echo": True, "logprobs": 1,
                "temperature": 0.0})
            echoed = ((out.get("choices") or [{}])[0].get("logprobs") or {}).get("token_logprobs") or []
            echoed = echoed[:-1]  # the prompt's, without the one new token
            if len(echoed) < 2 or echoed[-1] is None or all(x is None for x in echoed[1:]):
                raise LogprobsUnreliable(
                    f"{self.name}: the server at {self.root_url} returns no prompt log-probabilities with echo "
                    "(llama.cpp's llama-server does this), so perplexity through it would be meaningless; "
                    "use a server that does (vLLM) or the in-process llamacpp backend")
            if abs(echoed[-1] - gen_lps[0]) > 1e-3 * max(1.0, abs(gen_lps[0])):
                raise LogprobsUnreliable(
                    f"{self.name}: the server at {self.root_url} gives inconsistent prompt log-probabilities "
                    f"(a greedy token scored {gen_lps[0]:.4f} when generated but {echoed[-1]:.4f} when echoed back; "
                    "llama-cpp-python's server is one position off, its issue #1983), so perplexity through it "
                    "is refused; use vLLM or the in-process llamacpp backend")
            self._checked = True

    def token_logprobs(self, text: str, max_length: int | None = None, stride: int | None = None,
                       batch_size: int = 4, progress: Callable[[int, int], None] | None = None,
                       priority: Any = None) -> tuple[list[int], list[float]]:
        """Text tokens and the log-probability of each given all before it, in rolling windows as
        :func:`llmdemo.engine.stream.rolling_windows` places them; windows are sent as many at a time as the
        concurrency controller allows."""
        self.check_logprobs()
        ids = self._tokenize(text)
        if not ids:
            return [], []
        full = [self.prefix_token()] + ids
        max_length = min(max_length or self.context_length, self.context_length - 1)
        stride = stride or max_length // 2
        windows = rolling_windows(len(full), max_length, stride)
        scores: list[list[float]] = [[] for _ in windows]
        done = 0
        # batch_size windows at once at most (1: --reproducible), each thread waiting for a slot
        with ThreadPoolExecutor(max(1, min(self.max_concurrency, batch_size))) as pool:
            futs = {pool.submit(self._window, full[b:e], n): k for k, (b, e, n) in enumerate(windows)}
            for fut in as_completed(futs):
                k = futs[fut]
                n = windows[k][2]
                lps = fut.result()[-n:]
                if len(lps) != n or any(x is None for x in lps):
                    raise LogprobsUnreliable(f"{self.name}: the server returned {len(lps)} log-probabilities "
                                             f"for a window of {n} scored tokens")
                scores[k] = [float(x) for x in lps]
                done += 1
                if progress is not None:
                    progress(done, len(windows))
        return ids, [lp for s in scores for lp in s]

    def _window(self, ids: list[int], n: int) -> list[float | None]:
        """Log-probabilities of a window's tokens (its last ``n`` at least; the first may be None)."""
        if self._scorer is None:
            return self._echo(ids)
        with self._scorer.slot() as slot:  # one window, one slot: each forced token extends the last one's prompt
            return self._scorer.continuation(ids[:-n], ids[-n:], slot)

    def loglikelihood_rolling(self, text: str, max_length: int | None = None, stride: int | None = None,
                              batch_size: int = 4, priority: Any = None) -> tuple[float, int]:
        _, lps = self.token_logprobs(text, max_length, stride, batch_size)
        return math.fsum(lps), len(lps)

    def loglikelihood(self, context: Any, continuation: str, priority: Any = None) -> tuple[float, int]:
        self.check_logprobs()
        ctx, cont = self._pair(context, continuation)
        if not cont:
            return 0.0, 0
        lps = self._window(ctx + cont, len(cont))[-len(cont):]
        return math.fsum(float(x) for x in lps), len(cont)

    def _pair(self, context: Any, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation tokens, cut to fit the context window (the context from its start)."""
        ctx = self.encode(context) if context else []
        ctx = ctx or [self.prefix_token()]
        cont = self._tokenize(continuation)[: self.context_length - 2]
        return ctx[-(self.context_length - 1 - len(cont)):], cont

    def loglikelihood_batch(self, pairs, batch_size: int = 16, priority: Any = None) -> list[tuple[float, int]]:
        """One echo request per pair, as many in flight as the concurrency controller allows (servers share no
        prefix across requests). On a llama-server, the pairs that share a context (a question's choices) go
        to one slot one after the other, so its cache holds the context once."""
        if self._scorer is None:
            with ThreadPoolExecutor(self.max_concurrency) as pool:  # threads wait for a slot
                return list(pool.map(lambda p: self.loglikelihood(p[0], p[1]), pairs))
        self.check_logprobs()
        groups: dict[str, list[int]] = {}
        for i, (c, _) in enumerate(pairs):
            groups.setdefault(json.dumps(c, ensure_ascii=False), []).append(i)
        out: list[tuple[float, int]] = [(0.0, 0)] * len(pairs)

        def one_group(idx: list[int]) -> None:
            with self._scorer.slot() as slot:
                for i in idx:
                    ctx, cont = self._pair(*pairs[i])
                    lps = self._scorer.continuation(ctx, cont, slot) if cont else []
                    out[i] = (math.fsum(lps), len(cont))

        with ThreadPoolExecutor(self._scorer.slots) as pool:
            list(pool.map(one_group, groups.values()))
        return out

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


def _json_body(data: Any) -> dict[str, Any]:
    """A request body as UTF-8 JSON, a lone surrogate in a prompt (valid in a Python str, not in UTF-8) sent
    as U+FFFD, as the page shows it, instead of failing in httpx's encoder with a traceback."""
    text = _SURROGATE.sub("\ufffd", json.dumps(data, ensure_ascii=False))
    return {"content": text.encode("utf-8"), "headers": {"content-type": "application/json"}}


def _strip_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``https://user:pass@host/x`` -> (``https://host/x``, (user, pass)); a URL without them unchanged."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return url.split("@")[-1] if "@" in url else url, None
    if parts.username is None and parts.password is None:
        return url, None
    netloc = (f"[{host}]" if host and ":" in host else host or "") + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username or ""), unquote(parts.password or ""))


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text[:n] + ("…" if len(text) > n else "")


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
