"""Errors the core raises for things a user did or chose, importable without loading a backend.

(They live apart so that ``backends/`` and ``model.py`` do not import each other for them.)
"""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which and why."""
