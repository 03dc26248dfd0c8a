"""Choosing the lean forward's kernel on the machine at hand, by measuring, once per CPU.

The fastest way to multiply by the weights differs between CPUs: on an Intel Xeon with AMX and
AVX512-FP16, float16 decodes fast and bfloat16 reads prompts 1.6-2x faster than float32; on an
AMD EPYC without native float16 math, float16 reads a prompt 2.25x slower than float32. So
``--decode auto`` does not guess. At the first load of a model on a machine it

1. builds each candidate kernel (:data:`llmdemo.backends.hf.lean.fast.KERNELS`) in turn, one alive at a time
   (peak memory: the model plus one 16-bit copy);
2. checks its quality on a fixed English text against float32: mean KL divergence of the
   next-token distributions within :data:`MAX_MEAN_KL`, perplexity within :data:`MAX_PPL_CHANGE`
   and the same top token wherever float32's choice is clear; a candidate that fails is never
   chosen (the full bar, WikiText-2 perplexity within 0.5% and greedy output equal on 19 of 20
   prompts, is ``bench/quality.py``; the KL limit is set from it);
3. times a 64-token prompt chunk (how every new prompt starts) and a one-row decode step, best of
   a few tries each, and keeps the fastest for each phase. Prompt reading may use a second
   copy of the weights only when it is :data:`SECOND_COPY_GAIN` times faster than the decode
   kernel (that copy costs 212 MB in 16 bits, 424 MB in float32, for the 135M default);
4. writes the choice to ``<cache>/decode-choice.json`` under a key made of the model's identity
   (file hash or hub revision), the CPU's model name and flags, the thread count and torch's
   version, so a later start reuses it (no measuring) and a cache copied from another machine
   is not used there.

Models without a stable identity (built in memory, as in tests) are measured and not cached.
``LLMDEMO_DECODE_CANDIDATES=float32,float16`` limits what is measured.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .fast import KERNELS, FastLlama, kernel_unavailable

CANDIDATES = tuple(KERNELS)
MAX_PPL_CHANGE = 0.01  # at most 1% perplexity change on the probe text
MIN_AGREEMENT = 0.9  # same top token on at least 90% of the clear positions
# Mean KL divergence from float32's next-token distribution on the probe text. Calibrated with
# bench/quality.py on the default model: float16 weights 1.9e-6 (greedy output equal to float32's on
# 19 of 20 prompts, perplexity +0.007%), bfloat16 9.5e-5 (12 of 20, although perplexity moved only
# -0.022% and the top token agreed everywhere on the probe): the 8-bit mantissa is not enough.
MAX_MEAN_KL = 1e-5
# Part of the cache key: a choice made under older rules is measured again.
RULES = 2
SECOND_COPY_GAIN = 1.3
CONTENDER_MARGIN = 1.25  # timed a second time when within 25% of the best
PROBE_TOKENS = 64
CHOICE_FILE = "decode-choice.json"
# The probe text: plain English prose, so that a model's next-token guesses are mostly clear.
PROBE_TEXT = (
    "The lighthouse stood at the end of a long stone pier, and every evening the keeper climbed the "
    "narrow stairs to light the lamp. Ships passing in the night could see its beam from many miles "
    "away, and sailors were grateful for the warning it gave them about the rocks below. One morning, "
    "after a storm had passed over the coast, the keeper walked along the beach and found a small glass "
    "bottle half buried in the sand. Inside it was a letter, written in careful handwriting, from a "
    "child who lived on an island far across the sea."
)


@dataclass(frozen=True)
class Choice:
    """The kernels used for reading prompts and for decode steps, and how they were chosen."""

    prefill: str
    decode: str
    source: str  # "measured", "cache", "forced" (--decode NAME) or "only" (one candidate allowed)
    cpu: str = ""
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # kernel -> ms, quality, or why not

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_signature() -> dict[str, Any]:
    """What makes a speed measurement valid: CPU model and flags, threads, torch version."""
    from ....modelfiles import cpu_identity

    model, flags = cpu_identity()
    return {"cpu": model, "flags_sha": hashlib.sha256(flags.encode()).hexdigest()[:16],
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def cache_key(model_id: str, sig: dict[str, Any]) -> str:
    return (f"{model_id}|{sig['cpu']}|flags {sig['flags_sha']}|{sig['threads']} threads|torch {sig['torch']}"
            f"|rules {RULES}")


def env_candidates() -> tuple[str, ...]:
    raw = os.environ.get("LLMDEMO_DECODE_CANDIDATES", "").strip()
    if not raw:
        return CANDIDATES
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    bad = [n for n in names if n not in KERNELS]
    if bad:
        raise ValueError(f"LLMDEMO_DECODE_CANDIDATES: unknown kernel(s) {', '.join(bad)}; "
                         f"use some of {', '.join(CANDIDATES)}")
    return names


def read_cached(path: Path, key: str) -> Choice | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(key)
        if not entry:
            return None
        choice = Choice(**{**entry, "source": "cache"})
    except (OSError, ValueError, TypeError):
        return None  # a missing or damaged file: measure again
    if choice.prefill not in KERNELS or choice.decode not in KERNELS:
        return None
    return choice


def write_cached(path: Path, key: str, choice: Choice) -> None:
    """Add the choice to the file atomically (write a temporary file, then rename)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[key] = choice.to_dict()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: the choice is measured again next time


def probe_ids(encode: Callable[[str], list[int]], n: int = PROBE_TOKENS) -> list[int]:
    ids = list(encode(PROBE_TEXT))
    while len(ids) < n + 1:
        ids = ids + ids
    return ids[: n + 1]


@torch.no_grad()
def _logprobs(fast: FastLlama, ids: list[int]) -> torch.Tensor:
    x = torch.tensor([ids])
    logits = fast.forward(x, torch.arange(len(ids))[None], fast.new_kv(len(ids)), 0, last_only=False)[0]
    return torch.log_softmax(logits.float(), dim=-1)  # (T, V)


def quality(ref: torch.Tensor, got: torch.Tensor, ids: list[int]) -> dict[str, float]:
    """Perplexity change of the probe's next tokens, and top-token agreement where float32 is clear."""
    targets = torch.tensor(ids[1:])[:, None]
    lp_ref = ref[:-1].gather(1, targets).squeeze(1)
    lp_got = got[:-1].gather(1, targets).squeeze(1)
    ppl_change = math.exp(float(lp_ref.mean() - lp_got.mean())) - 1
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.1  # a margin of 0.1 nats: not a near-tie
    agree = (ref.argmax(-1) == got.argmax(-1))[clear].float()
    kl = (ref.exp() * (ref - got)).sum(-1).mean()  # mean KL(float32 || candidate) over the positions
    return {"ppl_change": round(ppl_change, 5), "agreement": round(float(agree.mean()) if len(agree) else 1.0, 4),
            "mean_kl": float(f"{float(kl):.3g}")}


def quality_ok(q: dict[str, float]) -> bool:
    return abs(q["ppl_change"]) <= MAX_PPL_CHANGE and q["agreement"] >= MIN_AGREEMENT and q["mean_kl"] <= MAX_MEAN_KL


@torch.no_grad()
def _time(fast: FastLlama, ids: list[int], tries: int, steps: int) -> tuple[float, float]:
    """Best-of-``tries`` ms for reading ``ids`` as one chunk, and for one decode step after it."""
    x, pos = torch.tensor([ids]), torch.arange(len(ids))[None]
    prefill, step = [], []
    for i in range(tries + 1):  # the first round warms up (allocations, oneDNN primitives)
        kv = fast.new_kv(len(ids) + steps + 1)
        t = time.perf_counter()
        fast.forward(x, pos, kv, 0)
        t1 = time.perf_counter()
        tok = torch.tensor([ids[-1]])
        for _ in range(steps):
            fast.decode(tok, [kv])
        t2 = time.perf_counter()
        if i:
            prefill.append((t1 - t) * 1000)
            step.append((t2 - t1) * 1000 / steps)
    # the best try: noise from other processes only ever adds time
    return min(prefill), min(step)


def measure(model: Any, ids: list[int], candidates: Sequence[str], tries: int = 3, steps: int = 8,
            timer: Callable[..., tuple[float, float]] | None = None) -> dict[str, dict[str, Any]]:
    """Quality and speed of each candidate (one built at a time); unusable ones say why.

    Two passes: all candidates in order, then, in reverse order, those within
    :data:`CONTENDER_MARGIN` of the best in either phase; each keeps its best time. A burst of
    load from another process during one candidate's turn would otherwise decide the choice
    (seen on a shared 2-core machine: float16 and bfloat16-onednn swapped places between runs).
    """
    timer = timer or _time
    out: dict[str, dict[str, Any]] = {}
    ref = _logprobs(FastLlama(model, "float32"), ids)

    def run(name: str, first: bool) -> None:
        try:
            fast = FastLlama(model, name, batch_hint=1)
            if first:
                q = quality(ref, _logprobs(fast, ids), ids)
                out[name] = {**q, "quality_ok": quality_ok(q)}
            prefill_ms, decode_ms = timer(fast, ids[:PROBE_TOKENS], tries, steps)
        except (RuntimeError, ValueError) as e:
            out[name] = {"unavailable": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            return
        finally:
            fast = None  # free this copy before the next one is built
        r = out[name]
        r["prefill_ms"] = round(min(prefill_ms, r.get("prefill_ms", prefill_ms)), 2)
        r["decode_ms"] = round(min(decode_ms, r.get("decode_ms", decode_ms)), 2)

    for name in candidates:
        why = kernel_unavailable(name)
        if why:
            out[name] = {"unavailable": why}
        else:
            run(name, True)
    timed = {k: v for k, v in out.items() if "decode_ms" in v and v.get("quality_ok")}
    if len(timed) > 1:
        best = {p: min(v[p] for v in timed.values()) for p in ("prefill_ms", "decode_ms")}
        for name in reversed(list(timed)):
            if any(timed[name][p] <= CONTENDER_MARGIN * best[p] for p in best):
                run(name, False)
    return out


def pick(measured: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The fastest good kernel for decode steps, and for prompt chunks (a second copy only if much faster)."""
    good = {k: v for k, v in measured.items() if v.get("quality_ok")}
    if not good:
        return "float32", "float32"
    decode = min(good, key=lambda k: good[k]["decode_ms"])
    prefill = min(good, key=lambda k: good[k]["prefill_ms"])
    # Another kernel for prompts is a second copy of the weights (float32 too: after a lean start
    # there is no transformers model whose tensors it could share; measured 1,002 MB peak for
    # float16 + float32 against 603 MB for float16 alone), so it must be clearly faster.
    if good[decode]["prefill_ms"] < SECOND_COPY_GAIN * good[prefill]["prefill_ms"]:
        prefill = decode
    return prefill, decode


def choose(model: Any, encode: Callable[[str], list[int]], *, model_id: str | None, cache_dir: Path | None,
           candidates: Sequence[str] | None = None, progress: Callable[[str], None] | None = None,
           timer: Callable[..., tuple[float, float]] | None = None) -> Choice:
    """The cached choice for this model on this machine, or a new measurement (then cached)."""
    sig = cpu_signature()
    candidates = tuple(candidates or env_candidates())
    path = cache_dir / CHOICE_FILE if cache_dir is not None and model_id else None
    key = cache_key(model_id, sig) + f"|{','.join(candidates)}" if path else ""
    if path is not None:
        cached = read_cached(path, key)
        if cached is not None:
            return cached
    if len(candidates) == 1:  # nothing to choose between (LLMDEMO_DECODE_CANDIDATES names one)
        return Choice(candidates[0], candidates[0], "only", sig["cpu"], {})
    if progress:
        progress(f"measuring the forward kernels on this CPU ({', '.join(candidates)}; once per machine)")
    t0 = time.perf_counter()
    measured = measure(model, probe_ids(encode), candidates, timer=timer)
    prefill, decode = pick(measured)
    choice = Choice(prefill, decode, "measured", sig["cpu"], measured)
    if progress:
        progress(f"chose {decode} for decode steps and {prefill} for prompts "
                 f"({time.perf_counter() - t0:.1f} s)")
    if path is not None:
        write_cached(path, key, choice)
    return choice
