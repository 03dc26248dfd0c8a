"""Request-size limit for the whole app, before Gradio parses anything.

Gradio checks an event's inputs (e.g. a Chatbot history) before any handler runs, so a 30 MB body of
empty text blocks cost seconds of the server's time before a handler could refuse it. This ASGI
middleware refuses bodies over the limit at the door: by Content-Length, or by counting a chunked
body as it arrives. Uploads are left to Gradio's own ``max_file_size``.
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
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # a chunked body past the limit: the app sees the client leave
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, counted, send)

    async def _refuse(self, send):
        body = json.dumps({"error": f"request body over {self.limit // 1024:,} KB, this server's limit"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
