"""Tasks declared in YAML files: ``python -m eval run --task path/to/task.yaml``.

A task file names its data, a Jinja prompt template, and either the choices and the right answer
(``kind: multiple_choice``) or the reference (``kind: generate``)::

    name: capitals                       # how runs and reports name the task
    kind: multiple_choice                # or: generate
    data: capitals.jsonl                 # a JSONL file (relative to this file) or a shipped name
    prompt: "Q: What is the capital of {{country}}?\\nA:"
    choices: "options"                   # a Jinja expression giving the list of choices
    answer: "label"                      # an expression: the right index/indices or text(s)
    metric: acc                          # multiple_choice: acc, acc_norm, bbq; generate: chrf, bleu, rougeL, exact_match

A generation task has ``reference:`` (an expression, e.g. the field's name) instead of ``choices``/``answer``,
and may set ``max_new_tokens``. ``constants:`` (a mapping) is visible to every template; ``description``,
``target_delimiter`` (default ``" "``) and ``notes`` are optional. Templates run in Jinja's
``SandboxedEnvironment``: a task file cannot reach Python. A bad file is refused with one line that names
the key and the problem.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

from llmdemo.errors import DetailError

KINDS = ("multiple_choice", "generate")
METRICS = {"multiple_choice": ("acc", "acc_norm", "bbq"), "generate": ("chrf", "bleu", "rougeL", "exact_match")}
REQUIRED = {"multiple_choice": ("name", "kind", "data", "prompt", "choices", "answer"),
            "generate": ("name", "kind", "data", "prompt", "reference")}
KEYS = {"name", "description", "kind", "data", "prompt", "choices", "answer", "reference", "target_delimiter",
        "metric", "constants", "notes", "max_new_tokens"}


MAX_TASK_FILE_BYTES = 256 * 1024


class TaskFileError(DetailError, ValueError):
    """A task file that cannot be used; the message is one line naming the file, the key and the problem."""

    kind = "eval.task_file"


def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


def load_task_file(path: str | Path):
    """The :class:`eval.tasks.Task` a YAML file declares (not registered; see ``eval.tasks.get_task``)."""
    import yaml

    path = Path(path)

    def bad(key: str | None, problem: str) -> TaskFileError:
        return TaskFileError(f"{path}: " + (f"key {key!r}: " if key else "") + problem)

    if not path.is_file():
        raise bad(None, "no such file")
    if path.stat().st_size > MAX_TASK_FILE_BYTES:
        raise bad(None, f"over {MAX_TASK_FILE_BYTES // 1024} KB; a task file declares a task, its data go in --data")
    raw = path.read_bytes()

    class NoAliases(yaml.SafeLoader):
        """YAML without aliases: nine nested aliases of ten expand to a billion nodes (2.3 GB in 2 s)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a task file",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    try:
        spec = yaml.load(raw.decode("utf-8"), Loader=NoAliases)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as e:
        raise bad(None, f"not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise bad(None, f"{where}not valid YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
    if not isinstance(spec, dict):
        raise bad(None, "expected a mapping of keys (name, kind, data, prompt, ...)")
    for k in spec:
        if k not in KEYS:
            close = difflib.get_close_matches(str(k), KEYS, n=1)
            raise bad(str(k), "unknown key" + (f"; did you mean {close[0]!r}?" if close else
                                                f"; the keys are {', '.join(sorted(KEYS))}"))
    kind = spec.get("kind")
    if kind not in KINDS:
        raise bad("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    for k in REQUIRED[kind]:
        if k not in spec or spec[k] in (None, ""):
            raise bad(k, f"missing (a {kind} task needs {', '.join(REQUIRED[kind])})")
    for k in ("name", "description", "data", "prompt", "choices", "answer", "reference", "target_delimiter"):
        if k in spec and not isinstance(spec[k], str):
            raise bad(k, f"must be a string, got {type(spec[k]).__name__}")
    name = spec["name"]
    if not name.replace("-", "").replace("_", "").isalnum():
        raise bad("name", f"use letters, digits, '-' and '_' only, got {name!r}")
    metric = spec.get("metric", METRICS[kind][0])
    if metric not in METRICS[kind]:
        raise bad("metric", f"a {kind} task takes {', '.join(METRICS[kind])}, got {metric!r}")
    constants = spec.get("constants", {}) or {}
    if not isinstance(constants, dict):
        raise bad("constants", "must be a mapping of names to values")
    notes = spec.get("notes", []) or []
    if isinstance(notes, str):
        notes = [notes]
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise bad("notes", "must be a list of strings")
    mnt = spec.get("max_new_tokens", 64)
    if not isinstance(mnt, int) or isinstance(mnt, bool) or mnt < 1:
        raise bad("max_new_tokens", f"must be a positive whole number, got {mnt!r}")

    from jinja2 import TemplateSyntaxError, meta

    env = _env()
    compiled: dict[str, Any] = {}
    fields: set[str] = set()
    for k in ("prompt", "choices", "answer", "reference"):
        if k not in spec:
            continue
        try:
            if k == "prompt":
                ast = env.parse(spec[k])
                compiled[k] = env.from_string(spec[k])
            else:
                ast = env.parse("{{ " + spec[k] + " }}")
                compiled[k] = env.compile_expression(spec[k])
        except TemplateSyntaxError as e:
            raise bad(k, f"not a valid Jinja {'template' if k == 'prompt' else 'expression'} ({e.message})") from None
        fields |= meta.find_undeclared_variables(ast)
    fields -= set(constants)

    data = spec["data"]
    from .shipped import SHIPPED

    data_path = data if data in SHIPPED or data.startswith("hf:") else str((path.parent / data).resolve())
    if data not in SHIPPED and not data.startswith("hf:") and not Path(data_path).is_file():
        raise bad("data", f"no such file {data_path}")
    return _build(spec, name, kind, metric, compiled, sorted(fields), constants, notes, mnt, data_path,
                  hashlib.sha256(raw).hexdigest(), path)


def _build(spec, name, kind, metric, compiled, fields, constants, notes, mnt, data_path, sha, path):
    def ctx(record: dict) -> dict:
        return {**constants, **record}

    def render(key: str, record: dict):
        from jinja2 import UndefinedError
        from jinja2.exceptions import SecurityError

        try:
            return compiled[key].render(**ctx(record)) if key == "prompt" else compiled[key](**ctx(record))
        except UndefinedError as e:
            raise TaskFileError(f"{path}: key {key!r}: record {record.get('id')!r}: {e.message}") from None
        except SecurityError as e:  # the sandbox refused (an attribute, a huge range): one line, no traceback
            raise TaskFileError(f"{path}: key {key!r}: record {record.get('id')!r}: refused by the template "
                                f"sandbox ({str(e)[:120]})") from None

    def prompt(record: dict) -> str:
        return render("prompt", record)

    common = dict(name=name, description=spec.get("description", f"declared in {path.name}"),
                  fields={f: object for f in fields}, data_prefix=name, input_field=None,
                  notes=tuple(notes), template=spec["prompt"], source=str(path), source_sha256=sha,
                  data_file=data_path)
    if kind == "multiple_choice":
        return _multiple_choice_task(spec, metric, path, render, prompt, common)
    return _generation_task(metric, mnt, path, render, prompt, common)


def _multiple_choice_task(spec, metric, path, render, prompt, common):
    """A multiple-choice task from a file: its choices and right answers rendered per record, each checked."""
    from .multiple_choice import MultipleChoice, choice_metrics
    from .taskdef import Task

    def choices(record: dict) -> list[str]:
        got = render("choices", record)
        if not isinstance(got, (list, tuple)) or not got or not all(isinstance(c, str) for c in got):
            raise TaskFileError(f"{path}: key 'choices': record {record.get('id')!r}: must give a list of "
                                f"strings, got {got!r}"[:300])
        return list(got)

    def gold(record: dict) -> list[int]:
        got, chs = render("answer", record), choices(record)
        items = list(got) if isinstance(got, (list, tuple, range)) else [got]
        out = []
        for g in items:
            if isinstance(g, bool) or not isinstance(g, (int, str)):
                raise TaskFileError(f"{path}: key 'answer': record {record.get('id')!r}: must give an index or "
                                    f"a choice's text, got {g!r}"[:300])
            if isinstance(g, int):
                if not 0 <= g < len(chs):
                    raise TaskFileError(f"{path}: key 'answer': record {record.get('id')!r}: index {g} is not "
                                        f"among the {len(chs)} choices")
                out.append(g)
            else:
                hits = [i for i, c in enumerate(chs) if c == g]
                if not hits:
                    raise TaskFileError(f"{path}: key 'answer': record {record.get('id')!r}: {g!r} is not one "
                                        "of the choices"[:300])
                out += hits
        return sorted(set(out))

    extra = score_run = prepare = None
    if metric == "bbq":
        from . import bbq

        extra, score_run, prepare = bbq.extra, bbq.bbq_run, bbq.prepare
        common["fields"] = {**common["fields"], **bbq.FIELDS}  # what the bias columns read
        common["notes"] = (bbq.SIGN, *common["notes"])  # every BBQ report says what the sign means
    first = prepare

    def check(records: list[dict]) -> list[dict]:
        """Every record's prompt, choices and right answers, before the model loads: a template that
        fails on a record is one line naming the key."""
        records = first(records) if first is not None else records
        for r in records:
            prompt(r), gold(r)
        return records

    prepare = check
    mc = MultipleChoice(prompt=prompt, choices=choices, gold=gold,
                        target_delimiter=spec.get("target_delimiter", " "), extra=extra)

    def _mc_run(rows):
        return choice_metrics(rows)

    bbq_like = metric == "bbq"
    return Task(kind="multiple_choice", main_metric="acc" if bbq_like else metric, higher_is_better=True,
                per_example="margin", prepare=prepare, score_run=score_run or _mc_run, requests=mc.requests,
                process=mc.process, needs="score",
                scoring=f"each choice scored as {spec.get('target_delimiter', ' ')!r} + choice after the "
                        "prompt; pick = argmax",
                summary_metrics=(("acc", "accuracy_amb", "accuracy_disamb", "amb_bias_score",
                                  "disamb_bias_score") if bbq_like else ("acc", "acc_norm")),
                by_key="by_category" if bbq_like else None, **common)


def _generation_task(metric, mnt, path, render, prompt, common):
    """A generation task from a file: greedy generation scored against the rendered reference."""
    from . import metrics as M
    from .taskdef import Task

    def reference(record: dict) -> str:
        got = render("reference", record)
        if not isinstance(got, str):
            raise TaskFileError(f"{path}: key 'reference': record {record.get('id')!r}: must give a string, "
                                f"got {type(got).__name__}")
        return got

    def requests(record: dict, lm=None, spec=None) -> list[tuple[str, tuple]]:
        return [("generate", (prompt(record), mnt))]

    def check(records: list[dict]) -> list[dict]:
        for r in records:
            prompt(r), reference(r)
        return records

    def per_example(pred: str, ref: str) -> dict:
        if metric in ("chrf", "bleu"):
            return M.sentence_scores([pred], [ref], "en")[0]
        if metric == "rougeL":
            return M.rouge_per_example([pred], [ref])[0]
        return {"exact_match": 100.0 if pred.strip() == ref.strip() else 0.0}

    def process(record: dict, answers: list, requests=None) -> dict:
        (text,) = answers
        pred, ref = str(text).strip(), reference(record)
        return {"id": record["id"], "input": prompt(record), "prompt": prompt(record), "prediction": pred,
                "reference": ref, "finish_reason": getattr(text, "finish_reason", None), **per_example(pred, ref)}

    def run_scores(rows):
        preds, refs = [r["prediction"] for r in rows], [r["reference"] for r in rows]
        if metric in ("chrf", "bleu"):
            bc = M.bleu_chrf(preds, refs, "en", n_bootstrap=M.N_BOOTSTRAP)
            return {"metrics": {"chrf": bc["chrf"], "bleu": bc["bleu"]}, "signatures": bc["signatures"],
                    "ci95": bc["ci95"]}
        key = metric
        vals = [r[key] for r in rows]
        return {"metrics": {key: sum(vals) / len(vals)}, "ci95": {key: M.bootstrap_mean_ci(vals)},
                "signatures": {key: "mean of per-example scores x100; 95% CI by bootstrap over examples"}}

    return Task(kind="generate", main_metric=metric, higher_is_better=True, per_example=metric, score_run=run_scores,
                prepare=check,
                requests=requests, process=process, needs="generate", reference=None,
                scoring=f"greedy generation, at most {mnt} new tokens", summary_metrics=(metric,), **common)
