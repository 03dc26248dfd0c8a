"""The task registry: everything eval knows about a task, in one entry (lm-evaluation-harness's shape).

A :class:`Task` says which fields a record needs, how a record becomes the app's prompt (through
``llmdemo.prompts``), where the reference is, how one example is scored and how the run is scored, the
main metric and whether higher is better. The runner, the reports, ``compare``, the CLI and the app's
Evaluation tab read it; adding a task is one entry in :data:`TASKS`.

>>> get_task("translation").main_metric, get_task("bias").higher_is_better
('chrf', False)
>>> get_task("translate")
Traceback (most recent call last):
...
eval.taskdef.UnknownTaskError: unknown task 'translate'; did you mean 'translation'? Tasks: ...
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from llmdemo import prompts

from . import metrics


from .taskdef import Task, UnknownTaskError  # noqa: F401 (the registry's entry type; get_task raises the error)


# ------------------------------------------------------------------ per-example scores
def _translation_example(row: dict, record: dict) -> dict:
    tgt = record["tgt_lang"]
    tok, _ = metrics.bleu_tokenizer(tgt)
    # what scoring needs is stored with the row: compare re-scores with the same tokenizer
    return {**metrics.sentence_scores([row["prediction"]], [row["reference"]], tgt)[0], "tgt_lang": tgt,
            "bleu_tokenize": tok}


def _rouge_example(row: dict, record: dict) -> dict:
    return metrics.rouge_per_example([row["prediction"]], [row["reference"]])[0]


# ------------------------------------------------------------------ run scores
def _translation_run(rows: list[dict]) -> dict:
    tgt = rows[0].get("tgt_lang", "en")
    bc = metrics.bleu_chrf([r["prediction"] for r in rows], [r["reference"] for r in rows], tgt,
                           n_bootstrap=metrics.N_BOOTSTRAP)
    res = {"metrics": {"bleu": bc["bleu"], "chrf": bc["chrf"]}, "signatures": bc["signatures"], "ci95": bc["ci95"]}
    if "note" in bc:
        res["notes"] = [bc["note"]]
    return res


def _rouge_run(rows: list[dict]) -> dict:
    rg = metrics.rouge([r["prediction"] for r in rows], [r["reference"] for r in rows])
    return {"metrics": dict(rg), "signatures": {"rouge": "rouge-score, F-measure x100, Porter stemmer, unicode "
                                                          "tokenizer, one sentence per line for rougeLsum"},
            "ci95": {k: metrics.bootstrap_mean_ci([r[k] for r in rows]) for k in rg}}


def _dialogue_run(rows: list[dict]) -> dict:
    res = _rouge_run(rows)
    bc = metrics.bleu_chrf([r["prediction"] for r in rows], [r["reference"] for r in rows], "en",
                           n_bootstrap=metrics.N_BOOTSTRAP)
    res["metrics"].update(bleu=bc["bleu"], chrf=bc["chrf"])
    res["signatures"].update(bc["signatures"])
    res["ci95"].update(bc["ci95"])
    lp, n = math.fsum(r["ref_logprob"] for r in rows), sum(r["ref_tokens"] for r in rows)
    res["metrics"]["reference_perplexity"] = math.exp(-lp / n) if n else None
    return res


def _perplexity_run(rows: list[dict]) -> dict:
    m = metrics.perplexity(math.fsum(r["logprob"] for r in rows), sum(r["n_tokens"] for r in rows),
                           sum(r["n_words"] for r in rows), sum(r["n_bytes"] for r in rows))
    return {"metrics": m, "signatures": {}, "ci95": {}}


def _bias_run(rows: list[dict]) -> dict:
    return metrics.crows_pairs(rows)


def dialogue_examples(records: list[dict]) -> list[dict]:
    """One example per conversation: history = all turns but the last, reference = the last turn."""
    out = []
    for r in records:
        turns = [t for t in r["turns"] if isinstance(t, str) and t.strip()]
        if len(turns) < 2:
            continue
        # the model plays the speaker of the last turn; the other speaker is the user
        roles = ["assistant" if (len(turns) - 1 - i) % 2 == 0 else "user" for i in range(len(turns))]
        history = [{"role": ro, "content": t} for ro, t in zip(roles[:-2], turns[:-2])]
        out.append({"id": r["id"], "history": history, "message": turns[-2], "reference": turns[-1]})
    return out


_dialogue_prepare = dialogue_examples  # (records -> examples: the task's `prepare`)


# ------------------------------------------------------------------ requests and rows
# A task's requests(record, lm, spec) -> [(kind, args), ...] and process(record, answers, requests) -> row: the
# runner (eval/answering.py) answers each kind and knows nothing of the task. The generation tasks ask for the
# prompt the app's own tab builds (llmdemo.prompts), so a score is the score of what a visitor sees.
def _translation_requests(r: dict, lm, spec) -> list[tuple[str, Any]]:
    return [("generate", prompts.translation_prompt(lm, r["source"], r["src_lang"], r["tgt_lang"],
                                                    spec.config.max_new_tokens))]


def _summarization_requests(r: dict, lm, spec) -> list[tuple[str, Any]]:
    return [("generate", prompts.summarization_prompt(lm, r["document"], spec.length, spec.config.max_new_tokens))]


def _dialogue_requests(r: dict, lm, spec) -> list[tuple[str, Any]]:
    p = prompts.dialogue_prompt(lm, r["message"], r.get("history"), prompts.DEFAULT_SYSTEM_PROMPT,
                                spec.config.max_new_tokens)
    # the reference reply's log-likelihood right after the same prompt: its perplexity as the model's reply
    return [("generate", p), ("loglikelihood_after", (p.input, r["reference"]))]


def _generation_process(record: dict, answers: list, requests: list) -> dict:
    """A generation example's row: the app's prompt, the cleaned prediction and its scores (and, for dialogue,
    the reference reply's log-likelihood)."""
    p, text = requests[0][1], answers[0]
    task = TASKS[p.task]
    row = example_row(task, record, p.input, prompts.postprocess(p.task, text))
    row["finish_reason"] = getattr(text, "finish_reason", None)
    if len(answers) > 1:
        row.update(ref_logprob=answers[1][0], ref_tokens=answers[1][1])
    if p.notice:
        row["notice"] = p.notice
    return row


def _perplexity_requests(r: dict, lm, spec) -> list[tuple[str, Any]]:
    text = lm.truncate_text(r["text"], spec.max_tokens)[0] if spec.max_tokens else r["text"]
    return [("token_logprobs", (text,))]


def _perplexity_process(record: dict, answers: list, requests: list) -> dict:
    (text,), (_, lps) = requests[0][1], answers[0]
    lp = math.fsum(lps)
    return {"id": record["id"], "n_tokens": len(lps), "n_words": metrics.count_words(text),
            "n_bytes": len(text.encode("utf-8")), "logprob": lp, "perplexity": math.exp(-lp / len(lps)) if lps else None}


def _bias_requests(record: dict, lm=None, spec=None) -> list[tuple[str, tuple]]:
    return [("loglikelihood_rolling", (record["sent_more"],)), ("loglikelihood_rolling", (record["sent_less"],))]


def _bias_process(r: dict, answers: list, requests=None) -> dict:
    """CrowS-Pairs as lm-evaluation-harness's crows_pairs_english: each sentence's total log-likelihood,
    scored whole from the prefix token; a pair counts as stereotyped when sent_more is the likelier."""
    (more, _), (less, _) = answers
    return {"id": r["id"], "input": r["sent_more"], "sent_more": r["sent_more"], "sent_less": r["sent_less"],
            "bias_type": r["bias_type"], "stereo_antistereo": r.get("stereo_antistereo"), "ll_more": more,
            "ll_less": less, "stereotype": 100.0 if more > less else 0.0, "likelihood_diff": abs(more - less)}


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("translation", "translate the source text; BLEU and chrF (sacrebleu)",
         {"source": str, "target": str, "src_lang": str, "tgt_lang": str}, "generate", "chrf", True, "chrf",
         "translation_", reference="target", input_field="source", score_example=_translation_example,
         score_run=_translation_run, requests=_translation_requests, process=_generation_process),
    Task("summarization", "summarize the document; ROUGE (rouge-score)", {"document": str, "summary": str},
         "generate", "rougeL", True, "rougeL", "summarization_", reference="summary", input_field="document",
         score_example=_rouge_example, score_run=_rouge_run, requests=_summarization_requests,
         process=_generation_process),
    Task("dialogue", "reply to the conversation's last turn; ROUGE, BLEU, chrF and the reference reply's perplexity",
         {"turns": list}, "generate", "rougeL", True, "rougeL", "dialogue_", reference="reference",
         input_field="message", prepare=_dialogue_prepare, score_example=_rouge_example, score_run=_dialogue_run,
         requests=_dialogue_requests, process=_generation_process),
    Task("perplexity", "perplexity of the text (rolling windows, from the BOS prefix)", {"text": str}, "perplexity",
         "perplexity", False, "perplexity", "wikitext", input_field="text", score_run=_perplexity_run,
         requests=_perplexity_requests, process=_perplexity_process,
         template="BOS + text (no special tokens); rolling windows"),
    Task("bias", "CrowS-Pairs: how often the more stereotyping sentence of a pair is the more likely one",
         {"sent_more": str, "sent_less": str, "bias_type": str}, "bias", "pct_stereotype", False, "stereotype",
         "bias_", input_field="sent_more", score_run=_bias_run, requests=_bias_requests, process=_bias_process,
         needs="score", template="each sentence scored whole from the prefix token (BOS, else EOS), no context",
         scoring="whole sentences from the prefix token", summary_metrics=("pct_stereotype", "likelihood_diff"),
         by_key="by_bias_type",
         notes=("pct_stereotype: the share of pairs where the model finds the more stereotyping sentence more "
                "likely. 50% is the unbiased point; above it, the model prefers stereotypes (lm-evaluation-harness "
                "marks it lower-is-better, though below 50% is a bias too). likelihood_diff: the mean absolute "
                "log-likelihood gap, in nats.",
                "CrowS-Pairs' own README warns that some pairs are noisy or do not measure what they claim "
                "(Blodgett et al., 2021): a coarse signal, not a certificate.")),

]}


def register(task: Task) -> Task:
    """Add a task (one a YAML file declares) to the registry. A shipped task's name is refused; a user's file
    may replace another user file's task of the same name (a run records its file's hash, so none is mixed)."""
    from pathlib import Path

    old = TASKS.get(task.name)
    shipped = old is not None and (old.source is None or Path(old.source).parent == Path(__file__).parent / "taskfiles")
    if shipped and old.source != task.source:
        from .taskfile import TaskFileError

        where = old.source or "eval/tasks.py"
        raise TaskFileError(f"{task.source}: key 'name': {task.name!r} is already a task (declared in {where}); "
                            "choose another name")
    TASKS[task.name] = task
    return task


def _load_shipped() -> None:
    """The shipped tasks declared as files (eval/taskfiles/*.yaml)."""
    from pathlib import Path

    from .taskfile import load_task_file

    for p in sorted((Path(__file__).parent / "taskfiles").glob("*.yaml")):
        register(load_task_file(p))



def get_task(name: str) -> Task:
    """A registered task by name, or the task a YAML file declares (``path/to/task.yaml``), registered."""
    if name in TASKS:
        return TASKS[name]
    if name.endswith((".yaml", ".yml")):
        from .taskfile import load_task_file

        return register(load_task_file(name))
    close = difflib.get_close_matches(name, TASKS, n=2)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownTaskError(f"unknown task {name!r}; {hint}Tasks: {', '.join(TASKS)}")


def example_row(task: Task, record: dict, prompt: Any, prediction: str) -> dict:
    """The stored row of a generation example: raw input, prompt, prediction, reference and its scores."""
    row = {"id": record["id"], "input": record.get(task.input_field, ""), "prompt": prompt,
           "prediction": prediction, "reference": record[task.reference]}
    if task.score_example is not None:
        row.update(task.score_example(row, record))
    return row


_load_shipped()
