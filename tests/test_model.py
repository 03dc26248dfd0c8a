import math
import sys
import threading

import pytest
import torch

from llmdemo.config import GenerationConfig
from llmdemo.engine.model import ContextOverflowError
from llmdemo.load import load
from llmdemo.engine.stream import _holdback
from conftest import GREEDY

GREEDY = GREEDY.replace(stop=GenerationConfig().stop)  # the default stop strings
PROMPTS = ["The weather is", "Once upon a time there was a small", "Hello", "The city council voted to build a new"]


def test_core_does_not_import_gradio_or_eval():
    import subprocess

    code = "import llmdemo, llmdemo.backends.hf.model, llmdemo.prompts, llmdemo.cli, sys; " \
           "print(any(m == 'gradio' or m.startswith(('gradio.', 'eval.')) or m == 'eval' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_seq2seq_lm"])
def test_generate_is_join_of_stream(fixture, request):
    lm = request.getfixturevalue(fixture)
    s = lm.stream("The weather is", GREEDY)
    chunks = list(s)
    assert chunks and all(isinstance(c, str) for c in chunks)
    assert "".join(chunks) == lm.generate("The weather is", GREEDY)
    assert s.stats.new_tokens > 0 and s.stats.ttft_s is not None
    assert s.stats.finish_reason in {"eos", "length"}


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_seq2seq_lm"])
def test_batched_greedy_equals_unbatched(fixture, request):
    lm = request.getfixturevalue(fixture)
    single = [lm.generate(p, GREEDY) for p in PROMPTS]
    assert len(set(single)) > 1  # the prompts lead to different outputs: the check is not vacuous
    for bs in (2, 4):
        assert lm.generate_batch(PROMPTS, GREEDY, batch_size=bs) == single


def test_batch_reports_each_result_once(tiny_lm):
    seen = {}
    out = tiny_lm.generate_batch(PROMPTS, GREEDY, batch_size=3, on_done=lambda i, t: seen.setdefault(i, t))
    assert seen == dict(enumerate(out))


def test_same_seed_same_sample_and_different_seeds_differ(tiny_lm):
    cfg = GenerationConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=30, seed=1)
    a, b = tiny_lm.generate("Hello", cfg), tiny_lm.generate("Hello", cfg)
    assert a == b
    others = {tiny_lm.generate("Hello", cfg.replace(seed=s)) for s in range(2, 6)}
    assert len(others | {a}) > 1


def test_top_k_1_equals_greedy(tiny_lm):
    sampled = tiny_lm.generate("Hello", GenerationConfig(temperature=1.0, top_k=1, max_new_tokens=15, seed=3))
    assert sampled == tiny_lm.generate("Hello", GREEDY.replace(max_new_tokens=15))


def test_chat_uses_template(tiny_lm):
    msgs = [{"role": "user", "content": "Hello"}]
    ids = tiny_lm.encode(msgs)
    assert tiny_lm.tokenizer.decode(ids).startswith("<|im_start|>user\nHello<|im_end|>")
    assert tiny_lm.chat(msgs, GREEDY).text() == tiny_lm.generate(msgs, GREEDY)
    with pytest.raises(ValueError):
        tiny_lm.chat([{"content": "no role"}], GREEDY)


def test_stop_strings_cut_output(tiny_lm):
    full = tiny_lm.generate("Hello", GREEDY.replace(max_new_tokens=40))
    assert len(full) > 6
    stop = full[3:6]
    s = tiny_lm.stream("Hello", GREEDY.replace(max_new_tokens=40, stop=(stop,)))
    text = s.text()
    assert stop not in text and full.startswith(text) and len(text) <= full.index(stop)
    assert s.stats.finish_reason == "stop_string"
    assert tiny_lm.generate_batch(["Hello"], GREEDY.replace(max_new_tokens=40, stop=(stop,)))[0] == text


def test_holdback():
    assert _holdback("abc\nUs", ["\nUser:"]) == 3
    assert _holdback("abc", ["\nUser:"]) == 0


def test_stop_event_stops_within_a_token(tiny_lm):
    ev = threading.Event()
    s = tiny_lm.stream("Hello", GREEDY.replace(max_new_tokens=200), stop_event=ev)
    it = iter(s)
    next(it)  # running and producing
    ev.set()
    rest = list(it)  # the stream ends by itself: the event is seen by the scheduler, not by this reader
    req = s.request
    assert s.stats.finish_reason == "stopped" and req.finish_reason == "stopped"
    assert len(req.tokens) < 200 and len(rest) <= 2  # at most the step already under way
    # set before the stream starts: nothing is generated at all
    s2 = tiny_lm.stream("Hello", GREEDY.replace(max_new_tokens=200), stop_event=ev)
    assert s2.text() == "" and s2.stats.finish_reason == "stopped" and s2.stats.new_tokens == 0


def test_context_overflow_is_clear(tiny_lm):
    long = "word " * 2000
    with pytest.raises(ContextOverflowError, match="context of 256"):
        tiny_lm.generate(long, GREEDY)
    s = tiny_lm.stream("Hello " * 50, GREEDY.replace(max_new_tokens=500))
    s.text()
    assert s.stats.new_tokens <= 256 and any("lowered" in n for n in s.stats.notices)


def test_load_local_folder(tiny_model_dir):
    lm = load(str(tiny_model_dir))
    assert lm.style == "chat" and lm.info()["kind"] == "local" and lm.info()["file_sha256"]
    assert lm.generate("Hello", GREEDY) == lm.generate("Hello", GREEDY)


def test_unreachable_hub_model_is_a_clear_error(monkeypatch):
    from llmdemo.errors import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="could not load model 'nobody/no-such-model'"):
        load("nobody/no-such-model")


# ---------------------------------------------------------------- perplexity

def test_rolling_windows_score_every_token_once(tiny_lm):
    for n, L, s in [(8, 4, 2), (100, 16, 5), (100, 16, 16), (3, 16, 8), (50, 2, 1)]:
        wins = tiny_lm.rolling_windows(n, L, s)
        scored = []
        for b, e, k in wins:
            assert e - b <= L and 1 <= k < e - b + (1 if b == 0 else 0) + 1
            assert e - k - 1 >= b  # every scored token has its previous token in the window
            scored += range(e - k, e)
        assert scored == list(range(1, n))


def _hand_nll(lm, text):
    ids = [lm.prefix_token()] + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    logits = lm.model(torch.tensor([ids])).logits[0]  # (T, V)
    lp = torch.log_softmax(logits.double(), -1)
    return -sum(lp[i - 1, ids[i]].item() for i in range(1, len(ids))), len(ids) - 1


def test_single_window_perplexity_by_hand(tiny_lm):
    text = "The weather is nice today. Once upon a time."
    ll, n = tiny_lm.loglikelihood_rolling(text, max_length=256, stride=128)
    nll, m = _hand_nll(tiny_lm, text)
    assert n == m == len(tiny_lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert math.exp(-ll / n) == pytest.approx(math.exp(nll / m), rel=1e-5)


def test_zeroed_output_layer_gives_vocab_size_perplexity(tiny_model_dir):
    lm = load(str(tiny_model_dir))
    with torch.no_grad():
        lm.model.lm_head.weight.zero_()
    ll, n = lm.loglikelihood_rolling("Hello, who are you? " * 20, max_length=32, stride=8)
    assert math.exp(-ll / n) == pytest.approx(lm.model.config.vocab_size, rel=1e-5)


def test_smaller_stride_does_not_raise_perplexity_much(trained_tiny_lm):
    lm = trained_tiny_lm
    text = " ".join(["The weather is nice today. Once upon a time there was a small model."] * 12)

    def ppl(stride):
        ll, n = lm.loglikelihood_rolling(text, 64, stride)
        return math.exp(-ll / n)

    p63, p32, p8 = ppl(63), ppl(32), ppl(8)
    assert p63 < 100  # the model learned the text: context matters, so the check is not vacuous
    assert p8 <= p63 * 1.02 and p32 <= p63 * 1.02


def test_batched_scoring_equals_unbatched(tiny_lm):
    text = "Once upon a time there was a small model that liked to talk. " * 8
    a = tiny_lm.token_logprobs(text, 48, 16, batch_size=1)[1]
    b = tiny_lm.token_logprobs(text, 48, 16, batch_size=8)[1]
    assert a == pytest.approx(b, abs=1e-4)


def test_loglikelihood_of_continuation_matches_rolling(tiny_lm):
    """log p(cont | ctx) = rolling(ctx + cont) - rolling(ctx), when ctx + cont tokenizes as ctx then cont."""
    ctx, cont = "Hello, who are you?", " I am a helpful assistant."
    tok = tiny_lm.tokenizer
    ctx_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    cont_ids = tok(cont, add_special_tokens=False)["input_ids"]
    assert tok(ctx + cont, add_special_tokens=False)["input_ids"] == ctx_ids + cont_ids  # the identity holds
    ll, n = tiny_lm.loglikelihood([tiny_lm.prefix_token()] + ctx_ids, cont)
    whole, n_whole = tiny_lm.loglikelihood_rolling(ctx + cont)
    head, n_head = tiny_lm.loglikelihood_rolling(ctx)
    assert n == len(cont_ids) == n_whole - n_head
    assert ll == pytest.approx(whole - head, abs=1e-3)
    # and the context matters (a wrong context gives another number)
    other, _ = tiny_lm.loglikelihood([tiny_lm.prefix_token()] + tok("Once upon a time", add_special_tokens=False)["input_ids"], cont)
    assert abs(other - ll) > 1e-3


def test_per_prompt_token_caps_in_batch_equal_single_runs(tiny_lm):
    caps = [3, 20, 7, 12]
    single = [tiny_lm.generate(p, GREEDY.replace(max_new_tokens=c)) for p, c in zip(PROMPTS, caps)]
    assert tiny_lm.generate_batch(PROMPTS, GREEDY, batch_size=4, max_new_tokens=caps) == single

