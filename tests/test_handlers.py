"""UI handlers with a FakeLM: thin, clear errors, nothing lost."""

import gradio as gr
import pytest

from llmdemo.host import ModelHost
from webui.handlers import Handlers
from webui.safety import safe_markdown
from webui.settings import AppSettings

from fakes import FakeLM


@pytest.fixture
def setup():
    lm = FakeLM()
    return lm, Handlers(ModelHost(lm), AppSettings(max_input_chars=1000, max_new_tokens=512))


def last(gen):
    out = None
    for out in gen:
        pass
    return out


def test_generate_streams_accumulated_text(setup):
    lm, h = setup
    lm.enqueue("one two three")
    outs = [o[0] for o in h.generate("Hi", 20, 0.5, 0.9, 10, 1.0, 1)]
    # the first update empties the output (a new run never shows the last one's text; issue 15, item 7)
    assert outs[:4] == ["", "one", "one two", "one two three"]
    prompt, cfg = lm.history[0]
    assert prompt == [{"role": "user", "content": "Hi"}] and cfg.max_new_tokens == 20 and cfg.seed == 1


def test_translate_postprocesses_final_text(setup):
    lm, h = setup
    lm.enqueue("Translation: Il fait beau.")
    text, stats = last(h.translate("The weather is nice.", "en", "fr"))
    assert text == "Il fait beau." and "tokens/s" in stats
    assert lm.history[0][1].temperature == 0  # translation defaults to greedy


def test_summarize_reports_compression(setup):
    lm, h = setup
    lm.enqueue("Short summary here.")
    text, stats = last(h.summarize("word " * 30, "short"))
    assert text == "Short summary here." and "compression 10.0x" in stats
    assert lm.history[0][1].max_new_tokens == 64  # from the length choice


@pytest.mark.parametrize("kwargs,msg", [
    (dict(prompt=""), "empty"),
    (dict(prompt="   "), "empty"),
    (dict(prompt="x" * 5000), "at most 1,000"),
    (dict(prompt="hi", temperature=-1), "temperature"),
    (dict(prompt="hi", top_p=2), "top_p"),
    (dict(prompt="hi", max_new_tokens=10**9), "max_new_tokens"),
    (dict(prompt="hi", seed=-3), "seed"),
    (dict(prompt="hi", temperature="warm"), "temperature must be a number"),
])
def test_bad_input_is_a_clear_gr_error(setup, kwargs, msg):
    _, h = setup
    with pytest.raises(gr.Error, match=msg):
        last(h.generate(**kwargs))


def test_unknown_language_is_clear(setup):
    _, h = setup
    with pytest.raises(gr.Error, match="unknown language 'klingon'"):
        last(h.translate("Hello", "en", "klingon"))


def test_chat_turns_retry_undo(setup):
    lm, h = setup
    lm.enqueue("Hello there!", "Paris.", "It is Paris.")
    hist, box, _ = last(h.chat("Hi", [], "Be brief."))
    assert box == "" and hist[-1] == {"role": "assistant", "content": "Hello there!"}
    hist, _, _ = last(h.chat("Capital of France?", hist, "Be brief."))
    assert [m["role"] for m in hist] == ["user", "assistant"] * 2
    prompt = lm.history[1][0]
    assert prompt[0] == {"role": "system", "content": "Be brief."} and prompt[-1]["content"] == "Capital of France?"
    hist, _, _ = last(h.retry(hist, "Be brief."))
    assert hist[-1]["content"] == "It is Paris." and len(hist) == 4
    assert lm.history[2][0] == lm.history[1][0]  # retry sent the same conversation again
    hist, box = h.undo(hist)
    assert box == "Capital of France?" and len(hist) == 2


def test_chat_error_keeps_the_message(setup, monkeypatch):
    """On the page a failed turn is a toast: the box keeps the typed text, Send comes back, Stop goes."""
    from webui.streaming import page_run

    _, h = setup
    with pytest.raises(gr.Error):
        last(h.chat("x" * 5000, [], ""))  # the API's /chat raises for its client
    toasts = []
    monkeypatch.setattr(gr, "Warning", lambda message, **kw: toasts.append(message))
    updates = list(page_run(h.chat_ui, 3, h.live, "dialogue")("x" * 5000, [], ""))
    assert updates[0][3]["visible"] is False and updates[0][4]["visible"] is True  # Send -> Stop at the start
    *outputs, send, stop = updates[-1]
    assert send["visible"] is True and stop["visible"] is False  # back to idle after the failure
    # no update ever wrote the message box: the text the visitor typed stays there
    assert all(isinstance(u[1], type(gr.skip())) and u[1] == gr.skip() for u in updates)
    assert len(toasts) == 1 and "characters" in toasts[0]


def test_html_and_remote_images_are_neutralised():
    assert safe_markdown("see ![x](http://evil/t.png)") == "see [image: x](http://evil/t.png)"


def test_failed_model_load_keeps_previous(setup):
    lm, h = setup
    with pytest.raises(gr.Error, match="Still using fake"):
        h.load_model("no-such-preset", "", progress=lambda *a, **k: None)
    assert h.host.lm is lm


def test_hosted_mode_refuses_custom_models():
    h = Handlers(ModelHost(FakeLM(), allow_paths=False, allow_hub_ids=False), AppSettings(hosted=True))
    with pytest.raises(gr.Error, match="chosen by the operator"):
        h.load_model("gpt2", "/etc", progress=lambda *a, **k: None)
    # no visitor can swap the shared model, or point the server at an address or a file, even through the API
    for name in ("smollm2-360m-instruct", "openai:gpt-4o", "openai-base:x", "llamacpp:/etc/passwd", "llamacpp:default"):
        with pytest.raises(gr.Error, match="chosen by the operator"):
            h.load_model(name, "", progress=lambda *a, **k: None)
    assert h.host.lm.name == "fake"


def test_every_backend_and_the_fake_speak_the_interface(tiny_lm):
    from llmdemo.backends.llamacpp import LlamaCppLM
    from llmdemo.backends.openai import OpenAILM
    from llmdemo.interface import LanguageModel

    assert isinstance(FakeLM(), LanguageModel) and isinstance(tiny_lm, LanguageModel)
    for cls in (LlamaCppLM, OpenAILM):  # the methods, without a server or a GGUF
        missing = [m for m in ("encode", "count_tokens", "truncate_text", "stream", "generate", "generate_batch",
                               "token_logprobs", "loglikelihood_rolling", "loglikelihood", "info", "close")
                   if not callable(getattr(cls, m, None))]
        assert missing == [], (cls, missing)
    # and with the interface's parameters: the runner passes on_error and on_progress to whichever model it has
    import inspect

    for name in ("generate_batch", "token_logprobs", "loglikelihood_rolling", "stream"):
        want = set(inspect.signature(getattr(LanguageModel, name)).parameters)
        for cls in (FakeLM, type(tiny_lm), LlamaCppLM, OpenAILM):
            have = set(inspect.signature(getattr(cls, name)).parameters)
            assert want <= have or "kwargs" in have, (cls.__name__, name, sorted(want - have))


def test_server_errors_reach_the_visitor_as_messages(setup):
    from llmdemo.backends.openai import ServerError

    lm, h = setup

    def broken(*a, **k):
        raise ServerError("the model server at http://127.0.0.1:1 failed mid-stream (ReadError); try again")

    lm.stream = broken
    with pytest.raises(gr.Error, match="failed mid-stream"):
        last(h.generate("hi"))


def test_eval_tab_runs_on_shared_benchmarks(tiny_lm, benchmarks, tmp_path):
    from webui.tabs.evaluation.handlers import EvalHandlers

    e = EvalHandlers(ModelHost(tiny_lm), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    names = e.benchmarks("translation")
    assert "translation_flores200_devtest_en-fr.jsonl" in names and all(n.startswith("translation_") for n in names)
    outs = list(e.run("translation", "translation_flores200_devtest_en-fr.jsonl", None, 3))
    md, plot, table, files, rows = outs[-1]
    assert "| bleu |" in md and len(table) == 3 and len(rows) == 3
    assert any(f.endswith("report.html") for f in files)
    tab, src, doc, msg = e.send(rows, 1, "translation")
    assert tab["selected"] == "translation" and src == rows[1]["input"] and src  # the raw input, stored


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "nope.jsonl"])
def test_eval_tab_refuses_paths_outside_data_dir(benchmarks, tmp_path, name):
    from webui.tabs.evaluation.handlers import EvalHandlers

    e = EvalHandlers(ModelHost(FakeLM()), AppSettings(data_dir=benchmarks, output_dir=tmp_path))
    with pytest.raises(gr.Error, match="no benchmark named"):
        last(e.run("translation", name, None, 2))


def test_inside_handlers_on_tiny_model(tiny_lm):
    from webui.tabs.inside import InsideHandlers

    ins = InsideHandlers(ModelHost(tiny_lm), AppSettings())
    chips, summary, labels, choice, heat, fig = ins.analyze("The weather is nice <b>today</b>", 1, -1)
    assert "<b>" not in chips and "&lt;" in chips  # token text is escaped, never markup
    assert "perplexity" in summary and len(labels) == 10
    assert all(0 <= s <= 1 for _, s in heat) and fig is not None
    # greedy appends the model's own most likely next token (startswith alone held for a step that added nothing)
    import torch

    ids = tiny_lm.tokenizer("The weather is", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        top = int(tiny_lm.model(input_ids=torch.tensor([[tiny_lm.prefix_token()] + ids])).logits[0, -1].argmax())
    assert ins.step("The weather is", None, "greedy") == tiny_lm.tokenizer.decode(
        ids + [top], clean_up_tokenization_spaces=False)
    assert ins.step("The weather is", str(top), "chosen") == ins.step("The weather is", None, "greedy")
    with pytest.raises(gr.Error, match="pick a candidate"):
        ins.step("The weather is", None, "chosen")


def test_app_decode_mode_applies_to_later_model_swaps(monkeypatch):
    import app
    from webui.settings import AppSettings as Settings

    calls = []

    def fake_load(name=None, **kw):
        calls.append((name, kw.get("decode")))
        return FakeLM(name=name or "fake")

    monkeypatch.setattr(app, "load", fake_load)
    built = {}
    monkeypatch.setattr(app, "build_demo", lambda host, settings: built.setdefault("host", host))
    app.make_demo("first", Settings(), decode="float32")
    built["host"].swap("second")
    assert calls == [("first", "float32"), ("second", "float32")]


def test_whole_chat_counts_against_the_input_limit_before_any_work(setup):
    lm, h = setup  # max_input_chars=1000
    history = [{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "y" * 300}]
    with pytest.raises(gr.Error, match="conversation .* over 1,000 characters"):
        last(h.chat("z" * 300, history, "s" * 200))
    with pytest.raises(gr.Error, match="over 1,000"):
        h.undo(history * 2)
    with pytest.raises(gr.Error, match="over 1,000"):
        last(h.retry(history * 2, "Be brief."))
    bomb = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 2000
    with pytest.raises(gr.Error, match="4,000 messages; this server accepts at most 1,000"):
        last(h.chat("hi", bomb, "Be brief."))
    with pytest.raises(gr.Error, match="4,000 messages"):
        h.undo(bomb)
    assert lm.history == []  # refused before the model saw anything
    hist, box, _ = last(h.chat("hi", history[:1], "Be brief."))  # within the limit: served
    assert hist[-1]["role"] == "assistant"


def test_app_has_a_module_level_demo_built_on_first_access(tiny_model_dir, monkeypatch):
    """What ``gradio app.py`` and Spaces' reload look for; importing app loads no model (tests import it)."""
    import importlib

    import app

    app = importlib.reload(app)
    assert app._DEMO is None  # importing built nothing
    monkeypatch.setenv("LLMDEMO_MODEL", str(tiny_model_dir))
    demo = app.demo
    assert isinstance(demo, gr.Blocks) and app.demo is demo  # built once
    assert any(getattr(fn, "api_name", None) == "generate" for fn in demo.fns.values())
    with pytest.raises(AttributeError):
        app.no_such_thing
