"""Key/value caches of the lean forward, and the policy for reusing a prompt's prefix.

Each sequence owns a :class:`KVCache` (one row, grown as it fills), so sequences of any
length share a decode step without padding, and a finished chat turn's cache can be handed
to the next turn as it is.

Prompts are always read in the same chunks, ending at 64, 128, 256 and then every 256 tokens
(and at the prompt's end). Two reasons: a long prompt is read in pieces, so the requests
already decoding get a step between two pieces; and a chunk's numbers depend only on the
tokens up to its end, so keys/values kept from an earlier prompt with the same first chunks
are exactly what this prompt would compute (output does not depend on the cache).

>>> chunk_ends(100), chunk_ends(700)
([64, 100], [64, 128, 256, 512, 700])
>>> last_boundary(700), last_boundary(63)
(512, 0)
"""

from __future__ import annotations

import threading

import torch

# The first chunk; every chunk reads all the weights once (~30 ms for the 135M default), so a
# short prompt is read in one piece: 16-token chunks doubled a new 46-token prompt's first token.
FIRST_CHUNK = 64
# The longest chunk: what one prefill may hold the other requests up for (~0.3 s at 135M on 2 cores).
MAX_CHUNK = 256


def is_boundary(n: int) -> bool:
    """Whether a chunk ends at ``n`` in every prompt longer than ``n`` (64, 128, 256, 512, 768, ...)."""
    return n in (FIRST_CHUNK, 2 * FIRST_CHUNK) or (n >= MAX_CHUNK and n % MAX_CHUNK == 0)


def chunk_ends(n: int) -> list[int]:
    """Where the chunks of an ``n``-token prompt end: the boundaries below ``n``, then ``n``."""
    ends, e = [], FIRST_CHUNK
    while e < n:
        ends.append(e)
        e = 2 * e if e < MAX_CHUNK else e + MAX_CHUNK
    return ends + [n]


def last_boundary(n: int) -> int:
    """The last chunk boundary at or before ``n`` (0 if none): how much of a prompt can be shared."""
    return max((e for e in chunk_ends(n) if is_boundary(e)), default=0)


class KVCache:
    """One sequence's keys and values for every layer, ``(1, n_kv, capacity, head_dim)`` each.

    ``length`` slots are filled; :meth:`reserve` grows the buffers (copying what is filled)
    before a forward writes past the end.
    """

    def __init__(self, n_layers: int, n_kv: int, head_dim: int, capacity: int, device, dtype=torch.float32):
        self.shape = (1, n_kv, capacity, head_dim)
        self.layers = [(torch.empty(self.shape, device=device, dtype=dtype),
                        torch.empty(self.shape, device=device, dtype=dtype)) for _ in range(n_layers)]
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.layers[0][0].shape[2]

    def reserve(self, n: int) -> None:
        """Make room for ``n`` slots in all (at least doubling, so growth costs O(total) copies)."""
        if n <= self.capacity:
            return
        cap = max(n, 2 * self.capacity)
        cap = -(-cap // MAX_CHUNK) * MAX_CHUNK
        old = self.layers
        self.shape = (*self.shape[:2], cap, self.shape[3])
        self.layers = []
        for k, v in old:
            nk, nv = k.new_empty(self.shape), v.new_empty(self.shape)
            nk[:, :, : self.length] = k[:, :, : self.length]
            nv[:, :, : self.length] = v[:, :, : self.length]
            self.layers.append((nk, nv))

    def shrunk(self, n: int) -> "KVCache":
        """This cache cut to its first ``n`` slots (a copy when that frees much memory, else itself)."""
        self.length = min(self.length, n)
        if self.capacity <= 2 * max(n, MAX_CHUNK):
            return self
        small = KVCache.__new__(KVCache)
        small.layers = [(k[:, :, :n].clone(), v[:, :, :n].clone()) for k, v in self.layers]
        small.shape = small.layers[0][0].shape
        small.length = n
        return small

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() * 2 for k, _ in self.layers)


class PrefixCache:
    """Keeps the whole-chunk keys/values of one finished prompt for the next prompt that starts the same way.

    One entry: a chat's next turn starts with the previous turn's prompt, which is the case this
    serves. ``take`` hands the entry out (it is not shared: the taker writes into it).
    """

    def __init__(self, max_tokens: int = 2048):
        self.max_tokens = max_tokens  # at most this many prompt tokens kept (46 KB each for SmolLM2-135M)
        self._entry: tuple[list[int], KVCache] | None = None
        self._lock = threading.Lock()

    def take(self, prompt: list[int]) -> tuple[int, KVCache | None]:
        """How many leading tokens of ``prompt`` have kept keys/values, and the cache holding them."""
        with self._lock:
            entry, self._entry = self._entry, None
        if entry is None:
            return 0, None
        tokens, cache = entry
        common = 0
        for a, b in zip(tokens, prompt):
            if a != b:
                break
            common += 1
        reuse = last_boundary(min(common, len(prompt) - 1))  # at least one token left to compute
        if not reuse:
            return 0, None
        cache.length = reuse
        return reuse, cache

    def put(self, prompt: list[int], cache: KVCache) -> None:
        keep = last_boundary(min(len(prompt), cache.length, self.max_tokens))
        if not keep:
            return
        with self._lock:
            self._entry = (list(prompt[:keep]), cache.shrunk(keep))

    def clear(self) -> None:
        with self._lock:
            self._entry = None
