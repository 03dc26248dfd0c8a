"""The task tabs' handlers as one object: ``Handlers(host, settings)``.

Each tab's handlers live in the tab's own module, beside its components (webui/tabs/generation.py,
translation.py, summarization.py, dialogue.py, model.py), over one base (webui/base.py: the host, the
settings, the live runs, the stream loop). They are joined here into one object because the page, the
API, the token-probability panels (webui/tokenprobs.py), Compare and the tests call them as one, and
every tab's Stop reaches its run through the one ``LiveRuns`` it holds. The Evaluation, Inside and
Compare tabs have handler objects of their own.
"""

from __future__ import annotations

from .tabs.dialogue import ChatHandlers
from .tabs.generation import GenerationHandlers
from .tabs.model import ModelHandlers
from .tabs.summarization import SummarizationHandlers
from .tabs.translation import TranslationHandlers


class Handlers(GenerationHandlers, TranslationHandlers, SummarizationHandlers, ChatHandlers, ModelHandlers):
    """Every task tab's handlers; ``Handlers(host, settings)``."""
