"""Issue 15 at the handler level (no browser): why an output ended, seeds, the chat box, edit, export, send."""

import json

import gradio as gr
import pytest

from llmdemo.host import ModelHost
from llmdemo.stream import Stats
from webui.handlers import EvalHandlers, Handlers, stats_line, stopped_line
from webui.settings import AppSettings

from fakes import FakeLM


@pytest.fixture
def h():
    return Handlers(ModelHost(FakeLM()), AppSettings(max_input_chars=1000, max_new_tokens=512))


def test_the_stats_line_says_why_an_output_ended_and_which_seed():
    from llmdemo.config import GenerationConfig

    sampled, greedy = GenerationConfig(temperature=0.7), GenerationConfig(temperature=0)
    s = Stats(new_tokens=24, finish_reason="length", seed=1234)
    assert stats_line(s, cfg=sampled).endswith("seed 1234 · ended: token limit (24 tokens)")
    assert "ended: end of text" in stats_line(Stats(finish_reason="eos", seed=1), cfg=sampled)
    assert "ended: stop text" in stats_line(Stats(finish_reason="stop_string", seed=1), cfg=sampled)
    assert "greedy (no seed)" in stats_line(Stats(finish_reason="eos", seed=1), cfg=greedy)
    running = stats_line(Stats(new_tokens=3, seed=5), cfg=sampled, done=False)
    assert running.endswith("generating…")
    # Stop: the running line becomes "stopped"; a finished line is left alone
    assert stopped_line(running).endswith("seed 5 · stopped (Stop pressed)")
    finished = stats_line(s, cfg=sampled)
    assert stopped_line(finished) == finished
    zh = stats_line(s, cfg=sampled, lang="zh")
    assert "种子 1234" in zh and "达到词元上限" in zh


@pytest.mark.parametrize("seed,expected", [("", None), ("  ", None), ("42", 42), (None, None), (7, 7)])
def test_the_seed_box_is_text_and_empty_means_random(h, seed, expected):
    assert h.config("generation", 16, 0.7, 0.9, 50, 1.0, seed).seed == expected


def test_a_seed_that_is_not_a_number_is_refused(h):
    with pytest.raises(gr.Error, match="seed must be a whole number"):
        list(h.generate("hi", 16, 0.7, 0.9, 50, 1.0, "abc"))


def test_a_new_run_clears_the_old_output_first(h):
    h.host.lm.enqueue("one two")
    first_text, first_stats = next(iter(h.generate("hi", 16, 0.7, 0.9, 50, 1.0, "")))
    assert first_text == "" and first_stats == "starting…"


def test_the_page_chat_leaves_a_message_typed_during_the_reply_alone(h):
    h.host.lm.enqueue("one two three")
    outs = list(h.chat_ui("Hello", [], "Be brief."))
    assert outs[0][1] == ""  # the sent message leaves the box when the turn starts
    assert all(o[1] == gr.skip() for o in outs[1:])  # and later updates do not touch it
    # the API's /chat still hands back an empty box
    h.host.lm.enqueue("four")
    assert all(o[1] == "" for o in h.chat("Hello", [], "Be brief."))


def test_editing_an_earlier_message_regenerates_from_there(h):
    lm = h.host.lm
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a1"},
               {"role": "user", "content": "second"}, {"role": "assistant", "content": "a2"}]
    lm.enqueue("new answer")
    edit = gr.EditData(None, {"index": 0, "value": "first, edited", "previous_value": "first"})
    *_, (shown, box, stats) = h.edit(history, "Be brief.", edit=edit)
    assert [m["content"] for m in shown] == ["first, edited", "new answer"]
    assert lm.history[-1][0][-1] == {"role": "user", "content": "first, edited"}  # the prompt ends with the edit
    with pytest.raises(gr.Error, match="only your own messages"):
        list(h.edit(history, "Be brief.", edit=gr.EditData(None, {"index": 1, "value": "x", "previous_value": "a1"})))


def test_export_a_conversation_and_a_generation(h):
    history = [{"role": "user", "content": "Hi <b>"}, {"role": "assistant", "content": "Hello"}]
    data = json.loads(open(h.export_chat(history, "Be brief.", "json"), encoding="utf-8").read())
    assert data == {"system": "Be brief.", "messages": history}
    md = open(h.export_chat(history, "Be brief.", "md"), encoding="utf-8").read()
    assert "**user**" in md and "Hi <b>" in md and "Hello" in md
    out = json.loads(open(h.export_output("generation", "p", "o", "stats", "json"), encoding="utf-8").read())
    assert out == {"task": "generation", "input": "p", "output": "o", "stats": "stats"}
    with pytest.raises(gr.Error, match="nothing to export"):
        h.export_chat([], "x", "md")


def test_the_token_counter(h):
    assert h.count_tokens("one two three") == "Input: 3 tokens" and h.count_tokens("") == ""


def test_swap_moves_the_translation_not_the_source_into_the_output():
    assert Handlers.swap("en", "fr", "Hello", "") == ("fr", "en", "Hello", "")
    assert Handlers.swap("en", "fr", "Hello", "Bonjour") == ("fr", "en", "Bonjour", "")


def test_model_info_is_a_list_without_an_empty_header(h):
    md = h.model_info()
    assert "| |" not in md and md.startswith("- **Model**")


def test_opening_an_example_leaves_the_other_tabs_alone_and_sets_both_languages(benchmarks, tmp_path):
    e = EvalHandlers(ModelHost(FakeLM()), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    rows = [{"id": 0, "input": "The library opens at nine.", "src_lang": "en", "tgt_lang": "zh"}]
    tab, src, doc, msg, lang_from, lang_to = e.send_to_tab(rows, 0, "translation", "x.jsonl")
    assert tab["selected"] == "translation" and src == "The library opens at nine."
    assert doc == gr.skip() and msg == gr.skip()  # the summarization document and chat message are kept
    assert (lang_from, lang_to) == ("en", "zh")
    tab, src, doc, msg, *_ = e.send_to_tab([{"id": 0, "input": "A document."}], 0, "summarization")
    assert src == gr.skip() and doc == "A document." and msg == gr.skip()


def test_eval_rows_come_in_the_benchmarks_order_and_help_names_the_fields(benchmarks, tmp_path):
    from webui.handlers import _in_data_order

    path = benchmarks / "translation_flores200_devtest_en-zh.jsonl"
    rows = [{"id": 2}, {"id": 0}, {"id": 1}]
    ordered = _in_data_order(rows, path, "translation", 3)
    assert [r["id"] for r in ordered] == [0, 1, 2] and ordered[0]["src_lang"] == "en"
    e = EvalHandlers(ModelHost(FakeLM()), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    assert "`source`" in e.help("translation") and "`tgt_lang`" in e.help("translation")
    empty = EvalHandlers(ModelHost(FakeLM()), AppSettings(data_dir=tmp_path, output_dir=tmp_path))
    assert "No benchmark file for this task" in empty.help("summarization")


def test_eval_tab_status_table_and_report(tiny_lm, benchmarks, tmp_path):
    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    outs = list(e.run_ui("translation", "translation_flores200_devtest_en-fr.jsonl", None, 3))
    assert outs[0][0] == "Starting…"
    status, md, plot, table, files, rows, report, send = outs[-1]
    assert status.startswith("Done: 3 examples")
    assert [r[0] for r in table] == [0, 1, 2] and [str(r["id"]) for r in rows] == ["0", "1", "2"]  # row = position
    assert "Model" in report and "**" in report  # report.md shown in the page
    assert send["interactive"] is True
    html = open(next(f for f in files if f.endswith("report.html")), encoding="utf-8").read()
    assert "<b>" in html.split("</p>")[0] and "**" not in html.split("</p>")[0]  # the header's bold is HTML
