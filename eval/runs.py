"""A finished run as a reader sees it: its results, every example in one shape, and two runs side by side.

``eval site``, ``eval compare`` and the app's Evaluation tab read runs through this module, so the site and
the tab show the same rows and ``compare`` and the site the same p-values. A run is an llmdemo run folder
(``results.json`` + ``predictions.jsonl``) or one task of an lm-evaluation-harness output folder
(eval/lmeval.py), whose metrics are shown as lm-eval reported them and never re-scored.

An example, whatever made it: ``id``, ``input`` (the raw input), ``prompt`` (what the model read, when it
differs), ``output`` (its answer: text, pick, or a pair's two log-likelihoods), ``reference``, ``score``
(the task's per-example score, or None), ``scores`` ({name: number}) and ``status`` ("scored" or "empty":
the model returned nothing).

>>> _p([1, 1, 1, 0], [0, 0, 0, 0])["p"] < 0.2, _p([1, 0], [1, 0])["p"]
(True, 1.0)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .runfolder import RunError

N_SAMPLES = 1000  # bootstrap resamples of the paired test, as sacrebleu's default
SEED = 12345  # sacrebleu's default SACREBLEU_SEED: the same resamples on every call


# what a per-example score means, for a reader of the site (English, Chinese)
SCORE_NOTES = {
    "margin": ("the best right choice's log-likelihood minus the best wrong one's, in nats: above 0 the model "
               "picked a right answer, by that much", "最好的正确选项与最好的错误选项的对数似然之差（奈特）：大于 0 表示模型选对了，差值越大越确定"),
    "acc": ("1 if the model's pick is a right answer, else 0", "模型选中正确答案为 1，否则为 0"),
    "chrf": ("the sentence's chrF (sacrebleu), 0-100", "该句的 chrF（sacrebleu），0-100"),
    "rougeL": ("the example's ROUGE-L F-measure (rouge-score), 0-100", "该样例的 ROUGE-L F 值（rouge-score），0-100"),
    "stereotype": ("100 if the more stereotyping sentence is the likelier, else 0",
                   "更具刻板印象的句子可能性更高为 100，否则为 0"),
}


class RunReadError(RunError):
    """A folder that is not a finished run (no results.json, a broken line): one line naming the file."""


@dataclass
class Run:
    path: Path
    results: dict
    examples: list[dict] = field(repr=False)
    source: str = "llmdemo"  # or "lm-eval"
    key: str = ""  # unique, file-name safe (the site's page names)

    @property
    def task(self) -> str:
        return str(self.results.get("task", "?"))

    @property
    def data(self) -> str:
        return Path(str(self.results.get("data", "?"))).name if self.source == "llmdemo" else str(self.results.get("data", "?"))

    @property
    def model(self) -> str:
        return str((self.results.get("model") or {}).get("name", "?"))

    @property
    def per_example(self) -> str | None:
        """The per-example score's name: the task's (eval/tasks.py), or lm-eval's main metric."""
        if self.source != "llmdemo":
            return self.results.get("main_metric")
        from .tasks import TASKS

        t = TASKS.get(self.task)
        return t.per_example if t is not None else self.results.get("main_metric")

    @property
    def pair_key(self) -> str | None:
        """The per-example score two runs are lined up by: the main metric when every example has it (a
        multiple-choice pick's right/wrong, a sentence's chrF), else :attr:`per_example` (BBQ's margin in
        nats would rank a flipped answer below a confident right one growing more confident)."""
        main = self.results.get("main_metric")
        if main and self.examples and all(isinstance(e["scores"].get(main), (int, float)) for e in self.examples):
            return main
        return self.per_example

    @property
    def name(self) -> str:
        """Short: the folder's name (and the task, for an lm-eval folder of several)."""
        if self.source == "llmdemo":
            return self.path.name
        f = self.results.get("lm_eval_file")  # OUT/<model>/results_<date>.json: the model's folder names it
        return f"{Path(f).parent.name if f else self.path.name} · {self.task}"

    @property
    def date(self) -> str:
        d = self.results.get("date")
        if d:
            return str(d)[:16].replace("T", " ")
        f = self.path / "results.json"
        ts = f.stat().st_mtime if f.exists() else 0
        return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")

    def label(self) -> str:
        """A run named by what it was, not by its folder (five translation runs were five look-alike folders)."""
        who = "lm-eval · " if self.source == "lm-eval" else ""
        return (f"{who}{self.task} · {self.data} · {self.model} · n={self.results.get('n_examples')} · {self.date} "
                f"· #{self.key[-6:]}")

    def counts(self) -> dict:
        ex = self.results.get("examples") or {}
        return {"scored": ex.get("scored", len(self.examples)), "failed": ex.get("failed", 0),
                "empty": ex.get("empty_by_model", sum(1 for e in self.examples if e["status"] == "empty"))}


# ------------------------------------------------------------------ one example, whatever the task
def row_input(r: dict) -> str:
    return str(r.get("input") or r.get("source") or r.get("context") or "")


def row_reference(r: dict) -> str:
    """The right answer: the reference text, the less stereotyping sentence, or the right choice."""
    if "reference" in r or "sent_less" in r:
        return str(r.get("reference", r.get("sent_less", "")))
    choices, gold = r.get("choices"), r.get("gold")
    if isinstance(choices, list) and isinstance(gold, list) and gold and isinstance(gold[0], int) \
            and 0 <= gold[0] < len(choices):
        return str(choices[gold[0]])
    return ""


def row_answer(r: dict) -> str:
    """What the model answered: its text, its pick, or a pair's two log-likelihoods."""
    if "prediction" in r:
        return str(r["prediction"])
    if "chosen" in r:
        return str(r["chosen"])
    if "ll_more" in r:
        return f"{_num(r.get('ll_more'))} vs {_num(r.get('ll_less'))}"
    if "logprob" in r:  # a perplexity text: its summed log-probability over its tokens
        return f"log p = {_num(r['logprob'])} over {r.get('n_tokens')} tokens"
    return ""


def _num(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


_NOT_SCORES = {"id", "n_tokens", "n_words", "n_bytes", "ref_tokens", "gold", "label", "example_id"}


def example(r: dict, key: str | None) -> dict:
    """One predictions.jsonl row in the reader's shape."""
    scores = {k: v for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
              and k not in _NOT_SCORES and math.isfinite(v)}
    prompt = r.get("prompt")
    prompt = "" if prompt is None or prompt == r.get("input") else (
        prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False))
    out = row_answer(r)
    e = {"id": str(r.get("id")), "input": row_input(r), "prompt": prompt, "output": out,
         "reference": row_reference(r), "score": scores.get(key) if key else None, "scores": scores,
         "status": "empty" if "prediction" in r and not out.strip() else "scored"}
    for k in ("bleu_tokenize", "tgt_lang"):  # how the run scored BLEU: a paired test rescoring it uses the same
        if isinstance(r.get(k), str):
            e[k] = r[k]
    return e


def _read_json(path: Path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunReadError(f"{path.parent}: no {path.name}, not a finished run") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise RunReadError(f"{path}: not a run's JSON ({str(e)[:120]})") from None
    if not (isinstance(data, dict) and isinstance(data.get("task"), str)):
        raise RunReadError(f"{path}: not a run's results (no task)")
    return data


def _read_rows(path: Path) -> list[dict]:
    rows, seen = [], set()
    n = 0
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    r = json.loads(line)
                    if not isinstance(r, dict) or "id" not in r:
                        raise KeyError("id")
                    if r["id"] not in seen:  # a resumed run never repeats an id; the first one wins if it did
                        seen.add(r["id"])
                        rows.append(r)
    except FileNotFoundError:
        raise RunReadError(f"{path.parent}: no {path.name}, not a finished run") from None
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as e:
        raise RunReadError(f"{path}, line {n}: not a run's prediction ({str(e)[:120]})") from None
    return rows


def _key(path: Path, extra: str = "") -> str:
    h = hashlib.sha256(f"{path.resolve()}|{extra}".encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in (path.name + ("-" + extra if extra else "")))
    return f"{stem[:60]}-{h}"


def open_run(path: str | Path, with_examples: bool = True) -> list[Run]:
    """The runs in ``path``: one for an llmdemo run folder, one per task for an lm-eval output folder.
    ``with_examples=False`` reads an llmdemo run's results only (a leaderboard needs no more)."""
    path = Path(path)
    if not (path / "results.json").exists():
        from . import lmeval

        if lmeval.is_lmeval(path):
            # keyed by the results file: OUT/modelA and OUT/modelB hold the same task (one page each)
            return [Run(path, res, ex, "lm-eval", _key(Path(res.get("lm_eval_file") or path), res["task"]))
                    for res, ex in lmeval.read_lmeval(path)]
        raise RunReadError("no results.json: not a finished run, nor an lm-eval output folder")
    results = _normal(_read_json(path / "results.json"))
    run = Run(path, results, [], "llmdemo", _key(path))
    if with_examples:
        key = run.per_example
        run.examples = [example(r, key) for r in _read_rows(path / "predictions.jsonl")]
    return [run]


def _normal(res: dict) -> dict:
    """results.json with its parts of the expected types (a hand-edited or foreign file had "metrics": null)."""
    for k in ("metrics", "ci95", "examples", "signatures"):
        if not isinstance(res.get(k), dict):
            res[k] = {}
    res["metrics"] = {k: v for k, v in res["metrics"].items() if isinstance(k, str)}
    if not isinstance(res.get("model"), dict):
        res["model"] = {"name": str(res.get("model") or "?")}
    if not isinstance(res.get("notes"), list):
        res["notes"] = []
    return res


def open_runs(paths: Iterable[str | Path], with_examples: bool = True) -> tuple[list[Run], list[tuple[str, str]]]:
    """Every run in ``paths`` (sorted by task, data, source, date), and the paths skipped with why: a folder
    that cannot be read as a run is skipped with one line, whatever is wrong in it."""
    runs, skipped = [], []
    for p in paths:
        try:
            runs += open_run(p, with_examples)
        except (ValueError, OSError) as e:  # RunReadError, LmEvalError: their own words
            skipped.append((str(p), str(e)))
        except Exception as e:  # noqa: BLE001 - a file of another shape: said, not a traceback
            skipped.append((str(p), f"not readable as a run ({type(e).__name__}: {str(e)[:120]})"))
    runs.sort(key=lambda r: (r.task, r.data, r.source, r.date, r.key))
    return runs, skipped


# ------------------------------------------------------------------ two runs, example by example
def pair_of(a: str | Path, b: str | Path, task: str | None = None) -> tuple[Run, Run]:
    """The two runs to compare: one in each folder, or the one task (``task``) both lm-eval folders hold."""
    ra, rb = open_run(a), open_run(b)
    if task is None and len(ra) == 1 and len(rb) == 1:
        return ra[0], rb[0]
    pairs = [(x, y) for x in ra for y in rb if x.task == y.task and x.data == y.data and task in (None, x.task)]
    if len(pairs) != 1:
        tasks = sorted({x.task for x in ra} & {y.task for y in rb})
        raise RunReadError(f"{a} and {b} share {len(pairs)} tasks{' named ' + repr(task) if task else ''} "
                           f"({', '.join(tasks) or 'none'}); compare needs exactly one: pass --task NAME, or use "
                           "`eval site` for all of them")
    return pairs[0]


def _p(a: list[float], b: list[float], n_samples: int = N_SAMPLES, seed: int = SEED) -> dict:
    """Paired bootstrap of a mean (Koehn 2004), as sacrebleu's paired_bs test runs it for corpus metrics:
    the same resampled ids for both runs, p = (1 + resamples whose |delta| - mean|delta| exceeds the real
    |delta|) / (1 + resamples); and the 95% interval of b - a over the resamples (2.5th to 97.5th percentile)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.array_equal(x, y):  # every resample ties: the test's count gives 1/(n+1), "significant"; no difference is 1
        return {"p": 1.0, "delta_ci": [0.0, 0.0]}
    idx = np.random.default_rng(seed).choice(len(x), size=(n_samples, len(x)), replace=True)
    ma, mb = x[idx].mean(axis=1), y[idx].mean(axis=1)
    diffs = np.abs(mb - ma)
    stats = diffs - diffs.mean()
    real = abs(y.mean() - x.mean())
    p = (int(np.sum(stats > real)) + 1) / (n_samples + 1)
    lo, hi = np.percentile(mb - ma, [2.5, 97.5])
    return {"p": p, "delta_ci": [float(lo), float(hi)]}


def _tgt_lang(results: dict) -> str:
    sig = results.get("signatures", {}).get("bleu", "")
    return "zh" if "tok:zh" in sig else "en"


def paired(a: Run, b: Run, n_samples: int = N_SAMPLES) -> dict:
    """The run metrics of ``a`` and ``b`` on the ids both scored, with b - a and a paired test.

    BLEU and chrF go through sacrebleu's paired bootstrap (rescored on the shared ids with the tokenizer the
    run used). A metric that is the mean of a per-example score in both runs (accuracy, ROUGE, a pair's
    stereotype, lm-eval's per-sample metrics) gets the same test on those means. Other metrics (perplexity,
    bias scores of a category) are shown with their delta and no test. Returns ``{"ids": n, "only_a": n,
    "only_b": n, "tests": [{"metric", "a", "b", "delta", "p", "delta_ci", "ci_a", "ci_b", "test"}]}``."""
    if a.task != b.task:
        raise RunReadError(f"cannot compare a {a.task} run with a {b.task} run")
    ea, eb = {e["id"]: e for e in a.examples}, {e["id"]: e for e in b.examples}
    ids = [i for i in ea if i in eb]
    out = {"ids": len(ids), "only_a": len(ea) - len(ids), "only_b": len(eb) - len(ids), "tests": []}
    ma, mb = a.results.get("metrics", {}), b.results.get("metrics", {})
    tested: dict[str, dict] = {}
    if a.source == b.source == "llmdemo" and a.task in ("translation", "dialogue") and len(ids) > 1:
        from sacrebleu.metrics import BLEU, CHRF
        from sacrebleu.significance import PairedTest

        from .metrics import bleu_tokenizer

        # the tokenizer the run scored with, as stored in its rows (older runs: from the target language)
        first = ea[ids[0]]
        tok = first.get("bleu_tokenize") or bleu_tokenizer(
            first.get("tgt_lang") or (_tgt_lang(a.results) if a.task == "translation" else "en"))[0]
        outs_a, outs_b = [ea[i]["output"] for i in ids], [eb[i]["output"] for i in ids]
        test = PairedTest([("a", outs_a), ("b", outs_b)], {"bleu": BLEU(tokenize=tok), "chrf": CHRF()},
                          [[ea[i]["reference"] for i in ids]], test_type="bs", n_samples=n_samples)
        _, scores = test()  # keyed by the metrics' display names ("BLEU", "chrF2"); [baseline, system]
        same = outs_a == outs_b
        for name, label in (("bleu", "BLEU"), ("chrf", "chrF2")):
            sa, sb = scores[label][0], scores[label][1]
            # identical outputs: sacrebleu's count still gives 1/(n+1) (no resample beats a zero difference)
            tested[name] = {"a": sa.score, "b": sb.score, "p": 1.0 if same else sb.p_value, "delta_ci": None,
                            "test": f"sacrebleu paired bootstrap, {n_samples} resamples"}
    for k in ma:
        va, vb = ma.get(k), mb.get(k)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb)):
            continue
        row = {"metric": k, "a": va, "b": vb, "p": None, "delta_ci": None, "test": "",
               "ci_a": a.results.get("ci95", {}).get(k), "ci_b": b.results.get("ci95", {}).get(k)}
        if k in tested:
            row.update(tested[k])
        elif len(ids) > 1 and _is_mean(a, k) and _is_mean(b, k):
            xa = [ea[i]["scores"][k] for i in ids]
            xb = [eb[i]["scores"][k] for i in ids]
            row.update(a=float(np.mean(xa)), b=float(np.mean(xb)), **_p(xa, xb, n_samples),
                       test=f"paired bootstrap of the mean, {n_samples} resamples")
        row["delta"] = row["b"] - row["a"]
        out["tests"].append(row)
    return out


def _is_mean(run: Run, k: str) -> bool:
    """Whether run metric ``k`` is the mean of the examples' ``k`` (so resampling examples resamples it)."""
    vals = [e["scores"].get(k) for e in run.examples]
    if not vals or any(not isinstance(v, (int, float)) for v in vals):
        return False
    m = run.results.get("metrics", {}).get(k)
    return isinstance(m, (int, float)) and abs(float(np.mean(vals)) - m) <= 1e-6 * max(1.0, abs(m))


def side_by_side(a: Run, b: Run) -> tuple[str | None, list[dict]]:
    """The examples both runs have, aligned by id, largest change of the per-example score first (then the
    changed answers, then the rest in ``a``'s order). Each row: ``id``, ``input``, ``prompt``, ``reference``,
    ``a`` / ``b`` (the outputs), ``score_a`` / ``score_b``, ``delta`` (b - a, or None), ``changed``
    (another answer or another score)."""
    if a.task != b.task:
        raise RunReadError(f"cannot line up a {a.task} run with a {b.task} run")
    key = a.pair_key
    eb = {e["id"]: e for e in b.examples}
    rows = []
    for n, x in enumerate(a.examples):
        y = eb.get(x["id"])
        if y is None:
            continue
        sa, sb = x["scores"].get(key) if key else None, y["scores"].get(key) if key else None
        delta = sb - sa if isinstance(sa, (int, float)) and isinstance(sb, (int, float)) else None
        rows.append({"id": x["id"], "input": x["input"], "prompt": x["prompt"] or y["prompt"],
                     "reference": x["reference"] or y["reference"], "a": x["output"], "b": y["output"],
                     "score_a": sa, "score_b": sb, "delta": delta,
                     "changed": x["output"] != y["output"] or (delta is not None and delta != 0), "_n": n})
    rows.sort(key=lambda r: (-(abs(r["delta"]) if r["delta"] is not None else 0.0), not r["changed"], r["_n"]))
    for r in rows:
        del r["_n"]
    return key, rows


def filter_sort(examples: list[dict], text: str = "", order: str = "data") -> list[dict]:
    """A run's examples filtered by text (in id, input, output or reference; case-insensitive) and sorted:
    ``data`` (as written), ``score`` (lowest first) or ``-score`` (highest first); no score sorts last."""
    q = text.strip().lower()
    rows = [e for e in examples if not q or any(q in str(e.get(f, "")).lower()
                                                 for f in ("id", "input", "output", "reference"))]
    if order in ("score", "-score"):
        sign = -1 if order == "-score" else 1
        rows = sorted(rows, key=lambda e: (e["score"] is None, sign * e["score"] if e["score"] is not None else 0))
    return rows
