"""The four named endpoints through gradio_client, on the tiny test model."""

import time

import pytest
from gradio_client import Client

SETTINGS = dict(max_new_tokens=16, temperature=0, top_p=0.9, top_k=0, repetition_penalty=1.0, seed=1)


@pytest.fixture(scope="module")
def client(tiny_app):
    return Client(tiny_app[1], verbose=False)


def test_named_endpoints_exist(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/translate", "/chat", "/summarize"} <= names


def test_the_endpoints_take_the_decoding_settings_by_their_names(client):
    """The handlers take the six decoding settings as one value (webui/controls.py Decoding); callers of the API
    still see, and may pass by name, the six parameters."""
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]

    def names(endpoint):
        return [p["parameter_name"] for p in api[endpoint]["parameters"]]
    six = list(SETTINGS)
    assert names("/generate") == ["prompt", *six]
    assert names("/summarize") == ["document", "length", *six]
    assert names("/chat") == ["message", "history", "system", *six]
    assert names("/translate")[:9] == ["text", "source", "target", *six]
    by_name = client.predict(prompt="The weather is", **SETTINGS, api_name="/generate")
    assert by_name[0] == client.predict("The weather is", *SETTINGS.values(), api_name="/generate")[0]


def test_generate_streams_and_finishes(client):
    job = client.submit("The weather is", *SETTINGS.values(), api_name="/generate")
    result = job.result(timeout=60)
    outs = job.outputs()
    assert result[0] and "tokens" in result[1]
    assert len(outs) >= 2 and outs[-1][0].startswith(outs[0][0])  # streamed: partial results came first


def _in_process(tiny_app, method: str, *args):
    """The handler's own last update, called in this process: what the endpoint must have returned."""
    from webui.handlers import Handlers
    from webui.settings import AppSettings

    last = None
    for last in getattr(Handlers(tiny_app[0], AppSettings()), method)(*args):
        pass
    return last


def test_translate(client, tiny_app):
    args = ("The weather is nice today.", "en", "zh", *SETTINGS.values())
    text, stats = client.predict(*args, api_name="/translate")
    assert (text, "tokens" in stats) == (_in_process(tiny_app, "translate", *args)[0], True)  # greedy: the same


def test_summarize(client, tiny_app):
    args = ("The city council voted to build a bridge. " * 3, "short", *SETTINGS.values())
    text, stats = client.predict(*args, api_name="/summarize")
    assert (text, "compression" in stats) == (_in_process(tiny_app, "summarize", *args)[0], True)


def test_chat_keeps_history(client):
    hist, box, stats = client.predict("Hello, who are you?", [], "Be brief.", *SETTINGS.values(), api_name="/chat")
    assert [m["role"] for m in hist] == ["user", "assistant"] and box == ""
    hist2, _, _ = client.predict("And then?", hist, "Be brief.", *SETTINGS.values(), api_name="/chat")
    # Gradio 6 returns content as a list of text blocks
    assert len(hist2) == 4 and hist2[0]["content"][0]["text"] == "Hello, who are you?"


def test_bad_input_gets_message_and_server_survives(client, capfd):
    with pytest.raises(Exception, match="less than minimum value 0"):  # Gradio's slider bound check
        client.predict("hi", 16, -1, 0.9, 0, 1.0, 1, api_name="/generate")
    capfd.readouterr()  # Gradio prints a traceback for its own check; the app's refusals below print none
    with pytest.raises(Exception, match="seed must be in"):
        client.predict("hi", 16, 0.5, 0.9, 0, 1.0, -4, api_name="/generate")
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", *SETTINGS.values(), api_name="/generate")
    # a refusal is the visitor's answer, not a traceback in the server's log (a client could fill the log)
    assert "Traceback" not in capfd.readouterr().err
    assert client.predict("Hello", *SETTINGS.values(), api_name="/generate")[0]


def test_cancel_stops_generation(tiny_app):
    host, url = tiny_app
    sched = host.lm.scheduler
    # slow every forward of the scheduler's loop (whatever forward is in use) and count them
    sched.step_hook = lambda kind, rows: time.sleep(0.05)
    try:
        c = Client(url, verbose=False)
        job = c.submit("Hello", 200, 1.0, 1.0, 0, 1.0, 3, api_name="/generate")
        deadline = time.time() + 30
        while len(job.outputs()) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert len(job.outputs()) >= 3
        job.cancel()
        time.sleep(0.5)
        n = sched.steps
        time.sleep(1.0)  # 20 more steps would have run
        assert sched.steps - n == 0, "the model kept decoding after the cancel"
    finally:
        sched.step_hook = None


@pytest.mark.parametrize("text,ok", [
    ("x" * 1_000_000, False),                      # a 1 MB paste: refused with a message
    ("nul\x00 and \x07bell and \u202eRTL\u200f", True),
    ("<script>alert(1)</script> ![x](http://example.invalid/t.png)", True),
])
def test_hostile_text_through_the_api(client, text, ok):
    if ok:
        out, stats = client.predict(text, *SETTINGS.values(), api_name="/generate")
        assert isinstance(out, str) and "tokens" in stats
    else:
        with pytest.raises(Exception, match="at most 20,000"):
            client.predict(text, *SETTINGS.values(), api_name="/generate")
    assert client.predict("Hello", *SETTINGS.values(), api_name="/generate")[0]  # still serving


def test_chat_html_is_not_markup(client):
    hist, _, _ = client.predict("<img src=x onerror=alert(1)> ![t](http://example.invalid/a.png)", [], "",
                                *SETTINGS.values(), api_name="/chat")
    user = hist[0]["content"][0]["text"]
    assert "![t](" not in user and "[image: t](http://example.invalid/a.png)" in user


def test_lone_surrogate_in_raw_json(tiny_app, client):
    """A client can send a lone surrogate as a JSON escape (gradio_client cannot encode it)."""
    import json

    import httpx

    url = tiny_app[1]
    body = json.dumps({"data": ["lone \ud800 surrogate", *SETTINGS.values()]}, ensure_ascii=True)
    r = httpx.post(f"{url}gradio_api/call/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200
    event_id = r.json()["event_id"]
    stream = httpx.get(f"{url}gradio_api/call/generate/{event_id}", timeout=60).text
    assert "event: complete" in stream and "tokens" in stream
    assert client.predict("Hello", *SETTINGS.values(), api_name="/generate")[0]


@pytest.mark.parametrize("index,value,msg", [
    (1, 1e9, "greater than maximum"),        # temperature
    (2, 2, "greater than maximum"),          # top_p
    (0, 10**9, "greater than maximum"),      # max_new_tokens
    (1, "hot", "temperature|float|number"),  # a string where a number belongs
    (5, -1, "seed must be in"),
])
def test_out_of_range_settings_sent_to_the_api(client, index, value, msg):
    settings = list(SETTINGS.values())
    settings[index] = value
    with pytest.raises(Exception, match=msg):
        client.predict("Hello", *settings, api_name="/generate")
    assert client.predict("Hello", *SETTINGS.values(), api_name="/generate")[0]


def test_client_disconnect_mid_stream_frees_the_worker(tiny_app):
    """A client that drops the connection mid-stream: generation stops, the next request is served."""

    import httpx

    host, url = tiny_app
    sched = host.lm.scheduler
    sched.step_hook = lambda kind, rows: time.sleep(0.05)  # every forward of the loop, slowed and counted
    try:
        body = {"data": ["Hello", 200, 1.0, 1.0, 0, 1.0, 3]}
        event_id = httpx.post(f"{url}gradio_api/call/generate", json=body).json()["event_id"]
        start = sched.steps
        with httpx.stream("GET", f"{url}gradio_api/call/generate/{event_id}", timeout=60) as r:
            for i, _line in enumerate(r.iter_lines()):
                if sched.steps - start >= 5:
                    break  # leaving the block closes the connection
        time.sleep(1.0)
        n = sched.steps
        time.sleep(1.5)  # 30 more steps would have run
        stopped_after = sched.steps - start
        assert sched.steps - n == 0, "the model kept decoding after the client left"
        assert stopped_after < 100
    finally:
        sched.step_hook = None
    t = time.perf_counter()
    assert Client(url, verbose=False).predict("Hello", *SETTINGS.values(), api_name="/generate")[0]
    assert time.perf_counter() - t < 30  # the worker was free again
