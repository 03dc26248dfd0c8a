"""Any OpenAI-compatible server as a backend: vLLM, TGI, llama.cpp's server, hosted endpoints.

``--model openai:NAME`` talks to chat completions (the server applies the chat template);
``--model openai-base:NAME`` to completions with the task's plain prompt. The server is named by
``--base-url`` or ``OPENAI_BASE_URL``; the key by ``OPENAI_API_KEY`` (sent as a bearer token, never
printed, logged, written to results or shown). The server batches concurrent requests itself
(vLLM's continuous batching), so this backend just sends them: streams for the app, many requests at
once for ``generate_batch``. How many are in flight at once (streams included) is a
:class:`~llmdemo.backends.concurrency.Concurrency`: adaptive by default (from 20 up to
``max_concurrency``, cut on 429/503, ``Retry-After`` honoured), or fixed (``concurrency=N``).

Log-likelihoods (perplexity, the dialogue reference score) use completions with ``echo`` and
``logprobs`` over token ids, as lm-evaluation-harness's ``local-completions`` does. Servers get
this wrong (llama-cpp-python's server shifts prompt log-probabilities by one position;
llama.cpp's ``llama-server`` returns none), so before the first score the server is checked
against itself: the log-probability it gives a greedy token when generating it must equal the one
it gives the same token as the last token of an echoed prompt. A server that fails is refused.

Tokens come from the server (vLLM's ``/tokenize``, llama-cpp-python's ``/extras/tokenize``) or
from a local tokenizer (``--tokenizer HUB_ID_OR_PATH``), which also counts chat prompts exactly.

    model.py      OpenAILM: settings, streams, generate_batch, info
    transport.py  one HTTP call with retries; bodies and stream lines within caps; secrets kept out of messages
    tokens.py     tokenizing through the server or a local tokenizer
    scoring.py    log-likelihoods (echo + logprobs) and the server's check against itself
"""

from ..server_errors import CompletionAborted, LogprobsUnreliable, ServerError
from .model import OpenAILM

__all__ = ["CompletionAborted", "LogprobsUnreliable", "OpenAILM", "ServerError"]
