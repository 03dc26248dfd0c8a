"""Results that cannot be silently wrong: a completion the server aborted is retried and never stored as a
prediction, a run where too many examples fail stops with one line, empty predictions are scored without a
crash, a scoring error keeps the predictions and is re-scored without generating, and an in-process
generation that fails is an error for that example alone."""

from __future__ import annotations

import json

import pytest

from llmdemo.config import GenerationConfig

from conftest import free_port
from openai_server import ServerThread, make_app

CFG = GenerationConfig(temperature=0, max_new_tokens=8, stop=())


@pytest.fixture(scope="module")
def server(trained_tiny_lm):
    srv = ServerThread(make_app(trained_tiny_lm, "tiny"), free_port())
    yield srv
    srv.stop()


@pytest.fixture
def remote(server):
    from llmdemo.backends.openai import OpenAILM

    server.app.state.fail_next, server.app.state.die_after, server.app.state.fail_after = [], None, None
    server.app.state.abort_next, server.app.state.empty = 0, False
    lm = OpenAILM("tiny", base_url=server.url, retries=3)
    yield lm
    lm.close()


def _spec(benchmarks, out, limit=4, **kw):
    from eval.runner import RunSpec

    return RunSpec(task="translation", data=str(benchmarks / "translation_flores200_devtest_en-fr.jsonl"),
                   output=str(out), limit=limit, config=CFG, **kw)


def _rows(out):
    return [json.loads(line) for line in open(out / "predictions.jsonl")]


def test_an_aborted_completion_is_retried_and_never_stored(remote, server, benchmarks, tmp_path):
    from eval.runner import run

    clean = run(_spec(benchmarks, tmp_path / "clean"), remote)
    server.app.state.abort_next = 3  # three completions cut with no text and no finish reason
    got = run(_spec(benchmarks, tmp_path / "aborted"), remote)
    assert server.app.state.abort_next == 0
    assert got["examples"]["retried"] == 3 and got["examples"]["failed"] == 0
    rows = _rows(tmp_path / "aborted")
    assert {r["id"]: r["prediction"] for r in rows} == {r["id"]: r["prediction"] for r in _rows(tmp_path / "clean")}
    assert all(r["finish_reason"] in ("eos", "length") for r in rows)
    assert got["metrics"] == clean["metrics"]


def test_a_server_that_keeps_aborting_stops_the_run_with_one_line(remote, server, benchmarks, tmp_path):
    from eval.runner import RunError, run

    server.app.state.abort_next = 10_000
    with pytest.raises(RunError, match=r"examples failed, so the run stopped: CompletionAborted: .*"
                                       r"--interrupt_requests false") as e:
        run(_spec(benchmarks, tmp_path / "run", limit=8), remote)
    assert "\n" not in str(e.value)
    assert _rows(tmp_path / "run") == []  # nothing stored as if it were the model's output


def test_empty_predictions_from_the_model_are_scored_without_a_crash(remote, server, benchmarks, tmp_path):
    """chrF's bootstrap in sacrebleu 2.6.0 raised TypeError on mostly empty hypotheses; the run must score."""
    from eval.runner import run

    server.app.state.empty = True
    got = run(_spec(benchmarks, tmp_path / "run"), remote)
    assert got["metrics"]["chrf"] == 0.0 and got["metrics"]["bleu"] == 0.0
    assert got["ci95"]["chrf"] == [0.0, 0.0]
    assert got["examples"] == {"scored": 4, "failed": 0, "retried": 0, "empty_by_model": 4, "failed_ids": []}
    assert all(r["prediction"] == "" and r["finish_reason"] == "eos" for r in _rows(tmp_path / "run"))
    assert "4 empty as the model returned them" in (tmp_path / "run" / "report.md").read_text()


def test_degenerate_scores_get_intervals_in_plain_floats():
    from sacrebleu.metrics import CHRF

    from eval.metrics import bleu_chrf

    hyps, refs = ["", "", "", "the cat sat"], ["a dog", "the bird", "hello there", "the cat sat on"]
    with pytest.raises(TypeError):  # the library's own bootstrap, as the issue found it
        CHRF().corpus_score(hyps, [refs], n_bootstrap=200)
    got = bleu_chrf(hyps, refs, "en", n_bootstrap=200)
    assert got["chrf"] == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)
    lo, hi = got["ci95"]["chrf"]
    assert 0.0 <= lo < got["chrf"] < hi <= 100.0 and all(type(x) is float for x in (lo, hi))
    one = bleu_chrf(["the cat"], ["the cat"], "en", n_bootstrap=200)  # one example: no interval, no crash
    assert one["chrf"] == 100.0 and one["ci95"] == {}
    same = bleu_chrf(["a b c"] * 5, ["a b c"] * 5, "en", n_bootstrap=200)
    assert same["ci95"]["chrf"] == pytest.approx([100.0, 100.0])


def test_a_scoring_error_keeps_the_predictions_and_the_same_command_rescores(remote, server, benchmarks, tmp_path,
                                                                             monkeypatch):
    from eval import tasks as eval_tasks
    from eval.runner import RunError, run

    import dataclasses

    task = eval_tasks.get_task("translation")

    def broken(rows):
        raise ZeroDivisionError("float division by zero")
    monkeypatch.setitem(eval_tasks.TASKS, "translation", dataclasses.replace(task, score_run=broken))
    with pytest.raises(RunError, match="scoring failed .*ZeroDivisionError.* scores them again without generating"):
        run(_spec(benchmarks, tmp_path / "run"), remote)
    assert len(_rows(tmp_path / "run")) == 4
    assert "Scoring failed" in (tmp_path / "run" / "report.md").read_text()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["scoring_error"].startswith("ZeroDivisionError")
    monkeypatch.setitem(eval_tasks.TASKS, "translation", task)
    before = server.app.state.requests
    got = run(_spec(benchmarks, tmp_path / "run"), remote)
    assert server.app.state.requests - before <= 2  # scored again; nothing generated (a tokenize or two at most)
    assert "chrf" in got["metrics"] and "scoring_error" not in got


def test_an_in_process_generation_that_fails_is_an_error_for_that_example_alone(trained_tiny_lm, benchmarks,
                                                                                tmp_path, monkeypatch):
    import llmdemo.engine.scheduler as sched
    from eval.runner import run

    calls = [0]
    real = sched.Sampler

    class Flaky(real):
        def __call__(self, logits, seen):
            calls[0] += 1
            if calls[0] == 5:  # one row's step fails (as NaN logits would): that request ends with an error
                raise ValueError("NaN in the logits")
            return super().__call__(logits, seen)
    monkeypatch.setattr(sched, "Sampler", Flaky)
    got = run(_spec(benchmarks, tmp_path / "run", limit=6, batch_size=3), trained_tiny_lm)
    rows = _rows(tmp_path / "run")
    assert got["examples"]["failed"] == 1 and len(rows) == 5 == got["n_examples"]
    assert got["examples"]["failed_ids"][0] not in {r["id"] for r in rows}
    assert "1 examples failed and are not scored (ValueError: NaN in the logits)" in got["notes"][0]
    monkeypatch.setattr(sched, "Sampler", real)
    again = run(_spec(benchmarks, tmp_path / "run", limit=6, batch_size=3), trained_tiny_lm)  # retries the failed one
    assert again["n_examples"] == 6 and again["examples"]["failed"] == 0
