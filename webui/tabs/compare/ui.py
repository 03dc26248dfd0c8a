"""The Compare tab: one prompt, two to four contestants streaming side by side, a blind vote, the leaderboard.

The handlers (the run, the votes, the leaderboard) are in webui/tabs/compare/handlers.py.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from llmdemo import prompts
from llmdemo.compare.contestants import DEFAULT_PAIR
from llmdemo.compare.votes import SIDES, TASKS

from .handlers import CHOICES, DEFAULT_MAX_NEW, MAX_SIDES, CompareHandlers, open_store
from ...controls import LANG_CHOICES
from ...i18n import t
from ...streaming import page_run
from ..context import TabContext, examples


def build(ctx: TabContext) -> gr.Tab:
    """The tab's components and events."""
    settings, live = ctx.settings, ctx.h.live
    with gr.Tab(t("tab_compare"), id="compare", elem_id="tab-compare") as tab:
        h = CompareHandlers(ctx.host, settings, live, ctx.votes if ctx.votes is not None else open_store(
            output_dir=settings.output_dir), companions=ctx.h.companions)  # the models the task tabs load too
        names = h.choices()  # the operator's list (LLMDEMO_CONTESTANTS), else every preset
        listed = bool(settings.contestants)
        firsts = names[:MAX_SIDES] if listed else [*DEFAULT_PAIR, "top-p 0.5", "repetition penalty 1.3"]
        firsts += [names[0]] * (MAX_SIDES - len(firsts))
        other_models = not settings.hosted and not listed  # local mode: any model the Model tab loads
        gr.Markdown(t("cmp_intro"), elem_classes="stats")
        with gr.Row():
            task = gr.Radio([(t(f"tab_{k}"), k) for k in TASKS], value="generation", label=t("task"),
                            elem_id="cmp-task")
            # an operator's list of three offers no fourth side (it would repeat one)
            n = gr.Radio([k for k in (2, 3, 4) if k <= len(names)], value=2, label=t("cmp_n"), elem_id="cmp-n",
                         min_width=160)
            blind = gr.Checkbox(True, label=t("cmp_blind"), elem_id="cmp-blind", min_width=200)
        with gr.Row(visible=False) as tr_row:
            src = gr.Dropdown(LANG_CHOICES, value="en", label=t("from"), elem_id="cmp-src")
            tgt = gr.Dropdown(LANG_CHOICES, value="fr", label=t("to"), elem_id="cmp-tgt")
        length = gr.Radio(list(prompts.SUMMARY_LENGTHS), value="short", label=t("length"), visible=False,
                          elem_id="cmp-length")
        prompt = gr.Textbox(label=t("prompt"), lines=3, placeholder=t("cmp_prompt_ph"), elem_id="cmp-in")
        with gr.Row():
            picks = [gr.Dropdown(names, value=v, label=t(f"cmp_c{k + 1}"), visible=k < 2, elem_id=f"cmp-c{k + 1}",
                                 min_width=200)  # one a line on a phone: a name is not cut off
                     for k, v in enumerate(firsts)]
            max_new = gr.Slider(1, settings.max_new_tokens, value=min(DEFAULT_MAX_NEW, settings.max_new_tokens), step=1,
                                label=t("max_new"), elem_id="cmp-max-new", min_width=200)
        others = h.other_bundled()
        if others and not listed:  # the first thing to try: two bundled models, blind, on a translation
            sentence = "Please book a table for four people at eight o'clock tonight."
            # labelled, not shown as columns: the task's cell showed the radio's raw i18n key
            examples([["translation", sentence, "en", tgt_lang, "greedy", f"greedy @ {others[0]}"]
                           for tgt_lang in ("zh", "fr")], [task, prompt, src, tgt, picks[0], picks[1]],
                          labels=[f"en → {tgt_lang} · greedy vs greedy @ {others[0]}" for tgt_lang in ("zh", "fr")])
        own, own_rows, models = [], [], []
        with gr.Accordion(t("cmp_own"), open=False, elem_id="cmp-own"):
            if other_models:  # the memory budget of the models loaded beside the loaded one (llmdemo/compare/models.py)
                budget = gr.Markdown(elem_classes="stats", elem_id="cmp-budget")  # its text: in the page's language
                ctx.demo.load(h.budget_line, None, [budget], queue=False,
                              show_progress="hidden", **ctx.private)
            for k in range(MAX_SIDES):
                with gr.Row(visible=k < 2) as row:
                    gr.Markdown(t(f"cmp_c{k + 1}"), elem_classes="stats", min_height=0)
                    # an operator's list names whole contestants: a visitor's own temperature or top-p is not on it
                    # empty: the preset's temperature or top-p; an empty seed is a random one (as its label says)
                    own += [gr.Textbox("", label=t(key), placeholder=t("seed_ph" if key == "seed" else "cmp_preset_ph"),
                                       max_lines=1, min_width=100, visible=key == "seed" or not listed,
                                       elem_id=f"cmp-{key}-{k + 1}")
                            for key in ("temperature", "top_p", "seed")]
                    models.append(gr.Textbox("", label=t("cmp_model"), placeholder=t("cmp_model_ph"), max_lines=1,
                                             min_width=160, visible=other_models, elem_id=f"cmp-model-{k + 1}"))
                own_rows.append(row)
        with gr.Row():
            go = gr.Button(t("cmp_go"), variant="primary", elem_id="cmp-go")
            stop = gr.Button(t("cmp_stop_all"), variant="stop", visible=False, elem_id="cmp-stop")
        columns, titles, outs, lines, stops, vote_buttons = _sides()
        result = gr.Markdown(elem_id="cmp-result")
        with gr.Accordion(t("cmp_board"), open=False, elem_id="cmp-board") as board_acc:
            refresh = gr.Button(t("cmp_refresh"), size="sm", elem_id="cmp-refresh")
            board = gr.Markdown(elem_id="cmp-board-table")
        state = gr.State(None)

        def task_changed(task):
            return gr.update(visible=task == "translation"), gr.update(visible=task == "summarization")

        task.change(task_changed, [task], [tr_row, length], queue=False, show_progress="hidden", **ctx.private)

        def n_changed(n):
            n = int(n)
            return ([gr.update(visible=k < n) for k in range(MAX_SIDES)] * 3)

        n.change(n_changed, [n], [*picks, *own_rows, *columns], queue=False, show_progress="hidden", **ctx.private)

        inputs = [task, prompt, src, tgt, length, n, blind, max_new, *picks, *own, *models, state]
        outputs = [state, *titles, *outs, *lines, *stops, *vote_buttons, result]
        run = page_run(h.page, len(outputs), live, "compare", ctx.error_title)
        event = go.click(run, inputs, [*outputs, go, stop], **ctx.private, **ctx.model_events)
        # the buttons' end state once more, from the state, in an event of its own: the streamed updates of a
        # button were sometimes lost in Gradio's diffs (four sides ending in one step left Stop shown, votes off)
        event.then(after_run, [state, n], [*stops, *vote_buttons], queue=False, show_progress="hidden", **ctx.private)
        if other_models:  # what the other models take now
            event.then(h.budget_line, None, [budget], queue=False, show_progress="hidden", **ctx.private)

        def stop_all(request: gr.Request):
            for side in SIDES[:MAX_SIDES]:
                live.stop(getattr(request, "session_hash", None), f"compare-{side}", wait_s=0)
            live.stop(getattr(request, "session_hash", None), "compare")  # waits for the run's last update
            return gr.update(visible=True), gr.update(visible=False)

        stop.click(stop_all, None, [go, stop], queue=False, **ctx.private).then(
            None, None, None, cancels=[event], queue=False, **ctx.private)
        for side, btn in zip(SIDES, stops):
            btn.click(_stopper(h, side), None, [btn], queue=False, **ctx.private)

        for choice, btn in zip(CHOICES, vote_buttons):
            btn.click(_voter(h, choice), [state], [result, *titles, *vote_buttons],
                      **ctx.private, **ctx.light_events).then(
                h.leaderboard, None, [board], **ctx.private, **ctx.light_events)
        refresh.click(h.leaderboard, None, [board], **ctx.private, **ctx.light_events)
        board_acc.expand(h.leaderboard, None, [board], **ctx.private, **ctx.light_events)
        _api(ctx, h, inputs, state)
    return tab


def _api(ctx: TabContext, h: CompareHandlers, inputs: list, state: gr.State) -> None:
    """The API's endpoints (hidden buttons): the same inputs as the page's Go."""
    # the API: /compare streams JSON and keeps the comparison in the client's session; /vote votes on it
    api_json = gr.JSON(visible=False)
    api_choice = gr.Textbox(visible=False)
    api_cid = gr.Textbox(visible=False)
    gr.Button(visible=False).click(h.api, inputs, [api_json, state], api_name="compare", **ctx.model_events)
    gr.Button(visible=False).click(h.vote_api, [api_choice, api_cid, state], [api_json], api_name="vote",
                                   **ctx.light_events)


def _sides() -> tuple[list, list, list, list, list, list]:
    """Each side's column (title, output, stats line, Stop), and the vote buttons under them."""
    columns, titles, outs, lines, stops = [], [], [], [], []
    with gr.Row(equal_height=False, elem_id="cmp-sides"):
        for k, side in enumerate(SIDES[:MAX_SIDES]):
            # four fit in one row on a desktop (1366 px), one a row on a phone
            with gr.Column(visible=k < 2, min_width=240, elem_id=f"cmp-side-{side}") as col:
                titles.append(gr.Markdown(f"### {side}", elem_id=f"cmp-title-{side}"))
                outs.append(gr.Textbox(label=t("output"), lines=6, interactive=False, buttons=["copy"],
                                       elem_id=f"cmp-out-{side}"))
                lines.append(gr.Markdown(elem_classes="stats", elem_id=f"cmp-stats-{side}"))
                stops.append(gr.Button(t("stop"), variant="stop", size="sm", visible=False,
                                       elem_id=f"cmp-stop-{side}"))
            columns.append(col)
    with gr.Row(elem_id="cmp-votes"):
        vote_buttons = [gr.Button(t(f"cmp_vote_{c.lower()}"), interactive=False, visible=k < 2, min_width=110,
                                  elem_id=f"cmp-vote-{c}") for k, c in enumerate(SIDES[:MAX_SIDES])]
        vote_buttons += [gr.Button(t(f"cmp_vote_{c}"), interactive=False, min_width=110, elem_id=f"cmp-vote-{c}")
                         for c in ("tie", "both_bad")]
    return columns, titles, outs, lines, stops, vote_buttons


def after_run(state: dict | None, n: Any):
    """Every side's Stop hidden; the vote buttons on when the run left a comparison to vote on."""
    ready = bool(isinstance(state, dict) and state.get("comparison_id"))
    n = int(n) if str(n).isdigit() else 2
    return (*[gr.update(visible=False)] * MAX_SIDES,
            *[gr.update(interactive=ready, visible=k < n) for k in range(MAX_SIDES)],
            *[gr.update(interactive=ready)] * 2)


def _stopper(h: CompareHandlers, side: str):
    def stop_side(request: gr.Request):  # this side alone; the handler's next update says "stopped"
        h.stop_side(side, request)
        return gr.update(visible=False)
    return stop_side


def _voter(h: CompareHandlers, choice: str):
    def vote_button(state, request: gr.Request):
        return h.vote_page(choice, state, request)
    return vote_button
