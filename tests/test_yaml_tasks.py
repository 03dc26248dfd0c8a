"""Tasks declared in YAML files: end to end on the tiny model (multiple choice and generation), the shipped BBQ
declaration equal to the Python reference, and bad files refused with one line naming the key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eval.runner import RunError, RunSpec, run
from eval.taskfile import TaskFileError, load_task_file

CAPITALS = [{"id": "fr", "country": "France", "options": ["Paris", "Lyon", "Nice"], "label": 0},
            {"id": "de", "country": "Germany", "options": ["Munich", "Berlin"], "label": 1},
            {"id": "it", "country": "Italy", "options": ["Rome", "Milan", "Turin"], "label": "Rome"}]

MC_YAML = """\
name: capitals-test
kind: multiple_choice
data: capitals.jsonl
prompt: "Q: What is the capital of {{ country }}?\\nA:"
choices: options
answer: label
metric: acc
notes: ["a toy task"]
"""

GEN_YAML = """\
name: echo-test
kind: generate
data: capitals.jsonl
prompt: "The capital of {{ country }} is"
reference: "options[0]"
metric: exact_match
max_new_tokens: 4
"""


def _files(tmp_path, name, text):
    (tmp_path / "capitals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CAPITALS), encoding="utf-8")
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_a_multiple_choice_task_file_end_to_end(tiny_lm, tmp_path):
    path = _files(tmp_path, "capitals.yaml", MC_YAML)
    res = run(RunSpec(task=str(path), data=None, output=str(tmp_path / "o")), tiny_lm)
    assert res["task"] == "capitals-test" and res["main_metric"] == "acc" and res["n_examples"] == 3
    rows = [json.loads(line) for line in open(tmp_path / "o" / "predictions.jsonl", encoding="utf-8")]
    want = []
    for rec, row in zip(CAPITALS, rows):
        prompt = f"Q: What is the capital of {rec['country']}?\nA:"
        lls = [ll for ll, _ in tiny_lm.loglikelihood_batch([(prompt, " " + c) for c in rec["options"]])]
        assert row["loglikelihoods"] == pytest.approx(lls) and row["input"] == prompt
        gold = rec["options"].index(rec["label"]) if isinstance(rec["label"], str) else rec["label"]
        assert row["gold"] == [gold]
        want.append(float(max(range(len(lls)), key=lls.__getitem__) == gold))
    assert res["metrics"]["acc"] == pytest.approx(sum(want) / 3)
    assert "a toy task" in (tmp_path / "o" / "report.md").read_text(encoding="utf-8")
    # the declaration is part of the run's settings: a changed file does not resume into the same folder
    path.write_text(MC_YAML.replace("A:", "Answer:"), encoding="utf-8")
    with pytest.raises(RunError, match="task_file_sha256"):
        run(RunSpec(task=str(path), data=None, output=str(tmp_path / "o")), tiny_lm)


def test_a_reproducible_multiple_choice_run_scores_the_same_tokens(tiny_lm, tmp_path):
    """--reproducible scores each pair alone but encodes it as the batch does (lm-eval's _encode_pair: a
    prompt's trailing space goes to the choice), so only the batching differs, never the tokens."""
    path = _files(tmp_path, "spaced.yaml", MC_YAML.replace('A:"', 'A: "') + 'target_delimiter: ""\n')
    a = run(RunSpec(task=str(path), data=None, output=str(tmp_path / "a")), tiny_lm)
    b = run(RunSpec(task=str(path), data=None, output=str(tmp_path / "b"), reproducible=True), tiny_lm)
    rows = [[json.loads(line) for line in open(tmp_path / n / "predictions.jsonl", encoding="utf-8")] for n in "ab"]
    for x, y in zip(*rows):
        assert x["n_tokens"] == y["n_tokens"] and x["loglikelihoods"] == pytest.approx(y["loglikelihoods"], abs=1e-4)
    assert a["metrics"] == b["metrics"] and b["batching"]["reproducible"] is True


def test_a_generation_task_file_end_to_end(tiny_lm, tmp_path):
    path = _files(tmp_path, "echo.yaml", GEN_YAML)
    res = run(RunSpec(task=str(path), data=None, output=str(tmp_path / "g")), tiny_lm)
    rows = [json.loads(line) for line in open(tmp_path / "g" / "predictions.jsonl", encoding="utf-8")]
    # rows are written as they finish (the rows of a batch refill), so in any order
    assert sorted(r["reference"] for r in rows) == ["Munich", "Paris", "Rome"]
    assert res["metrics"]["exact_match"] == pytest.approx(
        100 * sum(r["prediction"].strip() == r["reference"] for r in rows) / 3)
    assert res["config"]["temperature"] == 0.0  # a task file's generation is greedy


def test_a_generation_task_file_runs_on_the_built_in_tasks_path(tiny_lm, tmp_path, monkeypatch):
    """A failed example is counted, not written, and the run goes on (a few failures are tolerated); the same
    command retries it: what the built-in generation tasks get, a task file gets too."""
    import llmdemo.engine.scheduler as sched

    path = _files(tmp_path, "echo.yaml", GEN_YAML)
    calls, real = [0], sched.Sampler

    class Flaky(real):
        def __call__(self, logits, seen):
            calls[0] += 1
            if calls[0] == 2:  # one row's step fails: that example alone ends with an error
                raise ValueError("NaN in the logits")
            return super().__call__(logits, seen)
    monkeypatch.setattr(sched, "Sampler", Flaky)
    spec = dict(task=str(path), data=None, output=str(tmp_path / "g"), batch_size=2)
    res = run(RunSpec(**spec), tiny_lm)
    rows = [json.loads(line) for line in open(tmp_path / "g" / "predictions.jsonl", encoding="utf-8")]
    assert res["examples"]["failed"] == 1 and len(rows) == 2 == res["n_examples"]
    assert res["examples"]["failed_ids"][0] not in {r["id"] for r in rows}
    monkeypatch.setattr(sched, "Sampler", real)
    again = run(RunSpec(**spec), tiny_lm)
    assert again["n_examples"] == 3 and again["examples"]["failed"] == 0


def test_the_shipped_bbq_declaration_equals_the_python_reference(benchmarks):
    from eval import bbq
    from eval.datasets import load_records
    from eval.tasks import get_task

    task = get_task("bbq")
    assert task.source.endswith("taskfiles/bbq.yaml") and bbq.SIGN in task.notes
    records = task.prepare(load_records(benchmarks / "bbq_slice.jsonl", "bbq"))
    for r in records:
        assert task.requests(r) == [("loglikelihood", (bbq.prompt(r), " " + c)) for c in bbq.choices(r)]
        row = task.process(r, [(-float(i), 1) for i in range(12)])
        assert row["gold"] == bbq.gold(r), r["id"]


def _lm_eval_xcopa_zh(doc: dict) -> tuple[str, list[str]]:
    """lm-evaluation-harness 0.4.x's xcopa_zh, written out from its utils.py: doc_to_text drops the premise's
    last character and adds the connector; doc_to_choice lowers each choice's first letter."""
    conn = {"cause": "因为", "effect": "所以"}[doc["question"]]
    text = doc["premise"].strip()[:-1] + f" {conn}"
    return text, [c[0].lower() + c[1:] for c in (doc["choice1"], doc["choice2"])]


def test_the_shipped_xcopa_zh_declaration_equals_lm_evals(benchmarks, tiny_lm, tmp_path):
    from eval.datasets import load_records
    from eval.tasks import get_task

    task = get_task("xcopa_zh")
    assert task.source.endswith("taskfiles/xcopa_zh.yaml") and task.main_metric == "acc"
    for data, n in (("xcopa_zh_test_dev.jsonl", 375), ("xcopa_zh_validation.jsonl", 100)):
        records = task.prepare(load_records(benchmarks / data, "xcopa_zh"))
        assert len(records) == n
        for r in records:
            text, choices = _lm_eval_xcopa_zh(r)
            assert task.requests(r) == [("loglikelihood", (text, " " + c)) for c in choices], r["id"]
            assert task.process(r, [(-2.0, 1), (-1.0, 1)])["gold"] == [r["label"]]
    # the shipped name is the task file's default data; the report shows the Chinese prompt and choices
    res = run(RunSpec(task="xcopa_zh", data=None, limit=4, output=str(tmp_path / "x")), tiny_lm)
    assert res["n_examples"] == 4 and res["data"].endswith("xcopa_zh_test_dev.jsonl")
    report = (tmp_path / "x" / "report.md").read_text(encoding="utf-8")
    first = task.prepare(load_records(benchmarks / "xcopa_zh_test_dev.jsonl", "xcopa_zh"))[0]
    assert _lm_eval_xcopa_zh(first)[0] in report


@pytest.mark.parametrize("text,key,problem", [
    ("kind: multiple_choice\ndata: d.jsonl\nprompt: x\nchoices: c\nanswer: a\n", "name", "missing"),
    ("name: t\nkind: multiple_choice\ndata: d.jsonl\npromt: x\nchoices: c\nanswer: a\n", "promt",
     "unknown key; did you mean 'prompt'"),
    ("name: t\nkind: classify\ndata: d.jsonl\nprompt: x\n", "kind", "must be one of multiple_choice, generate"),
    ("name: t\nkind: multiple_choice\ndata: d.jsonl\nprompt: x\nchoices: c\nanswer: a\nmetric: bleu\n", "metric",
     "a multiple_choice task takes acc, acc_norm, bbq"),
    ("name: t\nkind: multiple_choice\ndata: d.jsonl\nprompt: x\nchoices: \"[a, \"\nanswer: a\n", "choices",
     "not a valid Jinja expression"),
    ("name: t\nkind: generate\ndata: d.jsonl\nprompt: \"{{ x \"\nreference: r\n", "prompt", "not a valid Jinja"),
    ("name: t\nkind: generate\ndata: nowhere.jsonl\nprompt: x\nreference: r\n", "data", "no such file"),
    ("name: t\nkind: generate\ndata: d.jsonl\nprompt: x\nreference: r\nmax_new_tokens: -3\n", "max_new_tokens",
     "must be a positive whole number"),
    ("name: t\nkind: generate\ndata: d.jsonl\nprompt: [x]\nreference: r\n", "prompt", "must be a string"),
    ("name: t\nkind: generate\ndata: d.jsonl\nprompt: x\nreference: r\nconstants: [1, 2]\n", "constants",
     "must be a mapping"),
    ("name: translation\nkind: generate\ndata: d.jsonl\nprompt: x\nreference: r\n", "name", "already a task"),
    ("name: \"a b\"\nkind: generate\ndata: d.jsonl\nprompt: x\nreference: r\n", "name", "letters, digits"),
])
def test_a_bad_task_file_is_refused_with_its_key_named(tmp_path, text, key, problem):
    from eval.tasks import get_task

    (tmp_path / "d.jsonl").write_text('{"x": "a", "c": ["p", "q"], "a": 0, "r": "p"}\n', encoding="utf-8")
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TaskFileError) as e:
        get_task(str(p))
    msg = str(e.value)
    assert "\n" not in msg and f"key {key!r}: " in msg and problem in msg, msg


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text,problem", [("name: [unclosed\n", "not valid YAML"), ("- a\n- b\n", "expected a mapping"),
                                          # issue 37, finding 17: a billion nodes from nine lines; a huge file
                                          (BOMB, r"aliases \(\*name\) are not allowed"),
                                          ("notes: " + "x" * 300_000 + "\n", "over 256 KB")])
def test_a_file_that_is_not_a_task_mapping_is_one_line(tmp_path, text, problem):
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TaskFileError, match=problem) as e:
        load_task_file(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("answer,problem", [("label + 5", "index 5 is not among the 2 choices"),
                                            ("'Lisbon'", "'Lisbon' is not one of the choices"),
                                            # a name no record has: the data check names the field
                                            ("nothing", "line 1: missing field 'nothing' for task bad-answer")])
def test_an_answer_that_fails_on_a_record_is_refused_before_the_model(tmp_path, answer, problem):
    from fakes import FakeLM

    (tmp_path / "d.jsonl").write_text('{"id": "x", "q": "a", "options": ["p", "q"], "label": 0}\n', encoding="utf-8")
    p = tmp_path / "t.yaml"
    p.write_text(f"name: bad-answer\nkind: multiple_choice\ndata: d.jsonl\nprompt: '{{{{q}}}}'\nchoices: options\n"
                 f"answer: \"{answer}\"\n", encoding="utf-8")
    from eval.datasets import DataError

    lm = FakeLM()
    with pytest.raises((RunError, DataError), match=problem):
        run(RunSpec(task=str(p), data=None, output=str(tmp_path / "o")), lm)
    assert lm.history == []


def test_the_cli_runs_a_task_file_and_refuses_a_bad_one_in_one_line(tmp_path, tiny_model_dir):
    path = _files(tmp_path, "capitals.yaml", MC_YAML)
    bad = tmp_path / "bad.yaml"
    bad.write_text(MC_YAML.replace("metric: acc", "metric: accuracy"), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "eval", "run", "--task", str(bad), "--output", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "key 'metric'" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "eval", "run", "--task", str(path), "--model", str(tiny_model_dir),
                        "--output", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "o" / "results.json").read_text())["task"] == "capitals-test"


def test_a_prompt_the_sandbox_refuses_is_one_line(tmp_path):
    """Issue 37, finding 17: the template sandbox's refusals ended in a traceback."""
    from fakes import FakeLM

    (tmp_path / "d.jsonl").write_text('{"id": "x", "source": "a", "target": "b"}\n', encoding="utf-8")
    p = tmp_path / "t.yaml"
    p.write_text("name: escape\nkind: generate\ndata: d.jsonl\nprompt: \"{{ source.__class__.__mro__ }}\"\n"
                 "reference: target\n", encoding="utf-8")
    lm = FakeLM()
    with pytest.raises((TaskFileError, RunError), match="refused by the template sandbox|unsafe") as e:
        run(RunSpec(task=str(p), data=None, output=str(tmp_path / "o")), lm)
    assert "\n" not in str(e.value) and lm.history == []
