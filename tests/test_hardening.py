"""A public demo, probed as a hostile visitor would (issue 14): one test per finding, and random input."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest

from llmdemo.host import ModelHost
from webui.tabs.evaluation.handlers import EvalHandlers
from webui.handlers import Handlers
from webui.safety import safe_markdown
from webui.settings import AppSettings

from conftest import launch
from fakes import FakeLM


# 1. other visitors' evaluation data
def test_the_output_folder_is_not_served_and_run_names_are_unguessable(tiny_lm, tmp_path, benchmarks):
    out = tmp_path / "runs"
    settings = AppSettings(output_dir=out, data_dir=benchmarks)
    demo, url = launch(ModelHost(tiny_lm), settings)
    try:
        e = EvalHandlers(ModelHost(tiny_lm), settings)
        *_, (md, plot, table, files, rows) = e.run("translation", "translation_flores200_devtest_en-fr.jsonl", None, 2)
        (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
        assert len(run_dir.name.split("-")[-1]) == 16  # 64 random bits in every run folder's name
        assert all(not f.startswith(str(out)) for f in files)  # handed out as private copies
        for path in (run_dir / "predictions.jsonl", run_dir / "report.html"):
            r = httpx.get(f"{url}gradio_api/file={path}")
            assert r.status_code in (403, 404), (path, r.status_code)
    finally:
        demo.close()


# 2. unbounded uploads
def test_uploads_are_bounded_before_any_work(tiny_lm, tmp_path, benchmarks):
    settings = AppSettings(output_dir=tmp_path / "runs", data_dir=benchmarks, max_upload_mb=1, max_input_chars=2000)
    demo, url = launch(ModelHost(tiny_lm), settings)
    try:
        big = tmp_path / "big.jsonl"
        big.write_bytes(b"x" * (2 * 1024 * 1024))
        with open(big, "rb") as f:
            r = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.jsonl", f)})
        assert r.status_code == 413  # Gradio refuses it before storing it
    finally:
        demo.close()
    e = EvalHandlers(ModelHost(FakeLM()), settings)
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"id": "a", "source": "word " * 1000, "target": "x", "src_lang": "en",
                                "tgt_lang": "fr"}) + "\n", encoding="utf-8")
    with pytest.raises(gr.Error, match="example 'a' of the uploaded file has 5,005 characters; .* at most 2,000"):
        list(e.run("translation", None, str(long), 1))
    hosted = EvalHandlers(ModelHost(FakeLM()), AppSettings(output_dir=tmp_path, max_eval_examples=100))
    with pytest.raises(gr.Error, match="at most 100"):
        list(hosted.run("translation", None, str(long), 500))
    # issue 37, finding 3: a BBQ upload of 19,000-character contexts cost ~48 s a record; characters say little
    # of the cost, so a hosted app counts each example's tokens (FakeLM: one per word) against 2,048
    wide = tmp_path / "wide.jsonl"
    wide.write_text(json.dumps({"id": "w", "source": "a " * 2100, "target": "x", "src_lang": "en",
                                "tgt_lang": "fr"}) + "\n", encoding="utf-8")
    on_host = EvalHandlers(ModelHost(FakeLM()), AppSettings(output_dir=tmp_path, hosted=True, data_dir=benchmarks))
    with pytest.raises(gr.Error, match="example 'w' of the uploaded file has 2,10\\d tokens; .* at most 2,048"):
        list(on_host.run("translation", None, str(wide), 1))
    local = EvalHandlers(ModelHost(FakeLM()), AppSettings(output_dir=tmp_path / "local", data_dir=benchmarks,
                                                         hosted=False))
    assert list(local.run("translation", None, str(wide), 1))[-1][2]  # no token cap on one's own machine


# 3. exposure
def _args(**kw):
    base = dict(host=None, port=None, share=False, hosted=False, auth=None, allow_local_models=False)
    return argparse.Namespace(**{**base, **kw})


def test_exposing_the_app_turns_hosted_mode_on_unless_told_otherwise(monkeypatch):
    from app import is_loopback, settings_from_args

    for k in ("GRADIO_SERVER_NAME", "LLMDEMO_HOSTED", "SPACE_ID", "LLMDEMO_AUTH"):
        monkeypatch.delenv(k, raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("myhost")
    s, auth, notes = settings_from_args(_args())
    assert not s.hosted and auth is None and notes == []
    for exposed in (_args(host="0.0.0.0"), _args(share=True)):
        s, _, notes = settings_from_args(exposed)
        assert s.hosted and any("hosted mode is on" in n for n in notes) and any("without --auth" in n for n in notes)
    s, _, notes = settings_from_args(_args(host="0.0.0.0", allow_local_models=True))
    assert not s.hosted and any("any local path" in n for n in notes)
    s, auth, notes = settings_from_args(_args(host="0.0.0.0", auth="ann:secret"))
    assert auth == ("ann", "secret") and not any("without --auth" in n for n in notes)
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        settings_from_args(_args(auth="nopassword"))


def test_auth_is_required_when_set(tiny_lm):
    from webui.layout import build_demo, launch_options

    from conftest import free_port

    demo = build_demo(ModelHost(tiny_lm), AppSettings())
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=("ann", "pw"),
                **launch_options(AppSettings()))
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/config").status_code in (401, 403)
        assert httpx.post(f"{url}/login", data={"username": "ann", "password": "wrong"}).status_code in (400, 401)
        ok = httpx.post(f"{url}/login", data={"username": "ann", "password": "pw"})
        assert ok.status_code == 200
        # guessing is rate-limited per address (issue 37, finding 20): 200 guesses once took 0.4 s
        codes = [httpx.post(f"{url}/login", data={"username": "ann", "password": f"guess{i}"}).status_code
                 for i in range(20)]
        assert codes.count(429) >= 10 and "too many login attempts" in httpx.post(
            f"{url}/login", data={"username": "ann", "password": "pw"}).text
    finally:
        demo.close()


def test_no_server_path_reaches_a_visitor(tmp_path):
    lm = FakeLM()
    lm.info = lambda: {**FakeLM.info(lm), "kind": "gguf", "location": "/root/secret/models/model.Q4.gguf"}
    h = Handlers(ModelHost(lm), AppSettings(hosted=True))
    md = h.model_info()
    assert "model.Q4.gguf" in md and "/root" not in md
    e = EvalHandlers(ModelHost(lm), AppSettings(hosted=True, output_dir=tmp_path))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(gr.Error) as err:
        list(e.run("translation", None, str(bad), 1))
    assert str(tmp_path) not in str(err.value) and "uploaded file" in str(err.value)


# 4. --overwrite and two runs in one folder
def test_overwrite_replaces_run_folders_only(tmp_path):
    from eval.runfolder import RunError, check_output

    other = tmp_path / "project"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (other / "run.json").write_text("{}")
    with pytest.raises(RunError, match="replaces run folders only.*notes.txt"):
        check_output(other, overwrite=True)
    run = tmp_path / "run"
    run.mkdir()
    for f in ("run.json", "predictions.jsonl", "report.html", "plot-1.png"):
        (run / f).write_text("x")
    check_output(run, overwrite=True)  # a run folder: allowed
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunError, match="is a file, not a folder"):
        check_output(f)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(RunError, match="symbolic link|cannot use"):
        check_output(loop)


def test_two_runs_cannot_write_one_folder_and_a_dead_runs_lock_is_taken_over(tmp_path):
    from eval.runfolder import RunError, lock

    (tmp_path / "run.lock").write_text(str(os.getppid()))  # a live process that is not this one
    with pytest.raises(RunError, match=f"another run \\(pid {os.getppid()}\\)"):
        with lock(tmp_path):
            pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run.lock").write_text(str(dead.pid))
    with lock(tmp_path):
        assert (tmp_path / "run.lock").read_text() == str(os.getpid())
    assert not (tmp_path / "run.lock").exists()


# 5. constant scores
def test_report_with_constant_scores_has_its_plots(tmp_path):
    from eval.report import write_reports

    results = {"task": "translation", "data": "x.jsonl", "n_examples": 3, "seed": 0,
               "metrics": {"bleu": 0.0, "chrf": 12.5}, "ci95": {"bleu": [0.0, 0.0], "chrf": [12.500001, 12.5]},
               "model": {"name": "m", "dtype": "float32", "device": "cpu"}, "signatures": {}, "config": {},
               "prompt_template": "", "versions": {}, "timing": {}}
    rows = [{"id": str(i), "prediction": "a", "reference": "b", "chrf": 12.5, "bleu": 0.0} for i in range(3)]
    write_reports(tmp_path, results, rows)
    assert (tmp_path / "report.html").exists() and "data:image/png" in (tmp_path / "report.html").read_text()


# 6. bad CLI input: one line, exit 2, before the model loads (the model named here does not exist)
@pytest.mark.parametrize("case", ["nested", "utf8", "output-file", "symlink-loop", "max-length", "stride", "long-id"])
def test_bad_cli_input_is_one_line_and_exit_2(case, tmp_path, benchmarks):
    data = benchmarks / "translation_flores200_devtest_en-fr.jsonl"
    task, out, extra = "translation", tmp_path / "out", []
    if case == "nested":
        data = tmp_path / "nested.jsonl"
        data.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    elif case == "utf8":
        data = tmp_path / "bad.jsonl"
        data.write_bytes(b'{"id": "1", "source": "\xff\xfe", "target": "x", "src_lang": "en", "tgt_lang": "fr"}\n')
    elif case == "output-file":
        out = tmp_path / "afile"
        out.write_text("x")
    elif case == "symlink-loop":
        out = tmp_path / "loop"
        out.symlink_to(out)
    elif case == "long-id":  # over Python's 4,300-digit cap on integers (issue 37, finding 19)
        data = tmp_path / "long-id.jsonl"
        data.write_text('{"id": ' + "9" * 5000 + ', "source": "a", "target": "b", "src_lang": "en", "tgt_lang": "fr"}\n')
    elif case == "max-length":
        task, data, extra = "perplexity", benchmarks / "wikitext2_raw_test.txt", ["--max-length", "1"]
    else:
        task, data, extra = "perplexity", benchmarks / "wikitext2_raw_test.txt", ["--stride", "-1"]
    r = subprocess.run([sys.executable, "-m", "eval", "run", "--task", task, "--data", str(data), "--output", str(out),
                        "--model", "no-such-model-anywhere", "--limit", "2", *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no-such-model" not in lines[0], lines
    if case in ("max-length", "stride"):
        assert not out.exists()  # refused before any folder was made


def test_a_utf8_bom_file_is_read(tmp_path):
    from eval.datasets import load_records

    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "1", "source": "Hi", "target": "Salut", "src_lang": "en",
                                                "tgt_lang": "fr"}).encode() + b"\n")
    assert load_records(p, "translation")[0]["source"] == "Hi"
    t = tmp_path / "bom.txt"
    t.write_bytes(b"\xef\xbb\xbfSome text.")
    assert load_records(t, "perplexity")[0]["text"] == "Some text."


# 7. remote images in the chat
@pytest.mark.parametrize("text", [
    "![x](http://evil.example/t.png)",
    "<img src=http://evil.example/t.png>",
    "<IMG SRC='http://evil.example/t.png'/>",
    "![logo][1]\n\n[1]: http://evil.example/t.png",
    "<picture><source srcset=http://evil.example/t.png></picture>",
])
def test_chat_output_loads_no_remote_image(text):
    import re

    shown = safe_markdown(text)
    assert "<" not in shown  # no HTML tag at all
    assert not re.search(r"(?<!\\)!\[", shown)  # no Markdown image, inline or by reference


def test_chat_history_round_trips_through_the_escapes():
    lm = FakeLM()
    lm.enqueue("a < b & ![c](d)", "ok")
    h = Handlers(ModelHost(lm), AppSettings())
    *_, (hist, _, _) = h.chat("is 1 < 2 & 3 > 2?", [], "Be brief.")
    *_, (hist2, _, _) = h.chat("and?", hist, "Be brief.")
    prompt = lm.history[1][0]
    assert {"role": "user", "content": "is 1 < 2 & 3 > 2?"} in prompt  # the model sees the text, not the escapes
    assert h.undo(hist2)[1] == "and?"


# 8. clean-up
def test_an_upload_is_deleted_once_older_than_keep_files_s(tiny_lm, tmp_path):
    """Files the server keeps for a visitor in Gradio's cache (uploads; files handed out go to the same cache
    under the same rule) are deleted once older than ``keep_files_s`` (an hour by default; 2 s here)."""
    assert AppSettings().keep_files_s == 3600
    demo, url = launch(ModelHost(tiny_lm), AppSettings(keep_files_s=2, output_dir=tmp_path / "runs"))
    try:
        src = tmp_path / "mine.jsonl"
        src.write_text('{"id": "1"}\n', encoding="utf-8")
        with open(src, "rb") as f:
            r = httpx.post(f"{url}gradio_api/upload", files={"files": ("mine.jsonl", f)})
        (uploaded,) = [Path(p) for p in r.json()]
        assert uploaded.is_file()
        deadline = time.time() + 20
        while time.time() < deadline and uploaded.exists():
            time.sleep(0.5)
        assert not uploaded.exists()  # deleted by the running server
    finally:
        demo.close()


# random input: a result or a clear error, never a crash or an unbounded wait
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llmdemo.errors import UserError  # noqa: E402

_text = st.text(st.characters(), max_size=3000) | st.sampled_from(["", " ", "\x00", "\ud800", "a" * 30_000])
_num = st.none() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True) | \
    st.sampled_from(["", "x", "1e9", "-0", True])


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=_text, mnt=_num, temp=_num, top_p=_num, top_k=_num, rep=_num, seed=_num,
       src=st.sampled_from(["en", "fr", "zh", "xx", "", "French", None]), tgt=st.sampled_from(["fr", "en", "de", ""]),
       history=st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]),
                                               "content": _text | st.integers()}), max_size=6))
def test_handlers_give_a_result_or_a_clear_message(prompt, mnt, temp, top_p, top_k, rep, seed, src, tgt, history):
    lm = FakeLM()
    h = Handlers(ModelHost(lm), AppSettings(max_input_chars=20_000, max_new_tokens=512))
    calls = [lambda: h.generate(prompt, mnt, temp, top_p, top_k, rep, seed),
             lambda: h.translate(prompt, src, tgt, mnt, temp, top_p, top_k, rep, seed),
             lambda: h.summarize(prompt, "short", mnt, temp, top_p, top_k, rep, seed),
             lambda: h.chat(prompt, history, "Be brief.", mnt, temp, top_p, top_k, rep, seed)]
    for call in calls:
        try:
            for out in call():
                assert isinstance(out, tuple)
        except gr.Error as e:
            # a user error, said plainly and by code: a bare ValueError from deep inside would be a bug shown
            # to the visitor as their mistake (friendly() raises ``from None``: the original is the context)
            assert str(e) and "Something went wrong" not in str(e), str(e)
            assert isinstance(e.__context__, UserError), (type(e.__context__), str(e))
    try:
        h.undo(history)
    except gr.Error as e:
        assert "Something went wrong" not in str(e)
        assert isinstance(e.__context__, UserError), (type(e.__context__), str(e))


def test_prompt_builders_build_an_ordinary_input(tiny_lm):
    """The property test below accepts a refusal: this one makes sure an ordinary input is not refused."""
    from llmdemo import prompts

    text = "The weather is nice today, and the park is full of people."
    for p in (prompts.generation_prompt(tiny_lm, text, 16), prompts.translation_prompt(tiny_lm, text, "en", "fr", 16),
              prompts.summarization_prompt(tiny_lm, text, "short", 16),
              prompts.dialogue_prompt(tiny_lm, text, [{"role": "user", "content": text}], "s", 16)):
        assert 0 < len(tiny_lm.encode(p.input)) <= tiny_lm.context_length - 16


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(text=_text, n=st.integers(1, 300), length=st.sampled_from(["short", "long", "huge"]))
def test_prompt_builders_fit_the_context_or_refuse(tiny_lm, text, n, length):
    from llmdemo import prompts
    from llmdemo.config import ConfigError

    for build in (lambda: prompts.generation_prompt(tiny_lm, text, n),
                  lambda: prompts.translation_prompt(tiny_lm, text, "en", "fr", n),
                  lambda: prompts.summarization_prompt(tiny_lm, text, length, n),
                  lambda: prompts.dialogue_prompt(tiny_lm, text, [{"role": "user", "content": text}] * 3, "s", n)):
        try:
            p = build()
        except (prompts.InputError, ConfigError):
            continue
        assert len(tiny_lm.encode(p.input)) <= tiny_lm.context_length - (0 if tiny_lm.is_encoder_decoder else n)


def raw_post(url: str, path: bytes, extra_headers: bytes, *, chunks: int, chunk: int) -> int | None:
    """POST a chunked body of ``chunks`` x ``chunk`` bytes over a raw socket (httpx would not send a
    lying Content-Length); the status the server answered, or None if it closed before answering."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + extra_headers + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(chunks):
                sock.sendall(b"%x\r\n" % chunk + b"x" * chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed while the body was still coming
            pass
        try:
            head = sock.recv(64)
        except OSError:
            return None
    return int(head.split()[1]) if head.startswith(b"HTTP/") else None


# from the hostile probe of this change (a helper that used the app as an attacker would)
def test_oversized_request_bodies_are_refused_at_the_door(tiny_lm):
    host = ModelHost(tiny_lm)
    demo, url = launch(host, AppSettings(max_request_kb=64, body_read_s=2))
    try:
        blocks = {"data": [[{"role": "user", "content": [{"type": "text", "text": ""}] * 20000}]],
                  "fn_index": 0, "session_hash": "x"}
        r = httpx.post(f"{url}gradio_api/queue/join", json=blocks, timeout=30)
        assert r.status_code == 413 and "limit" in r.text
        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(100):
                yield b"x" * 4096
        try:
            r = httpx.post(f"{url}gradio_api/queue/join", content=chunks(), timeout=10)
        except httpx.TransportError:  # the door may also close on the rest of the body; then nothing ran
            pass
        else:
            # 413, not Gradio's own 422 for a body that is not JSON (which it answers having read it all)
            assert r.status_code == 413 and "limit" in r.text, (r.status_code, r.text[:200])
        # a small Content-Length with a chunked body past the limit (the headers lie): refused, never read whole
        for declared in (b"Content-Length: 10\r\n", b""):
            status = raw_post(url, b"/gradio_api/queue/join", declared, chunks=200, chunk=4096)
            assert status in (400, 413, None), status  # None: the door closed on the rest of the body
        # a body trickled (10 of 100 bytes, then nothing) is answered 408 when its time is up
        import socket
        from urllib.parse import urlparse

        u = urlparse(url)
        with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
            sock.sendall(b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n" + b"{" * 10)
            assert sock.recv(64).split()[1] == b"408"
        from gradio_client import Client

        assert Client(url, verbose=False).predict("Hello", 4, 0, 0.9, 0, 1.0, 1, api_name="/generate")[0] is not None
    finally:
        demo.close()


def test_a_lone_surrogate_in_a_chat_message_can_be_shown(setup_fake=None):
    lm = FakeLM()
    h = Handlers(ModelHost(lm), AppSettings())
    *_, (hist, _, _) = h.chat("\ud800 tell me a story", [], "Be brief.")
    json.dumps(hist).encode("utf-8")  # what Gradio sends the browser: it must encode
    assert all("\ud800" not in m["content"] for m in hist)
    crafted = [{"role": "user", "content": "<img src=http://evil.example/x.png> \ud800"},
               {"role": "assistant", "content": "![a](http://evil.example/y.png)"}]
    *_, (hist, _, _) = h.chat("hi", crafted, "Be brief.")
    assert all("<" not in m["content"] and "![" not in m["content"] for m in hist)  # a crafted history is escaped too
    assert "<" not in json.dumps(h.undo(crafted)[0])


def test_hosted_mode_caps_examples_whatever_turned_it_on(tmp_path):
    assert AppSettings(hosted=True).eval_examples_cap == 100 and AppSettings(hosted=False).eval_examples_cap == 1000
    assert AppSettings(hosted=True, max_eval_examples=500).eval_examples_cap == 500


def test_errors_from_an_uploaded_runs_data_name_no_server_path(tmp_path):
    e = EvalHandlers(ModelHost(FakeLM()), AppSettings(hosted=True, output_dir=tmp_path / "runs"))
    up = tmp_path / "secret-dir" / "u.jsonl"
    up.parent.mkdir()
    up.write_text(json.dumps({"id": "a", "turns": ["only one"]}) + "\n", encoding="utf-8")
    with pytest.raises(gr.Error) as err:
        list(e.run("dialogue", None, str(up), 2))
    assert "secret-dir" not in str(err.value) and "two turns" in str(err.value)


def test_the_inside_tab_looks_at_a_bounded_number_of_tokens(tiny_lm):
    from webui.tabs.inside import INSIDE_MAX_TOKENS, InsideHandlers

    calls = []
    real = tiny_lm.call

    def spy(fn, priority=0):
        calls.append(1)
        return real(fn, priority)

    tiny_lm.call = spy
    try:
        ins = InsideHandlers(ModelHost(tiny_lm), AppSettings(max_input_chars=20_000))
        chips, summary, *_ = ins.analyze("the cat " * 2000, 1, -1)
        assert f"first {INSIDE_MAX_TOKENS} tokens" in summary
        with pytest.raises(gr.Error, match=f"at most {INSIDE_MAX_TOKENS} tokens"):
            ins.step("the cat " * 2000, None, "greedy")
    finally:
        del tiny_lm.call
    assert calls  # the looks ran on the model's thread


def test_old_visitor_runs_are_removed_and_nothing_else(tmp_path):
    """Only the app's own visitor runs go (issue 37, finding 18: a CLI run folder in the output folder and a
    folder with a report.md/ directory were deleted too)."""
    import time as _time

    from webui.files import _remove_old_runs

    name = "translation-20260101-120000-{}".format
    old_run, new_run, other = tmp_path / name("0" * 16), tmp_path / name("1" * 16), tmp_path / "mine"
    cli_run, odd, linked = tmp_path / "translation-run", tmp_path / name("2" * 16), tmp_path / name("3" * 16)
    for d in (old_run, new_run, other, cli_run, odd, linked):
        d.mkdir()
    for d in (old_run, new_run, cli_run):
        (d / "run.json").write_text("{}")
    (other / "notes.txt").write_text("keep")
    (odd / "report.md").mkdir()  # a folder named like a run file
    (odd / "report.md" / "mine.txt").write_text("keep")
    (linked / "results.json").symlink_to(other / "notes.txt")
    past = _time.time() - 48 * 3600
    for d in (old_run, other, cli_run, odd, linked):
        os.utime(d, (past, past))
    _remove_old_runs(tmp_path, 24)
    assert not old_run.exists() and new_run.exists() and other.exists()
    assert cli_run.exists() and (odd / "report.md" / "mine.txt").exists() and linked.exists()
    assert (other / "notes.txt").read_text() == "keep"
    from webui.files import VISITOR_RUN, visitor_run_name

    assert VISITOR_RUN.fullmatch(visitor_run_name("bbq"))  # the folders the tab makes are the ones it removes


def test_visitor_runs_over_the_budget_go_oldest_first(tmp_path):
    """Issue 37, the disk: runs of any age fill it; over the budget the oldest finished visitor runs go, never
    a run being written, never anything else, and a linked file counts as the link (lstat)."""
    import time as _time

    from webui.files import _remove_old_runs

    runs = [tmp_path / f"translation-20260101-12000{i}-{str(i) * 16}" for i in range(4)]
    now = _time.time()
    for i, d in enumerate(runs):
        d.mkdir()
        (d / "predictions.jsonl").write_bytes(b"x" * (1 << 20))  # 1 MB each
        os.utime(d, (now - 3600 * (4 - i), now - 3600 * (4 - i)))  # runs[0] the oldest
    (runs[1] / "run.lock").write_text("1")  # being written: kept whatever its age
    big = tmp_path / "mine.bin"
    big.write_bytes(b"y" * (8 << 20))
    (runs[3] / "results.json").symlink_to(big)  # not a plain file: the folder is not the app's to remove
    _remove_old_runs(tmp_path, 24, budget_bytes=int(1.5 * (1 << 20)))
    assert [d.exists() for d in runs] == [False, True, False, True] and big.stat().st_size == 8 << 20
    _remove_old_runs(tmp_path, 24, budget_bytes=None)  # no budget: nothing more goes
    assert runs[1].exists() and runs[3].exists()


def test_a_whole_json_line_cut_before_its_newline_is_redone(tmp_path):
    from eval.runfolder import read_done

    p = tmp_path / "predictions.jsonl"
    p.write_bytes(b'{"id": "1"}\n{"id": "2"}')  # killed between the line and its newline
    assert [d["id"] for d in read_done(p)] == ["1"]
    assert p.read_bytes() == b'{"id": "1"}\n'


def test_one_client_cannot_fill_the_queue_for_everyone(tiny_lm, monkeypatch):
    """Issue 37, finding 1: one address joins many long generations it never reads; it is refused past its
    cap (in its language), and another address is served meanwhile."""
    from gradio_client import Client

    import webui.clients

    monkeypatch.setattr(webui.clients, "UNREAD_GRACE_S", 5.0)  # longer than the ten joins take, loaded or not
    host = ModelHost(tiny_lm)
    demo, url = launch(host, AppSettings(events_per_client=3, trusted_proxies=1, queue_size=64, concurrency=4))
    tiny_lm.scheduler.step_hook = lambda kind, rows: time.sleep(0.1)  # a 240-token answer takes ~24 s
    try:
        fn_index = next(i for i, f in demo.fns.items() if f.api_name == "generate")
        codes = []
        for k in range(10):
            r = httpx.post(f"{url}gradio_api/queue/join", timeout=30,
                           headers={"x-forwarded-for": "10.0.0.66", "accept-language": "zh-CN" if k == 9 else "en"},
                           json={"data": ["Once upon a time", 240, 0, 0.9, 0, 1.0, 1], "fn_index": fn_index,
                                 "session_hash": f"hog{k}", "event_data": None, "trigger_id": None})
            codes.append(r.status_code)
        assert codes[:3] == [200] * 3 and set(codes[3:]) == {503}, codes
        assert "请求在排队或运行" in r.text

        def hog_join(k: int) -> int:
            return httpx.post(f"{url}gradio_api/queue/join", timeout=30, headers={"x-forwarded-for": "10.0.0.66"},
                              json={"data": ["Once upon a time", 240, 0, 0.9, 0, 1.0, 1], "fn_index": fn_index,
                                    "session_hash": f"hog{k}", "event_data": None, "trigger_id": None}).status_code

        # nobody opened the hogs' streams: past the grace (5 s) their events are dropped and the cap frees
        # up, before they would have ended (240 steps of at least 0.1 s: 24 s or more on any machine)
        deadline = time.monotonic() + 15
        while hog_join(100) != 200:
            assert time.monotonic() < deadline, "events nobody reads were never dropped"
            time.sleep(0.5)
        t0 = time.monotonic()
        out = Client(url, verbose=False, headers={"x-forwarded-for": "10.0.0.7"}).predict(
            "Hello", 2, 0, 0.9, 0, 1.0, 1, api_name="/generate")
        assert out[0] is not None and time.monotonic() - t0 < 120
    finally:
        tiny_lm.scheduler.step_hook = None
        demo.close()


def test_uploads_are_bounded_per_request_and_per_address_per_hour(tiny_lm, tmp_path):
    """Issue 37, finding 12: one request carried 30 files of 9.9 MB; one address may not fill the disk."""
    host = ModelHost(tiny_lm)
    demo, url = launch(host, AppSettings(output_dir=tmp_path / "runs", max_upload_mb=1, upload_mb_per_hour=2,
                                         trusted_proxies=1))
    try:
        def upload(n_files: int, address: str, size: int = 900_000):
            files = [("files", (f"f{i}.jsonl", b"x" * size)) for i in range(n_files)]
            try:
                return httpx.post(f"{url}gradio_api/upload", files=files, timeout=60,
                                  headers={"x-forwarded-for": address}).status_code
            except httpx.TransportError:  # cut off while sending: refused
                return None

        assert upload(1, "10.1.1.1") == 200
        assert upload(5, "10.1.1.1") in (413, None)  # five files of 0.9 MB in one request: over 1 MB
        assert upload(1, "10.1.1.1") == 200 and upload(1, "10.1.1.1") in (413, None)  # 2 MB an hour: spent
        assert upload(1, "10.1.1.2") == 200  # another address has its own
    finally:
        demo.close()


def test_exports_are_removed_when_too_old_or_over_the_budget(monkeypatch):
    """Issue 37, finding 12: every export click left a copy in the temp folder that nothing removed."""
    import webui.files as files

    monkeypatch.setattr(files, "_SHARED", [])
    monkeypatch.setattr(files, "SHARED_BUDGET", 50_000)
    paths = [Path(files._export_file("conversation.md", "x" * 20_000)) for _ in range(5)]
    last = paths[-1]
    try:
        assert [p.exists() for p in paths] == [False, False, False, True, True]  # 40 KB kept of 100 KB
        monkeypatch.setattr(files, "KEEP_SHARED_S", -1)  # and past their time, all of them
        last = Path(files._export_file("conversation.md", "y"))
        assert not any(p.exists() for p in paths) and last.exists()  # the new one is always kept
    finally:
        for p in paths + [last]:
            if p.parent.exists():
                import shutil
                shutil.rmtree(p.parent)


def test_the_sessions_kept_in_memory_are_bounded(tiny_lm):
    """Issue 37, finding 9: ~0.55 MB per session, and Gradio keeps 10,000 by default."""
    from gradio_client import Client

    host = ModelHost(tiny_lm)
    demo, url = launch(host, AppSettings(max_sessions=3))
    try:
        for _ in range(6):  # six visitors, one session each
            Client(url, verbose=False).predict("Hello", 1, 0, 0.9, 0, 1.0, 1, api_name="/generate")
        assert 1 <= len(demo.state_holder.session_data) <= 3
    finally:
        demo.close()


def test_the_report_shown_in_the_page_loads_nothing_from_elsewhere(tmp_path):
    """Issue 37, finding 14: a benchmark file with <img src=...> in an id made the page fetch it."""
    from webui.tabs.evaluation.handlers import _report_for_page

    report = tmp_path / "report.md"
    report.write_text("# run\n\n![plot](plot-1.png)\n\n| id | prediction |\n| --- | --- |\n"
                      "| <img src=http://203.0.113.9/x.png> | ![a](http://203.0.113.9/y.png) **ok** |\n", encoding="utf-8")
    shown = _report_for_page(str(report))
    assert "<img" not in shown and "![" not in shown and "plot-1.png" not in shown
    assert "&lt;img" in shown and "**ok**" in shown and "| --- | --- |" in shown  # the text and the table stay


def test_a_run_never_writes_through_a_link_in_its_folder(tmp_path):
    """Issue 37, finding 18: a results.json symlink in a run folder was written through."""
    from eval.runfolder import RunError, check_output, write_file

    target = tmp_path / "precious.txt"
    target.write_text("keep")
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").symlink_to(target)
    with pytest.raises(RunError, match="results.json is a symbolic link"):
        check_output(out)
    write_file(out / "results.json", "{}")  # and the writer itself replaces a link, whole
    assert target.read_text() == "keep" and (out / "results.json").read_text() == "{}"
    assert not (out / "results.json").is_symlink() and [p.name for p in out.iterdir()] == ["results.json"]


@pytest.mark.parametrize("content", ["{oops", "[1]", None])
def test_eval_compare_of_a_broken_run_is_one_line_and_exit_2(content, tmp_path):
    """Issue 37, finding 19: a broken results.json for `eval compare` was a traceback."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        if content is not None:
            (d / "results.json").write_text(content)
    r = subprocess.run([sys.executable, "-m", "eval", "compare", str(a), str(b)], capture_output=True, text=True,
                       timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "results.json" in lines[0], r.stderr


def test_the_cli_reads_a_bounded_amount_of_text(tmp_path):
    """Issue 37, finding 19: `--file /dev/zero` was read without end."""
    r = subprocess.run([sys.executable, "-m", "llmdemo", "generate", "--file", "/dev/zero", "--model",
                        "no-such-model-anywhere"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: cannot read /dev/zero: longer than 1,000,000 characters"


def test_a_visitors_requests_are_owned_by_their_address(tiny_lm, monkeypatch):
    """The engine shares its rows between clients (scheduler.OWNER): every request a handler submits carries
    the visitor's address, on each step of a streaming handler, and nothing once it has returned."""
    from llmdemo.engine.scheduler import OWNER

    class Visitor:
        def __init__(self, host):
            self.client = type("Client", (), {"host": host})()
            self.headers, self.cookies, self.session_hash = {}, {}, f"s-{host}"

    owners = []
    real = tiny_lm.scheduler.submit
    monkeypatch.setattr(tiny_lm.scheduler, "submit", lambda req: (owners.append(req.owner), real(req))[1])
    h = Handlers(ModelHost(tiny_lm), AppSettings(max_input_chars=1000, max_new_tokens=64))
    for host in ("10.0.0.7", "10.0.0.8"):
        list(h.generate("Once upon a time", max_new_tokens=4, request=Visitor(host)))
    assert owners == ["10.0.0.7", "10.0.0.8"] and OWNER.get() is None


def test_evaluation_runs_queued_are_capped_for_all_clients_together():
    """A cap on queued Evaluation runs: they run one at a time, so many addresses each queuing one (each
    within its own per-client cap) would hold the tab for hours. Past ``eval_runs`` a new one is refused at
    once, in the visitor's language; other events are not affected."""
    import asyncio
    from types import SimpleNamespace as NS

    from webui.clients import cap_queue_per_client

    class Queue:
        def __init__(self):
            self.blocks = NS(fns={0: NS(concurrency_id="eval"), 1: NS(concurrency_id="default")})
            self.event_queue_per_concurrency_id = {"eval": NS(queue=[]), "default": NS(queue=[])}
            self.active_jobs = []

        async def push(self, body, request, username=None):
            fn = self.blocks.fns[body.fn_index]
            self.event_queue_per_concurrency_id[fn.concurrency_id].queue.append(
                NS(concurrency_id=fn.concurrency_id, request=request, alive=True))
            return True, None, None

    q = Queue()
    cap_queue_per_client(q, limit=8, streams=None, per_group={"eval": 2})

    def join(fn_index, address, lang="en"):
        request = NS(client=NS(host=address), headers={"accept-language": lang}, cookies={})
        return asyncio.run(q.push(body=NS(fn_index=fn_index), request=request))

    assert join(0, "10.0.0.1")[0] and join(0, "10.0.0.2")[0]
    refused = join(0, "10.0.0.3")
    assert refused[0] is False and refused[2] == "queue_full" and "2 evaluation runs" in refused[1]
    assert "个评测在排队或运行" in join(0, "10.0.0.4", "zh-CN,zh")[1]
    assert join(1, "10.0.0.3")[0]  # a generation from the refused address still goes in
    q.event_queue_per_concurrency_id["eval"].queue.pop()  # one run ends: room for the next
    assert join(0, "10.0.0.3")[0]
