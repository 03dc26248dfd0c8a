"""Who a request comes from, and how often one client may do a thing.

A client is its network address. ``X-Forwarded-For`` is written by whoever sends the request, so it
is believed only for the proxies the operator says are in front of the app (``trusted_proxies``:
the number of proxy hops, each appending the address it saw): the address that many entries from the
right is the one the outermost trusted proxy saw. A Space sits behind one proxy (SPACE_ID set: 1);
elsewhere 0, and the socket's peer is the client. A session id is never the key: any client can
draw new ones.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

log = logging.getLogger("llmdemo.webui.clients")


def client_key(request, trusted_proxies: int = 0) -> str:
    """The address a request is charged to (``"unknown"`` without one: every such request shares it)."""
    peer = getattr(getattr(request, "client", None), "host", None) or "unknown"
    if trusted_proxies <= 0:
        return peer
    headers = getattr(request, "headers", None) or {}
    chain = [p.strip() for p in (headers.get("x-forwarded-for") or "").split(",") if p.strip()]
    return chain[-trusted_proxies] if len(chain) >= trusted_proxies else peer


TRUSTED_PROXIES = 0  # the app's setting (layout.build_demo sets it), for owner_of


def owner_of(request) -> str | None:
    """Who the engine's rows are shared between: the client's address (None without a request: no owner)."""
    if request is None or getattr(request, "client", None) is None:
        return None
    return client_key(request, TRUSTED_PROXIES)


class RateLimit:
    """At most ``limit`` events per ``window_s`` per key (a sliding window), for at most ``max_keys``
    keys (the least recently seen are forgotten), so memory is bounded whatever the number of clients."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000, clock=time.monotonic):
        self.limit, self.window_s, self.max_keys, self.clock = limit, window_s, max_keys, clock
        self._seen: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one event for ``key`` if it is within the limit; False (and nothing counted) if not."""
        now = self.clock()
        with self._lock:
            times = self._seen.pop(key, None) or collections.deque()
            while times and times[0] <= now - self.window_s:
                times.popleft()
            allowed = len(times) < self.limit
            if allowed:
                times.append(now)
            self._seen[key] = times  # most recently seen last
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return allowed

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again (0 if it may now)."""
        with self._lock:
            times = self._seen.get(key)
            if not times or len(times) < self.limit:
                return 0.0
            return max(0.0, times[0] + self.window_s - self.clock())


class OpenStreams:
    """ASGI middleware that counts, per session, the event streams (``/queue/data``) open now: an event
    whose session never opened its stream has nobody reading it."""

    def __init__(self, app, streams: "collections.Counter[str] | None" = None):
        self.app, self.streams = app, OPEN_STREAMS if streams is None else streams

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").endswith("/queue/data"):
            return await self.app(scope, receive, send)
        from urllib.parse import parse_qs

        session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash") or [""])[0]
        self.streams[session] += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.streams[session] -= 1
            if self.streams[session] <= 0:
                del self.streams[session]


# the process's open event streams per session (session ids are random, so apps in one process can share it)
OPEN_STREAMS: "collections.Counter[str]" = collections.Counter()
UNREAD_GRACE_S = 10.0  # an event whose session has opened no stream this long after joining is dropped


def cap_queue_per_client(queue, limit: int, trusted_proxies: int = 0,
                         streams: "collections.Counter[str] | None" = OPEN_STREAMS,
                         grace_s: float | None = None, per_group: dict[str, int] | None = None) -> None:
    """Refuse a new event from a client that already has ``limit`` events queued or running in Gradio's
    queue (one client once filled the whole queue with 88 generations it never read, and every other
    visitor got "Queue is full"). The refusal is Gradio's own "queue full" answer (HTTP 503), worded in
    the visitor's language; other clients are not affected.

    With ``streams`` (kept by :class:`OpenStreams`), each join first drops the events whose session has
    had no stream open for ``grace_s`` (UNREAD_GRACE_S) since they joined: queued ones leave the queue, running ones are
    marked dead for Gradio to stop (work nobody watches, e.g. an evaluation joined by a script).

    ``per_group`` caps the events of one concurrency id queued or running, all clients together (``{"eval":
    4}``: Evaluation runs run one at a time, so a long line of them from many addresses would keep the tab
    busy for hours; past the cap a new one is refused at once)."""
    from .i18n import lang_of, text

    push = queue.push

    def pending() -> list:
        queued = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
        running = [e for job in queue.active_jobs if job for e in job if e.alive]
        return queued + running

    async def drop_unread() -> None:
        now = time.monotonic()
        for e in pending():
            if now - e.enqueue_time > (UNREAD_GRACE_S if grace_s is None else grace_s) and \
                    not streams.get(e.session_hash):
                log.info("dropping event %s: its session never opened its stream", e._id)
                await queue.clean_events(event_id=e._id)

    async def capped_push(body, request, username=None):
        if streams is not None:
            await drop_unread()
        key = client_key(request, trusted_proxies)
        events = pending()
        mine = sum(1 for e in events if client_key(e.request, trusted_proxies) == key)
        if mine >= limit:
            return False, text("queue_client_full", lang_of(request), n=mine), "queue_full"
        fn = queue.blocks.fns.get(getattr(body, "fn_index", None)) if per_group else None
        group = getattr(fn, "concurrency_id", None)
        if group in (per_group or {}):
            n = sum(1 for e in events if e.concurrency_id == group)
            if n >= per_group[group]:
                return False, text(f"queue_{group}_full", lang_of(request), n=n), "queue_full"
        return await push(body=body, request=request, username=username)

    queue.push = capped_push
