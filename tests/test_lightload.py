"""The lean start (llmdemo/backends/hf/loading.py, llmdemo/tokenizer.py): a Llama folder read without transformers.

Checked against transformers itself on the same folders: token ids and text, the chat template,
rotary embeddings, generated text and scores.
"""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import CORPUS, GREEDY, ROOT
from llmdemo.backends.hf import loading
from llmdemo.load import load
from llmdemo.tokenizer import LightTokenizer

GREEDY = GREEDY.replace(max_new_tokens=12)
TEXTS = CORPUS[:5] + ["", " ", "  two  spaces\tand\ttabs\n\nnew lines ", "<|im_start|>user\nhi<|im_end|>",
                      "emoji 🙂 and accents: café, naïve", "中文：你好，世界！", "x" * 300, "don't stop , ok ?"]
CHATS = [[{"role": "user", "content": "hi there"}],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Translate: bonjour"},
          {"role": "assistant", "content": "hello"}, {"role": "user", "content": "和 thanks"}]]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMDEMO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _same_tokenizer(folder):
    from transformers import AutoTokenizer

    ref, light = AutoTokenizer.from_pretrained(str(folder)), LightTokenizer(folder)
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(light, attr) == getattr(ref, attr), attr
    for text in TEXTS:
        for special in (True, False):
            ids = ref(text, add_special_tokens=special)["input_ids"]
            assert light(text, add_special_tokens=special)["input_ids"] == ids, text
        for skip in (True, False):
            assert light.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False) == \
                ref.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)
    for chat in CHATS:
        want = ref.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert light.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) == want
        want_ids = ref.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert light.apply_chat_template(chat, add_generation_prompt=True, tokenize=True) == list(want_ids)


def test_light_tokenizer_equals_transformers_on_the_tiny_model(tiny_model_dir):
    assert LightTokenizer.supported(tiny_model_dir) is None
    _same_tokenizer(tiny_model_dir)


@pytest.mark.e2e
def test_light_tokenizer_equals_transformers_on_the_bundled_model(real_lean_lm):
    assert real_lean_lm._lean is not None  # the torch side of the default model takes the lean start
    _same_tokenizer(real_lean_lm._lean.folder)


def test_rope_equals_transformers_rotary_embedding(tiny_model_dir):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from llmdemo.backends.hf.lean.fast import Rope

    weights, _ = loading.load_lean(tiny_model_dir)
    for theta in (10000.0, 100000.0):
        weights.config.rope_parameters = {"rope_theta": theta, "rope_type": "default"}
        ref = LlamaRotaryEmbedding(LlamaConfig(**{**json.loads((tiny_model_dir / "config.json").read_text()),
                                                  "rope_parameters": weights.config.rope_parameters}))
        x, pos = torch.zeros(1, 1, 8), torch.arange(0, 5000, 7)[None]
        for a, b in zip(Rope(weights.config)(x, pos), ref(x, pos)):
            assert torch.equal(a, b)


def test_lean_start_equals_the_transformers_start(tiny_model_dir, cache):
    lean = load(str(tiny_model_dir), decode="float32")
    full = load(str(tiny_model_dir), decode="transformers")
    assert lean._lean is not None and lean._model is None and full._lean is None
    assert lean.info()["start"] == "lean" and full.info()["start"] == "transformers"
    full.set_decode("float32")
    prompts = ["the cat", "once upon a time", [{"role": "user", "content": "hi there"}]]
    assert [lean.encode(p) for p in prompts] == [full.encode(p) for p in prompts]
    assert [lean.generate(p, GREEDY) for p in prompts] == [full.generate(p, GREEDY) for p in prompts]
    assert lean.n_params == full.n_params
    for k in ("eos_ids", "pad_id", "context_length", "style"):
        assert getattr(lean, k) == getattr(full, k), k
    assert lean._model is None  # generating never built the transformers model
    text = " ".join(CORPUS[:3])
    assert lean.loglikelihood_rolling(text) == pytest.approx(full.loglikelihood_rolling(text), rel=1e-5)
    assert lean._model is not None  # scoring built it, once, on demand


def test_converted_weights_are_written_once_then_mapped(tiny_model_dir, cache, monkeypatch):
    first = load(str(tiny_model_dir), decode="float16")
    files = list(cache.glob("lean-*/lean-float16.safetensors"))
    assert len(files) == 1
    want = first.generate("the cat", GREEDY)

    def no_conversion(*a, **k):
        raise AssertionError("converted again instead of reading the cache")
    monkeypatch.setattr("llmdemo.backends.hf.lean.fast.fused_weights", no_conversion)
    again = load(str(tiny_model_dir), decode="float16")
    assert again.generate("the cat", GREEDY) == want
    # a damaged cache file is converted again, not trusted
    files[0].write_bytes(b"not a safetensors file")
    monkeypatch.undo()
    monkeypatch.setenv("LLMDEMO_CACHE", str(cache))
    assert load(str(tiny_model_dir), decode="float16").generate("the cat", GREEDY) == want


def test_a_folder_the_lean_start_cannot_read_goes_through_transformers(tiny_model_dir, tmp_path, cache):
    d = tmp_path / "linear-rope"
    shutil.copytree(tiny_model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    (d / "config.json").write_text(json.dumps(cfg))
    assert "RoPE" in loading.lean_unsupported(d)
    lm = load(str(d), decode="float32")
    assert lm._lean is None and lm.info()["start"] == "transformers"
    assert lm.generate("the cat", GREEDY)


def test_a_lean_start_never_imports_transformers(tiny_model_dir, cache):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from llmdemo.config import GenerationConfig
        from llmdemo.load import load
        lm = load({str(tiny_model_dir)!r}, decode="float16")
        lm.generate([{{"role": "user", "content": "hi"}}], GenerationConfig(temperature=0, max_new_tokens=4))
        info = lm.info()
        print("transformers" in sys.modules, info["start"], info["transformers"] is not None)
        lm.loglikelihood_rolling("the cat sat on the mat")
        print("transformers" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "LLMDEMO_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "lean", "True", "True"]


@pytest.mark.e2e
def test_the_cli_on_the_bundled_model_exits_cleanly(real_lm):
    """The model's thread (OpenMP pools, oneDNN) is stopped before the interpreter exits: without that the
    process ended with "terminate called without an active exception" (exit code 134) after its output."""
    out = subprocess.run([sys.executable, "-m", "llmdemo", "generate", "Hello", "--max-new-tokens", "4",
                          "--temperature", "0"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "terminate called" not in out.stderr and out.stdout.strip()
