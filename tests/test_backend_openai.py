"""The openai backend against a small OpenAI-protocol server of our own (tests/openai_server.py) that
answers from the in-process tiny model: same outputs, same perplexity, faults handled."""

import math
import threading
import time

import pytest

from llmdemo.config import GenerationConfig

from conftest import free_port
from openai_server import ServerThread, make_app

GREEDY = GenerationConfig(temperature=0, max_new_tokens=20, stop=())


@pytest.fixture(scope="module")
def server(trained_tiny_lm):
    srv = ServerThread(make_app(trained_tiny_lm, "tiny"), free_port())
    yield srv
    srv.stop()


@pytest.fixture
def remote(server):
    from llmdemo.backends.openai import OpenAILM

    server.app.state.fail_next, server.app.state.die_after, server.app.state.logprobs_fault = [], None, None
    server.app.state.fail_after, server.app.state.abort_next, server.app.state.empty = None, 0, False
    server.app.state.hostile, server.app.state.seen_auth = None, []
    lm = OpenAILM("tiny", base_url=server.url, api_key="sk-test-SECRET", retries=2)
    yield lm
    lm.close()


def test_chat_and_completions_equal_in_process(remote, trained_tiny_lm, server):
    from llmdemo.backends.openai import OpenAILM

    msgs = [{"role": "user", "content": "the cat sat on"}]
    s = remote.stream(msgs, GREEDY)
    chunks = list(s)
    assert len(chunks) > 1 and "".join(chunks) == trained_tiny_lm.generate(msgs, GREEDY)  # streamed, same text
    assert s.stats.new_tokens > 1 and s.stats.finish_reason in ("eos", "length")
    base = OpenAILM("tiny", base_url=server.url, chat=False)
    assert base.generate("the cat sat on", GREEDY) == trained_tiny_lm.generate("the cat sat on", GREEDY)
    assert remote.encode(msgs) == trained_tiny_lm.encode(msgs)  # the server's /tokenize applies the template


def test_generate_batch_sends_concurrently_and_keeps_order(remote, trained_tiny_lm):
    prompts = [f"the cat number {i}" for i in range(6)]
    done = {}
    out = remote.generate_batch(prompts, GREEDY, batch_size=3, on_done=lambda i, t: done.setdefault(i, t))
    assert out == [trained_tiny_lm.generate([{"role": "user", "content": p}], GREEDY) for p in prompts]
    assert done == dict(enumerate(out))


def test_perplexity_through_the_server_equals_in_process(remote, trained_tiny_lm):
    text = "The weather is nice today. Once upon a time there was a small model that liked to talk. " * 6
    for max_length, stride in ((64, 32), (256, 128), (48, 48)):
        ids_r, lps_r = remote.token_logprobs(text, max_length, stride)
        ids_l, lps_l = trained_tiny_lm.token_logprobs(text, max_length, stride)
        assert ids_r == ids_l and len(lps_r) == len(lps_l) == len(ids_l)
        ppl_r, ppl_l = math.exp(-sum(lps_r) / len(lps_r)), math.exp(-sum(lps_l) / len(lps_l))
        assert abs(ppl_r - ppl_l) < 1e-4 * ppl_l
    ll_r, n_r = remote.loglikelihood([{"role": "user", "content": "Hello"}], " the cat")
    ll_l, n_l = trained_tiny_lm.loglikelihood([{"role": "user", "content": "Hello"}], " the cat")
    assert n_r == n_l and ll_r == pytest.approx(ll_l, abs=1e-4)


def test_a_server_with_shifted_logprobs_is_refused(server, trained_tiny_lm):
    """The consistency check catches a server that echoes log p(token_i | tokens up to i) (one position off)
    and one that echoes none; a correct server passes it (the perplexity test above)."""
    from llmdemo.backends.openai import LogprobsUnreliable, OpenAILM

    try:
        server.app.state.logprobs_fault = "shifted"
        with pytest.raises(LogprobsUnreliable, match="inconsistent prompt log-probabilities"):
            OpenAILM("tiny", base_url=server.url).token_logprobs("the cat sat on the mat")
        server.app.state.logprobs_fault = "none"
        with pytest.raises(LogprobsUnreliable, match="no prompt log-probabilities"):
            OpenAILM("tiny", base_url=server.url).loglikelihood("the cat", " sat")
    finally:
        server.app.state.logprobs_fault = None


def test_unreachable_server_is_a_clear_error():
    from llmdemo.backends.openai import OpenAILM, ServerError

    with pytest.raises(ServerError, match=r"could not reach the model server at http://127.0.0.1:\d+"):
        OpenAILM("tiny", base_url=f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(ValueError, match="--base-url"):
        OpenAILM("tiny", base_url="")


def test_retries_on_429_and_5xx_then_succeeds(remote, server):
    server.app.state.fail_next = [429, 503]
    assert remote.count_tokens("the cat") > 0
    server.app.state.fail_next = [500, 500, 500, 500]
    from llmdemo.backends.openai import ServerError

    with pytest.raises(ServerError, match="answered 500"):
        remote.count_tokens("the cat")  # bounded: 1 + 2 retries, then the error
    server.app.state.fail_next = []


def test_server_dying_mid_stream_is_an_error_and_others_go_on(remote, server):
    from llmdemo.backends.openai import ServerError

    server.app.state.die_after = 2
    with pytest.raises(ServerError, match="closed the stream before it ended"):
        remote.generate("the cat sat on", GREEDY)
    server.app.state.die_after = None
    assert remote.generate("the cat sat on", GREEDY)  # the next request is served


def test_the_key_is_never_shown(remote, caplog):
    info = str(remote.info())
    assert "SECRET" not in info and "sk-test" not in info
    try:
        remote.generate("x" * 10_000, GREEDY)
    except Exception as e:  # noqa: BLE001
        assert "SECRET" not in str(e)
    assert "SECRET" not in caplog.text


# ------------------------------------------------------------------ a hostile upstream (issue 37, findings 10-11)
def test_a_key_or_password_the_server_echoes_is_never_shown(server, caplog):
    from llmdemo.backends.openai import OpenAILM, ServerError

    host = server.url.removeprefix("http://")
    lm = OpenAILM("tiny", base_url=f"http://alice:pa%40ss-word@{host}", api_key="sk-live-0123456789abcdef", retries=0)
    try:
        assert "Basic " in (server.app.state.seen_auth[-1] or "")  # the URL's credentials went as Basic auth...
        shown = " ".join([lm.name, lm.base_url, lm.root_url, str(lm.info())])
        for secret in ("alice", "pa@ss", "pa%40ss", "sk-live"):
            assert secret not in shown  # ...and nowhere else
        server.app.state.hostile = "echo_key"  # a 401 whose body repeats the Authorization header
        with pytest.raises(ServerError, match="answered 401") as e:
            lm.generate("the cat", GREEDY)
        assert "[redacted]" in str(e.value)
        for secret in ("sk-live", "0123456789abcdef", "Bearer sk", "pa@ss"):
            assert secret not in str(e.value) and secret not in caplog.text
    finally:
        server.app.state.hostile = None
        lm.close()


def test_a_stream_that_ignores_max_tokens_is_cut_at_the_budget(remote, server):
    server.app.state.hostile = "endless"
    s = remote.stream("the cat", GREEDY.replace(max_new_tokens=7))
    assert "".join(s) == "a" * 7 and s.stats.new_tokens == 7 and s.stats.finish_reason == "length"


@pytest.mark.parametrize("mode, error", [("no_newline", "stream line over 1 MB"),
                                         ("bad_json", "not OpenAI's format"),
                                         ("slow", "took over 1.5 s for one completion")])
def test_a_hostile_stream_is_a_clear_error_with_bounded_memory_and_time(remote, server, mode, error):
    import tracemalloc

    from llmdemo.backends.openai import ServerError

    server.app.state.hostile, server.app.state.slow_s = mode, 0.3
    remote.request_budget_s = 1.5
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(ServerError, match=error):
            remote.generate("the cat", GREEDY.replace(max_new_tokens=1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak >> 20} MB held reading a hostile stream"  # the server offers 60 MB
    assert time.monotonic() - t0 < 30
    server.app.state.hostile = None
    assert remote.generate("the cat sat on", GREEDY)  # the next request is served


def test_a_huge_models_list_is_refused_not_read_whole(server):
    from llmdemo.backends.openai import OpenAILM, ServerError

    server.app.state.hostile = "huge_models"
    try:
        with pytest.raises(ServerError, match="over 8 MB; refused"):
            OpenAILM("tiny", base_url=server.url, retries=0)
    finally:
        server.app.state.hostile = None


def test_stop_event_closes_the_connection(remote, trained_tiny_lm):
    ev = threading.Event()
    sched = trained_tiny_lm.scheduler
    sched.step_hook = lambda kind, rows: time.sleep(0.02)
    try:
        s = remote.stream("the cat", GenerationConfig(temperature=1.0, max_new_tokens=200, seed=1, stop=()), ev)
        it = iter(s)
        next(it)
        ev.set()
        rest = list(it)
        assert len(rest) <= 1 and s.stats.finish_reason == "stopped"
        time.sleep(0.5)
        n = sched.steps
        time.sleep(0.5)
        assert sched.steps == n  # the server stopped decoding when the connection closed
    finally:
        sched.step_hook = None


def test_eval_whose_server_dies_resumes_with_nothing_lost_or_counted_twice(remote, server, benchmarks, tmp_path):
    import json

    from eval.runner import RunError, RunSpec, run
    from llmdemo.backends.openai import ServerError

    data = str(benchmarks / "translation_flores200_devtest_en-fr.jsonl")
    cfg = GenerationConfig(temperature=0, max_new_tokens=12, stop=())
    spec = lambda out: RunSpec(task="translation", data=data, output=str(out), limit=6, config=cfg)  # noqa: E731
    before = server.app.state.requests
    clean = run(spec(tmp_path / "clean"), remote)
    per_run = server.app.state.requests - before
    server.app.state.fail_after = server.app.state.requests + per_run - 3  # the server goes down near the end
    try:  # the examples in flight fail one by one: the run ends with them unscored, or stops (too many failed)
        broken = run(spec(tmp_path / "broken"), remote)
        assert broken["examples"]["failed"] > 0 and broken["n_examples"] < 6
    except (RunError, ServerError) as e:
        assert "answered 503" in str(e)
    rows = [json.loads(line) for line in open(tmp_path / "broken" / "predictions.jsonl")]
    assert 0 < len(rows) < 6
    server.app.state.fail_after = None  # back up: the same command resumes
    resumed = run(spec(tmp_path / "broken"), remote)
    rows = [json.loads(line) for line in open(tmp_path / "broken" / "predictions.jsonl")]
    assert sorted(r["id"] for r in rows) == sorted({r["id"] for r in rows}) and len(rows) == 6
    assert resumed["metrics"] == clean["metrics"]
    want = {r["id"]: r["prediction"] for r in map(json.loads, open(tmp_path / "clean" / "predictions.jsonl"))}
    assert {r["id"]: r["prediction"] for r in rows} == want


@pytest.mark.parametrize("cmd", [
    ["-m", "llmdemo", "generate", "--model", "openai:tiny", "hello"],
    ["-m", "eval", "run", "--task", "translation", "--model", "openai:tiny", "--limit", "1", "--output", "OUT",
     "--data", "DATA"],
])
def test_clis_exit_2_with_one_line_when_the_server_is_not_there(cmd, tmp_path, benchmarks):
    import subprocess
    import sys

    cmd = [c.replace("OUT", str(tmp_path / "o")).replace("DATA", str(benchmarks / "translation_flores200_devtest_en-fr.jsonl"))
           for c in cmd]
    url = f"http://127.0.0.1:{free_port()}"
    env = {**__import__("os").environ, "OPENAI_API_KEY": "sk-SECRET"}
    out = subprocess.run([sys.executable, *cmd, "--base-url", url], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "could not reach the model server" in lines[0] and "SECRET" not in out.stderr


def test_stop_strings_cut_the_servers_stream_as_in_process(remote, trained_tiny_lm):
    full = trained_tiny_lm.generate([{"role": "user", "content": "the cat"}], GREEDY.replace(max_new_tokens=30))
    assert len(full) > 8
    stop = full[4:7]
    cfg = GREEDY.replace(max_new_tokens=30, stop=(stop,))
    s = remote.stream([{"role": "user", "content": "the cat"}], cfg)
    text = s.text()
    assert text == trained_tiny_lm.generate([{"role": "user", "content": "the cat"}], cfg) and stop not in text
    assert full.startswith(text)


def test_a_lone_surrogate_in_a_prompt_reaches_the_server_without_a_traceback(remote):
    """Issue 37, finding 19: a lone surrogate (valid in a Python str, not in UTF-8) failed in the client."""
    out = remote.generate("the cat \ud800 sat on", GREEDY)
    assert isinstance(out, str)
