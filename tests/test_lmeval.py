"""eval/lmeval.py reads an lm-evaluation-harness 0.4.x output folder as lm-eval wrote it, never re-scoring."""

from __future__ import annotations

import json

import pytest

from eval.lmeval import LmEvalError, is_lmeval, read_lmeval

DATE = "2025-01-02T04-04-05.678901"  # local time where lm-eval ran (UTC+1); "date" below is 03:04:05 UTC
MODEL = "EleutherAI/pythia-70m"
ARC_Q = ["Which is a gas?", "What melts ice?", "Which is a planet?", "What do plants need?"]
ARC_CHOICES = [["rock", "steam", "wood", "iron"], ["cold", "salt", "dark", "wind"],
               ["Mars", "Moon", "Sun", "comet"], ["sand", "light", "noise", "plastic"]]
ARC_LLS = [[-5.0, -1.0, -4.0, -6.0], [-2.0, -3.0, -2.5, -9.0], [-1.5, -2.0, -0.5, -3.0], [-4.0, -0.7, -3.0, -2.0]]
ARC_GOLD = [1, 1, 0, 1]  # picks 1, 0, 2, 1: per-sample acc 1, 0, 0, 1 (mean 0.5; the file's aggregate says 0.75)
GSM = [("Tom has 3 apples and buys 2. How many?", "3 + 2 = 5\n#### 5", ["So 5. #### 5", "5"], ["5", "5"]),
       ("Ann reads 4 pages a day. Pages in 2 days?", "4 * 2 = 8\n#### 8", ["I think 8", "8"], ["[invalid]", "8"]),
       ("A box holds 6 eggs. Eggs in 2 boxes?", "6 * 2 = 12\n#### 12", ["#### 12", "12"], ["12", "12"])]


def _arc_line(i: int) -> dict:
    """One line as evaluation_tracker.save_results_samples writes it (EleutherAI/lm-evaluation-harness,
    lm_eval/loggers/evaluation_tracker.py @034ab036): arguments as gen_args_i/arg_j, resps and filtered_resps
    through sanitize_list (numbers as strings), target as str; keys from lm_eval/evaluator.py's `example`."""
    ctx = f"Question: {ARC_Q[i]}\nAnswer:"
    pick = max(range(4), key=lambda j: ARC_LLS[i][j])
    return {"doc_id": i, "doc": {"id": f"Q{i}", "question": ARC_Q[i], "answerKey": "ABCD"[ARC_GOLD[i]],
                                 "choices": {"text": ARC_CHOICES[i], "label": list("ABCD")}},
            "target": str(ARC_GOLD[i]),
            "arguments": {f"gen_args_{j}": {"arg_0": ctx, "arg_1": " " + c} for j, c in enumerate(ARC_CHOICES[i])},
            "resps": [[[str(ll), "False"]] for ll in ARC_LLS[i]],
            "filtered_resps": [[str(ll), "False"] for ll in ARC_LLS[i]],
            "filter": "none", "metrics": ["acc", "acc_norm"], "doc_hash": "d", "prompt_hash": "p", "target_hash": "t",
            "acc": float(pick == ARC_GOLD[i]), "acc_norm": float(pick == ARC_GOLD[i])}


def _gsm_lines() -> list[dict]:
    """Older 0.4.x lines (lm_eval/evaluator.py @5b321a1): arguments a list of [context, gen_kwargs], no
    "filter"/"metrics" keys; one filter's documents after the other's (strict-match, then flexible-extract)."""
    rows = []
    for f in range(2):
        for i, (q, ans, resp, filtered) in enumerate(GSM):
            rows.append({"doc_id": i, "doc": {"question": q, "answer": ans}, "target": ans,
                         "arguments": [[f"Question: {q}\nAnswer:", {"until": ["Question:"], "do_sample": False}]],
                         "resps": [[resp[0]]], "filtered_resps": [filtered[f]], "doc_hash": "d", "prompt_hash": "p",
                         "target_hash": "t", "exact_match": float(filtered[f] == ans.split("#### ")[1])})
    return rows


def _results(acc: float = 0.75) -> dict:
    """The aggregated file (evaluator.py's results_dict + simple_evaluate's config + the tracker's fields)."""
    return {
        "results": {"ai2_arc": {"alias": "ai2_arc"},  # a group with no metrics of its own
                    "arc_easy": {"alias": "arc_easy", "acc,none": acc, "acc_stderr,none": 0.25,
                                 "acc_norm,none": 0.5, "acc_norm_stderr,none": "N/A"},
                    "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.6666666666666666,
                              "exact_match_stderr,strict-match": 0.3333333333333333,
                              "exact_match,flexible-extract": 1.0, "exact_match_stderr,flexible-extract": 0.0}},
        "group_subtasks": {"ai2_arc": ["arc_easy"], "gsm8k": []},
        "configs": {"arc_easy": {"task": "arc_easy", "dataset_path": "allenai/ai2_arc", "dataset_name": "ARC-Easy",
                                 "test_split": "test", "output_type": "multiple_choice", "num_fewshot": 0},
                    "gsm8k": {"task": "gsm8k", "dataset_path": "gsm8k", "dataset_name": "main", "test_split": "test",
                              "output_type": "generate_until", "num_fewshot": 5}},
        "versions": {"arc_easy": 1.0, "gsm8k": 3.0}, "n-shot": {"arc_easy": 0, "gsm8k": 5},
        "higher_is_better": {"arc_easy": {"acc": True, "acc_norm": True}, "gsm8k": {"exact_match": True}},
        "n-samples": {"arc_easy": {"original": 2376, "effective": 4}, "gsm8k": {"original": 1319, "effective": 3}},
        "config": {"model": "hf", "model_args": f"pretrained={MODEL},dtype=float32", "batch_size": "1",
                   "batch_sizes": [], "device": "cpu", "limit": 4.0, "gen_kwargs": None, "random_seed": 0},
        "git_hash": "abc1234", "date": 1735787045.678901, "lm_eval_version": "0.4.8", "task_hashes": {},
        "model_source": "hf", "model_name": MODEL, "model_name_sanitized": "EleutherAI__pythia-70m",
        "total_evaluation_time_seconds": "12.5"}


def write_lmeval_folder(tmp_path):
    """OUT/ as `lm_eval --output_path OUT --log_samples` leaves it: OUT/<model_name_sanitized>/results_<date>.json
    and samples_<task>_<date>.jsonl (evaluation_tracker.py's save_results_aggregated / save_results_samples)."""
    d = tmp_path / "OUT" / "EleutherAI__pythia-70m"
    d.mkdir(parents=True)
    (d / f"results_{DATE}.json").write_text(json.dumps(_results(), indent=2), encoding="utf-8")
    for task, rows in (("arc_easy", [_arc_line(i) for i in range(4)]), ("gsm8k", _gsm_lines())):
        (d / f"samples_{task}_{DATE}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return tmp_path / "OUT"


@pytest.fixture
def lmeval_folder(tmp_path):
    return write_lmeval_folder(tmp_path)


def _by_task(folder) -> dict:
    return {res["task"]: (res, ex) for res, ex in read_lmeval(folder)}


def test_results_as_lmeval_reported_them(lmeval_folder):
    runs = _by_task(lmeval_folder)
    assert sorted(runs) == ["arc_easy", "gsm8k"]  # the metric-less group is left out
    arc, ex = runs["arc_easy"]
    assert arc["metrics"] == {"acc": 0.75, "acc_norm": 0.5}  # the file's 0.75, not the samples' mean 0.5
    assert sum(e["scores"]["acc"] for e in ex) / len(ex) == 0.5
    assert arc["ci95"] == {"acc": [pytest.approx(0.75 - 0.49), pytest.approx(0.75 + 0.49)]}  # "N/A": none
    assert (arc["main_metric"], arc["higher_is_better"], arc["n_examples"]) == ("acc", True, 4)
    assert arc["data"] == "allenai/ai2_arc/ARC-Easy test" and arc["source"] == "lm-eval"
    assert arc["model"] == {"name": MODEL, "backend": "lm-eval hf"} and arc["lm_eval_version"] == "0.4.8"
    assert arc["config"]["num_fewshot"] == 0 and arc["config"]["model_args"].startswith("pretrained=")
    assert arc["signatures"] == {"lm-eval": "arc_easy v1.0 n-shot 0 filter none"}
    assert arc["date"] == "2025-01-02T03:04:05+00:00" and arc["seed"] == 0  # UTC, from "date", not the name
    assert arc["examples"] == {"scored": 4, "failed": 0, "empty_by_model": 0}
    assert any("not re-scored" in n for n in arc["notes"])
    gsm, _ = runs["gsm8k"]
    assert gsm["metrics"] == {"exact_match (strict-match)": pytest.approx(2 / 3),
                              "exact_match (flexible-extract)": 1.0}
    assert gsm["main_metric"] == "exact_match (strict-match)"
    assert gsm["ci95"]["exact_match (flexible-extract)"] == [1.0, 1.0]
    assert gsm["signatures"]["lm-eval"] == "gsm8k v3.0 n-shot 5 filter strict-match"
    assert gsm["data"] == "gsm8k/main test"


def test_multiple_choice_examples_new_arguments_shape(lmeval_folder):
    _, ex = _by_task(lmeval_folder)["arc_easy"]
    assert [e["id"] for e in ex] == ["0", "1", "2", "3"]
    assert ex[0]["input"] == "Question: Which is a gas?\nAnswer:"
    assert [e["pick"] for e in ex] == [1, 0, 2, 1]  # the argmax of filtered_resps' log-likelihoods
    assert [e["output"] for e in ex] == ["steam", "cold", "Sun", "light"]
    assert [e["reference"] for e in ex] == ["steam", "salt", "Mars", "light"]  # target index -> choice text
    assert [e["score"] for e in ex] == [1.0, 0.0, 0.0, 1.0] and ex[1]["scores"] == {"acc": 0.0, "acc_norm": 0.0}


def test_generate_until_examples_old_arguments_shape(lmeval_folder):
    gsm, ex = _by_task(lmeval_folder)["gsm8k"]
    assert len(ex) == 3 and gsm["n_examples"] == 3 and gsm["examples"]["scored"] == 3  # the first filter's lines
    assert ex[1]["input"] == "Question: Ann reads 4 pages a day. Pages in 2 days?\nAnswer:"
    assert [e["output"] for e in ex] == ["5", "[invalid]", "12"]  # strict-match's filtered responses
    assert ex[2]["reference"] == "6 * 2 = 12\n#### 12"
    assert [e["score"] for e in ex] == [1.0, 0.0, 1.0]
    assert ex[0]["scores"] == {"exact_match (strict-match)": 1.0}


def test_is_lmeval(lmeval_folder, tmp_path):
    assert is_lmeval(lmeval_folder) and is_lmeval(lmeval_folder / "EleutherAI__pythia-70m")
    assert is_lmeval(lmeval_folder / "EleutherAI__pythia-70m" / f"results_{DATE}.json")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"task": "arc_easy", "metrics": {"acc": 0.5}}), encoding="utf-8")
    (run / "predictions.jsonl").write_text(json.dumps({"id": "0", "acc": 1.0}) + "\n", encoding="utf-8")
    assert not is_lmeval(run) and not is_lmeval(tmp_path / "missing")
    with pytest.raises(LmEvalError, match="no lm-eval results"):
        read_lmeval(run)


def test_newest_results_file_kept(lmeval_folder):
    old = lmeval_folder / "EleutherAI__pythia-70m" / "results_2024-06-01T00-00-00.000001.json"
    old.write_text(json.dumps({**_results(acc=0.1), "date": 1717200000.0}), encoding="utf-8")  # 2024-06-01
    runs = _by_task(lmeval_folder)
    assert len(runs) == 2 and runs["arc_easy"][0]["metrics"]["acc"] == 0.75


def test_broken_files(lmeval_folder):
    d = lmeval_folder / "EleutherAI__pythia-70m"
    samples = d / f"samples_arc_easy_{DATE}.jsonl"
    lines = samples.read_text(encoding="utf-8").splitlines(keepends=True)
    samples.write_text("".join(lines[:3]) + lines[3][:40], encoding="utf-8")  # a write cut short: dropped, noted
    arc, ex = _by_task(lmeval_folder)["arc_easy"]
    assert len(ex) == 3 and any("cut off" in n for n in arc["notes"]) and arc["metrics"]["acc"] == 0.75
    samples.write_text(lines[0] + "{oops\n" + "".join(lines[2:]), encoding="utf-8")
    with pytest.raises(LmEvalError, match=r"samples_arc_easy_.*\.jsonl, line 2"):
        read_lmeval(lmeval_folder)
    samples.write_text("".join(lines), encoding="utf-8")
    (d / f"results_{DATE}.json").write_text('{"results": {"arc_easy": ', encoding="utf-8")
    with pytest.raises(LmEvalError, match=rf"results_{DATE}\.json, line 1: not JSON"):
        read_lmeval(lmeval_folder)
    (d / f"results_{DATE}.json").write_text('{"configs": {}}', encoding="utf-8")
    with pytest.raises(LmEvalError, match='no "results"'):
        read_lmeval(lmeval_folder)
