"""The Evaluation tab: a benchmark run on the loaded model, its results, the leaderboard of runs."""

from __future__ import annotations

import gradio as gr

from eval.tasks import TASKS as EVAL_TASKS

from .handlers import EvalHandlers
from ...i18n import lang_of, t
from ...i18n import text as msg
from ...streaming import page_run
from ..context import TabContext


def build(ctx: TabContext) -> gr.Tab:
    h, settings = ctx.h, ctx.settings
    with gr.Tab(t("tab_evaluation"), id="evaluation", elem_id="tab-evaluation") as tab:
        e = EvalHandlers(ctx.host, settings, h.live)
        gr.Markdown(t("eval_intro"), elem_classes="stats")
        with gr.Row():
            e_task = gr.Dropdown(list(EVAL_TASKS), value="translation", label=t("task"), elem_id="eval-task")
            e_file = gr.Dropdown(e.benchmarks("translation"), value=e.default("translation"),
                                 label=t("bench_file"), elem_id="eval-file", min_width=280)
            e_limit = gr.Number(10, precision=0, label=t("limit"), minimum=1,
                                maximum=settings.eval_examples_cap, elem_id="eval-limit")
        e_help = gr.Markdown(e.help("translation"), elem_classes="stats", elem_id="eval-help")
        e_upload = gr.File(label=t("upload"), file_types=[".jsonl", ".txt"], type="filepath", height=120,
                           elem_id="eval-upload")
        with gr.Row():
            e_go = gr.Button(t("run_eval"), variant="primary", elem_id="eval-go")
            e_stop = gr.Button(t("stop"), variant="stop", elem_id="eval-stop", visible=False)
        e_status = gr.Markdown(elem_id="eval-status")
        with gr.Row():  # side by side on a desktop, one above the other on a phone
            with gr.Column(min_width=320):
                e_metrics = gr.Markdown(elem_id="eval-metrics")
            with gr.Column(min_width=320):
                e_plot = gr.Image(label=t("metrics"), type="filepath", height=260, elem_id="eval-plot")
        with gr.Row():  # the finished run's examples, filtered and sorted (eval/runs.py, as the static site)
            e_filter = gr.Textbox(label=t("ex_filter"), max_length=200, elem_id="eval-filter", scale=3)
            e_sort = gr.Dropdown([(t("sort_data"), "data"), (t("sort_low"), "score"), (t("sort_high"), "-score")],
                                 value="data", label=t("ex_sort"), elem_id="eval-sort", scale=1, min_width=160)
        e_table = gr.Dataframe(headers=["row", "input", "reference", "prediction", "score"], label=t("rows"),
                               wrap=True, max_height=400, column_widths=["11%", "29%", "24%", "24%", "12%"],
                               elem_id="eval-table")
        with gr.Row():
            e_index = gr.Number(0, precision=0, label=t("row"), minimum=0, elem_id="eval-row")
            e_send = gr.Button(t("send_example"), interactive=False, elem_id="eval-send")
        with gr.Accordion(t("report"), open=False, elem_id="eval-report"):
            e_report = gr.Markdown()
        e_files = gr.File(label=t("report_files"), file_count="multiple")
        e_rows = gr.State([])
        # every run this visitor can see in one table (eval/leaderboard.py), and two of them side by side
        with gr.Accordion(t("board"), open=False, elem_id="eval-board"):
            e_board_go = gr.Button(t("board_refresh"), size="sm", elem_id="eval-board-refresh")
            e_board = gr.Markdown(elem_id="eval-board-table")
            with gr.Row():
                e_da = gr.Dropdown([], label=t("diff_a"), elem_id="eval-diff-a")
                e_db = gr.Dropdown([], label=t("diff_b"), elem_id="eval-diff-b")
            e_diff_go = gr.Button(t("diff_go"), size="sm", elem_id="eval-diff-go")
            e_diff_tests = gr.Markdown(elem_id="eval-diff-tests")
            # fixed shares of the width: the columns sized to their text made a 4,400 px table in which only
            # id and input were on screen
            e_diff = gr.Dataframe(headers=["id", "input", "A", "B", "score A", "score B", "B − A"],
                                  wrap=True, max_height=400, elem_id="eval-diff",
                                  column_widths=["7%", "22%", "25%", "25%", "7%", "7%", "7%"])
            gr.Markdown(t("diff_note"), elem_classes="stats")
            e_site_go = gr.Button(t("site_go"), size="sm", elem_id="eval-site-go")
            e_site = gr.File(label=t("site_file"), elem_id="eval-site")
        e_board_go.click(e.leaderboard, None, [e_board, e_da, e_db], **ctx.private, **ctx.light_events)
        e_diff_go.click(e.diff, [e_da, e_db], [e_diff_tests, e_diff], **ctx.private, **ctx.light_events)
        # a site's paired tests take CPU: one at a time, in the evaluation's own slot
        e_site_go.click(e.site, None, [e_site], **ctx.private, concurrency_id="eval", concurrency_limit=1)
        for box in (e_filter, e_sort):
            box.change(e.filter_table, [e_rows, e_task, e_filter, e_sort], [e_table], trigger_mode="always_last",
                       show_progress="hidden", **ctx.private, **ctx.light_events)

        def help_line(task, request: gr.Request = None):
            return e.help(task, lang_of(request))

        def task_changed(task, request: gr.Request = None):
            return e.choices(task), help_line(task, request)

        e_task.change(task_changed, [e_task], [e_file, e_help], **ctx.private, queue=False)
        for ev in ctx.lang_events:  # the help line in the visitor's language, once the cookie is set
            ev.then(help_line, [e_task], [e_help], queue=False, **ctx.private)
        # one evaluation at a time; it runs at batch priority, so visitors' requests go first. Progress
        # shows in one place (the status line), not over every output
        def eval_failed(request: gr.Request = None, **_arguments):  # the status line says it did not finish
            return msg("eval_failed", lang_of(request)), *[gr.skip()] * 7

        e_run = page_run(e.run_ui, 8, h.live, "evaluation", ctx.error_title, eval_failed)
        e_ev = e_go.click(e_run, [e_task, e_file, e_upload, e_limit],
                          [e_status, e_metrics, e_plot, e_table, e_files, e_rows, e_report, e_send, e_go, e_stop],
                          **ctx.private, show_progress_on=[e_status], concurrency_id="eval", concurrency_limit=1)
        ctx.stop_button("evaluation", e_stop, e_go, e_status, [e_ev])
        e_ev.then(e.leaderboard, None, [e_board, e_da, e_db], **ctx.private, **ctx.light_events)
        # the task tabs' fields a row is sent to (Translation's text and languages, the document, the message)
        sent_to = [ctx.inputs[k] for k in ("tr-in", "sum-in", "chat-in", "tr-src", "tr-tgt")]
        e_send.click(e.send_to_tab, [e_rows, e_index, e_task, e_file], [ctx.tabs, *sent_to],
                     **ctx.private, **ctx.light_events)
    return tab
