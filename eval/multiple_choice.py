"""The multiple-choice task kind: each choice scored as a continuation of the prompt, the pick is the argmax.

As lm-evaluation-harness's ``output_type: multiple_choice``: one ``loglikelihood`` request per choice,
``(prompt, target_delimiter + choice)``; ``acc`` = the raw log-likelihood's argmax is a right answer,
``acc_norm`` = the argmax of log-likelihood / the choice's length. lm-eval divides by ``len(choice)`` in
characters; this divides by its UTF-8 bytes, which is the same for ASCII choices (every BBQ choice is).
A record may have several right answers (BBQ's ten "unknown" phrasings): a pick counts if it is any.

>>> mc = MultipleChoice(prompt=lambda r: r["q"], choices=lambda r: r["options"], gold=lambda r: [r["label"]])
>>> mc.requests({"q": "2+2=", "options": ["4", "five"], "label": 0})
[('loglikelihood', ('2+2=', ' 4')), ('loglikelihood', ('2+2=', ' five'))]
>>> row = mc.process({"id": "a", "q": "2+2=", "options": ["4", "five"], "label": 0}, [(-3.0, 1), (-4.0, 2)])
>>> row["pick"], row["acc"], row["pick_norm"], row["acc_norm"], row["margin"]
(0, 1.0, 1, 0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from . import metrics


def argmax(values: Sequence[float]) -> int:
    """The first index of the largest value (numpy's argmax, which lm-eval uses, breaks ties the same way)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


@dataclass(frozen=True)
class MultipleChoice:
    """How a record becomes a prompt, its choices and its right answers."""

    prompt: Callable[[dict], str]  # record -> the context every choice continues
    choices: Callable[[dict], list[str]]  # record -> the choices' texts (without the delimiter)
    gold: Callable[[dict], list[int]]  # record -> the indices that count as right
    target_delimiter: str = " "  # put between the prompt and each choice, as lm-eval's default
    extra: Callable[[dict, list[str], int], dict] | None = None  # (record, choices, pick) -> task-specific columns

    def requests(self, record: dict, lm=None, spec=None) -> list[tuple[str, tuple]]:
        p = self.prompt(record)
        return [("loglikelihood", (p, self.target_delimiter + c)) for c in self.choices(record)]

    def process(self, record: dict, answers: list[tuple[float, int]], requests=None) -> dict:
        choices = self.choices(record)
        gold = [g for g in self.gold(record) if 0 <= g < len(choices)]
        lls = [float(a[0]) for a in answers]
        norm = [ll / max(1, len(c.encode("utf-8"))) for ll, c in zip(lls, choices)]
        pick, pick_norm = argmax(lls), argmax(norm)
        right = max((lls[g] for g in gold), default=float("-inf"))
        wrong = max((ll for i, ll in enumerate(lls) if i not in gold), default=float("-inf"))
        row = {"id": record["id"], "input": self.prompt(record), "choices": choices, "loglikelihoods": lls,
               "n_tokens": [int(a[1]) for a in answers], "gold": gold, "pick": pick, "chosen": choices[pick],
               "pick_norm": pick_norm, "acc": 1.0 if pick in gold else 0.0, "acc_norm": 1.0 if pick_norm in gold else 0.0,
               # > 0: the best right choice beat every wrong one by this many nats (best/worst examples)
               "margin": right - wrong}
        if self.extra is not None:
            row.update(self.extra(record, choices, pick))
        return row


def choice_metrics(rows: Sequence[dict], n: int = metrics.N_BOOTSTRAP) -> dict:
    """``acc`` and ``acc_norm`` (fractions, as lm-eval reports them) with 95% bootstrap intervals over examples.

    >>> r = choice_metrics([{"acc": 1.0, "acc_norm": 0.0}, {"acc": 0.0, "acc_norm": 0.0}], n=50)
    >>> r["metrics"]
    {'acc': 0.5, 'acc_norm': 0.0}
    """
    out = {"metrics": {}, "ci95": {}}
    for k in ("acc", "acc_norm"):
        vals = [r[k] for r in rows]
        out["metrics"][k] = sum(vals) / len(vals)
        out["ci95"][k] = metrics.bootstrap_mean_ci(vals, n)
    out["signatures"] = {"multiple_choice": "lm-evaluation-harness multiple_choice: argmax of the choices' "
                                            "log-likelihoods after the prompt; acc_norm divides by the choice's "
                                            "UTF-8 bytes; 95% CIs by bootstrap over examples"}
    return out
