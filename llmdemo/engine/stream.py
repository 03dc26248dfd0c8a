"""What a generation hands back: a :class:`Stream` of text chunks and its :class:`Stats`.

Shared by every backend (transformers, llama.cpp, OpenAI-compatible servers) and the tests'
fake model; imports nothing heavy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

if TYPE_CHECKING:
    from .request import Request


@dataclass
class Stats:
    """Filled in while a Stream is consumed."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    ttft_s: float | None = None  # time to first token
    total_s: float = 0.0
    finish_reason: str | None = None  # "eos", "stop_string", "length", "stopped"
    seed: int | None = None  # the seed actually used (drawn when the config had none)
    notices: list[str] = field(default_factory=list)
    steps: int = 0  # forward passes the scheduler spent on this request

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - (self.ttft_s or 0.0)
        if self.new_tokens > 1 and decode_s > 0:
            return (self.new_tokens - 1) / decode_s
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0

    def summary(self) -> str:
        ttft = f"{self.ttft_s * 1000:.0f} ms" if self.ttft_s is not None else "n/a"
        return f"{self.new_tokens} tokens · {self.tokens_per_s:.1f} tokens/s · first token {ttft}"


class StreamHandle:
    """What a stream's generator shares with its :class:`Stream`: the request it submitted and a closed flag.

    The generator gets this, not the Stream, so the two form no reference cycle: dropping a Stream
    closes its generator at once (its ``finally`` cancels the request), not at the next cyclic GC.
    """

    def __init__(self):
        self.request: "Request | None" = None
        self.closed = threading.Event()
        self.token_info: list = []  # with config.logprobs: a tokenprobs.TokenInfo per token, as they come


class Stream:
    """Iterate for new text chunks; ``text()`` consumes the rest and returns all of it."""

    def __init__(self, chunks: Callable[[StreamHandle], Iterator[str]], stats: Stats):
        self.stats = stats
        self.handle = StreamHandle()
        self._parts: list[str] = []
        self._it = chunks(self.handle)

    @property
    def request(self) -> "Request | None":
        """The scheduler request, once iteration has submitted it (in-process backends)."""
        return self.handle.request

    @property
    def token_info(self) -> list:
        """With ``config.logprobs``: one ``llmdemo.tokenprobs.TokenInfo`` per generated token, growing with the
        text; their ``text`` pieces join to the output once the stream has ended (empty when not asked)."""
        return self.handle.token_info

    def __iter__(self) -> Iterator[str]:
        for chunk in self._it:
            self._parts.append(chunk)
            yield chunk

    def text(self) -> str:
        for _ in self:
            pass
        return "".join(self._parts)

    def close(self) -> None:
        """End the stream from any thread: its request is cancelled, its generator closed."""
        self.handle.closed.set()
        if self.handle.request is not None:
            self.handle.request.cancel()
        try:
            self._it.close()
        except ValueError:  # being iterated in another thread right now: the flag and the cancel end it there
            pass


class Completion(str):
    """One output of ``generate_batch``: the text (a ``str``, so callers that only want text need nothing
    else) and why it ended, as vLLM's ``RequestOutput.finish_reason``: "eos" (the model ended it, also when
    the text is empty), "length", "stop_string", or "stopped" (cancelled; the text is then "").

    >>> c = Completion("Bonjour", "eos")
    >>> c == "Bonjour", c.finish_reason
    (True, 'eos')
    """

    finish_reason: str | None

    def __new__(cls, text: str = "", finish_reason: str | None = None):
        self = super().__new__(cls, text)
        self.finish_reason = finish_reason
        return self


class CompletionFailed(RuntimeError):
    """One prompt of a batch could not be completed (an error, or a server that aborted it); the message says why."""


def _holdback(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string."""
    keep = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:n]):
                keep = n
                break
    return keep


def _find_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    hits = [i for s in stops if (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


def whole_chars(text: str) -> str:
    """An answer's text less a last character cut in half by its end (the token budget can end an answer
    between the bytes of one character, which decode to one "\ufffd"): every decoding path ends with this.

    >>> whole_chars("Hello \ufffd"), whole_chars("Hello")
    ('Hello ', 'Hello')
    """
    return text[:-1] if text.endswith("\ufffd") else text


class IncrementalText:
    """The text of a growing list of token ids, decoding only the last few each time (vLLM's
    ``detokenize_incrementally``): re-decoding the whole answer for every new token made streaming
    quadratic in the answer's length.

    The new text is what ``decode(ids[prefix:])`` adds to ``decode(ids[prefix:read])``, the two offsets
    moving on once a piece decodes cleanly; a piece that ends in half a multi-byte character
    ("\ufffd") waits for its next token, so it is never shown broken.

    >>> pieces = {1: "Hel", 2: "lo", 3: "\xe4", 4: "\xb8\xad"}   # bytes of "Hello" and of "中"
    >>> dec = lambda ids: b"".join(pieces[i].encode("latin-1") for i in ids).decode("utf-8", "replace")
    >>> t = IncrementalText(dec)
    >>> t.add([1, 2]), t.add([3]), t.add([4]), t.text
    ('Hello', '', '中', 'Hello中')
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]):
        self.decode = decode
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # ids[_prefix:_read] decode to text already given out: context for the next piece
        self._read = 0

    def add(self, new_ids: Sequence[int]) -> str:
        """Take the next ids; return the text they complete (may be empty while a character is split)."""
        self.ids.extend(new_ids)
        before = self.decode(self.ids[self._prefix:self._read])
        now = self.decode(self.ids[self._prefix:])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""
        piece = now[len(before):]
        self._prefix, self._read = self._read, len(self.ids)
        self.text += piece
        return piece

    def flush(self) -> str:
        """At the end: whatever is left, less a last character cut in half (an answer cut by its token
        budget in the middle of a multi-byte character ended in "\ufffd" on the page).

        >>> pieces = {1: "Hel", 2: "lo", 3: "\xe4"}   # "Hello", then the first byte of "中"
        >>> dec = lambda ids: b"".join(pieces[i].encode("latin-1") for i in ids).decode("utf-8", "replace")
        >>> t = IncrementalText(dec)
        >>> t.add([1, 2, 3]), t.flush(), t.text
        ('', 'Hello', 'Hello')
        """
        before = self.decode(self.ids[self._prefix:self._read])
        now = whole_chars(self.decode(self.ids[self._prefix:]))
        piece = now[len(before):] if len(now) > len(before) else ""
        self._prefix = self._read = len(self.ids)
        self.text += piece
        return piece


class StopText:
    """Streamed text under stop strings: cut at the first one, and hold back a tail that could start one.

    >>> s = StopText(("\\nUser:",))
    >>> s.update("Hi\\nUs"), s.update("Hi\\nUser: more"), s.hit, s.text
    ('Hi', '', True, 'Hi')
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self.text = ""
        self.emitted = 0  # characters of text already handed out
        self.hit = False

    def update(self, text: str) -> str:
        """Take the whole text so far; return the new part that is safe to show."""
        cut = _find_stop(text, self.stops, max(0, self.emitted - 64)) if self.stops else None
        if cut is not None:
            text, self.hit = text[:cut], True
            safe = len(text)
        else:
            safe = len(text) - _holdback(text, self.stops)
        self.text = text
        chunk = text[self.emitted:safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return chunk

    def rest(self) -> str:
        """At the end: what is left to show (a held-back tail that did not start a stop string)."""
        cut = _find_stop(self.text, self.stops) if self.stops else None
        if cut is not None:
            self.text, self.hit = self.text[:cut], True
        chunk = self.text[self.emitted:]
        self.emitted = len(self.text)
        return chunk



def rolling_windows(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows ``(begin, end, n_scored)`` that score tokens 1..n_tokens-1 exactly once.

    Token 0 is the BOS prefix and is never scored. Each window holds at most ``max_length``
    tokens and scores only the tokens after the previous window's end, with the rest of the
    window as context (the Hugging Face "perplexity of fixed-length models" recipe). Window
    ends move by ``stride``, at most ``max_length - 1`` so every scored token has context::

        tokens   B t1 t2 t3 t4 t5 t6 t7      max_length=4, stride=2
        window1  B t1 t2 t3                  scores t1 t2 t3
        window2        t2 t3 t4 t5           scores t4 t5 (t2 t3 are context)
        window3              t4 t5 t6 t7     scores t6 t7
    """
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    if stride < 1:
        raise ValueError("stride must be at least 1")
    step = min(stride, max_length - 1)
    out = []
    prev_end = 1
    end = min(max_length, n_tokens)
    while prev_end < n_tokens:
        begin = max(0, end - max_length)
        out.append((begin, end, end - prev_end))
        prev_end = end
        end = min(end + step, n_tokens)
    return out

