"""Reports: results.json for machines; report.md and a self-contained report.html for people."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from .metrics import FEW_FOR_CI
from .runfolder import write_file


def _per_example_key(task: str) -> str | None:
    from .tasks import TASKS

    return TASKS[task].per_example if task in TASKS else None


def _fmt(v) -> str:
    return f"{v:,.2f}" if isinstance(v, float) else str(v)


def _plots(results: dict, rows: list[dict]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: metric bars with 95% CIs and a per-example histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    m = {k: v for k, v in results["metrics"].items() if isinstance(v, (int, float)) and not k.startswith("n_")
         and k not in ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "reference_perplexity")}
    if m:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = list(m)
        ci = results.get("ci95", {}) if results.get("n_examples", 0) >= FEW_FOR_CI else {}  # no bars from few
        # clipped at 0: with every example scoring the same, the interval's ends can fall a rounding step
        # inside the value, and matplotlib refuses negative error bars
        err = [[max(0.0, m[k] - ci[k][0]) if k in ci else 0 for k in names],
               [max(0.0, ci[k][1] - m[k]) if k in ci else 0 for k in names]]
        ax.bar(names, [m[k] for k in names], yerr=err, capsize=4, color="#4c72b0")
        ax.set_ylabel("score" if any(abs(v) <= 1 for v in m.values()) and all(abs(v) <= 1 for v in m.values())
                      else "score (0-100)")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.set_title("Metrics with 95% bootstrap intervals")
        out.append(("Metrics", _png(fig)))
    by_type = results.get("by_bias_type")
    if by_type:  # one bar per bias type, with its interval and the unbiased 50% line
        fig, ax = plt.subplots(figsize=(7, 3.2))
        names = list(by_type)
        vals = [by_type[t]["pct_stereotype"] for t in names]
        err = [[max(0.0, v - by_type[t]["ci95"]["pct_stereotype"][0]) for t, v in zip(names, vals)],
               [max(0.0, by_type[t]["ci95"]["pct_stereotype"][1] - v) for t, v in zip(names, vals)]]
        ax.bar(names, vals, yerr=err, capsize=3, color="#c44e52")
        ax.axhline(50, color="black", linestyle="--", linewidth=1, label="unbiased (50%)")
        ax.set_ylim(0, 100)
        ax.set_ylabel("% pairs, stereotype likelier")
        ax.set_title("CrowS-Pairs by bias type (95% bootstrap intervals)")
        ax.tick_params(axis="x", labelrotation=35, labelsize=8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(("Bias by type", _png(fig)))
    by_cat = results.get("by_category")
    if by_cat:  # BBQ: the two bias scores per category, with intervals and the unbiased 0 line
        import numpy as np

        fig, ax = plt.subplots(figsize=(7, 3.4))
        names = list(by_cat)
        x = np.arange(len(names))
        for off, k, color in ((-0.2, "amb_bias_score", "#dd8452"), (0.2, "disamb_bias_score", "#4c72b0")):
            vals = [by_cat[c].get(k) or 0.0 for c in names]
            cis = [by_cat[c]["ci95"].get(k, [v, v]) for c, v in zip(names, vals)]
            err = [[max(0.0, v - lo) for v, (lo, _) in zip(vals, cis)], [max(0.0, hi - v) for v, (_, hi) in zip(vals, cis)]]
            ax.bar(x + off, vals, width=0.4, yerr=err, capsize=3, color=color, label=k)
        ax.axhline(0, color="black", linewidth=1)
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set_ylim(-1, 1)
        ax.set_ylabel("bias score (0 = unbiased)")
        ax.set_title("BBQ bias by category (95% bootstrap intervals)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(("Bias by category", _png(fig)))
    key = _per_example_key(results["task"])
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if len(vals) > 1:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(vals, bins=min(30, max(5, len(vals) // 3)), color="#55a868")
        ax.set_xlabel(f"per-example {key}")
        ax.set_ylabel("examples")
        out.append((f"Per-example {key}", _png(fig)))
    return out


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def best_worst(results: dict, rows: list[dict], n: int = 3) -> tuple[list[dict], list[dict]]:
    key = _per_example_key(results["task"])
    scored = [r for r in rows if isinstance(r.get(key), (int, float))]
    from .tasks import TASKS

    rev = TASKS[results["task"]].higher_is_better if results["task"] in TASKS else True
    scored.sort(key=lambda r: r[key], reverse=rev)
    return scored[:n], scored[::-1][:n]


def _source(r: dict) -> str:
    p = r.get("input") or r.get("source") or r.get("prompt", "")
    if isinstance(p, list):
        p = p[-1]["content"] if p else ""
    return str(p)


def _seed_words(results: dict) -> str:
    """'seed 0' only where a seed mattered: greedy decoding and scoring draw nothing."""
    cfg = results.get("config") or {}
    return f"seed {results['seed']}" if cfg.get("temperature") not in (None, 0, 0.0) else "greedy (no sampling)"


def _timing_words(t: dict) -> str:
    """The timing as a sentence (the JSON stays in results.json and the HTML report's reproducibility part).

    >>> _timing_words({"seconds": 107.2, "examples_this_run": 375, "examples_per_s": 3.5, "tokens_per_s": 114.9})
    '107.2 s for 375 examples (3.5 examples/s, 114.9 tokens/s)'
    """
    rates = [f"{t[k]} {unit}" for k, unit in (("examples_per_s", "examples/s"), ("tokens_per_s", "tokens/s"))
             if t.get(k)]
    return (f"{t.get('seconds')} s for {t.get('examples_this_run')} examples"
            + (f" ({', '.join(rates)})" if rates else ""))


def _batching_words(b: dict) -> str:
    """How the run's sequences shared the engine, as a sentence.

    >>> _batching_words({"engine": "in-process scheduler", "max_sequences_per_step": 16, "micro_batch_tokens": 32,
    ...                  "flash_attention": True, "examples_at_once": 1, "reproducible": True})
    'one sequence at a time (--reproducible); in-process scheduler, up to 16 sequences per step, micro-batches of 32 tokens, flash attention'
    """
    parts = [b.get("engine") or "unknown engine"]
    if b.get("max_sequences_per_step"):
        parts.append(f"up to {b['max_sequences_per_step']} sequences per step")
    if b.get("micro_batch_tokens"):
        parts.append(f"micro-batches of {b['micro_batch_tokens']} tokens")
    if b.get("flash_attention"):
        parts.append("flash attention")
    if b.get("lone_rows"):
        parts.append(f"lone rows {b['lone_rows']}")
    if b.get("server"):
        parts.append(b["server"])
    c = b.get("concurrency")
    if c:
        parts.append(f"requests in flight: {c.get('mode')}, {c.get('lowest')}-{c.get('peak')} "
                     f"(limit {c.get('limit')} at the end, {c.get('rate_limited')} answered 429)")
    head = ("one sequence at a time (--reproducible)" if b.get("reproducible")
            else f"{b.get('examples_at_once')} examples handed at once")
    return head + "; " + ", ".join(parts)


def write_reports(out: Path, results: dict, rows: list[dict]) -> None:
    model = results["model"]
    lines = [f"# Evaluation: {results['task']} on {Path(results['data']).name}", "",
             f"Model **{model['name']}** ("
             + (f"{model['parameters'] / 1e6:.1f} M parameters, " if model.get("parameters") else "")
             + (f"server {model['base_url']} serving `{model.get('served_model')}`, "
                if model.get("backend") == "openai" else "")
             + (f"llama.cpp {model.get('llama_cpp_python')}, " if model.get("backend") == "llamacpp" else "")
             + f"{model['dtype']}, {model['device']}"
             + (f", generation forward {model['decode']}" if model.get("decode") and results["task"] != "perplexity"
                else "")
             + f"; file/revision `{model.get('file_sha256') or model.get('revision')}`), "
             f"{results['n_examples']} examples, {_seed_words(results)}.", "",
             "| metric | value | 95% CI |", "| --- | --- | --- |"]
    few = results.get("n_examples", 0) < FEW_FOR_CI  # an interval from so few examples would look certain
    for k, v in results["metrics"].items():
        ci = results.get("ci95", {}).get(k)
        cell = (f"none: {results['n_examples']} examples are too few" if few else f"{ci[0]:.2f} – {ci[1]:.2f}") \
            if ci else ""
        lines.append(f"| {k} | {_fmt(v)} | {cell} |")
    lines += ["", "**Signatures**", ""] + [f"- {k}: `{v}`" for k, v in results.get("signatures", {}).items()]
    lines += ["", f"**Prompt template**: `{results['prompt_template']!r}`", "",
              f"**Decoding**: `{json.dumps(results['config'])}`", "",
              f"**Versions**: `{json.dumps(results['versions'])}`", "",
              f"**Timing**: {_timing_words(results['timing'])}", ""]
    if results.get("batching"):  # older runs lack it
        lines += [f"**Batching**: {_batching_words(results['batching'])}", ""]
    if results.get("scoring_error"):
        lines[2:2] = [f"**Scoring failed**: {results['scoring_error']}. The predictions are kept in predictions.jsonl; "
                      "the same command scores them again without generating.", ""]
    ex = results.get("examples")
    if ex:
        lines += [f"**Examples**: {ex['scored']} scored, {ex['failed']} failed (not scored, retried by the same "
                  f"command), {ex['retried']} asked for again after the server aborted them, "
                  f"{ex['empty_by_model']} empty as the model returned them (it ended at once)", ""]
    lines += [f"**Note**: {n}" for n in results.get("notes", [])] + ([""] if results.get("notes") else [])
    by_type = results.get("by_bias_type")
    if by_type:
        lines += ["**By bias type** (50% = unbiased)", "", "| bias type | pairs | pct_stereotype | 95% CI | likelihood_diff |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {t} | {v['n']} | {v['pct_stereotype']:.1f} | {v['ci95']['pct_stereotype'][0]:.1f} – "
                  f"{v['ci95']['pct_stereotype'][1]:.1f} | {v['likelihood_diff']:.2f} |" for t, v in by_type.items()]
        lines.append("")
    by_cat = results.get("by_category")
    if by_cat:
        lines += _by_category_md(by_cat)
    from .tasks import TASKS

    task_notes = TASKS[results["task"]].notes if results["task"] in TASKS else ()
    for note in [*task_notes, *results.get("notes", [])]:
        lines.append(f"> note: {note}")
    best, worst = best_worst(results, rows)
    key = _per_example_key(results["task"])
    kind = TASKS[results["task"]].kind if results["task"] in TASKS else "generate"
    lines += _md_examples(kind, key, best, worst)
    write_file(out / "report.md", "\n".join(lines) + "\n")

    plots = _plots(results, rows)
    for i, (_, png) in enumerate(plots):
        (out / f"plot-{i + 1}.png").write_bytes(base64.b64decode(png))  # for the app and for slides
    write_file(out / "report.html", _html_report(results, lines, by_type, by_cat, task_notes, best, worst, key,
                                                 kind, plots))


def _md_examples(kind: str, key: str, best: list[dict], worst: list[dict]) -> list[str]:
    """The report's best and worst examples as Markdown tables (generation and multiple-choice tasks)."""
    lines: list[str] = []
    if kind == "generate":
        for title, group in (("Best examples", best), ("Worst examples", worst)):
            lines += ["", f"## {title} (by {key})", "", "| id | input | reference | prediction | score |",
                      "| --- | --- | --- | --- | --- |"]
            for r in group:
                cells = [r["id"], _source(r)[:200], str(r["reference"])[:200], r["prediction"][:200], _fmt(r[key])]
                lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in map(str, cells)) + " |")
    if kind == "multiple_choice":
        for title, group in (("Best examples", best), ("Worst examples", worst)):
            lines += ["", f"## {title} (by {key}: the best right choice's log-likelihood minus the best wrong one's)",
                      "", "| id | input | right | pick | log-likelihoods | right? | margin |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for r in group:
                cells = [r["id"], _source(r)[:200], " / ".join(r["choices"][g] for g in r["gold"][:2])
                         + (" / ..." if len(r["gold"]) > 2 else ""), r["chosen"],
                         ", ".join(f"{c}: {ll:.2f}" for c, ll in list(zip(r["choices"], r["loglikelihoods"]))[:4])
                         + (", ..." if len(r["choices"]) > 4 else ""), "yes" if r["acc"] else "no", _fmt(r[key])]
                lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in map(str, cells)) + " |")
    return lines


def _html_report(results: dict, lines: list[str], by_type, by_cat, task_notes, best, worst, key: str, kind: str,
                 plots: list[tuple[str, str]]) -> str:
    """report.html: the Markdown report's content as one self-contained page, with the plots inlined."""
    body = [f"<h1>{html.escape(lines[0][2:])}</h1>", f"<p>{_bold(html.escape(lines[2]))}</p>", "<table><tr><th>metric</th>"
            "<th>value</th><th>95% CI</th></tr>"]
    for k, v in results["metrics"].items():
        ci = results.get("ci95", {}).get(k)
        body.append(f"<tr><td>{k}</td><td>{_fmt(v)}</td><td>{f'{ci[0]:.2f} – {ci[1]:.2f}' if ci else ''}</td></tr>")
    body.append("</table>")
    if by_type:
        body.append("<h2>By bias type (50% = unbiased)</h2><table><tr><th>bias type</th><th>pairs</th>"
                    "<th>pct_stereotype</th><th>95% CI</th><th>likelihood_diff</th></tr>")
        body += [f"<tr><td>{html.escape(t)}</td><td>{v['n']}</td><td>{v['pct_stereotype']:.1f}</td><td>"
                 f"{v['ci95']['pct_stereotype'][0]:.1f} – {v['ci95']['pct_stereotype'][1]:.1f}</td>"
                 f"<td>{v['likelihood_diff']:.2f}</td></tr>" for t, v in by_type.items()]
        body.append("</table>")
    if by_cat:
        body.append(_md_table_html(_by_category_md(by_cat)))
    body += [f"<p class='note'>{html.escape(n)}</p>" for n in [*task_notes, *results.get("notes", [])]]
    for title, png in plots:
        body.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
    if kind == "generate":
        body.append("<h2>Best and worst examples</h2><div class='cols'>")
        for title, group in (("Best", best), ("Worst", worst)):
            body.append(f"<div><h3>{title}</h3>")
            for r in group:
                body.append("<div class='ex'>" + "".join(
                    f"<p><b>{lab}</b> {html.escape(str(val))}</p>" for lab, val in
                    (("input", _source(r)[:400]), ("reference", r["reference"]), ("prediction", r["prediction"]),
                     (key, _fmt(r[key])))) + "</div>")
            body.append("</div>")
        body.append("</div>")
    if kind == "multiple_choice":
        body.append("<h2>Best and worst examples</h2><div class='cols'>")
        for title, group in (("Best", best), ("Worst", worst)):
            body.append(f"<div><h3>{title}</h3>")
            for r in group:
                lls = "; ".join(f"{c}: {ll:.2f}" for c, ll in zip(r["choices"], r["loglikelihoods"]))
                body.append("<div class='ex'>" + "".join(
                    f"<p><b>{lab}</b> {html.escape(str(val))}</p>" for lab, val in
                    (("input", _source(r)[:400]), ("right", " / ".join(r["choices"][g] for g in r["gold"])),
                     ("pick", r["chosen"]), ("log-likelihoods", lls), (key, _fmt(r[key])))) + "</div>")
            body.append("</div>")
        body.append("</div>")
    body.append("<h2>Reproducibility</h2><pre>" + html.escape(json.dumps(
        {k: results[k] for k in ("model", "prompt_template", "config", "seed", "signatures", "versions", "timing",
                                 "batching") if k in results},
        indent=1, ensure_ascii=False)) + "</pre>")
    css = ("body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px}.cols{display:flex;gap:1em}.cols>div{flex:1}"
           ".ex{border:1px solid #ddd;padding:6px;margin:6px 0}pre{white-space:pre-wrap}")
    return (f"<!doctype html><meta charset='utf-8'><title>llmdemo report</title>"
            f"<style>{css}</style>" + "\n".join(body))


def _bold(escaped: str) -> str:
    """Markdown's **bold** in an already-escaped line, as HTML (the report's header showed raw asterisks).

    >>> _bold("Model **smollm2** (gguf)")
    'Model <b>smollm2</b> (gguf)'
    """
    import re

    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)


_CAT_KEYS = ("acc", "accuracy_amb", "accuracy_disamb", "amb_bias_score", "disamb_bias_score")


def _by_category_md(by_cat: dict) -> list[str]:
    """BBQ's per-category table (value [95% CI]); 0 is the unbiased point of both bias scores."""
    def cell(v, k):
        x = v.get(k)
        ci = v.get("ci95", {}).get(k)
        return "" if x is None else f"{x:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    lines = ["**By category** (bias scores: 0 = unbiased, > 0 follows the stereotype, < 0 goes against it)", "",
             "| category | records | " + " | ".join(_CAT_KEYS) + " |", "| --- | --- |" + " --- |" * len(_CAT_KEYS)]
    lines += [f"| {c} | {v['n']} | " + " | ".join(cell(v, k) for k in _CAT_KEYS) + " |" for c, v in by_cat.items()]
    return lines + [""]


def _md_table_html(lines: list[str]) -> str:
    """A heading line and a Markdown table (as _by_category_md writes them) as HTML."""
    head, rows = lines[0], [l for l in lines[2:] if l.startswith("|") and not l.startswith("| ---")]
    cells = [[html.escape(c.strip()) for c in l.strip().strip("|").split("|")] for l in rows]
    out = [f"<h2>{_bold(html.escape(head))}</h2><table>"]
    out.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells[0]) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]]
    return "".join(out) + "</table>"
