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

import json


class BodyLimit:
    def __init__(self, app, limit: int, exempt: tuple[str, ...] = ("/gradio_api/upload",)):
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path", "").endswith(self.exempt):
            return await self.app(scope, receive, send)
        headers = [(k.lower(), v) for k, v in scope.get("headers") or []]
        names = {k for k, _ in headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            return await self._refuse(send, 400, "a request with both Content-Length and Transfer-Encoding")
        length = dict(headers).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        # read the body here, whatever the headers said, up to the limit: 413 past it (the app never
        # sees a byte of it), else hand the app what was read, as it came. At most `limit` bytes per
        # request are held, and only while it arrives.
        messages, seen = [], 0
        while True:
            message = await receive()
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
        error = what + ", refused" if what else f"request body over {self.limit // 1024:,} KB, this server's limit"
        body = json.dumps({"error": error}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
