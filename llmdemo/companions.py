"""Models loaded beside the host's own, for side-by-side comparisons, within a memory budget.

The Compare tab may pit another model against the loaded one: it is loaded here, next to it (the
loaded model is never replaced), and kept for the next comparison. What the extra models may take
together is the budget (the app's ``LLMDEMO_COMPARE_MEMORY_MB``). Before a load the model's size is estimated
from its files (a GGUF is mapped as stored; a transformers folder's weights are read into float32,
so twice their bfloat16/float16 size on disk); after the load the process's resident memory growth
is measured, and the larger of the two is what the model is charged. A model that would not fit even
alone is refused with both numbers; otherwise the least recently used extra models are closed until
it fits. A server backend (``openai:...``) holds no weights here and is charged nothing.

>>> Companions(None, budget_mb=2048).status()
{'budget_mb': 2048, 'used_mb': 0, 'models': {}}
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from .errors import ModelLoadError
from .interface import LanguageModel
from .load import load
from .presets import resolve

DEFAULT_BUDGET_MB = 4096  # two or three small models beside the loaded one on a 24 GiB machine


def estimate_mb(name: str, allow_paths: bool = True, allow_hub_ids: bool = True) -> float:
    """The memory ``name`` will take once loaded, from its files (0 for a server; unknown hub ids: 0,
    charged what the load is measured to take)."""
    source = resolve(name, allow_paths=allow_paths, allow_hub_ids=allow_hub_ids)
    if source.kind in ("openai", "openai-base"):
        return 0.0
    where = Path(str(source.location or ""))
    if where.is_file():
        return where.stat().st_size / 2**20  # a GGUF: mapped as stored
    if where.is_dir():
        weights = [p for p in where.iterdir() if p.suffix in (".safetensors", ".bin", ".pt")]
        return 2 * sum(p.stat().st_size for p in weights) / 2**20  # read into float32
    return 0.0


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - no measurement: the estimate alone is charged
        return 0.0


class Companions:
    """The extra models, by the name they were asked for; ``get("")`` is the host's own model."""

    def __init__(self, host, budget_mb: int | None = None, loader: Callable[..., LanguageModel] = load,
                 estimate: Callable[..., float] = estimate_mb):
        self.host = host
        self.budget_mb = DEFAULT_BUDGET_MB if budget_mb is None else int(budget_mb)
        self._loader, self._estimate = loader, estimate
        self._models: OrderedDict[str, tuple[LanguageModel, float]] = OrderedDict()  # oldest use first
        self._lock = threading.Lock()

    def used_mb(self) -> float:
        return sum(mb for _, mb in self._models.values())

    def status(self) -> dict:
        return {"budget_mb": self.budget_mb, "used_mb": round(self.used_mb()),
                "models": {name: round(mb) for name, (_, mb) in self._models.items()}}

    def get(self, name: str | None) -> LanguageModel:
        """The model ``name`` (empty, or the loaded model's own name: the loaded model), loaded if needed."""
        name = (name or "").strip()
        own = self.host.lm
        if not name or name == own.name:
            return own
        with self._lock:  # one load at a time; a second request for the same model waits and shares it
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name][0]
            allow = {"allow_paths": self.host.allow_paths, "allow_hub_ids": self.host.allow_hub_ids}
            need = self._estimate(name, **allow)
            if need > self.budget_mb:
                raise ModelLoadError("model.budget", name=name, need=round(need), budget=self.budget_mb)
            while self._models and self.used_mb() + need > self.budget_mb:
                self._close(next(iter(self._models)))
            before = _rss_mb()
            lm = self._loader(name, **allow)
            taken = max(need, _rss_mb() - before)
            self._models[name] = (lm, taken)
            return lm

    def _close(self, name: str) -> None:
        lm, _ = self._models.pop(name)
        if hasattr(lm, "close"):
            lm.close("the model was unloaded to make room for another")
        del lm
        gc.collect()

    def close(self) -> None:
        with self._lock:
            for name in list(self._models):
                self._close(name)

