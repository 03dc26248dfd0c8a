"""One shared model for a long-running app: swap it safely, keep the old one on failure."""

from __future__ import annotations

import gc
import threading
from typing import Callable

from .errors import ModelLoadError
from .interface import LanguageModel
from .load import load


class ModelHost:
    """Holds the current model (any backend). ``swap`` loads a new one first and only then frees the old."""

    def __init__(self, lm: LanguageModel | None = None, *, allow_paths: bool = True, allow_hub_ids: bool = True,
                 loader: Callable[..., LanguageModel] = load):
        self._lm = lm
        self._swap_lock = threading.Lock()
        self.allow_paths = allow_paths
        self.allow_hub_ids = allow_hub_ids
        self._loader = loader
        self.tokens_generated = 0  # chunks handed to readers, across all requests
        self.max_running: int | None = None  # applied to every model's scheduler, the ones swapped in too
        self.companion_budget_mb: int | None = None  # what the models loaded beside this one may take together
        self._companions = None

    @property
    def companions(self):
        """The models loaded beside the current one (a tab's own model, Compare's contestants), one set per host:
        :class:`llmdemo.compare.models.Companions`, within ``companion_budget_mb``."""
        if self._companions is None:
            from .compare.models import Companions

            self._companions = Companions(self, self.companion_budget_mb)
        return self._companions

    def configure(self, max_running: int | None = None, companion_budget_mb: int | None = None) -> None:
        """Scheduler capacity for the current model and the ones loaded later; the budget of the models beside it."""
        if companion_budget_mb is not None:
            self.companion_budget_mb = int(companion_budget_mb)
            if self._companions is not None:
                self._companions.budget_mb = self.companion_budget_mb
        if max_running is not None:
            self.max_running = max(1, int(max_running))
        sched = getattr(self._lm, "scheduler", None)
        if sched is not None and self.max_running is not None:
            sched.max_running = self.max_running

    @property
    def lm(self) -> LanguageModel:
        if self._lm is None:
            raise RuntimeError("no model is loaded yet")
        return self._lm

    def swap(self, name: str, *, device: str | None = None, dtype: str | None = None,
             trust_remote_code: bool = False, progress: Callable[[str], None] | None = None) -> LanguageModel:
        """Load ``name`` and make it current. On any error the previous model stays and the error is raised."""
        if not self._swap_lock.acquire(blocking=False):
            raise ModelLoadError("model.swap_busy")
        try:
            new = self._loader(name, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                               allow_paths=self.allow_paths, allow_hub_ids=self.allow_hub_ids, progress=progress)
            old, self._lm = self._lm, new
            self.configure()
            if old is not None and hasattr(old, "close"):
                old.close("the model was replaced")  # its requests end with that message; its thread exits
            del old
            gc.collect()  # free the previous weights now, not at some later collection
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass
            return new
        finally:
            self._swap_lock.release()

    def count(self, n: int) -> None:
        self.tokens_generated += n
