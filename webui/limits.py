"""Request-size limit for the whole app, before Gradio parses anything.

Gradio checks an event's inputs (e.g. a Chatbot history) before any handler runs, so a 30 MB body of
empty text blocks cost seconds of the server's time before a handler could refuse it. This ASGI
middleware refuses bodies over the limit at the door with 413. The headers are not trusted: every
body is read here, counted as it arrives, up to the limit, before the app sees any of it (a request
that declared ``Content-Length: 10`` and then sent 164 MB chunked was once let through). A request
that carries both ``Content-Length`` and ``Transfer-Encoding`` is refused with 400 (RFC 9112 6.3: such
a message is a request-smuggling risk and may be refused). Uploads are left to Gradio's own
``max_file_size``.
"""

from __future__ import annotations

import asyncio
import json


class BodyLimit:
    def __init__(self, app, limit: int, exempt: tuple[str, ...] = ("/gradio_api/upload",), read_s: float = 30.0):
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.read_s = read_s  # the whole body must arrive within this (a client trickling it holds a connection)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path", "").endswith(self.exempt):
            return await self.app(scope, receive, send)
        headers = [(k.lower(), v) for k, v in scope.get("headers") or []]
        names = {k for k, _ in headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            return await _refuse(send, 400, "a request with both Content-Length and Transfer-Encoding")
        length = dict(headers).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        # read the body here, whatever the headers said, up to the limit: 413 past it (the app never
        # sees a byte of it), else hand the app what was read, as it came. At most `limit` bytes per
        # request are held, and only while it arrives.
        messages, seen = [], 0
        deadline = asyncio.get_running_loop().time() + self.read_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                return await _refuse(send, 408, f"a request body not sent within {self.read_s:g} s")
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send, status: int = 413, what: str | None = None):
        await _refuse(send, status, what or f"request body over {self.limit // 1024:,} KB, this server's limit")


async def _refuse(send, status: int, what: str) -> None:
    """Answer ``status`` with ``{"error": what}`` and close the connection."""
    body = json.dumps({"error": what + ", refused"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class UploadLimit:
    """Uploads (``/gradio_api/upload``) bounded per request and per client address per hour.

    Gradio's ``max_file_size`` bounds each file, not the request: one request carried 30 files of 9.9 MB
    (44 MB/s from one client). Here a request's body may be at most ``per_request`` bytes (one file of the
    app's largest size and the form around it), counted as it arrives and passed on as it comes (nothing is
    held here); each address may send ``per_hour`` bytes an hour. Past either, the request is answered 413
    (before the app reads it, when its declared size says so) or cut off (the app sees the client leave).
    """

    def __init__(self, app, per_request: int, per_hour: int, trusted_proxies: int = 0, path: str = "/gradio_api/upload"):
        self.app, self.per_request, self.per_hour, self.path = app, per_request, per_hour, path
        self.trusted_proxies = trusted_proxies
        self.sent: dict[str, list[list]] = {}  # address -> [time, bytes] of each upload of the last hour

    def _spent(self, key: str, now: float) -> int:
        recent = [r for r in self.sent.get(key, []) if r[0] > now - 3600]
        self.sent[key] = recent
        if len(self.sent) > 10_000:  # bounded memory: forget the addresses seen longest ago
            for old in list(self.sent)[: len(self.sent) - 10_000]:
                del self.sent[old]
        return sum(r[1] for r in recent)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").endswith(self.path):
            return await self.app(scope, receive, send)
        import time

        from starlette.requests import Request

        from .clients import client_key

        request = Request(scope)  # its client and headers, as client_key reads any request
        key = client_key(request, self.trusted_proxies)
        now = time.time()
        room = min(self.per_request, self.per_hour - self._spent(key, now))
        declared = request.headers.get("content-length", "")
        if room <= 0 or (declared.isdigit() and int(declared) > room):
            what = "this upload is over the server's limit" if room > 0 else \
                "this address has uploaded its limit for the hour"
            return await _refuse(send, 413, what)
        seen = 0
        record = [now, 0]  # this upload's bytes, counted as they arrive
        self.sent.setdefault(key, []).append(record)

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                record[1] = seen
                if seen > room:  # past the limit: the app sees the client leave and stops reading
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, counted, send)


class LoginLimit:
    """At most ``per_minute`` login attempts per client address (``--auth`` had no limit: 200 wrong
    passwords in 0.4 s); past it the attempt is answered 429 without checking the password."""

    def __init__(self, app, per_minute: int = 10, trusted_proxies: int = 0):
        from .clients import RateLimit

        self.app, self.trusted_proxies = app, trusted_proxies
        self.limit = RateLimit(per_minute, 60.0)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith("/login"):
            return await self.app(scope, receive, send)
        from starlette.requests import Request

        from .clients import client_key

        if not self.limit.allow(client_key(Request(scope), self.trusted_proxies)):
            return await _refuse(send, 429, "too many login attempts from this address; wait a minute")
        return await self.app(scope, receive, send)
