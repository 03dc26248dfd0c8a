"""The openai backend against a small OpenAI-protocol server of our own (tests/openai_server.py) that
answers from the in-process tiny model: same outputs, same perplexity, faults handled."""

import json
import math
import threading
import time

import pytest

from llmdemo.config import GenerationConfig

from conftest import GREEDY, free_port
from openai_server import ServerThread, make_app



@pytest.fixture(scope="module")
def server(trained_tiny_lm):
    srv = ServerThread(make_app(trained_tiny_lm, "tiny"), free_port())
    yield srv
    srv.stop()


def reset_gate(server) -> None:
    st = server.app.state
    st.max_concurrent, st.retry_after, st.rejected, st.rejected_at, st.peak_in_flight, st.served_at = (
        None, None, 0, [], 0, [])


@pytest.fixture
def remote(server):
    from llmdemo.backends.openai import OpenAILM

    server.app.state.fail_next, server.app.state.die_after, server.app.state.logprobs_fault = [], None, None
    server.app.state.fail_after, server.app.state.abort_next, server.app.state.empty = None, 0, False
    server.app.state.hostile, server.app.state.seen_auth = None, []
    server.app.state.llama_server, server.app.state.slot_log, server.app.state.bias_fault = None, [], False
    reset_gate(server)
    lm = OpenAILM("tiny", base_url=server.url, api_key="sk-test-SECRET", retries=2)
    yield lm
    lm.close()


@pytest.fixture
def llama_server(remote, server):
    """The same server speaking llama.cpp's llama-server API (3 slots), through openai-base:."""
    from llmdemo.backends.openai import OpenAILM

    server.app.state.llama_server = 3
    lm = OpenAILM("tiny", base_url=server.url, chat=False)
    yield lm
    lm.close()
    server.app.state.llama_server = None


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


# ------------------------------------------------------------------ adaptive concurrency (backends/concurrency.py)
def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_batch_against_a_server_taking_3_at_once_shrinks_the_limit_and_loses_nothing(server, trained_tiny_lm):
    """From 20 in flight, a server that takes 3 at once (429 to a 4th): every example completes and the
    limit ends near 3. The model is held until the first 429, so the overload is certain on any machine."""
    from llmdemo.backends.concurrency import Concurrency
    from llmdemo.backends.openai import OpenAILM

    reset_gate(server)
    st = server.app.state
    st.max_concurrent = 3
    # no cool-down: this batch lasts seconds, not the minutes five 15 s episodes take; retries enough for the
    # first requests, which meet a limit of 20
    ctl = Concurrency(cooldown_s=0)
    lm = OpenAILM("tiny", base_url=server.url, concurrency=ctl, retries=8)
    sched = trained_tiny_lm.scheduler
    sched.step_hook = lambda kind, rows: wait_for(lambda: st.rejected > 0, "the first 429")
    cfg = GREEDY.replace(max_new_tokens=4)
    prompts = [f"the cat number {i}" for i in range(40)]
    errors = []
    try:
        out = lm.generate_batch(prompts, cfg, on_error=lambda i, e: errors.append((i, e)))
    finally:
        sched.step_hook = None
        st.max_concurrent = None
        lm.close()
    assert errors == []
    assert out == [trained_tiny_lm.generate([{"role": "user", "content": p}], cfg) for p in prompts]
    info = lm.info()["concurrency"]
    assert info["mode"] == "adaptive" and info["start"] == 20 and info["max"] == 100
    assert st.peak_in_flight <= 3 < st.rejected  # the server's rule held, and it was hit
    assert info["rate_limited"] == st.rejected  # every 429 the server sent was heard
    # it came down from 20 (x0.8 an episode: 16, 13, 10, 8, 6, 5, 4) to about the server's 3; how far depends on
    # how many requests were at the server at once before the batch ended (a loaded CI machine stopped at 5)
    assert info["episodes"] >= 1 and info["lowest"] <= 5, info
    assert 1 <= info["limit"] <= 5, info  # ...and stayed about there
    assert lm.concurrency == info["limit"] and lm.max_concurrency == 100


@pytest.mark.parametrize("retry_after", ["1", "http-date"])
def test_retry_after_is_waited_before_the_request_is_sent_again(server, trained_tiny_lm, retry_after):
    """A server taking 1 at once, busy with a stream, answers a second request 429 with Retry-After (1 s, or
    an HTTP date 2 s ahead, so at least 1 s): the server sees that request again no sooner."""
    import email.utils

    from llmdemo.backends.openai import OpenAILM

    reset_gate(server)
    st = server.app.state
    st.max_concurrent = 1
    st.retry_after = "1" if retry_after == "1" else (lambda: email.utils.formatdate(time.time() + 2, usegmt=True))
    lm = OpenAILM("tiny", base_url=server.url, concurrency=4, retries=5)
    sched = trained_tiny_lm.scheduler
    sched.step_hook = lambda kind, rows: wait_for(lambda: st.rejected > 0, "the 429")  # the first stream waits
    first = threading.Thread(target=lambda: lm.generate("the cat", GREEDY))
    try:
        first.start()
        wait_for(lambda: st.in_flight == 1, "the first stream to be served")
        assert lm.generate("the dog", GREEDY)  # refused once, then served
        first.join(60)
    finally:
        sched.step_hook = None
        st.max_concurrent = st.retry_after = None
        lm.close()
    assert st.rejected >= 1 and len(st.served_at) == 2  # (refused again only if the first outlived the wait)
    assert st.served_at[1] - st.rejected_at[0] >= 1.0  # the server's own clock: Retry-After was waited
    info = lm.info()["concurrency"]
    assert (info["mode"], info["limit"], info["episodes"]) == ("fixed", 4, 1)
    assert info["rate_limited"] == st.rejected


def test_overload_shrinks_the_limit_and_transient_errors_do_not(remote, server):
    body = {"model": "tiny", "prompt": "the cat", "max_tokens": 2, "temperature": 0.0}
    server.app.state.fail_next = [500, 504]  # infrastructure noise: retried, never a cut
    assert remote._request("POST", "/completions", json=body)["choices"]
    assert (remote.concurrency, remote.controller.episodes, remote.controller.rate_limited) == (20, 0, 0)
    remote.encode = lambda prompt: [1, 2, 3]  # no /tokenize request: the next request is the stream's
    server.app.state.fail_next = [502]
    from llmdemo.backends.openai import ServerError

    with pytest.raises(ServerError, match="answered 502"):  # a stream is not asked again after a 502, as before
        remote.generate("the cat", GREEDY)
    assert remote.concurrency == 20
    server.app.state.fail_next = [503, 429]  # a full server: one episode, one cut
    assert remote._request("POST", "/completions", json=body)["choices"]
    assert (remote.concurrency, remote.controller.episodes, remote.controller.rate_limited) == (16, 1, 2)
    server.app.state.fail_next = [429]  # a stream is asked again after a 429
    assert remote.generate("the cat", GREEDY)
    assert remote.controller.rate_limited == 3 and remote.controller.in_flight == 0
    assert remote.info()["concurrency"]["limit"] == 16


def test_a_stream_holds_a_slot_for_its_life_and_a_stopped_one_waiting_for_room_sends_nothing(server):
    from llmdemo.backends.openai import OpenAILM

    reset_gate(server)
    lm = OpenAILM("tiny", base_url=server.url, concurrency=1)
    try:
        s = lm.stream("the cat", GREEDY)
        it = iter(s)
        next(it)
        assert lm.controller.in_flight == 1 and lm.concurrency == 1  # held while the stream is open...
        s.close()
        assert lm.controller.in_flight == 0  # ...and given back when it closes
        held = lm.controller.acquire()  # the one slot taken: the next stream waits for room
        ev = threading.Event()
        ev.set()  # the visitor left
        before = len(server.app.state.served_at)
        waiting = lm.stream("the cat", GREEDY, ev)
        assert waiting.text() == "" and waiting.stats.finish_reason == "stopped"
        assert len(server.app.state.served_at) == before  # no request was sent
        held.release()
        assert lm.generate("the cat", GREEDY) and lm.controller.in_flight == 0
    finally:
        lm.close()


PAIRS = [("the cat sat on", " the mat"), ("the cat sat on", " a dog"), ("我掏空了口袋 所以", " 我找到了一张票根。"),
         ("", "the cat"), ("Q: Who is there?\nA:", " Unknown")]


def test_llama_server_log_likelihoods_equal_in_process(llama_server, trained_tiny_lm, server):
    """No prompt log-probabilities: each continuation token forced with logit_bias and read from n_probs, a
    token whose text is not whole UTF-8 read from the top list; the same numbers as in process."""
    from llmdemo.backends.llamaserver import METHOD

    info = llama_server.info()
    assert info["server"] == "llama-server, 3 slots" and info["logprobs"] == METHOD
    assert info["tokenizer"] == "llama-server" and llama_server.concurrency == 3  # its slots, fixed
    assert llama_server.encode("the cat 我") == trained_tiny_lm.encode("the cat 我")
    got = llama_server.loglikelihood_batch(PAIRS)
    want = trained_tiny_lm.loglikelihood_batch(PAIRS)
    assert [n for _, n in got] == [n for _, n in want]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], abs=1e-3)
    assert llama_server._scorer.ranked > 0  # the Chinese pair has tokens that are not whole UTF-8 alone
    # each forced token's prompt extends the one before it on the same slot (whose cache holds it): a pair of
    # n tokens is n - 1 such extensions, wherever its slot's other work went
    log = server.app.state.slot_log
    assert {s for s, _, _ in log} <= {0, 1, 2}
    by_slot: dict = {}
    for s_, prompt, _ in log:
        by_slot.setdefault(s_, []).append(prompt)
    extended = sum(cur[:-1] == prev for seq in by_slot.values() for prev, cur in zip(seq, seq[1:]))
    assert extended >= sum(n for _, n in want) - len(PAIRS)
    text = "the cat sat on the mat. the dog sat on the cat. " * 3
    ids, lps = llama_server.token_logprobs(text, max_length=24, stride=12)
    ids2, lps2 = trained_tiny_lm.token_logprobs(text, max_length=24, stride=12)
    assert ids == ids2 and lps == pytest.approx(lps2, abs=1e-3)


def test_a_multiple_choice_task_over_llama_server_picks_as_in_process(llama_server, trained_tiny_lm, tmp_path):
    from eval.runner import RunSpec, run

    spec = dict(task="xcopa_zh", data=None, limit=4)
    a = run(RunSpec(output=str(tmp_path / "srv"), **spec), llama_server)
    b = run(RunSpec(output=str(tmp_path / "inp"), **spec), trained_tiny_lm)
    assert a["metrics"]["acc"] == b["metrics"]["acc"]
    assert a["model"]["logprobs"].startswith("llama-server") and a["batching"]["server"] == "llama-server, 3 slots"
    rows = [[json.loads(line) for line in open(tmp_path / n / "predictions.jsonl", encoding="utf-8")]
            for n in ("srv", "inp")]
    assert [r["pick"] for r in rows[0]] == [r["pick"] for r in rows[1]]
    for r, q in zip(*rows):
        assert r["loglikelihoods"] == pytest.approx(q["loglikelihoods"], abs=1e-3)


def test_a_llama_server_reporting_after_its_bias_is_refused(llama_server, server):
    from llmdemo.backends.openai import LogprobsUnreliable

    server.app.state.bias_fault = True
    with pytest.raises(LogprobsUnreliable, match="after its logit_bias"):
        llama_server.loglikelihood("the cat sat on", " the mat")
