"""One lm-evaluation-harness sample line as this project's example row (eval/lmeval.py reads the logs): its
requests' arguments in either of lm-eval's shapes, the pick of a multiple-choice sample, a generation's
output, a log-likelihood's number, and the per-sample metrics."""

from __future__ import annotations

import json
import math
import re

def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                return None
        else:
            return None
    v = float(v)
    return v if math.isfinite(v) else None


def _args(sample: dict) -> list[list]:
    """A sample's requests' arguments as lists, from either shape: 0.4.3+ ``{"gen_args_0": {"arg_0": ctx,
    "arg_1": cont}}`` or the older ``[[ctx, cont], ...]``."""
    a = sample.get("arguments")
    if isinstance(a, dict):
        def idx(k):
            m = re.search(r"(\d+)$", str(k))
            return int(m.group(1)) if m else 0

        return [[v[k] for k in sorted(v, key=idx)] if isinstance(v, dict) else [v]
                for _, v in sorted(a.items(), key=lambda kv: idx(kv[0]))]
    if isinstance(a, list):
        return [list(x) if isinstance(x, (list, tuple)) else [x] for x in a]
    return []


def _first(x):
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return x


def _example(s: dict, output_type: str, names: dict[str, str], main: str | None) -> dict:
    args = _args(s)
    prompt = args[0][0] if args and args[0] else ""
    prompt = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    target = s.get("target")
    ex = {"id": str(s.get("doc_id")), "input": prompt, "prompt": "", "output": "",
          "reference": "" if target is None else str(target)}
    fr = s.get("filtered_resps")
    fr = fr if isinstance(fr, list) else [fr]
    if output_type == "multiple_choice":
        # the requests that continue this doc's prompt (acc_mutual_info adds unconditioned ones after them)
        idx = [i for i, a in enumerate(args) if a and a[0] == args[0][0] and len(a) > 1 and i < len(fr)]
        choices = [str(args[i][1]) for i in idx]
        lls = [_number(_first(fr[i])) for i in idx]
        if lls and all(v is not None for v in lls):
            pick = max(range(len(lls)), key=lambda i: (lls[i], -i))  # the first largest, as numpy's argmax
            shown = [c.removeprefix(" ") for c in choices]  # less the default target delimiter
            ex.update(output=shown[pick], pick=pick, chosen=shown[pick], choices=shown, loglikelihoods=lls)
            t = str(target).strip() if target is not None else ""
            if re.fullmatch(r"\d+", t) and int(t) < len(shown):
                ex.update(reference=shown[int(t)], gold=[int(t)])
    elif output_type == "generate_until":
        out = _first(fr)
        ex["output"] = "" if out is None or isinstance(out, (list, tuple)) else str(out)
    else:  # loglikelihood / loglikelihood_rolling: the number(s) lm-eval got
        ll = _number(_first(fr))
        greedy = fr[0][1] if fr and isinstance(fr[0], list) and len(fr[0]) > 1 else None
        ex["output"] = "" if ll is None else (f"log p = {ll:.2f}" + (f" (greedy: {greedy})" if greedy is not None
                                                                       else ""))
    metric_names = s.get("metrics") if isinstance(s.get("metrics"), list) else list(names)
    scores = {}
    for m in metric_names:
        v = _number(s.get(m)) if not isinstance(s.get(m), str) else None
        if v is not None and m in names:
            scores[names[m]] = v
    ex["scores"] = scores
    ex["score"] = scores.get(main) if main else None
    ex["status"] = "empty" if output_type == "generate_until" and not ex["output"].strip() else "scored"
    return ex


def _first_filter_block(rows: list[dict], first: str | None) -> list[dict]:
    """The samples of one filter: by the ``filter`` field, or (older lines without it) the first run of lines
    before a ``doc_id`` comes back, as lm-eval writes all of one filter's documents then the next's."""
    if any("filter" in r for r in rows):
        flt = first if first is not None and any(r.get("filter") == first for r in rows) else rows[0].get("filter")
        return [r for r in rows if r.get("filter") == flt]
    seen, out = set(), []
    for r in rows:
        if r.get("doc_id") in seen:
            break
        seen.add(r.get("doc_id"))
        out.append(r)
    return out


def _guess_type(rows: list[dict]) -> str:
    if not rows:
        return ""
    args = _args(rows[0])
    if args and len(args[0]) > 1 and isinstance(args[0][1], dict):
        return "generate_until"
    return "multiple_choice" if len(args) > 1 else "loglikelihood"
