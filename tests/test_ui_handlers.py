"""Issue 15 at the handler level (no browser): why an output ended, seeds, the chat box, edit, export, send."""

import json
import logging
import re
import time

import gradio as gr
import pytest

from llmdemo.host import ModelHost
from llmdemo.engine.stream import Stats
from webui.tabs.evaluation.handlers import EvalHandlers
from webui.controls import Decoding
from webui.handlers import Handlers
from webui.stats import stats_line, stopped_line
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
    from llmdemo.errors import Notice

    lowered = Stats(finish_reason="length", seed=1, notices=[Notice("notice.budget", asked=512, budget=100, context=612)])
    assert "max new tokens lowered from 512 to 100" in stats_line(lowered, cfg=greedy)
    assert "最大新词元数从 512 降到了 100" in stats_line(lowered, cfg=greedy, lang="zh")
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
    assert h.config("generation", Decoding(16, 0.7, 0.9, 50, 1.0, seed)).seed == expected


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
    from llmdemo.errors import UserError

    with pytest.raises(UserError, match="nothing to export"):  # the page's export button says it (below)
        h.export_chat([], "x", "md")


def test_the_token_counter(h):
    assert h.count_tokens("one two three") == "Input: 3 tokens" and h.count_tokens("") == ""


def test_swap_moves_the_translation_not_the_source_into_the_output():
    # the output and its stats line are cleared (the line described an output no longer shown: issue 33, Lows)
    assert Handlers.swap("en", "fr", "Hello", "") == ("fr", "en", "Hello", "", "")
    assert Handlers.swap("en", "fr", "Hello", "Bonjour") == ("fr", "en", "Bonjour", "", "")


def test_an_output_still_being_written_is_not_exported(h):
    """Issue 33, Lows: an export during a run saved half the text with "generating…" as its stats."""
    from llmdemo.errors import InputError
    from webui.tabs.context import _exporter

    for line in ("12 tokens · 30.1 tokens/s · generating…", "12 个词元 · 每秒 30.1 · 生成中…", "starting…"):
        with pytest.raises(InputError, match="still being written"):
            h.export_output("generation", "p", "half an outp", line, "md")
    export = _exporter(lambda a, b, c, fmt: h.export_output("generation", a, b, c, fmt), "md", 3)
    assert _error(lambda: export("p", "half", "生成中…", request=ZH)) == "输出还在生成：请等它结束（或按停止）后再导出"
    assert open(h.export_output("generation", "p", "whole", "5 tokens · ended: end of text", "md"),
                encoding="utf-8").read().endswith("ended: end of text\n")


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
    from webui.tabs.evaluation.tables import _in_data_order

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
    # the first update empties the last run's results: its table and plot stayed while a new run went
    assert outs[0][1:7] == ("", None, None, None, [], "") and outs[0][7]["interactive"] is False
    status, md, plot, table, files, rows, report, send = outs[-1]
    assert status.startswith("Done: 3 examples")
    assert [r[0] for r in table] == [0, 1, 2] and [str(r["id"]) for r in rows] == ["0", "1", "2"]  # row = position
    assert "Model" in report and "**" in report  # report.md shown in the page
    assert send["interactive"] is True
    html = open(next(f for f in files if f.endswith("report.html")), encoding="utf-8").read()
    assert "<b>" in html.split("</p>")[0] and "**" not in html.split("</p>")[0]  # the header's bold is HTML


def test_a_one_text_perplexity_run_counts_its_windows_and_estimates_the_rest(tiny_lm, benchmarks, tmp_path):
    """Issue 33, item 2: WikiText-2 is one example, so the page said "0 of 1 examples done" for minutes."""
    from webui.tabs.evaluation.tables import progress_line

    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path, max_eval_tokens=3000))
    tiny_lm.scheduler.step_hook = lambda kind, rows: time.sleep(1.0)  # each scoring call ~1 s: a few lines
    try:
        statuses = [o[0] for o in e.run_ui("perplexity", "wikitext2_raw_test.txt", None, 1)]
    finally:
        tiny_lm.scheduler.step_hook = None
    counted = [s for s in statuses if "windows of the text scored" in s]
    assert counted and statuses[-1].startswith("Done"), statuses
    assert any(re.search(r"Running: [1-9]\d* of \d+ windows .* about .* left", s) for s in counted), counted
    assert "已评分 3 / 10 个文本窗口 (30%)" in progress_line(0, 1, 12.0, "zh", (3, 10))
    assert progress_line(2, 5, 12.0, "en", (3, 10)).startswith("Running: 2 of 5 examples")  # not the last text yet


def test_a_generation_run_counts_tokens_and_a_first_scoring_run_says_it_prepares(tiny_lm, benchmarks, tmp_path):
    """Issue 33, item 12: rows of a batch end together, so a generation run read "0 of N" until its end; the
    first scoring use of a llama.cpp model converted it for a minute with nothing said."""
    from webui.tabs.evaluation.tables import progress_line

    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    tiny_lm.scheduler.step_hook = lambda kind, rows: time.sleep(0.05)  # each step ~50 ms: the run takes seconds
    try:
        statuses = [o[0] for o in e.run_ui("translation", "translation_flores200_devtest_en-fr.jsonl", None, 3)]
    finally:
        tiny_lm.scheduler.step_hook = None
    counted = [re.search(r"([\d,]+) of at most ([\d,]+) tokens generated", s) for s in statuses]
    counted = [(int(m[1].replace(",", "")), int(m[2].replace(",", ""))) for m in counted if m]
    assert counted and statuses[-1].startswith("Done"), statuses
    assert [g for g, _ in counted] == sorted(g for g, _ in counted) and all(0 <= g <= most for g, most in counted)
    assert progress_line(0, 8, 5.0, "en", tokens=(120, 512)).endswith("· 120 of at most 512 tokens generated (23%)…")
    assert "已生成 120 个词元，最多 512 个" in progress_line(0, 8, 5.0, "zh", tokens=(120, 512))
    assert progress_line(0, 8, 65.0, "en", preparing=True).startswith("Preparing the model for exact scoring")
    assert progress_line(1, 8, 65.0, "en", preparing=True).startswith("Running: 1 of 8")  # once work is done


# ---------------------------------------------------------------- issue 15: what goes wrong, said in Chinese
class _Req:
    """A ``gr.Request`` as the handlers read it: the switch's cookie and the browser's Accept-Language."""

    def __init__(self, cookie: str = "", accept: str = ""):
        self.cookies = {"llmdemo_lang": cookie} if cookie else {}
        self.headers = {"accept-language": accept}


ZH, EN = _Req(cookie="zh-CN"), _Req(accept="en-US,en;q=0.9")


def _error(call) -> str:
    with pytest.raises(gr.Error) as info:
        out = call()
        if hasattr(out, "__next__"):
            list(out)
    return info.value.message


def test_a_setting_out_of_range_is_refused_in_chinese_with_the_value(h):
    zh = _error(lambda: h.generate("hi", 16, -1, 0.9, 50, 1.0, "", request=ZH))
    assert zh.startswith("temperature 超出范围") and "[0, 5]" in zh and "-1" in zh
    en = _error(lambda: h.generate("hi", 16, -1, 0.9, 50, 1.0, "", request=EN))
    assert en == "temperature must be in [0, 5], got -1"
    zh = _error(lambda: h.generate("hi", 16, 0.7, 0.9, 50, 1.0, "abc", request=_Req(accept="zh-CN,zh;q=0.9")))
    assert zh == "seed 必须是整数，收到的是 'abc'"
    zh = _error(lambda: h.translate("hi", "en", "fr", 600, request=ZH))
    assert "本服务器上应在 [1, 512] 之内" in zh and "600" in zh


def test_empty_and_too_long_inputs_are_refused_in_chinese(h):
    assert _error(lambda: h.generate("   ", request=ZH)) == "文字为空：请先输入或粘贴文字"
    assert _error(lambda: h.generate("   ", request=EN)) == "text is empty: type or paste some text first"
    zh = _error(lambda: h.summarize("x" * 1001, request=ZH))
    assert zh == "文档有 1,001 个字符，本服务器最多接受 1,000 个。请缩短后重试。"
    assert _error(lambda: h.summarize("x" * 1001)) == ("the document is 1,001 characters; this server accepts at "
                                                       "most 1,000. Shorten it and try again.")
    assert _error(lambda: h.retry([], "Be brief.", request=ZH)) == "还没有可以重试的内容：请先发送一条消息"
    zh = _error(lambda: h.translate("Hello", "en", "en", request=ZH))
    assert zh.startswith("源语言和目标语言相同") and "English" in zh


def test_a_busy_server_and_a_model_that_failed_to_load_are_said_in_chinese(h, monkeypatch):
    from llmdemo.errors import ModelLoadError
    from llmdemo.engine.scheduler import SchedulerBusy

    def busy(*a, **k):
        raise SchedulerBusy("busy.queue", n=7)

    monkeypatch.setattr(h.host.lm, "stream", busy)
    assert _error(lambda: h.generate("hi", request=ZH)) == "服务器正忙（有 7 个请求在等待）；请稍后再试"
    assert "the server is busy (7 requests waiting)" in _error(lambda: h.generate("hi", request=EN))

    def broken(name, **k):
        raise ModelLoadError("model.load_backend", name="broken", detail="out of memory")

    monkeypatch.setattr(h.host, "swap", broken)
    h = Handlers(h.host, AppSettings(max_input_chars=1000, max_new_tokens=512, hosted=False))
    zh = _error(lambda: h.load_model("broken", request=ZH))
    # the swap says the loading error's cause once (it said "could not load" twice), in Chinese by code
    assert zh.startswith("无法加载 'broken'：out of memory。仍在使用 ") and "could not" not in zh
    en = _error(lambda: h.load_model("broken", request=EN))
    assert en.startswith("could not load 'broken': out of memory. Still using") and en.count("could not") == 1


@pytest.mark.parametrize("bug", [KeyError("x"), ValueError("bad shape (1, 2)"), TypeError("NoneType is not subscriptable")])
def test_an_unexpected_error_and_an_unknown_message_still_read_chinese(h, monkeypatch, caplog, bug):
    """A bug is never shown as the visitor's mistake: a ValueError or TypeError from inside (not a UserError)
    is an internal error with an id, its traceback in the log."""
    def boom(*a, **k):
        raise bug

    monkeypatch.setattr(h.host.lm, "stream", boom)
    with caplog.at_level(logging.ERROR, logger="llmdemo.app"):
        zh = _error(lambda: h.generate("hi", request=ZH))
    kind = type(bug).__name__
    m = re.fullmatch(rf"出错了（{kind}，错误编号 ([0-9a-f]{{8}})）；服务器仍在运行。.*", zh)
    assert m, zh
    assert str(bug) not in zh  # the bug's own text is in the log, not on the page
    # the id the visitor sees finds the traceback in the log
    logged = [r for r in caplog.records if m.group(1) in r.getMessage()]
    assert logged and "Traceback" in logged[0].getMessage() and kind in logged[0].getMessage()
    from webui.i18n import error_text

    assert error_text("a message nobody translated", "zh") == "出错了：a message nobody translated"
    assert error_text("a message nobody translated", "en") == "a message nobody translated"


def test_what_a_model_cannot_do_and_the_inside_tab_are_said_in_chinese(h):
    from webui.tabs.inside import InsideHandlers

    ins = InsideHandlers(h.host, h.settings)
    zh = _error(lambda: ins.analyze("The capital", request=ZH))  # the fake model has no internals
    assert "不支持这项功能（查看模型内部）" in zh and "'fake'" in zh
    assert _error(lambda: ins.analyze("The capital")).startswith("Looking inside the model is not available")


def test_the_evaluation_tab_refuses_and_explains_in_chinese(benchmarks, tmp_path):
    e = EvalHandlers(ModelHost(FakeLM()), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    assert _error(lambda: e.run_ui("translation", None, None, 0, request=ZH)) == \
        "在应用里样例数上限必须在 1 到 1000 之间；更多请用 python -m eval"
    assert _error(lambda: e.run_ui("translation", None, None, 0, request=EN)) == \
        "limit must be between 1 and 1000 in the app; use python -m eval for more"
    assert _error(lambda: e.send_to_tab([], 3, "translation", request=ZH)) == "请先运行评测，再填写表格中的行号"
    zh = e.help("translation", "zh")
    assert "每行一个 JSON 对象" in zh and "`source`" in zh and "`tgt_lang`" in zh
    assert e.help("translation", "en") == e.help("translation")
    empty = EvalHandlers(ModelHost(FakeLM()), AppSettings(data_dir=tmp_path, output_dir=tmp_path))
    assert "没有这个任务的基准文件" in empty.help("summarization", "zh")
    assert "`.txt`" in empty.help("perplexity", "zh") and "文件" in empty.help("perplexity", "zh")


def test_export_with_nothing_to_export_says_so_in_chinese(h):
    from webui.tabs.context import _exporter

    export = _exporter(h.export_chat, "md", 2)
    assert _error(lambda: export([], "x", request=ZH)) == "还没有可导出的内容"
    assert _error(lambda: export([], "x", request=EN)) == "nothing to export yet"


# ---------------------------------------------------------------- issue 23: the leaderboard of runs in the tab
class _Session:
    def __init__(self, session_hash):
        self.session_hash, self.cookies, self.headers = session_hash, {}, {}


@pytest.mark.parametrize("hosted", [False, True])
def test_eval_tab_leaderboard_and_two_runs_side_by_side(tiny_lm, benchmarks, tmp_path, hosted):
    import json as _json

    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path, hosted=hosted))
    me, other = _Session("me"), _Session("other")
    for who, n in ((me, 2), (me, 3), (other, 2)):
        list(e.run_ui("translation", "translation_flores200_devtest_en-fr.jsonl", None, n, request=who))
    board, a, b = e.leaderboard(request=me)
    runs = [v for _, v in a["choices"]]
    # hosted: a visitor sees only their own two runs; local: every run in the folder
    assert len(runs) == (2 if hosted else 3) and a["choices"] == b["choices"]
    results = [_json.loads((tmp_path / r / "results.json").read_text()) for r in runs]
    for res in results:  # the table shows each run's chrF as results.json has it
        assert f"chrf {res['metrics']['chrf']:.3g}" in board
    tests, rows = e.diff(runs[0], runs[1], request=me)
    assert rows and all(len(r) == 7 for r in rows)
    # the site's numbers (eval/runs.py): the same rows and paired test as `eval site` and `eval compare`
    from eval.runs import open_run, paired, side_by_side

    ra, rb = (open_run(tmp_path / r)[0] for r in runs[:2])
    _, want = side_by_side(ra, rb)
    assert [r[0] for r in rows] == [w["id"] for w in want] and [r[6] for r in rows] == [
        None if w["delta"] is None else round(w["delta"], 2) for w in want]
    chrf = next(t for t in paired(ra, rb)["tests"] if t["metric"] == "chrf")
    assert f"| chrf | {chrf['a']:.3g} | {chrf['b']:.3g} | {chrf['delta']:+.3g} |" in tests and f"{chrf['p']:.4f}" in tests
    # the site of the visitor's runs as a zip: their runs only, and no server folder named
    import zipfile

    with zipfile.ZipFile(e.site(request=me)) as z:
        names = z.namelist()
        pages = [n for n in names if n.startswith("run-") and n.endswith(".html")]
        assert "index.html" in names and len(pages) == len(runs)
        assert str(tmp_path) not in "".join(z.read(n).decode() for n in names if n.startswith("data/"))
    # scores rounded (a cell read 18.829901861676117), runs named by what they were, not by folder
    assert all(isinstance(v, (int, type(None))) or v == round(v, 2) for r in rows for v in r[4:6])
    assert all(label.startswith("translation · ") and "tiny" in label for label, _ in a["choices"])
    if hosted:
        theirs = [d.name for d in tmp_path.iterdir() if d.name not in runs and (d / "results.json").exists()]
        with pytest.raises(gr.Error, match="not one of yours"):
            e.diff(runs[0], theirs[0], request=me)
    with pytest.raises(gr.Error, match="choose two runs"):
        e.diff(None, runs[0], request=me)
    with pytest.raises(gr.Error, match="no finished runs"):
        e.site(request=_Session("nobody")) if hosted else EvalHandlers(
            ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path / "none")).site(request=me)


def test_eval_tab_filters_and_sorts_the_finished_runs_examples(tiny_lm, benchmarks, tmp_path):
    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    *_, table, files, rows, report, send = list(e.run_ui("translation", "translation_flores200_devtest_en-fr.jsonl",
                                                         None, 5))[-1]
    assert [r[0] for r in table] == [0, 1, 2, 3, 4]
    word = rows[3]["input"].split()[2]
    shown = e.filter_table(rows, "translation", word.upper(), "data")
    assert shown and all(word.lower() in (rows[r[0]]["input"] + rows[r[0]]["prediction"] + rows[r[0]]["reference"]).lower()
                         for r in shown) and 3 in [r[0] for r in shown]
    high = e.filter_table(rows, "translation", "", "-score")
    assert [r[4] for r in high] == sorted((r[4] for r in table), reverse=True)
    assert sorted(r[0] for r in high) == [0, 1, 2, 3, 4]  # each row keeps its number: "send to tab" still finds it


def test_eval_tab_runs_bbq_and_shows_the_pick_and_the_right_answer(tiny_lm, benchmarks, tmp_path):
    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    name = e.default("bbq")
    assert name and "bbq" in name
    status, md, plot, table, files, rows, report, send = list(e.run_ui("bbq", name, None, 3))[-1]
    assert status.startswith("Done: 3 examples") and "disamb_bias_score" in md
    # issue 33, item 8: three records give no interval worth showing ("1.00 [1.00-1.00]" read as certain), and
    # the score column's margin (in nats) is said
    assert md.count("3 examples are too few for an interval") == md.count("\n| ") == 6 and " – " not in md
    assert "**margin**" in md and "nats" in md
    assert send["interactive"] is False  # a BBQ record has no tab to open it in (the button only said so)
    cis = report.split("| metric | value | 95% CI |")[1].split("\n\n")[0]
    assert "3 examples are too few" in cis and " – " not in cis  # the report says so too
    zh = list(e.run_ui("bbq", name, None, 3, request=ZH))[-1][1]
    assert "3 个样例太少" in zh and "奈特" in zh
    for line, r in zip(table, rows):
        assert line[3] == r["chosen"][:160].rstrip() or r["chosen"].startswith(line[3].rstrip("…"))  # the pick
        assert line[2] and any(r["choices"][g].startswith(line[2].rstrip("…")) for g in r["gold"])  # a right answer


def test_eval_tab_offers_xcopa_zh_and_shows_the_chinese_choices(tiny_lm, benchmarks, tmp_path):
    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    assert e.benchmarks("xcopa_zh") == ["xcopa_zh_test_dev.jsonl", "xcopa_zh_validation.jsonl"]
    status, md, plot, table, files, rows, report, send = list(e.run_ui("xcopa_zh", e.default("xcopa_zh"), None, 2))[-1]
    assert status.startswith("Done: 2 examples") and "acc" in md
    assert rows[0]["input"].endswith(("因为", "所以")) and table[0][3] in rows[0]["choices"]


def test_every_user_error_code_has_chinese_text_with_the_same_fields():
    """Said by code, not by pattern: every code's Chinese text exists and uses exactly its English fields
    (a missing field would raise KeyError at the moment a visitor hits the error)."""
    from llmdemo.errors import MESSAGES
    from webui.i18n import _VOTE_PAGE, ERRORS_ZH, fields_of

    by_code = set(ERRORS_ZH) | set(_VOTE_PAGE)
    assert set(MESSAGES) == by_code, set(MESSAGES) ^ by_code
    for code, zh in ERRORS_ZH.items():
        assert fields_of(zh) == fields_of(MESSAGES[code]), code


@pytest.mark.parametrize("raise_it, en, zh", [
    (lambda: __import__("llmdemo.config", fromlist=["x"]).GenerationConfig(top_k=1.5),
     "top_k must be a whole number, got 1.5", "top_k 必须是整数，收到的是 1.5"),
    (lambda: __import__("llmdemo.presets", fromlist=["x"]).resolve("/no/such/folder"),
     "no model folder or .gguf file at '/no/such/folder'", "'/no/such/folder' 处没有模型文件夹或 .gguf 文件"),
])
def test_a_user_error_reads_by_its_code_in_both_languages(raise_it, en, zh):
    from llmdemo.errors import UserError
    from webui.i18n import error_text

    with pytest.raises(UserError) as e:
        raise_it()
    assert str(e.value) == en and error_text(e.value, "en") == en and error_text(e.value, "zh") == zh


def test_a_notice_reads_by_its_code_and_a_nested_one_too(tiny_lm):
    """A chat too long for the context: messages dropped and the message cut. The notice is text (its English)
    for the CLI and reports, and the page says both parts in Chinese by their codes, with no English left."""
    from llmdemo import prompts
    from llmdemo.errors import Notice
    from webui.i18n import error_text

    long = "word " * 3000
    history = [{"role": "user", "content": "hello " * 50}, {"role": "assistant", "content": "hi " * 50}] * 3
    p = prompts.dialogue_prompt(tiny_lm, long, history, "Be brief.", max_new_tokens=32)
    assert isinstance(p.notice, Notice) and p.notice.code == "notice.dropped_cut"
    assert p.notice.startswith("Dropped the 6 oldest message(s)") and "The message was cut from" in p.notice
    zh = error_text(p.notice, "zh")
    assert zh.startswith("为适应模型") and "删去了最早的 6 条消息" in zh and "消息从" in zh and "截短" in zh
    assert not any(w in zh for w in ("Dropped", "cut", "message")), zh
    assert error_text(Notice("notice.attention", n=255), "zh") == "只显示了前 255 个词元的注意力"


def test_a_summary_cut_by_its_budget_ends_at_its_last_full_sentence(monkeypatch):
    """The token limit ended "short" summaries mid-sentence; shown up to the last full stop, and said so."""
    from fakes import FakeLM

    from llmdemo.engine.stream import Stats, Stream
    from llmdemo.host import ModelHost
    from webui.handlers import Handlers
    from webui.settings import AppSettings

    lm = FakeLM()
    h = Handlers(ModelHost(lm), AppSettings())

    def cut(reply, reason):
        def stream(prompt, config=None, **kw):
            stats = Stats(new_tokens=len(reply.split()), finish_reason=reason)
            def chunks(_):
                yield reply
            return Stream(chunks, stats)
        monkeypatch.setattr(lm, "stream", stream)
        *_, (out, line) = h.summarize("The council voted to build a bridge. It will cost 20 million dollars.", "short")
        return out, line

    out, line = cut("The council approved a bridge. It will cost twenty mil", "length")
    assert out == "The council approved a bridge." and "last full sentence" in line
    out, line = cut("The council approved a bridge. It will cost twenty mil", "eos")  # ended by itself: as is
    assert out.endswith("twenty mil") and "last full sentence" not in line
