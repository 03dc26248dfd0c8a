"""The multiple-choice kind: acc and acc_norm against a plain forward pass; batched scoring with a shared
context equals one pass per pair; a backend that cannot score is refused with the reason."""

from __future__ import annotations

import json
import math

import pytest
import torch

from eval.multiple_choice import MultipleChoice, choice_metrics
from eval.runner import RunError, RunSpec, run

RECORDS = [
    {"id": "0", "q": "The weather is nice today.", "options": ["Le temps est beau.", "Once upon a time", "no"],
     "label": 0},
    {"id": "1", "q": "Hello, who are you?", "options": ["I am a helpful assistant.", "The city council", "你好"],
     "label": 2},
    {"id": "2", "q": "Summarize the following text in one sentence.", "options": ["Once", "The river next year."],
     "label": 1},
]
MC = MultipleChoice(prompt=lambda r: r["q"], choices=lambda r: r["options"], gold=lambda r: [r["label"]])


def _plain_loglikelihood(lm, context: str, continuation: str) -> float:
    """log p(continuation | context) by one forward pass of the whole text, the continuation's tokens being
    those after the context's own (lm-evaluation-harness's _encode_pair)."""
    tok = lm.tokenizer
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    assert whole[: len(ctx)] == ctx
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=torch.tensor([whole])).logits[0].float(), dim=-1)  # (T, V)
    return math.fsum(float(logp[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))


def test_acc_and_acc_norm_equal_a_plain_forward_pass(tiny_lm):
    accs, norms = [], []
    for r in RECORDS:
        lls = [_plain_loglikelihood(tiny_lm, r["q"], " " + c) for c in r["options"]]
        norm = [ll / len(c.encode("utf-8")) for ll, c in zip(lls, r["options"])]
        accs.append(float(max(range(len(lls)), key=lls.__getitem__) == r["label"]))
        norms.append(float(max(range(len(norm)), key=norm.__getitem__) == r["label"]))
        reqs = MC.requests(r)
        assert [a for _, a in reqs] == [(r["q"], " " + c) for c in r["options"]]
        row = MC.process(r, tiny_lm.loglikelihood_batch([a for _, a in reqs]))
        assert row["loglikelihoods"] == pytest.approx(lls, abs=1e-4)
        assert (row["acc"], row["acc_norm"]) == (accs[-1], norms[-1])
    got = choice_metrics([MC.process(r, tiny_lm.loglikelihood_batch([a for _, a in MC.requests(r)]))
                          for r in RECORDS], n=200)
    assert got["metrics"] == {"acc": pytest.approx(sum(accs) / 3), "acc_norm": pytest.approx(sum(norms) / 3)}
    lo, hi = got["ci95"]["acc"]
    assert lo <= got["metrics"]["acc"] <= hi


def test_shared_context_batch_equals_one_pass_per_pair(tiny_lm):
    pairs = [("Q: Who is there?\nA:", " Unknown"), ("Q: Who is there?\nA:", " The city council voted"),
             ("Q: Who is there?\nA: ", "Nobody"),  # the trailing space moves to the continuation, as in lm-eval
             ("", "Hello there"), ("Once upon", " a time")]
    got = tiny_lm.loglikelihood_batch(pairs)
    for (c, x), (ll, n) in zip(pairs, got):
        if c:
            k = len(c) - len(c.rstrip())
            c, x = (c[:-k], c[-k:] + x) if k else (c, x)
            assert ll == pytest.approx(_plain_loglikelihood(tiny_lm, c, x), abs=1e-4)
        else:
            assert (ll, n) == pytest.approx(tiny_lm.loglikelihood(c, x), abs=1e-4)


def test_a_backend_that_cannot_score_is_refused_with_the_reason(tmp_path):
    from fakes import FakeLM

    lm = FakeLM()
    lm.capabilities = frozenset({"generate"})
    lm.info = lambda: {"name": "fake", "backend": "fake-server"}
    with pytest.raises(RunError, match="bbq task .* not available with the fake-server backend"):
        run(RunSpec(task="bbq", data="bbq", output=str(tmp_path / "o"), limit=4), lm)


def test_a_multiple_choice_run_stores_each_choice_and_the_pick(tiny_lm, tmp_path):
    from test_bbq import RECORDS as BBQ

    data = tmp_path / "bbq.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in BBQ), encoding="utf-8")
    res = run(RunSpec(task="bbq", data=str(data), output=str(tmp_path / "o")), tiny_lm)
    rows = [json.loads(line) for line in open(tmp_path / "o" / "predictions.jsonl", encoding="utf-8")]
    assert len(rows) == len(BBQ) == res["n_examples"]
    for r in rows:
        assert len(r["loglikelihoods"]) == len(r["choices"]) == 12
        assert r["pick"] == max(range(12), key=r["loglikelihoods"].__getitem__)
        assert r["acc"] == (1.0 if r["pick"] in r["gold"] else 0.0)
    report = (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    assert "## Worst examples" in report and "0 is unbiased" in report and "By category" in report
