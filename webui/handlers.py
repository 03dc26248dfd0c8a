"""The task tabs' handlers as one object: ``Handlers(host, settings)``.

Each group of handlers lives with its concept and they share one base (webui/base.py: the host, the
settings, the live runs, the stream loop), so ``h.generate(...)``, ``h.chat(...)``, ``h.model_info()``
are all one object's methods and share one ``LiveRuns`` (every tab's Stop). The Evaluation, Inside
and Compare tabs have handler objects of their own (webui/tabs/evaluation/handlers.py, inside.py, compare.py).

    ======================  ============================================================
    webui/text_tasks.py     generate, translate, summarize, export_output, swap
    webui/chat.py           chat, chat_ui, retry, edit, undo, saved_chat, export_chat
    webui/model.py          model_info, preset_choices, load_model
    webui/base.py           config, check_length, stop, count_tokens (and the stream loop)
    ======================  ============================================================
"""

from __future__ import annotations

from .chat import ChatHandlers
from .model import ModelHandlers
from .text_tasks import TextTaskHandlers


class Handlers(TextTaskHandlers, ChatHandlers, ModelHandlers):
    """Every task tab's handlers; ``Handlers(host, settings)``."""
