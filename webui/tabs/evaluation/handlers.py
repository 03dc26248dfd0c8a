"""The Evaluation tab's handlers: run eval/ on the shared model, show and hand out the results.

A run works in a thread of its own at batch priority (visitors' requests go first); its status line
shows the progress (:func:`~webui.tabs.evaluation.tables.progress_line`) and Stop ends it at its next step (:class:`EvalStopped`).
The leaderboard and the side-by-side diff read the run folders this visitor may see.
"""

from __future__ import annotations

import collections
import html
import re
from pathlib import Path
from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.config import TASK_DEFAULTS
from llmdemo.host import ModelHost

from ...errors import friendly
from ...files import _private_copy, _remove_old_runs, visitor_run_name
from ...i18n import lang_of, text as msg
from ...settings import AppSettings
from ...streaming import HEARTBEAT_S, LiveRuns
from .tables import _ci, _in_data_order, _report_for_page, _round, _short, examples_table, progress_line

OPENABLE = ("translation", "summarization", "dialogue")  # tasks whose examples have a tab to open them in


class EvalStopped(prompts.InputError):
    """An evaluation ended by Stop; what it finished is kept in its folder."""

    def __init__(self, done: int, total: int):
        super().__init__("input.eval_stopped", done=done, total=total)
        self.done, self.total = done, total


class EvalHandlers:
    """The Evaluation tab: run eval/ on the shared model over a benchmark file, show and download the results."""

    # what a task needs comes from the registry (eval/tasks.py): file prefix, per-example score

    def __init__(self, host: ModelHost, settings: AppSettings, live: LiveRuns | None = None):
        self.host = host
        self.settings = settings
        self.live = live or LiveRuns()
        # run folders by visitor session (hosted: a visitor sees only theirs), for the max_sessions most recent
        self._runs: collections.OrderedDict[str, list] = collections.OrderedDict()

    def benchmarks(self, task: str) -> list[str]:
        """Benchmark files in the data folder for a task (names only: nothing outside that folder is offered)."""
        d = self.settings.data_dir
        if not d.is_dir():
            return []
        from eval.tasks import TASKS

        prefix = TASKS[task].data_prefix if task in TASKS else ""
        return sorted(p.name for p in d.iterdir() if p.is_file() and p.suffix in (".jsonl", ".txt")
                      and p.name.startswith(prefix))

    def default(self, task: str) -> str | None:
        names = self.benchmarks(task)
        preferred = [n for n in names if "flores200_devtest_en-fr" in n or "xsum" in n or n.endswith(".txt")
                     or "crowspairs" in n]
        return (preferred or names or [None])[0]

    def choices(self, task: str):
        return gr.update(choices=self.benchmarks(task), value=self.default(task))

    def _data_path(self, name: str | None, upload: str | None):
        from pathlib import Path

        if upload:
            return Path(upload)  # a file Gradio stored in its own upload folder
        if not name:
            raise prompts.InputError("input.no_benchmark_choice")
        base = self.settings.data_dir.resolve()
        path = (base / name).resolve()
        if path.parent != base or not path.is_file():  # no path traversal out of the data folder
            raise prompts.InputError("input.no_benchmark", name=name)
        return path

    @friendly
    def run(self, task: str, name: str | None, upload: str | None, limit: Any, stop_event=None, lang: str = "en",
            session: str | None = None, done: list | None = None):
        """Run an evaluation with the app's prompts on the loaded model; yields progress, then the results.
        ``done``, if given, is kept as [examples done, examples in all] while it runs.

        The run works in a thread of its own at batch priority (visitors' requests go first). Stop,
        or the client leaving, closes this generator, which stops the run at its next step; what it
        finished stays in its folder.
        """
        import threading
        import time as _time

        from eval.runner import RunSpec, RunStopped, run

        from eval.tasks import TASKS

        limit = self._check_limit(task, limit)
        path = self._data_path(name, upload)
        if upload:  # a visitor's file: the same size rules as the task tabs, before any work
            self._check_upload(path, task, limit)
        _remove_old_runs(self.settings.output_dir, self.settings.keep_runs_hours, self.settings.runs_budget_mb << 20)
        out = self.settings.output_dir / visitor_run_name(task)
        lm = self.host.lm
        cfg = None
        if TASKS[task].kind == "generate":  # greedy, as python -m eval; leave room for the input in small contexts
            d = TASK_DEFAULTS[task]
            cfg = d.replace(temperature=0.0, max_new_tokens=min(d.max_new_tokens, lm.context_length // 4))
        spec = RunSpec(task=task, data=str(path), output=str(out), limit=limit, batch_size="auto", config=cfg,
                       max_length=min(1024, lm.context_length), stride=512, max_tokens=self.settings.eval_tokens_cap)
        done = done if done is not None else [0, 0]
        done[:] = [0, limit]
        box: dict = {}
        stop = stop_event or threading.Event()
        windows = [0, 0]  # of the text being scored (perplexity), for the progress line
        tokens = [0, 0]  # generated so far, and the most the rows may take (generation tasks)
        # the first scoring use of a llama.cpp model loads its scoring model (the GGUF converted: about a minute)
        preparing = TASKS[task].kind != "generate" and not getattr(lm, "scorer_ready", True)

        def work():
            try:
                box["res"] = run(spec, lm, progress_cb=lambda d, t: done.__setitem__(slice(0, 2), [d, t]),
                                 stop_event=stop, window_cb=lambda d, t: windows.__setitem__(slice(0, 2), [d, t]),
                                 token_cb=lambda g, t: tokens.__setitem__(slice(0, 2), [g, t]))
            except BaseException as e:  # noqa: BLE001 - handed to the handler's thread
                box["err"] = e

        worker = threading.Thread(target=work, name="eval-run", daemon=True)
        worker.start()
        t0 = _time.monotonic()
        try:
            while worker.is_alive():
                worker.join(HEARTBEAT_S)
                if stop.is_set():  # Stop's own answer says "Stopped": no progress line may land after it
                    continue
                preparing = preparing and not getattr(lm, "scorer_ready", True)
                yield (progress_line(done[0], done[1], _time.monotonic() - t0, lang, tuple(windows), tuple(tokens),
                                     preparing), gr.skip(), gr.skip(), gr.skip(), gr.skip())
        finally:
            stop.set()  # Stop pressed or the client left: the run ends at its next step
        if isinstance(box.get("err"), RunStopped):  # its message names a server path: say it plainly instead
            raise EvalStopped(done[0], done[1])
        if "err" in box:
            err = box["err"]
            if isinstance(err, (ValueError, RuntimeError)) and str(path) in str(err):  # no server path in messages
                raise prompts.InputError("input.data", detail=str(err).replace(str(path), "the uploaded file" if upload else name)) from None
            raise err
        yield self._results(box["res"], out, path, task, limit, session, lang)

    def _check_limit(self, task: str, limit: Any) -> int:
        """The task is known and ``limit`` a whole number within the app's and this server's caps."""
        from eval.tasks import TASKS

        if task not in TASKS:
            raise prompts.InputError("input.eval_task", task=task)
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise prompts.InputError("input.limit_whole") from None
        if not 1 <= limit <= 1000:
            raise prompts.InputError("input.limit_app")
        if limit > self.settings.eval_examples_cap:
            raise prompts.InputError("input.limit_server", n=self.settings.eval_examples_cap)
        return limit

    def _results(self, res: dict, out: Path, path: Path, task: str, limit: int, session: str | None,
                 lang: str = "en") -> tuple:
        """A finished run for the page: the metrics table, the plot, the examples table, the files, the rows."""
        import json

        from eval.tasks import TASKS

        rows = _in_data_order([json.loads(line) for line in open(out / "predictions.jsonl", encoding="utf-8")],
                              path, task, limit)
        table = examples_table(rows, task)
        self._runs.setdefault(session or "", []).append(out)
        self._runs.move_to_end(session or "")
        while len(self._runs) > self.settings.max_sessions:
            self._runs.popitem(last=False)
        n = res.get("n_examples") or len(rows)
        metrics_md = "\n".join(["| metric | value | 95% CI |", "|---|---|---|"] + [
            f"| {k} | {v:,.2f} | {_ci(res, k, n, lang)} |" for k, v in res["metrics"].items() if isinstance(v, (int, float))])
        from eval.runs import SCORE_NOTES

        per = TASKS[task].per_example if task in TASKS else None
        if per in SCORE_NOTES:  # what the table's score column holds (BBQ's margin, in nats, was unexplained)
            metrics_md += "\n\n" + msg("eval_score_note", lang, name=per, note=SCORE_NOTES[per][lang == "zh"])
        # handed out as copies in a private temporary folder: Gradio moves them into its cache under a
        # content hash, served to this visitor's page only; the output folder itself is not served
        share = _private_copy(out, ["plot-1.png", "report.html", "report.md", "results.json", "predictions.jsonl"])
        plot = share.get("plot-1.png")
        files = [share[f] for f in ("report.html", "report.md", "results.json", "predictions.jsonl") if f in share]
        return metrics_md, plot, table, files, rows

    def _check_upload(self, path, task: str, limit: int) -> None:
        from eval.datasets import DataError, load_records

        try:
            records = load_records(str(path), task, limit)
        except DataError as e:
            raise prompts.InputError("input.data", detail=str(e).replace(str(path), "the uploaded file")) from None
        cap, tokens_cap = self.settings.max_input_chars, self.settings.example_tokens_cap
        for r in records:
            texts = [v for k, v in r.items() if k != "id" and isinstance(v, str)]
            texts += [x for k, v in r.items() if k != "id" and isinstance(v, list) for x in v if isinstance(x, str)]
            size = sum(map(len, texts))
            if size > cap:
                raise prompts.InputError("input.example_long", id=str(r.get("id"))[:40], n=size, limit=cap)
            if tokens_cap:  # characters say little of the cost: 20,000 of them can be 5,000 tokens or 20,000
                n = sum(self.host.lm.count_tokens(t) for t in texts)
                if n > tokens_cap:
                    raise prompts.InputError("input.example_tokens", id=str(r.get("id"))[:40], n=n, limit=tokens_cap)

    @friendly
    def run_ui(self, task: str, name: str | None, upload: str | None, limit: Any, request: gr.Request = None):
        """:meth:`run` for the page: one status line for the progress (not one per output), the report shown
        in the page, and the "open this example" button usable once there are rows."""
        import time as _time

        t0 = _time.time()
        lang = lang_of(request)
        # a new run clears the last one's results (its table and plot stayed on screen while this one ran)
        yield (msg("eval_starting", lang), "", None, None, None, [], "", gr.update(interactive=False))
        result = None
        # the tab's Stop sets this (webui/streaming.py): the run ends at its next step and says so here
        session = getattr(request, "session_hash", None)
        stop_event = self.live.stop_event(session, "evaluation")
        # if the run's current step outlasts Stop's wait, Stop says this itself (and the run ends after it)
        done = [0, 0]
        self.live.when_stopped(session, "evaluation", lambda: msg("eval_stopped", lang, done=done[0], total=done[1]))
        stopped = [None]
        try:
            for result in self.run.__wrapped__(self, task, name, upload, limit, stop_event=stop_event, lang=lang,
                                               session=session, done=done):
                if _is_skip(result[1]):  # progress
                    yield (result[0], *[gr.skip()] * 7)
        except EvalStopped as e:  # Stop pressed: said in the status line, not as an error
            stopped[0] = e
        if stopped[0] is not None:
            yield (msg("eval_stopped", lang, done=stopped[0].done, total=stopped[0].total), *[gr.skip()] * 7)
            return
        md, plot, table, files, rows = result
        report = next((f for f in files if f.endswith("report.md")), None)
        report_md = _report_for_page(report) if report else ""
        yield (msg("eval_done", lang, n=len(rows), s=f"{_time.time() - t0:.0f}"), md, plot, table, files, rows,
               report_md, gr.update(interactive=bool(rows) and task in OPENABLE))

    def visible_runs(self, request: gr.Request | None = None) -> list:
        """The run folders this visitor may compare: their own runs; on a local app every run in the folder."""
        own = list(self._runs.get(getattr(request, "session_hash", None) or "", []))
        if self.settings.hosted:
            return [d for d in own if (d / "results.json").exists()]
        folder = self.settings.output_dir
        every = sorted((d for d in folder.iterdir() if (d / "results.json").exists()), key=lambda d: d.name) \
            if folder.is_dir() else []
        return every

    @friendly
    def leaderboard(self, request: gr.Request = None):
        """The leaderboard of the runs this visitor can see (eval/leaderboard.py), and the runs to line up."""
        from eval.leaderboard import leaderboard_rows

        lang = lang_of(request)
        runs = self.visible_runs(request)
        rows = leaderboard_rows(runs)
        if not rows:
            return msg("board_empty", lang), gr.update(choices=[]), gr.update(choices=[])
        lines = ["| task | data | model | engine | n | metrics (95% CI) | date |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            cells = ", ".join(f"{k} {v:.3g} [{r['ci95'][k][0]:.3g}, {r['ci95'][k][1]:.3g}]" if r.get("ci95", {}).get(k)
                              else f"{k} {v:.3g}" for k, v in r["metrics"].items() if isinstance(v, (int, float)))
            lines.append("| " + " | ".join(html.escape(str(x)).replace("|", "\\|") for x in (
                r["task"], r["data"], r["model"], r.get("engine") or r.get("backend") or "", r["n"], cells,
                r["date"])) + " |")
        # a run is named by what it was (task, data, model, when), not by its folder: five translation runs
        # were five indistinguishable folder names
        names = [(r["label"], Path(r["run"]).name) for r in rows]
        return "\n".join(lines), gr.update(choices=names, value=None), gr.update(choices=names, value=None)

    def _two(self, a: str | None, b: str | None, request) -> tuple:
        from eval.runs import open_run

        if not a or not b:
            raise prompts.InputError("input.runs_two")
        runs = {d.name: d for d in self.visible_runs(request)}
        if a not in runs or b not in runs:
            raise prompts.InputError("input.run_not_yours")
        ra, rb = open_run(runs[a])[0], open_run(runs[b])[0]
        if ra.task != rb.task:
            raise prompts.InputError("input.runs_other_tasks", a=ra.task, b=rb.task)
        return ra, rb

    @friendly
    def diff(self, a: str | None, b: str | None, request: gr.Request = None):
        """Two of the visitor's runs side by side, example by example, largest change first, and the paired test of
        each run metric: eval/runs.py's rows and numbers, as the static site (``eval site``) shows them."""
        from eval.runs import paired, side_by_side

        lang = lang_of(request)
        ra, rb = self._two(a, b, request)
        test = paired(ra, rb)
        key, rows = side_by_side(ra, rb)
        lines = [msg("pair_head", lang, n=test["ids"], a=test["only_a"], b=test["only_b"], score=key), "",
                 msg("pair_cols", lang), "|---|---|---|---|---|---|"]
        for x in test["tests"]:
            ci = f"{x['delta_ci'][0]:+.3g} – {x['delta_ci'][1]:+.3g}" if x["delta_ci"] else ""
            p = f"{x['p']:.4f}" if x["p"] is not None else msg("pair_no_test", lang)
            lines.append(f"| {x['metric']} | {x['a']:.3g} | {x['b']:.3g} | {x['delta']:+.3g} | {ci} | {p} |")
        table = [[_short(r["id"], 40), _short(r["input"]), _short(r["a"]), _short(r["b"]), _round(r["score_a"]),
                  _round(r["score_b"]), _round(r["delta"])] for r in rows]
        return "\n".join(lines), table

    @friendly
    def site(self, request: gr.Request = None):
        """The visitor's runs (all runs, on a local app) as a static site in a zip (eval/site.py)."""
        import tempfile

        from eval.site import zip_site

        from ...files import _track_shared

        runs = self.visible_runs(request)
        if not runs:
            raise prompts.InputError("input.no_runs")
        folder = tempfile.mkdtemp(prefix="llmdemo-site-")
        path = zip_site(runs, folder)
        _track_shared(folder)
        return str(path)

    def filter_table(self, rows: list | None, task: str, text: str | None, order: str | None):
        """The finished run's examples table, filtered and sorted (eval/runs.py's filter_sort)."""
        return examples_table(rows or [], task, str(text or "")[:200], order or "data")

    @friendly
    def send_to_tab(self, rows: list | None, index: Any, task: str, name: str | None = None,
                    request: gr.Request = None):
        """:meth:`send`, and for translation the example's languages in From/To (from the row, else the file name)."""
        out = self.send(rows, index, task)
        if task != "translation":
            return (*out, gr.skip(), gr.skip())
        r = rows[int(index)]
        m = re.search(r"([a-z]{2,3})-([a-z]{2,3})\.jsonl$", name or "")
        src = r.get("src_lang") or (m.group(1) if m else None)
        tgt = r.get("tgt_lang") or (m.group(2) if m else None)
        langs = set(prompts.LANGUAGES)
        return (*out, src if src in langs else gr.skip(), tgt if tgt in langs else gr.skip())

    @staticmethod
    def send(rows: list | None, index: Any, task: str):
        """Put example ``index`` (0-based row of the table) into its task tab, from the row's stored raw input.

        Returns (tabs, translation text, document, chat message); the fields of other tabs are left as they are.
        """
        try:
            i = int(index)
            r = (rows or [])[i]
        except (TypeError, ValueError, IndexError):
            raise prompts.InputError("input.open_first") from None
        text = str(r.get("input") or r.get("source") or "")
        skip = gr.skip()  # the other tabs' fields keep what they hold (they were emptied before)
        if task == "translation":
            return gr.update(selected="translation"), text, skip, skip
        if task == "summarization":
            return gr.update(selected="summarization"), skip, text, skip
        if task == "dialogue":
            return gr.update(selected="dialogue"), skip, skip, text
        raise prompts.InputError("input.no_task_tab", task=str(task)[:40])

    def help(self, task: str, lang: str = "en") -> str:
        """What the tab offers for a task: the benchmark files, or why there are none, and the fields an upload needs.

        In Chinese the task's description stays English (it names the benchmark and its metric)."""
        from eval.tasks import TASKS

        t = TASKS.get(task)
        if t is None:
            return ""
        fields = ", ".join(f"`{f}`" for f in t.fields)
        lines = [f"**{task}**: {t.description}"]
        if not self.benchmarks(task):
            lines.append(msg("eval_help_none", lang, prefix=t.data_prefix))
        if t.kind == "perplexity":
            lines.append(msg("eval_help_txt", lang))
        else:
            lines.append(msg("eval_help_jsonl", lang, fields=fields))
        return "  \n".join(lines)


def _is_skip(v) -> bool:
    return isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1
