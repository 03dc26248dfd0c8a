"""Choosing the lean forward's kernels by measurement (llmdemo/backends/hf/lean/tuning.py), on the tiny model."""

import json

import pytest
import torch

from llmdemo.backends.describe import describe
from llmdemo.backends.hf.lean import tuning
from llmdemo.backends.hf.lean.fast import KERNELS, FastLlama, kernel_unavailable
from llmdemo.backends.hf.model import LM

AVAILABLE = [k for k in KERNELS if kernel_unavailable(k) is None]


def _timer(table):
    """A timer that reports made-up (prefill_ms, decode_ms) per kernel, and counts its calls."""
    calls = []

    def timer(fast, ids, tries, steps):
        calls.append(fast.kernel)
        return table[fast.kernel]
    timer.calls = calls
    return timer


def _lm(tiny_parts, sha="0123456789abcdef" * 4):
    model, tok = tiny_parts
    return LM(model, tok, name="tiny-llama", info={"kind": "test", "file_sha256": sha}, decode="float32")


@pytest.fixture
def tiny_parts():
    from conftest import _tiny_decoder

    return _tiny_decoder()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMDEMO_CACHE", str(tmp_path))
    return tmp_path


def _need(kernel):
    """Skip, saying why, where this CPU or torch build cannot run ``kernel`` (oneDNN's bfloat16 linear
    raises on an AVX2-only AMD EPYC, for one): a test holds on any x86-64 CPU or says why it cannot run."""
    why = kernel_unavailable(kernel)
    if why is not None:
        pytest.skip(f"{kernel} not supported on this CPU: {why}")


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_every_kernel_stays_close_to_float32(tiny_lm, kernel):
    _need(kernel)
    ids = torch.tensor([tiny_lm.encode("the cat sat on the mat")])
    pos = torch.arange(ids.shape[1])[None]
    f32 = FastLlama(tiny_lm.model, "float32")
    ref = f32.forward(ids, pos, f32.new_kv(16), 0, last_only=False)
    f = FastLlama(tiny_lm.model, kernel)
    got = f.forward(ids, pos, f.new_kv(16), 0, last_only=False)
    assert got.dtype == torch.float32
    assert (got - ref).abs().max() < 0.1, kernel
    # a decode step after the prompt equals reading the same token as part of the prompt
    kv = f.new_kv(16)
    f.forward(ids[:, :-1], pos[:, :-1], kv, 0)
    step = f.decode(ids[0, -1:], [kv])
    torch.testing.assert_close(step[0], got[0, -1], atol=2e-3, rtol=2e-3)


def test_kernels_available_everywhere():
    """The plain kernels need nothing from the CPU but what torch itself needs; only oneDNN's may be absent."""
    assert {k for k in KERNELS if not KERNELS[k][1]} <= set(AVAILABLE)
    assert kernel_unavailable("int3") == "unknown kernel 'int3'"


def test_packed_kernel_equals_plain_bfloat16(tiny_lm):
    _need("bfloat16-onednn")
    ids = torch.tensor([tiny_lm.encode("once upon a time there was")])
    pos = torch.arange(ids.shape[1])[None]
    a, b = FastLlama(tiny_lm.model, "bfloat16"), FastLlama(tiny_lm.model, "bfloat16-onednn")
    x = a.forward(ids, pos, a.new_kv(16), 0, last_only=False)
    y = b.forward(ids, pos, b.new_kv(16), 0, last_only=False)
    torch.testing.assert_close(x, y, atol=1e-3, rtol=1e-3)  # same rounded weights, another kernel
    assert b.nbytes() == a.nbytes() > 0


def test_measure_reports_speed_and_quality_for_each_candidate(tiny_lm):
    ids = tuning.probe_ids(tiny_lm._text_ids)
    m = tuning.measure(tiny_lm.model, ids, ["float32", "float16"], tries=1, steps=2)
    assert set(m) == {"float32", "float16"}
    assert m["float32"]["ppl_change"] == 0 and m["float32"]["agreement"] == 1.0 and m["float32"]["quality_ok"]
    assert m["float16"]["decode_ms"] > 0 and m["float16"]["prefill_ms"] > 0
    assert m["float16"]["quality_ok"] and m["float16"]["mean_kl"] < tuning.MAX_MEAN_KL


def test_bfloat16_fails_the_quality_gate_that_float16_passes(tiny_lm):
    """The KL limit separates 8-bit from 11-bit mantissas (on the default model bfloat16 changed 8 of 20
    greedy outputs, float16 1): on the tiny model too."""
    ids = tuning.probe_ids(tiny_lm._text_ids)
    m = tuning.measure(tiny_lm.model, ids, ["float16", "bfloat16"], tries=1, steps=1)
    assert m["float16"]["quality_ok"] and not m["bfloat16"]["quality_ok"]
    assert m["bfloat16"]["mean_kl"] > 10 * m["float16"]["mean_kl"]


def test_pick_takes_the_fastest_good_kernel_per_phase():
    m = {"float32": {"prefill_ms": 100, "decode_ms": 50, "quality_ok": True},
         "float16": {"prefill_ms": 200, "decode_ms": 30, "quality_ok": True},
         "bfloat16": {"prefill_ms": 50, "decode_ms": 40, "quality_ok": True},
         "float16-onednn": {"prefill_ms": 10, "decode_ms": 10, "quality_ok": False}}
    assert tuning.pick(m) == ("bfloat16", "float16")  # a second copy, since 4x faster than float16's
    m["bfloat16"]["prefill_ms"] = m["float32"]["prefill_ms"] = 180  # only 1.1x faster than float16: no second copy
    assert tuning.pick(m) == ("float16", "float16")
    assert tuning.pick({"float16": {"quality_ok": False}}) == ("float32", "float32")


def test_auto_measures_once_then_reuses_the_cached_choice(tiny_parts, cache, monkeypatch):
    # float32 and float16 run on every CPU torch supports (the oneDNN kernels do not: an AVX2-only
    # EPYC refuses bfloat16's), so the faked timings go to kernels that really are built and run here
    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float32,float16")
    timer = _timer({"float32": (100.0, 50.0), "float16": (200.0, 30.0)})
    monkeypatch.setattr(tuning, "_time", timer)
    lm = _lm(tiny_parts)
    assert lm.set_decode("auto") == "float16"
    info = lm.info()
    assert (info["decode"], info["prefill"]) == ("float16", "float32")  # prompts 2x faster in float32
    assert info["decode_choice"]["source"] == "measured"
    assert info["decode_choice"]["measured"]["float32"]["prefill_ms"] == 100.0
    assert lm.runner.fast.kernel == "float16" and lm.runner.prefill_fast.kernel == "float32"
    # each timed once, then the contenders (within 25% of the best in a phase) again in reverse order
    assert timer.calls == ["float32", "float16", "float16", "float32"]
    saved = json.loads((cache / tuning.CHOICE_FILE).read_text())
    assert len(saved) == 1 and next(iter(saved)).startswith("tiny-llama@sha256:0123456789abcdef|")

    # a second start on the same machine: the cached choice, nothing timed
    lm2 = _lm(tiny_parts)
    lm2.set_decode("auto")
    assert lm2.info()["decode_choice"]["source"] == "cache"
    assert (lm2.info()["decode"], lm2.info()["prefill"]) == ("float16", "float32")
    assert len(timer.calls) == 4
    # generation works with the two kernels: prompts through one, steps through the other
    assert lm2.generate("the cat", lm2_cfg())
    # what the Model tab shows
    assert describe(info) == ("lean Llama forward, float16 for decode steps, float32 for prompts "
                                     "(measured on this CPU: 30 ms per decode step)")
    assert "measured earlier on this CPU" in describe(lm2.info())
    from webui.handlers import Handlers
    from webui.settings import AppSettings
    from llmdemo.host import ModelHost

    assert describe(lm2.info()) in Handlers(ModelHost(lm2), AppSettings()).model_info()


def lm2_cfg():
    from llmdemo.config import GenerationConfig

    return GenerationConfig(temperature=0, max_new_tokens=4, stop=())


def test_a_choice_cached_on_another_cpu_is_not_used(tiny_parts, cache, monkeypatch):
    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float32,float16")
    real = tuning.cpu_signature()
    monkeypatch.setattr(tuning, "cpu_signature", lambda: {**real, "cpu": "Other CPU", "flags_sha": "ffff"})
    monkeypatch.setattr(tuning, "_time", _timer({"float32": (10.0, 10.0), "float16": (20.0, 20.0)}))
    assert _lm(tiny_parts).set_decode("auto") == "float32"  # cached under the other CPU's key
    monkeypatch.setattr(tuning, "cpu_signature", lambda: real)
    timer = _timer({"float32": (20.0, 20.0), "float16": (10.0, 10.0)})
    monkeypatch.setattr(tuning, "_time", timer)
    lm = _lm(tiny_parts)
    assert lm.set_decode("auto") == "float16"  # measured again here, not the other machine's pick
    assert lm.info()["decode_choice"]["source"] == "measured" and timer.calls
    assert len(json.loads((cache / tuning.CHOICE_FILE).read_text())) == 2


def test_a_candidate_failing_the_quality_check_is_never_chosen(tiny_parts, cache, monkeypatch):
    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float32,float16")
    monkeypatch.setattr(tuning, "_time", _timer({"float32": (50.0, 50.0), "float16": (10.0, 10.0)}))
    real_quality = tuning.quality

    def worse(ref, got, ids):  # float16 as if its rounding changed the model's predictions
        q = real_quality(ref, got, ids)
        return q if torch.equal(ref, got) else {**q, "mean_kl": 1e-3}  # as bfloat16 did on the default model
    monkeypatch.setattr(tuning, "quality", worse)
    lm = _lm(tiny_parts)
    assert lm.set_decode("auto") == "float32"
    assert lm.info()["decode_choice"]["measured"]["float16"]["quality_ok"] is False


def test_forced_mode_and_models_without_identity_are_not_cached(tiny_parts, cache, monkeypatch):
    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float32,float16")
    monkeypatch.setattr(tuning, "_time", _timer({"float32": (50.0, 50.0), "float16": (10.0, 10.0)}))
    lm = _lm(tiny_parts)
    assert lm.set_decode("bfloat16") == "bfloat16"
    assert lm.info()["decode_choice"]["source"] == "forced" and lm.info()["prefill"] == "bfloat16"
    model, tok = tiny_parts
    anon = LM(model, tok, name="tiny-llama", info={"kind": "test"}, decode="auto")  # no file hash
    assert anon.info()["decode_choice"]["source"] == "measured"
    assert not (cache / tuning.CHOICE_FILE).exists()


def test_a_single_allowed_candidate_is_used_without_measuring(tiny_parts, cache, monkeypatch):
    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float16")
    monkeypatch.setattr(tuning, "_time", _timer({}))  # any timing would raise KeyError
    lm = _lm(tiny_parts)
    assert lm.set_decode("auto") == "float16"
    assert describe(lm.info()).endswith("(the only candidate in LLMDEMO_DECODE_CANDIDATES)")


def test_bad_candidate_list_is_refused(monkeypatch):
    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float32,int3")
    with pytest.raises(ValueError, match="unknown kernel"):
        tuning.env_candidates()


def test_a_burst_of_load_during_one_turn_does_not_decide(tiny_lm):
    """float16's first turn is slowed (as by another process); its second turn shows its real speed."""
    turns = {"float32": [(10.0, 30.0), (12.0, 31.0)], "float16": [(10.0, 50.0), (10.0, 20.0)]}

    def timer(fast, ids, tries, steps):
        return turns[fast.kernel].pop(0)
    m = tuning.measure(tiny_lm.model, tuning.probe_ids(tiny_lm._text_ids), ["float32", "float16"], timer=timer)
    assert m["float16"]["decode_ms"] == 20.0 and tuning.pick(m)[1] == "float16"
    assert turns == {"float32": [], "float16": []}  # float32 was timed twice too (within 25% in prompts)
