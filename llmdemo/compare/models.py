"""Models loaded beside the host's own, for side-by-side comparisons, within a memory budget.

The Compare tab may pit another model against the loaded one: it is loaded here, next to it (the
loaded model is never replaced), and kept for the next comparison. What the extra models may take
together is the budget (the app's ``LLMDEMO_COMPARE_MEMORY_MB``). Before a load the model's size is estimated
from its files (a GGUF is mapped as stored; a transformers folder's weights are read into float32,
so twice their bfloat16/float16 size on disk); after the load the process's resident memory growth
is measured, and the larger of the two is what the model is charged. The models one comparison needs
must fit together (else it is refused with the numbers, before anything loads); models that no
running comparison uses are closed, least recently used first, to make room; a model in use is never
closed (a comparison that would need it closed is refused: try again when the others end). A model
whose load turns out larger than the room it has (a hub model has no files to estimate from) is
closed again and refused. A server backend (``openai:...``) holds no weights here and is charged nothing.

Extra models load with the host's own loader (the app's decode mode) and scheduler capacity, and
with paths and hub ids as the host allows them, except for the operator's own contestants
(``trusted``): the operator named those at start, in hosted mode too.

>>> Companions(None, budget_mb=2048).status()
{'budget_mb': 2048, 'used_mb': 0, 'models': {}}
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator

from ..errors import ModelLoadError
from ..interface import LanguageModel
from ..load import load
from ..presets import resolve

DEFAULT_BUDGET_MB = 4096  # two or three small models beside the loaded one on a 24 GiB machine


def estimate_mb(name: str, allow_paths: bool = True, allow_hub_ids: bool = True) -> float:
    """The memory ``name`` will take once loaded, from its files (0 for a server, and for a hub id: it is
    charged what its load is measured to take)."""
    source = resolve(name, allow_paths=allow_paths, allow_hub_ids=allow_hub_ids)
    if source.kind in ("openai", "openai-base"):
        return 0.0
    where = Path(str(source.location or ""))
    if where.is_file():
        return where.stat().st_size / 2**20  # a GGUF: mapped as stored
    if where.is_dir():
        files = [p for p in where.iterdir() if p.suffix in (".safetensors", ".bin", ".pt")]
        # transformers reads the safetensors when both are there: count one set, not both
        weights = [p for p in files if p.suffix == ".safetensors"] or files
        return 2 * sum(p.stat().st_size for p in weights) / 2**20  # read into float32
    return 0.0


def rss_mb() -> float:
    """This process's resident memory in MB (0 where psutil cannot tell)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - no measurement: the estimate alone is charged
        return 0.0


class Companions:
    """The extra models, by the name they were asked for; ``""`` is the host's own model."""

    def __init__(self, host, budget_mb: int | None = None, loader: Callable[..., LanguageModel] | None = None,
                 estimate: Callable[..., float] = estimate_mb, measure: Callable[[], float] = rss_mb):
        self.host = host
        self.budget_mb = DEFAULT_BUDGET_MB if budget_mb is None else int(budget_mb)
        self._loader = loader or getattr(host, "_loader", None) or load
        self._estimate, self._measure = estimate, measure
        self._models: OrderedDict[str, tuple[LanguageModel, float]] = OrderedDict()  # oldest use first
        self._pins: dict[str, int] = {}  # name -> comparisons running on it now
        self._lock = threading.Lock()

    def _used(self) -> float:
        return sum(mb for _, mb in self._models.values())

    def used_mb(self) -> float:
        with self._lock:
            return self._used()

    def status(self) -> dict:
        with self._lock:
            return {"budget_mb": self.budget_mb, "used_mb": round(self._used()),
                    "models": {name: round(mb) for name, (_, mb) in self._models.items()}}

    def _allow(self, trusted: bool) -> dict:
        return {"allow_paths": trusted or self.host.allow_paths, "allow_hub_ids": trusted or self.host.allow_hub_ids}

    def _own(self, name: str) -> bool:
        return not name or name == self.host.lm.name

    @contextlib.contextmanager
    def use(self, names, trusted: bool = False) -> Iterator[dict[str, LanguageModel]]:
        """The models ``names`` ("" = the loaded one), loaded if needed and kept loaded while the block runs."""
        names = [n.strip() for n in dict.fromkeys(n or "" for n in names)]
        extra = [n for n in names if not self._own(n)]
        with self._lock:  # one load at a time; a second request for the same model waits and shares it
            if extra:
                need = {n: (self._models[n][1] if n in self._models else self._estimate(n, **self._allow(trusted)))
                        for n in extra}
                if sum(need.values()) > self.budget_mb:
                    raise ModelLoadError("model.budget", name=" + ".join(extra), need=round(sum(need.values())),
                                         budget=self.budget_mb)
            got = {}
            try:
                for n in extra:
                    got[n] = self._get(n, need[n], trusted)
                    self._pins[n] = self._pins.get(n, 0) + 1
            except BaseException:
                for n in got:
                    self._unpin(n)
                raise
        try:
            yield {n: (got[n] if n in got else self.host.lm) for n in names}
        finally:
            with self._lock:
                for n in got:
                    self._unpin(n)

    def get(self, name: str | None, trusted: bool = False) -> LanguageModel:
        """The model ``name``, loaded if needed (not kept from being unloaded afterwards: see :meth:`use`)."""
        with self.use([name or ""], trusted) as got:
            return got[(name or "").strip()]

    def _unpin(self, name: str) -> None:
        self._pins[name] -= 1
        if not self._pins[name]:
            del self._pins[name]

    def _make_room(self, need: float, keep: str | None = None) -> None:
        """Close unused models, least recently used first, until ``need`` more MB fit; refuse if they cannot."""
        for name in [n for n in self._models if n not in self._pins and n != keep]:
            if self._used() + need <= self.budget_mb:
                return
            self._close(name)
        if self._used() + need > self.budget_mb:
            raise ModelLoadError("model.budget_busy", budget=self.budget_mb, used=round(self._used()))

    def _get(self, name: str, need: float, trusted: bool) -> LanguageModel:
        if name in self._models:
            self._models.move_to_end(name)
            return self._models[name][0]
        if need > self.budget_mb:
            raise ModelLoadError("model.budget", name=name, need=round(need), budget=self.budget_mb)
        self._make_room(need)
        before = self._measure()
        lm = self._loader(name, **self._allow(trusted))
        taken = max(need, self._measure() - before)
        self._models[name] = (lm, taken)
        if self._used() > self.budget_mb:  # larger than estimated (a hub model has nothing to estimate from)
            try:
                self._make_room(0.0, keep=name)
            except ModelLoadError:
                self._close(name)
                raise ModelLoadError("model.budget", name=name, need=round(taken), budget=self.budget_mb) from None
        sched = getattr(lm, "scheduler", None)
        if sched is not None and getattr(self.host, "max_running", None) is not None:
            sched.max_running = self.host.max_running  # the app's capacity, as for the loaded model
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
