"""Request-size limit for the whole app, before Gradio parses anything.

Gradio checks an event's inputs (e.g. a Chatbot history) before any handler runs, so a 30 MB body of
empty text blocks cost seconds of the server's time before a handler could refuse it. This ASGI
middleware refuses bodies over the limit at the door with 413: by Content-Length, or by reading a
chunked body up to the limit before the app sees any of it. Uploads are left to Gradio's own ``max_file_size``.
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
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        if length is not None:  # a declared size within the limit: Gradio reads it as usual
            return await self.app(scope, receive, send)
        # a chunked body (no Content-Length): read up to the limit here, answer 413 past it (the app never
        # sees a byte of it), else hand the app what was read, as it came
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

    async def _refuse(self, send):
        body = json.dumps({"error": f"request body over {self.limit // 1024:,} KB, this server's limit"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
