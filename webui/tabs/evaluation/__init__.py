"""The Evaluation tab: its components and events (ui.py) and its handlers (handlers.py)."""

from .ui import build

__all__ = ["build"]
