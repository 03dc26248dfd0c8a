"""Visitors' text made safe to show and kept within the server's input limit.

Chat text is shown as Markdown that loads nothing by itself (:func:`safe_markdown`, undone by
:func:`plain_text` when the history comes back from the page); any text over the limit is refused
before any work (:func:`check_length`).
"""

from __future__ import annotations

import re
from typing import Any

from llmdemo import prompts

_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]*)\)")


def safe_markdown(text: str) -> str:
    """Chat text for display: nothing in it loads by itself. Inline Markdown images become links,
    any other ``![`` (reference-style images) is escaped, and ``<`` is shown as text, so no HTML tag
    (``<img>``, ``<picture>``, ``<video poster>``, ...) reaches the page. Scripts never ran anyway:
    Gradio's Chatbot sanitizes HTML; this stops remote fetches, which it lets through."""
    # lone surrogates cannot be sent to the browser at all (Gradio's event stream fails on them)
    text = prompts.clean_text(text) if text.strip() else text
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _REMOTE_IMAGE.sub(lambda m: f"[image: {m.group(1) or 'link'}]({m.group(2)})", text)
    return text.replace("![", "!\\[")


def plain_text(shown: str) -> str:
    """The text behind :func:`safe_markdown`'s escapes (chat history comes back from the page escaped)."""
    return shown.replace("!\\[", "![").replace("&lt;", "<").replace("&amp;", "&")


def check_length(text: Any, limit: int, what: str = "text") -> Any:
    """Refuse text longer than the server's input limit, with a message that says the limit."""
    if isinstance(text, str) and len(text) > limit:
        raise prompts.InputError("input.too_long", what=what, n=len(text), limit=limit)
    return text


def shown_history(history: list[dict]) -> list[dict]:
    """History as the page shows it: unescaped and escaped again, so a hand-written one is as safe as ours
    and our own escapes do not double."""
    return [{"role": m["role"], "content": safe_markdown(plain_text(m["content"]))} for m in history]
