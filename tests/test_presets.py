import pytest

from llmdemo.presets import DEFAULT_MODEL, PRESETS, UnknownModelError, bundled_gguf, get_preset, resolve


def test_default_resolves_to_bundled_gguf():
    src = resolve(None)
    assert src.name == DEFAULT_MODEL
    assert src.kind == "gguf" and src.location.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_default_falls_back_to_hub_without_the_package(monkeypatch):
    import llmdemo.presets as presets

    monkeypatch.setattr(presets, "bundled_gguf", lambda p: None)
    src = presets.resolve(DEFAULT_MODEL)
    assert (src.kind, src.location) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct")


def test_unknown_preset_suggests_close_match():
    with pytest.raises(UnknownModelError, match="did you mean 'smollm2-135m-instruct'"):
        resolve("smollm2-135m-instrct")


def test_hub_ids_and_paths(tmp_path):
    assert resolve("Helsinki-NLP/opus-mt-en-de").kind == "hub"
    assert resolve(str(tmp_path)).kind == "local"
    with pytest.raises(UnknownModelError, match="no model folder"):
        resolve(str(tmp_path / "missing"))


def test_hosted_mode_allows_presets_only(tmp_path):
    assert resolve("gpt2", allow_paths=False, allow_hub_ids=False).location == "gpt2"
    with pytest.raises(UnknownModelError, match="presets only"):
        resolve("someone/huge-model", allow_paths=False, allow_hub_ids=False)
    with pytest.raises(UnknownModelError):
        resolve(str(tmp_path), allow_paths=False, allow_hub_ids=False)


def test_expected_presets_exist():
    styles = {p.style for p in PRESETS.values()}
    assert {"chat", "base", "seq2seq"} <= styles
    assert "gpt2" in PRESETS and get_preset("opus-mt-en-fr").pairs == (("en", "fr"),)
    assert bundled_gguf(get_preset("gpt2")) is None
