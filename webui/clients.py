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
import threading
import time


def client_key(request, trusted_proxies: int = 0) -> str:
    """The address a request is charged to (``"unknown"`` without one: every such request shares it)."""
    peer = getattr(getattr(request, "client", None), "host", None) or "unknown"
    if trusted_proxies <= 0:
        return peer
    headers = getattr(request, "headers", None) or {}
    chain = [p.strip() for p in (headers.get("x-forwarded-for") or "").split(",") if p.strip()]
    return chain[-trusted_proxies] if len(chain) >= trusted_proxies else peer


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
