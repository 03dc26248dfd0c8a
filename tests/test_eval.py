"""Evaluation harness: metrics equal direct library calls; data errors name the line; resume is exact."""

import json
import math
import subprocess
import sys

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from eval import metrics
from eval.datasets import DataError, load_records
from eval.tasks import dialogue_examples
from eval.runner import RunError, RunSpec, run
from llmdemo.config import GenerationConfig

HYP = ["The cat sat on the mat.", "A quick brown fox jumps.", "It is raining today in Paris."]
REF = ["The cat is on the mat.", "The quick brown fox jumped.", "Today it rains in Paris."]


def test_bleu_chrf_equal_direct_sacrebleu():
    m = metrics.bleu_chrf(HYP, REF, "fr")
    assert m["bleu"] == sacrebleu.corpus_bleu(HYP, [REF]).score
    assert m["chrf"] == sacrebleu.corpus_chrf(HYP, [REF]).score
    assert "tok:13a" in m["signatures"]["bleu"]


def test_chinese_bleu_uses_zh_tokenizer():
    hyp, ref = ["今天天气很好。"], ["今天的天气很好。"]
    m = metrics.bleu_chrf(hyp, ref, "zh")
    assert "tok:zh" in m["signatures"]["bleu"]
    assert m["bleu"] == sacrebleu.corpus_bleu(hyp, [ref], tokenize="zh").score > 0


def test_bootstrap_ci_brackets_score():
    m = metrics.bleu_chrf(HYP * 4, REF * 4, "en", n_bootstrap=200)
    lo, hi = m["ci95"]["chrf"]
    assert lo <= m["chrf"] <= hi


def test_rouge_equals_rouge_score_on_latin_text():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    ours = metrics.rouge_per_example(HYP, REF)
    for o, h, r in zip(ours, HYP, REF):
        direct = scorer.score(r, h)
        for k in ("rouge1", "rouge2", "rougeL"):
            assert o[k] == pytest.approx(100 * direct[k].fmeasure)


def test_rouge_scores_chinese_and_lsum_uses_sentences():
    assert metrics.rouge(["今天天气很好。"], ["今天天气很好。"])["rouge1"] == 100.0
    assert metrics.sentences_per_line("One. Two! Three?") == "One.\nTwo!\nThree?"


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("lines,msg", [
    (['{"id": 1, "source": "a", "target": "b", "src_lang": "en", "tgt_lang": "fr"}', '{"id": 2, "source": '],
     "line 2: malformed JSON"),
    (['{"id": 1, "source": "a", "target": "b", "src_lang": "en"}'], "line 1: missing field 'tgt_lang'"),
    (['{"id": 1, "source": 5, "target": "b", "src_lang": "en", "tgt_lang": "fr"}'], "field 'source' must be str"),
    (['{"id": 1, "source": "a", "target": "b", "src_lang": "en", "tgt_lang": "fr"}',
      '{"id": 2, "source": "a", "target": "b", "src_lang": "en", "tgt_lang": "de"}'], "mixed language pairs"),
    ([""], "no examples"),
])
def test_bad_data_errors_name_the_problem(tmp_path, lines, msg):
    with pytest.raises(DataError, match=msg):
        load_records(_write(tmp_path, "d.jsonl", lines), "translation")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_records(tmp_path / "nope.jsonl", "translation")


def test_shipped_benchmarks_load(benchmarks):
    from eval.shipped import SHIPPED, shipped_list

    # every shipped name loads for its task, with the row count SOURCES.md gives
    counts = {name: n for name, _, n, _ in shipped_list()}
    for name, (_, task) in SHIPPED.items():
        assert len(load_records(name, task)) == (1 if task == "perplexity" else counts[name])
    assert counts["flores200-en-zh"] == 200 and counts["crowspairs"] == 1131 and counts["cnndm"] == 100
    assert len(load_records(benchmarks / "translation_flores200_devtest_en-zh.jsonl", "translation")) == 200
    d = dialogue_examples(load_records(benchmarks / "dialogue_topicalchat_test_freq.jsonl", "dialogue", limit=3))
    assert d[0]["history"][-1]["role"] == "assistant" and d[0]["message"] and d[0]["reference"]


def _tr_data(tmp_path, n=6):
    src = ["The weather is nice today.", "Hello, who are you?", "Once upon a time.", "The city council voted.",
           "I like apples.", "Where is the station?"]
    return _write(tmp_path, "tr.jsonl", [json.dumps({"id": i, "source": src[i % 6], "target": "Il fait beau.",
                                                     "src_lang": "en", "tgt_lang": "fr"}) for i in range(n)])


def test_translation_run_writes_everything(tiny_lm, tmp_path):
    spec = RunSpec("translation", str(_tr_data(tmp_path)), str(tmp_path / "out"),
                   config=GenerationConfig(temperature=0, max_new_tokens=8), batch_size=4)
    res = run(spec, tiny_lm)
    out = tmp_path / "out"
    preds = [json.loads(l) for l in open(out / "predictions.jsonl")]
    assert len(preds) == 6 and {"id", "prompt", "prediction", "reference", "bleu", "chrf"} <= set(preds[0])
    direct = sacrebleu.corpus_bleu([p["prediction"] for p in preds], [[p["reference"] for p in preds]])
    assert res["metrics"]["bleu"] == direct.score
    for k in ("signatures", "ci95", "model", "prompt_template", "config", "seed", "versions", "timing"):
        assert k in res
    assert (out / "report.md").read_text().startswith("# Evaluation: translation")
    assert "data:image/png;base64" in (out / "report.html").read_text()


def test_a_reproducible_run_equals_each_example_run_alone(tiny_lm, tmp_path):
    """--reproducible: each prediction token for token what a run of that one example gives; the results
    say what batching each run had (the batched run: 6 examples handed to the engine at once)."""
    data = _tr_data(tmp_path)
    cfg = GenerationConfig(temperature=0, max_new_tokens=8)
    rep = run(RunSpec("translation", str(data), str(tmp_path / "r"), config=cfg, batch_size=6, reproducible=True),
              tiny_lm)
    got = {json.loads(l)["id"]: json.loads(l)["prediction"] for l in open(tmp_path / "r" / "predictions.jsonl")}
    for k, line in enumerate(data.read_text().splitlines()):
        one = _write(tmp_path, f"one{k}.jsonl", [line])
        run(RunSpec("translation", str(one), str(tmp_path / f"one{k}"), config=cfg), tiny_lm)
        (alone,) = [json.loads(l) for l in open(tmp_path / f"one{k}" / "predictions.jsonl")]
        assert got[alone["id"]] == alone["prediction"], alone["id"]
    assert rep["batching"]["examples_at_once"] == 1 and rep["batching"]["reproducible"] is True
    report = (tmp_path / "r" / "report.md").read_text()
    assert rep["batching"]["max_sequences_per_step"] >= 1 and "one sequence at a time (--reproducible)" in report
    # said in words: greedy has no seed to speak of, and the timing is a sentence, not JSON
    assert "greedy (no sampling)" in report and "seed 0" not in report
    assert "**Timing**: " in report and "**Timing**: {" not in report
    batched = run(RunSpec("translation", str(data), str(tmp_path / "b"), config=cfg, batch_size=6), tiny_lm)
    assert batched["batching"]["examples_at_once"] == 6 and batched["batching"]["reproducible"] is False
    # a batched run does not resume as a reproducible one: its text may differ
    with pytest.raises(RunError, match="other settings"):
        run(RunSpec("translation", str(data), str(tmp_path / "b"), config=cfg, reproducible=True), tiny_lm)


def test_a_run_resumes_only_on_the_weight_type_it_started_with(tiny_lm, tmp_path, monkeypatch):
    """llama.cpp may run the shipped GGUF or its Q8_0 re-encoding (another CPU, another setting): a run begun on
    one does not resume on the other, or its outputs would mix two models."""
    data, cfg = _tr_data(tmp_path, n=2), GenerationConfig(temperature=0, max_new_tokens=4, stop=())
    info = tiny_lm.info()
    monkeypatch.setattr(tiny_lm, "info", lambda: {**info, "weights": {"type": "Q8_0"}})
    first = run(RunSpec("translation", str(data), str(tmp_path / "w"), config=cfg), tiny_lm)
    assert json.loads((tmp_path / "w" / "run.json").read_text())["weights"] == "Q8_0" and first["n_examples"] == 2
    monkeypatch.setattr(tiny_lm, "info", lambda: {**info, "weights": {"type": "Q4_1"}})
    with pytest.raises(RunError, match="weights differ"):
        run(RunSpec("translation", str(data), str(tmp_path / "w"), config=cfg), tiny_lm)


def test_resume_after_interruption_equals_full_run(tiny_lm, tmp_path):
    data = _tr_data(tmp_path)
    cfg = GenerationConfig(temperature=0, max_new_tokens=8)
    full = run(RunSpec("translation", str(data), str(tmp_path / "a"), config=cfg, batch_size=2), tiny_lm)
    b = tmp_path / "b"
    run(RunSpec("translation", str(data), str(b), config=cfg, batch_size=2), tiny_lm)
    lines = (b / "predictions.jsonl").read_text().splitlines(keepends=True)
    (b / "predictions.jsonl").write_text("".join(lines[:3]) + lines[3][:10])  # killed mid-write
    resumed = run(RunSpec("translation", str(data), str(b), config=cfg, batch_size=2), tiny_lm)
    assert resumed["metrics"] == full["metrics"] and resumed["n_examples"] == 6
    assert resumed["timing"]["examples_this_run"] == 3
    ids = [json.loads(l)["id"] for l in open(b / "predictions.jsonl")]
    assert sorted(ids) == sorted(set(ids))  # nothing scored twice
    with pytest.raises(RunError, match="other settings"):
        run(RunSpec("translation", str(data), str(b), config=cfg.replace(max_new_tokens=9)), tiny_lm)


def test_perplexity_run_matches_token_logprobs(tiny_lm, tmp_path):
    text = "The weather is nice today.\nOnce upon a time there was a small model.\n"
    p = tmp_path / "t.txt"
    p.write_text(text)
    res = run(RunSpec("perplexity", str(p), str(tmp_path / "ppl"), max_length=16, stride=8), tiny_lm)
    ids, lps = tiny_lm.token_logprobs(text, 16, 8)
    nll = -math.fsum(lps)
    assert res["metrics"]["perplexity"] == pytest.approx(math.exp(nll / len(ids)))
    assert res["metrics"]["word_perplexity"] == pytest.approx(math.exp(nll / metrics.count_words(text)))
    assert res["metrics"]["n_bytes"] == len(text.encode())


def test_a_perplexity_run_reads_at_most_max_tokens_of_a_text_and_says_so(tiny_lm, tmp_path, benchmarks):
    """Issue 37: the shipped WikiText-2 is one text of ~300,000 tokens; a hosted app cuts it (8,192 tokens)."""
    from webui.settings import AppSettings

    data = benchmarks / "wikitext2_raw_test.txt"
    res = run(RunSpec("perplexity", str(data), str(tmp_path / "ppl"), max_length=32, stride=16, max_tokens=100),
              tiny_lm)
    cut, _ = tiny_lm.truncate_text(data.read_text(encoding="utf-8"), 100)
    ids, lps = tiny_lm.token_logprobs(cut, 32, 16)
    assert res["metrics"]["perplexity"] == pytest.approx(math.exp(-math.fsum(lps) / len(ids)))
    assert len(ids) <= 101 and res["config"]["max_tokens"] == 100
    assert any("first 100 tokens" in n for n in res["notes"])
    assert AppSettings(hosted=True).eval_tokens_cap == 8192 and AppSettings(hosted=False).eval_tokens_cap is None


def test_summarization_and_dialogue_runs(tiny_lm, tmp_path, benchmarks):
    cfg = GenerationConfig(temperature=0, max_new_tokens=6)
    s = _write(tmp_path, "s.jsonl", [json.dumps({"id": i, "document": "The city council voted to build a bridge.",
                                                 "summary": "A bridge will be built."}) for i in range(3)])
    res = run(RunSpec("summarization", str(s), str(tmp_path / "s"), config=cfg), tiny_lm)
    assert set(res["metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    d = _write(tmp_path, "d.jsonl", [json.dumps({"id": 0, "turns": ["Hi there!", "Hello, how are you?", "Fine."]})])
    res = run(RunSpec("dialogue", str(d), str(tmp_path / "d"), config=cfg), tiny_lm)
    assert res["metrics"]["reference_perplexity"] > 1 and "bleu" in res["metrics"]


def test_eval_cli_bad_data_exits_2(tmp_path):
    bad = _write(tmp_path, "bad.jsonl", ['{"id": 1, "source": "a", "target": "b", "src_lang": "en", "tgt_lang": "fr"}',
                                         "{oops"])
    r = subprocess.run([sys.executable, "-m", "eval", "run", "--task", "translation", "--data", str(bad), "--output",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "line 2" in r.stderr


def test_compare_reports_deltas_and_paired_bootstrap(tiny_lm, tmp_path):
    from eval.__main__ import compare

    data = _tr_data(tmp_path)
    cfg = GenerationConfig(temperature=0, max_new_tokens=8)
    run(RunSpec("translation", str(data), str(tmp_path / "a"), config=cfg), tiny_lm)
    run(RunSpec("translation", str(data), str(tmp_path / "b"), config=cfg), tiny_lm)
    rows = [json.loads(l) for l in open(tmp_path / "b" / "predictions.jsonl")]
    for r in rows:
        r["prediction"] = r["reference"]  # system b is perfect
    (tmp_path / "b" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = compare(tmp_path / "a", tmp_path / "b", n_samples=200)
    line = next(l for l in text.splitlines() if l.startswith("| chrf"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(100.0) and float(cells[3]) > 0 and float(cells[4]) < 0.05
    assert (tmp_path / "b" / "compare.md").read_text() == text
