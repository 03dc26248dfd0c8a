"""The lean Llama forward (llmdemo/backends/hf/lean/fast.py) against the transformers forward it replaces."""

import pytest
import torch

from llmdemo.config import GenerationConfig
from llmdemo.backends.hf.lean.fast import FastLlama, unsupported
from llmdemo.load import load
from conftest import GREEDY

GREEDY = GREEDY.replace(max_new_tokens=24)


def _ids(lm, text):
    return torch.tensor([lm.encode(text)])


def test_full_sequence_logits_match_transformers(tiny_lm):
    model = tiny_lm.model
    ids = _ids(tiny_lm, "the cat sat on the mat and looked at the bird")
    fast = FastLlama(model, torch.float32)
    cache = fast.new_kv(ids.shape[1])
    got = fast.forward(ids, torch.arange(ids.shape[1])[None], cache, 0, last_only=False)
    with torch.no_grad():
        want = model(input_ids=ids).logits
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cached_steps_match_transformers(tiny_lm):
    """Prefill a prefix, then feed tokens one at a time: each step's logits equal a full forward's."""
    model = tiny_lm.model
    ids = _ids(tiny_lm, "a dog ran to the park with a red ball")
    n = ids.shape[1]
    fast = FastLlama(model, torch.float32)
    cache = fast.new_kv(n)
    fast.forward(ids[:, :4], torch.arange(4)[None], cache, 0)
    with torch.no_grad():
        want = model(input_ids=ids).logits[0]
    for t in range(4, n):
        got = fast.forward(ids[:, t:t + 1], torch.tensor([[t]]), cache, t)
        torch.testing.assert_close(got[0], want[t], atol=1e-4, rtol=1e-4)
    # a chunk of several tokens after a cached prefix (the causal mask with an offset)
    cache2 = fast.new_kv(n)
    fast.forward(ids[:, :3], torch.arange(3)[None], cache2, 0)
    got = fast.forward(ids[:, 3:], torch.arange(3, n)[None], cache2, 3, last_only=False)
    torch.testing.assert_close(got[0], want[3:], atol=1e-4, rtol=1e-4)


def test_rows_of_different_lengths_decode_together_as_alone(tiny_lm):
    """One decode step for sequences of three lengths (each row's attention over its own cache, no padding)
    gives each row the logits it gets stepped alone."""
    fast = FastLlama(tiny_lm.model, torch.float32)
    rows = [tiny_lm.encode(t) for t in ("hello", "the quick brown fox jumps", "a b c")]
    nxt = torch.tensor([tiny_lm.encode(" the")[0]] * len(rows))

    def prefilled():
        caches = [fast.new_kv(4) for _ in rows]  # smaller than the rows: the caches grow
        for r, c in zip(rows, caches):
            fast.forward(torch.tensor([r]), torch.arange(len(r))[None], c, 0)
        return caches

    together = fast.decode(nxt, prefilled())
    assert torch.isfinite(together).all()
    alone = [fast.decode(nxt[i:i + 1], [c])[0] for i, c in enumerate(prefilled())]
    for i, r in enumerate(rows):
        torch.testing.assert_close(together[i], alone[i], atol=1e-4, rtol=1e-4)
        # and equal to a full forward of the row with the new token (an independent path)
        with torch.no_grad():
            want = tiny_lm.model(input_ids=torch.tensor([r + [int(nxt[i])]])).logits[0, -1]
        torch.testing.assert_close(together[i], want, atol=1e-4, rtol=1e-4)


def test_float32_lean_decoding_equals_transformers_decoding(tiny_lm):
    prompts = ["the cat", "once upon a time", [{"role": "user", "content": "hi there"}]]
    try:
        tiny_lm.set_decode("transformers")
        want = [tiny_lm.generate(p, GREEDY) for p in prompts]
        want_batch = tiny_lm.generate_batch(prompts, GREEDY, batch_size=3)
        assert tiny_lm.set_decode("float32") == "float32"
        assert [tiny_lm.generate(p, GREEDY) for p in prompts] == want
        assert tiny_lm.generate_batch(prompts, GREEDY, batch_size=3) == want_batch
        sampled = GenerationConfig(temperature=0.9, top_p=0.9, max_new_tokens=16, seed=3, stop=())
        tiny_lm.set_decode("transformers")
        want_sampled = tiny_lm.generate("the cat", sampled)
        tiny_lm.set_decode("float32")
        assert tiny_lm.generate("the cat", sampled) == want_sampled
    finally:
        tiny_lm.set_decode("auto")


def test_float16_weights_stay_close_to_float32(tiny_lm):
    ids = _ids(tiny_lm, "the cat sat on the mat")
    pos = torch.arange(ids.shape[1])[None]
    f32, f16 = FastLlama(tiny_lm.model, torch.float32), FastLlama(tiny_lm.model, torch.float16)
    a = f32.forward(ids, pos, f32.new_kv(ids.shape[1]), 0, last_only=False)
    b = f16.forward(ids, pos, f16.new_kv(ids.shape[1]), 0, last_only=False)
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 0.05  # rounded weights, yet close
    # the model's own weights are untouched: its output layer is shared, the rest copied
    assert f16.head.data_ptr() == tiny_lm.model.get_output_embeddings().weight.data_ptr()
    assert f32.nbytes() == 0 < f16.nbytes()
    # float32 shares storage with the model: its q/k/v layers now view the fused tensor
    q = tiny_lm.model.model.layers[0].self_attn.q_proj.weight
    assert q.data_ptr() == f32.layers[0][2].data_ptr()


def test_auto_reports_the_kernel_it_chose_and_how(tiny_model_dir, monkeypatch, tmp_path):
    """With two candidates, "auto" measures (llmdemo.backends.hf.lean.tuning) and the timer's answer is the choice, reported
    as measured: float32 faked faster here, the opposite of what a default of float16 would give."""
    from llmdemo.backends.hf.lean import tuning

    monkeypatch.setenv("LLMDEMO_DECODE_CANDIDATES", "float16,float32")
    monkeypatch.setenv("LLMDEMO_CACHE", str(tmp_path))
    calls = []

    def fake_time(fast, ids, tries, steps):
        calls.append(fast.kernel)
        return (1.0, 1.0) if fast.kernel == "float32" else (2.0, 2.0)

    monkeypatch.setattr(tuning, "_time", fake_time)
    lm = load(str(tiny_model_dir))
    info = lm.info()
    assert "float16" in calls and "float32" in calls  # both were timed
    assert lm.decode_mode == info["decode"] == "float32" and info["decode_choice"]["source"] == "measured"


def test_models_without_lean_forward_keep_their_own(tiny_seq2seq_lm):
    assert unsupported(tiny_seq2seq_lm.model)
    assert tiny_seq2seq_lm.decode_mode == "transformers"
    with pytest.raises(ValueError, match="not available"):
        tiny_seq2seq_lm.set_decode("float16")
    assert tiny_seq2seq_lm.decode_mode == "transformers"  # unchanged after the refusal


def test_unknown_decode_mode_is_refused(tiny_lm):
    with pytest.raises(ValueError, match="unknown decode mode 'int3'"):
        tiny_lm.set_decode("int3")
    assert tiny_lm.decode_mode == "float16"


def test_load_with_decode_option(tiny_model_dir):
    lm = load(str(tiny_model_dir), decode="float32")
    assert lm.decode_mode == "float32"
    from llmdemo.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown decode mode"):
        load(str(tiny_model_dir), decode="fast")


def test_chunk_ends_and_boundaries():
    from llmdemo.backends.hf.lean.kvcache import chunk_ends, is_boundary, last_boundary

    assert chunk_ends(10) == [10]
    assert chunk_ends(64) == [64]
    assert chunk_ends(100) == [64, 100]
    assert chunk_ends(300) == [64, 128, 256, 300]
    assert chunk_ends(1000) == [64, 128, 256, 512, 768, 1000]  # no chunk longer than 256 tokens
    assert [n for n in range(1, 800) if is_boundary(n)] == [64, 128, 256, 512, 768]
    # every boundary below n is a chunk end of every longer prompt: the property prefix reuse rests on
    for n in range(1, 1100, 7):
        assert all(e in chunk_ends(m) for m in (n + 1, n + 300) for e in chunk_ends(n) if is_boundary(e))
        assert last_boundary(n) == max([e for e in chunk_ends(n) if is_boundary(e)], default=0)


def test_prefix_cache_reuses_and_does_not_change_output(trained_tiny_lm):
    """Same chunks with or without the cache: identical output, and the reuse really happens."""
    lm = trained_tiny_lm
    system = "You answer briefly and only about animals, plants and the weather in small towns. " * 3
    a = [{"role": "system", "content": system}, {"role": "user", "content": "the cat"}]
    b = [{"role": "system", "content": system}, {"role": "user", "content": "a dog in the park"}]
    assert 130 < len(lm.encode(a)) < 200
    cfg = GenerationConfig(temperature=0.8, max_new_tokens=12, seed=5, stop=())
    outs = {}
    for name, prompt in (("a", a), ("b", b)):
        lm.clear_prefix_cache()
        outs[name] = lm.generate(prompt, GREEDY)  # fresh: nothing to reuse
        assert lm.last_prefix_reused == 0
        outs[name + "-sampled"] = lm.generate(prompt, cfg)
        assert lm.last_prefix_reused >= 128  # the same prompt again: all whole chunks reused
    lm.clear_prefix_cache()
    lm.generate(a, GREEDY)
    assert lm.generate(b, GREEDY) == outs["b"]  # b after a: the shared system prompt is reused
    assert lm.last_prefix_reused >= 64
    assert lm.generate(b, cfg) == outs["b-sampled"]
    assert lm.generate(a, cfg) == outs["a-sampled"]
    # the cache is the lean forward's: the transformers forward gives the same greedy text
    try:
        lm.set_decode("float32")
        lean32 = lm.generate(b, GREEDY)
        lm.set_decode("transformers")
        assert lm.generate(b, GREEDY) == lean32
    finally:
        lm.set_decode("auto")


def test_prefix_cache_is_not_shared_by_concurrent_generations(trained_tiny_lm):
    """Two interleaved streams each get their own cache; both equal their one-at-a-time outputs."""
    lm = trained_tiny_lm
    p1 = "the cat sat on the mat and looked at the bird in the tree near the house " * 4
    p2 = "the cat sat on the mat and looked at the dog in the garden behind the shed " * 4
    cfg = GenerationConfig(temperature=0, max_new_tokens=10, stop=())
    lm.clear_prefix_cache()
    want1, want2 = lm.generate(p1, cfg), lm.generate(p2, cfg)
    s1, s2 = lm.stream(p1, cfg), lm.stream(p2, cfg)
    i1, i2 = iter(s1), iter(s2)
    parts1, parts2 = [], []
    for _ in range(30):
        parts1 += [c for c in [next(i1, None)] if c is not None]
        parts2 += [c for c in [next(i2, None)] if c is not None]
    assert "".join(parts1) == want1 and "".join(parts2) == want2


def test_finished_rows_leave_the_batch(tiny_lm, monkeypatch):
    """A row that hits its token cap stops being computed; the others' outputs do not change."""
    prompts = ["the cat", "once upon a time there was", "a b c d"]
    caps = [6, 20, 20]
    cfg = GenerationConfig(temperature=0, max_new_tokens=20, stop=())
    try:
        tiny_lm.set_decode("float32")
        single = [tiny_lm.generate(p, cfg.replace(max_new_tokens=c)) for p, c in zip(prompts, caps)]
        sizes = []
        real = FastLlama.decode

        def spy(self, ids, *a, **k):
            sizes.append(ids.shape[0])
            return real(self, ids, *a, **k)

        monkeypatch.setattr(FastLlama, "decode", spy)
        batched = tiny_lm.generate_batch(prompts, cfg, batch_size=3, max_new_tokens=caps)
    finally:
        monkeypatch.undo()
        tiny_lm.set_decode("auto")
    assert batched == single
    assert 3 in sizes  # the three rows stepped together
    last3 = len(sizes) - sizes[::-1].index(3)
    after = sizes[last3:]
    assert len(after) >= 5 and max(after) == 2  # then two went on without the finished one
