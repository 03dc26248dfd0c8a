"""What a task is (:class:`Task`), apart from the registry of tasks (eval/tasks.py) and the YAML task files
(eval/taskfile.py) that make them: both import this, neither imports the other's module at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from llmdemo.errors import DetailError


class UnknownTaskError(DetailError, ValueError):
    """No task of that name; the message suggests close ones."""

    kind = "eval.unknown_task"


@dataclass(frozen=True)
class Task:
    name: str
    description: str  # one line, for `python -m eval list` and the app
    fields: dict[str, type]  # what each record must have
    kind: str  # "generate" (prompt -> text), "perplexity" (score a text), "bias" (compare two texts),
    # "multiple_choice": what reports, the app and resuming key on; what the model is asked is `requests`
    main_metric: str
    higher_is_better: bool
    per_example: str  # the per-example score shown in tables and histograms
    data_prefix: str  # benchmark files of this task start with this
    reference: str | None = None  # the record field holding the reference text (generation tasks)
    input_field: str | None = None  # the record field shown as the example's input
    prepare: Callable[[list[dict]], list[dict]] | None = None  # records -> examples (e.g. one per conversation)
    score_example: Callable[[dict, dict], dict] | None = None  # (row, record) -> per-example scores and settings
    score_run: Callable[[list[dict]], dict] | None = None  # rows -> {"metrics", "signatures", "ci95", ...}
    notes: tuple[str, ...] = field(default_factory=tuple)  # said in every report of this task
    # what the task asks the model, as data (lm-evaluation-harness's evaluator): requests(record, lm, spec) ->
    # [(kind, args), ...] and process(record, answers, requests) -> the example's row. The runner answers each
    # kind (generate, loglikelihood, loglikelihood_after, loglikelihood_rolling, token_logprobs: eval/answering.py)
    # and knows nothing of the task; every task declares both
    requests: Callable[[dict, Any, Any], list[tuple[str, Any]]] | None = None
    process: Callable[[dict, list, list], dict] | None = None
    needs: str | None = None  # the backend capability the requests need (llmdemo.interface), refused without it
    template: str = ""  # the prompt template, as reports print it
    scoring: str = ""  # how requests are scored, as reports print it
    summary_metrics: tuple[str, ...] = ()  # shown in the leaderboard (default: the main metric)
    by_key: str | None = None  # a results key holding per-group scores (by_category, by_bias_type)
    source: str | None = None  # the YAML file that declares it (eval/taskfile.py), None for tasks in Python
    source_sha256: str | None = None  # that file's hash: a run resumes only under the same declaration
    data_file: str | None = None  # the data a task file names (the default of --data)
