import math

import pytest
import torch

from llmdemo import internals

TEXT = "The weather is nice today. Once upon a time."


def test_tokens_round_trip(tiny_lm):
    toks = internals.tokens(tiny_lm, TEXT)
    assert "".join(t.text for t in toks) == TEXT
    assert [t.id for t in toks] == tiny_lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]


def test_next_token_probabilities_sum_to_one(tiny_lm):
    top, total = internals.next_token_distribution(tiny_lm, TEXT, k=5)
    assert total == pytest.approx(1.0, abs=1e-4)
    ps = [p for _, p in top]
    assert ps == sorted(ps, reverse=True) and 0 < sum(ps) <= 1 + 1e-6
    # the top candidate is what greedy generation picks next
    ids = [tiny_lm.prefix_token()] + tiny_lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    from llmdemo.config import GenerationConfig

    s = tiny_lm.stream(ids, GenerationConfig(temperature=0, max_new_tokens=1))
    s.text()
    assert s.request.tokens[0] == top[0][0].id


def test_surprisal_sum_equals_perplexity_nll(tiny_lm):
    scores = internals.surprisal(tiny_lm, TEXT)
    ll, n = tiny_lm.loglikelihood_rolling(TEXT)
    assert sum(s for _, s in scores) == pytest.approx(-ll, rel=1e-6) and len(scores) == n
    assert internals.perplexity_of(scores) == pytest.approx(math.exp(-ll / n), rel=1e-6)


def test_attention_rows_sum_to_one_and_are_causal(tiny_lm):
    toks, att, notice = internals.attention(tiny_lm, TEXT, layer=1, head=0)
    T = len(toks)
    assert att.shape == (T, T) and notice is None
    assert torch.allclose(att.sum(-1), torch.ones(T), atol=1e-5)
    assert torch.all(torch.triu(att, diagonal=1) == 0)  # no weight on later tokens
    avg = internals.attention(tiny_lm, TEXT, layer=0)[1]
    assert torch.allclose(avg.sum(-1), torch.ones(T), atol=1e-5)
    assert tiny_lm.model.config._attn_implementation != "eager"  # the fast path is restored


def test_attention_caps_long_text_and_checks_ranges(tiny_lm):
    toks, att, notice = internals.attention(tiny_lm, "word " * 300, max_tokens=32)
    assert len(toks) == 32 and "first 31 tokens" in notice
    with pytest.raises(ValueError, match="layer must be in"):
        internals.attention(tiny_lm, TEXT, layer=7)


def test_encoder_decoder_says_what_does_not_apply(tiny_seq2seq_lm):
    assert internals.tokens(tiny_seq2seq_lm, "Hello")
    with pytest.raises(ValueError, match="encoder-decoder"):
        internals.surprisal(tiny_seq2seq_lm, "Hello")
