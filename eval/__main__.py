"""python -m eval run --task TASK|FILE.yaml [--data FILE] --output DIR [...] | compare A B | diff A B |
leaderboard RUN_DIR... | site RUN_DIR... --output SITE"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmdemo.errors import UserError
from llmdemo.cli import add_decoding_args, add_model_args, decoding_config
from llmdemo.load import load

from .runfolder import RunError, RunSpec, check_output
from .runner import TASKS, run


def compare(a: Path, b: Path, n_samples: int = 1000, task: str | None = None) -> str:
    """Side-by-side metrics with deltas and the paired test of eval/runs.py (the site shows the same)."""
    from .runs import pair_of, paired

    ra, rb = pair_of(a, b, task)
    res = paired(ra, rb, n_samples)
    lines = [f"# {a.name} vs {b.name} ({ra.task})", "", f"| metric | {a.name} | {b.name} | delta | p-value |",
             "| --- | --- | --- | --- | --- |"]
    for t in res["tests"]:
        p = f"{t['p']:.4f}" if t["p"] is not None else ""
        lines.append(f"| {t['metric']} | {t['a']:.2f} | {t['b']:.2f} | {t['delta']:+.2f} | {p} |")
    tests = sorted({t["test"] for t in res["tests"] if t["test"]})
    if tests:
        lines += ["", f"p-values over the {res['ids']} shared ids: " + "; ".join(tests) + "."]
    text = "\n".join(lines) + "\n"
    if (b / "results.json").exists():  # an llmdemo run folder (an lm-eval folder is left as it is)
        (b / "compare.md").write_text(text, encoding="utf-8")
    return text


def list_text() -> str:
    """The registered tasks and the shipped benchmarks, as `python -m eval list` prints them."""
    from .shipped import SHIPPED_DIR, shipped_list
    from .tasks import TASKS as REGISTRY

    lines = ["Tasks (--task):"]
    lines += [f"  {t.name:<14} {t.description} (main metric {t.main_metric}, "
              f"{'higher' if t.higher_is_better else 'lower'} is better)" for t in REGISTRY.values()]
    lines += ["", f"Shipped benchmarks (--data NAME; files in {SHIPPED_DIR.name}/, origin and licence in "
                  f"{SHIPPED_DIR.name}/SOURCES.md):"]
    shipped = shipped_list()
    w = max(len(name) for name, *_ in shipped)
    lines += [f"  {name:<{w}} {task:<14} {n:>5} {'text' if n == 1 else 'examples'}   {fname}"
              for name, task, n, fname in shipped]
    return "\n".join(lines)


def _concurrency(value: str) -> str | int:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"'auto' or a whole number of at least 1, got {value!r}")
    return int(value)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval", description="Score llmdemo's model on benchmark data.")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one evaluation")
    r.add_argument("--task", required=True, help=f"one of {', '.join(TASKS)}, or a task file (path/to/task.yaml)")
    r.add_argument("--data", default=None, help="(default: the data a task file names) "
                                                   "a shipped benchmark's name (python -m eval list), a JSONL/text "
                                                  "file, or hf:NAME (xsum, cnn_dailymail, wikitext, wmt14:en-fr)")
    r.add_argument("--output", required=True, help="folder for predictions, results and reports")
    r.add_argument("--limit", type=int, default=None, help="first N examples only (bbq: N taken from its categories in turn)")
    r.add_argument("--batch-size", default="8", help="examples per batch, or 'auto'")
    r.add_argument("--max-length", type=int, default=1024, help="perplexity window (tokens)")
    r.add_argument("--stride", type=int, default=512, help="perplexity window step (tokens)")
    r.add_argument("--length", default="short", help="summary length: short, medium, long")
    r.add_argument("--overwrite", action="store_true", help="replace a run with other settings in --output")
    r.add_argument("--concurrency", type=_concurrency, default="auto",
                   help="openai:NAME models: requests in flight at once, so the server can batch: 'auto' (default: "
                        "from 20 up to 100, cut by 0.8 when the server answers 429; fixed at a llama-server's slot "
                        "count) or a number (fixed)")
    r.add_argument("--reproducible", action="store_true",
                   help="one sequence at a time (no batching): greedy text equal to each example run alone; slower")
    add_model_args(r)
    add_decoding_args(r)
    sub.add_parser("list", help="the tasks and the benchmark data shipped with llmdemo")
    c = sub.add_parser("compare", help="compare two runs")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--task", default=None, help="the task to compare when A and B are lm-eval folders of several")
    lb = sub.add_parser("leaderboard", help="one table (Markdown + HTML with a plot) of many runs' main metrics")
    lb.add_argument("runs", nargs="+", type=Path, help="run folders (e.g. runs/*)")
    lb.add_argument("--output", type=Path, default=Path("."), help="folder for leaderboard.md and leaderboard.html")
    df = sub.add_parser("diff", help="two runs of one task side by side, example by example")
    df.add_argument("a", type=Path)
    df.add_argument("b", type=Path)
    df.add_argument("--limit", type=int, default=50, help="changed examples shown (default 50)")
    st = sub.add_parser("site", help="a static site (HTML, no server) of runs: leaderboard, every example, two runs "
                                     "side by side; lm-eval output folders too")
    st.add_argument("runs", nargs="+", type=Path, help="run folders (e.g. runs/*) and lm-eval output folders")
    st.add_argument("--output", type=Path, required=True, help="folder for the site (index.html; a static Space's "
                                                                  "README.md front matter)")
    st.add_argument("--votes", type=Path, default=None, help="a Compare votes database (votes.sqlite): its leaderboard")
    args = ap.parse_args(argv)
    try:
        if args.command == "site":
            from .site import build

            info = build(args.runs, args.output, args.votes, progress=lambda s: print(s, file=sys.stderr))
            for p, why in info["skipped"]:
                print(f"skipped {p}: {why}", file=sys.stderr)
            print(f"wrote {info['runs']} run pages and {info['pairs']} side-by-side pages; open {info['index']}")
            return 0
        if args.command == "leaderboard":
            from .leaderboard import write

            md, p_md, p_html = write(args.runs, args.output)
            print(md)
            print(f"wrote {p_md} and {p_html}", file=sys.stderr)
            return 0
        if args.command == "diff":
            from .leaderboard import diff_markdown

            text = diff_markdown(args.a, args.b, args.limit)
            (args.b / "diff.md").write_text(text, encoding="utf-8")
            print(text)
            return 0
        if args.command == "compare":
            print(compare(args.a, args.b, task=args.task))
            return 0
        if args.command == "list":
            print(list_text())
            return 0
        if args.limit is not None and args.limit < 1:
            raise RunError("--limit must be at least 1")
        if args.batch_size != "auto" and (not args.batch_size.isdigit() or int(args.batch_size) < 1):
            raise RunError("--batch-size must be a positive number or 'auto'")
        from .tasks import get_task

        task = get_task(args.task)  # a task file is read (and refused with one line) before anything loads
        args.task = task.name
        if args.data is None:
            if task.data_file is None:
                raise RunError(f"--data is needed for the {task.name} task")
            args.data = task.data_file
        cfg = decoding_config(args, args.task if args.task != "perplexity" else "translation")
        if task.kind == "generate" and args.temperature is None:
            cfg = cfg.replace(temperature=0.0)  # evaluation is greedy unless asked otherwise

        from .datasets import load_records

        load_records(args.data, args.task, args.limit)  # bad data fails here, before the model loads
        if args.max_length < 2:
            raise RunError(f"--max-length must be at least 2, got {args.max_length}")
        if args.stride < 1:
            raise RunError(f"--stride must be at least 1, got {args.stride}")
        check_output(Path(args.output), args.overwrite)
        from llmdemo.cli import model_options

        lm = load(args.model, **model_options(args))
        spec = RunSpec(task=args.task, data=args.data, output=args.output, model=args.model, config=cfg,
                       limit=args.limit, batch_size=args.batch_size, seed=args.seed or 0,
                       max_length=args.max_length, stride=args.stride, length=args.length, overwrite=args.overwrite,
                       reproducible=args.reproducible)
        res = run(spec, lm)
        print(json.dumps({"task": res["task"], "n_examples": res["n_examples"], "metrics": res["metrics"]}, indent=1))
        print(f"wrote {args.output}/results.json, report.md, report.html", file=sys.stderr)
        return 0
    except (UserError, FileNotFoundError) as e:  # what the user can act on (llmdemo/errors.py), and a missing file
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
