"""The HTTP side of the ``openai:`` backend: one call with bounded retries, bodies and stream lines read
within caps, and a server's words cleaned of any secret before they reach a message.

An upstream server is not trusted: a body read whole, a line that never ends, a stream that ignores
``max_tokens`` or trickles for ever would each hang or exhaust the app that serves every visitor; so every
body is capped (MAX_BODY_BYTES), every stream line (MAX_LINE_BYTES), every completion's time
(REQUEST_BUDGET_S, in model.py) and the tokens it may send (its budget).
"""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from ...prompts import _SURROGATE  # the pattern clean_text replaces
from ..concurrency import OVERLOAD_STATUS, parse_retry_after
from ..server_errors import ServerError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MODEL_PATHS = frozenset({"/completions", "/chat/completions"})  # the requests that hold a concurrency slot
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


class _Transport:
    """HTTP for :class:`~llmdemo.backends.openai.model.OpenAILM` (it sets ``_http``, ``controller``, ``retries``,
    ``overload_budget_s``, ``_secrets``, ``base_url`` and ``root_url``)."""

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
