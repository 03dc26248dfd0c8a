"""What a model server's failures raise, apart from the backends that raise them (openai/, llamaserver.py):
a module of its own so either imports it at the top, and the CLIs and the page catch them by class."""

from __future__ import annotations

from ..errors import DetailError


class ServerError(DetailError, RuntimeError):
    """The server failed or could not be reached; the message says which server and how (never the key)."""

    kind = "server.failed"


class CompletionAborted(ServerError):
    """The server ended a completion without saying why (no finish reason): it was cut, not finished.

    llama-cpp-python's server does this to a running request when another one arrives, unless it is
    started with ``--interrupt_requests false``: the stream ends with empty text and ``[DONE]``. Taken
    for a model's answer, it recorded 7 empty translations of 8.
    """


class LogprobsUnreliable(DetailError, ValueError):
    """The server's log-probabilities failed a consistency check (or it gives none); scoring through it is
    refused."""

    kind = "server.logprobs"
