"""The numpy sampler: draws follow the distribution it reports, a seed repeats, bad logits fail clearly,
and generating with the llama.cpp backend never imports torch.

The distribution itself (penalty, suppressed tokens, temperature, top-k, top-p) is checked against a
computation from scratch in torch in tests/test_tokenprobs.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from llmdemo.config import GenerationConfig
from llmdemo.engine.sampler import Sampler

CONFIGS = [GenerationConfig(temperature=0.9, top_k=7, top_p=1.0),
           GenerationConfig(temperature=1.3, top_k=0, top_p=0.6),
           GenerationConfig(temperature=0.8, top_k=30, top_p=0.7, repetition_penalty=1.4),
           GenerationConfig(temperature=1.0, top_k=0, top_p=1.0)]


def _logits(v: int = 60, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(v) * 2).astype(np.float32)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_draws_follow_the_distribution_the_sampler_reports(cfg):
    logits, seen = _logits(), [3, 17, 42]
    _, dist = Sampler(cfg, seed=0)._choose(logits, seen, True)
    s = Sampler(cfg, seed=1)
    n = 20_000
    counts = np.bincount([s(logits, seen) for _ in range(n)], minlength=len(logits))
    assert counts[dist == 0].sum() == 0  # never a token outside the kept set
    tv = 0.5 * np.abs(counts / n - dist).sum()  # total variation; ~0.01-0.02 expected from 20k draws
    assert tv < 0.035, tv


def test_a_seed_repeats_its_tokens_and_another_seed_does_not():
    cfg, logits = CONFIGS[3], _logits()
    a, b, c = (Sampler(cfg, seed=k) for k in (5, 5, 6))
    seq_a, seq_b, seq_c = ([x(logits, None) for _ in range(50)] for x in (a, b, c))
    assert seq_a == seq_b and seq_a != seq_c


def test_greedy_takes_the_first_largest_and_suppressed_tokens_are_never_picked():
    x = np.array([1.0, 3.0, 3.0, -2.0], np.float32)
    assert Sampler(GenerationConfig(temperature=0), seed=0)(x, None) == 1
    assert Sampler(GenerationConfig(temperature=0), seed=0, suppress=[1, 2])(x, None) == 0
    hot = Sampler(GenerationConfig(temperature=5.0, top_k=0, top_p=1.0), seed=0, suppress=[0, 1, 2])
    assert {hot(x, None) for _ in range(200)} == {3}


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan, 1.0], np.float32), np.full(3, -np.inf, np.float32)])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_logits_without_a_distribution_raise_a_clear_error(bad, temperature):
    with pytest.raises(ValueError, match="cannot be sampled"):
        Sampler(GenerationConfig(temperature=temperature), seed=0)(bad, None)


def test_the_generation_path_of_the_llama_cpp_backend_imports_no_torch():
    """torch costs 1-2.6 s of every start: the CLI, the engine and the llama.cpp backend import none."""
    code = ("import sys; import llmdemo.cli, llmdemo.engine.model, llmdemo.engine.scheduler, "
            "llmdemo.backends.llamacpp, llmdemo.backends.openai; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.e2e
def test_one_token_from_the_cli_on_the_bundled_model_imports_no_torch(tmp_path):
    code = ("import sys, runpy; sys.argv = ['llmdemo', 'generate', 'Hello', '--max-new-tokens', '3', "
            "'--temperature', '0.7', '--seed', '1']\n"
            "try:\n    runpy.run_module('llmdemo', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TORCH False" in out.stdout, out.stdout


@pytest.mark.e2e
def test_the_app_is_built_on_the_bundled_model_without_torch():
    """torch waits for the first scoring or Inside-tab call: the page's start does not pay for it."""
    code = ("import sys; sys.argv = ['app.py']; import app; demo, _ = app.make_demo(); "
            "print('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TORCH False" in out.stdout, out.stdout
