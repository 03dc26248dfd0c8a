"""A small OpenAI-protocol server over an in-process model, for tests: correct prompt log-probabilities.

Routes: ``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions`` (streaming or not; ``echo`` +
``logprobs`` over text or token ids), vLLM's ``/tokenize`` and ``/detokenize``. Faults for tests:
``fail_next`` (HTTP status codes answered to the next requests), ``die_after`` (chunks after which a
stream breaks off, or before its end when it has fewer), ``abort_next`` (streams ended with no text and no
finish reason, as llama-cpp-python's server ends a request another one interrupts), ``empty`` (streams the
model ends at once) and ``max_concurrent`` (a completion arriving while that many are being served is answered 429, with
``Retry-After: retry_after`` when set, as hosted endpoints limit requests at once).
"""

from __future__ import annotations

import json
import math
import threading
import time

from llmdemo.config import GenerationConfig


def make_app(lm, name: str = "tiny"):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI()
    app.state.fail_next = []  # status codes to answer the next requests with
    app.state.fail_after = None  # answer 503 to every request after this many (a server that went down)
    app.state.die_after = None  # break a stream off after this many chunks (or before its end, if fewer)
    app.state.requests = 0
    app.state.logprobs_fault = None  # "shifted": log p(token_i | tokens up to and including i); "none"
    app.state.abort_next = 0  # streams that end at once with no text and no finish reason, then [DONE]
    app.state.empty = False  # every stream ends at once with no text and finish_reason "stop" (the model's EOS)
    # a hostile upstream (issue 37): "endless" streams ignoring max_tokens, "no_newline" one line that never
    # ends, "slow" a chunk every `slow_s`, "bad_json" a chunk that is not JSON, "echo_key" a 401 whose body
    # echoes the Authorization header, "huge_models" a /v1/models body of 40 MB
    app.state.hostile = None
    app.state.slow_s = 1.0
    app.state.seen_auth = []  # the Authorization headers received
    # llama.cpp's llama-server (an int: its slots): /props, /tokenize {content, add_special, with_pieces},
    # /detokenize -> content, /completion with n_probs / logit_bias / id_slot, no prompt log-probabilities
    # with echo; as llama-server, no probability for a generated token whose text is not whole UTF-8 alone
    app.state.llama_server = None
    app.state.slot_log = []  # (id_slot, prompt ids, chosen token) of each /completion
    app.state.bias_fault = False  # report probabilities after the logit_bias (a server to refuse)
    # a server that takes so many completions at once (streams count until their last chunk): one more is
    # answered 429 with a JSON error, and `Retry-After: retry_after` (seconds or an HTTP date, or a callable
    # giving one at that moment) unless None
    app.state.max_concurrent = None
    app.state.retry_after = None
    app.state.rejected = 0  # completions answered 429 for being one too many
    app.state.rejected_at = []  # time.monotonic() of each
    app.state.in_flight = 0  # completions being served now
    app.state.peak_in_flight = 0
    app.state.served_at = []  # time.monotonic() at which each completion let in began

    # added before the fault middleware below, so it runs inside it: `requests` and `fail_next` see every request
    app.add_middleware(_Gate, state=app.state)

    @app.middleware("http")
    async def faults(request: Request, call_next):
        app.state.requests += 1
        auth = request.headers.get("authorization")
        app.state.seen_auth.append(auth)
        if app.state.hostile == "echo_key" and request.url.path.endswith("completions"):
            return JSONResponse({"error": f"invalid key: {auth}"}, status_code=401)
        if app.state.hostile == "huge_models" and request.url.path.endswith("/models"):
            async def body():
                yield b'{"data": [{"id": "' + b"x" * 1_000_000
                for _ in range(40):
                    yield b"x" * 1_000_000
                yield b'"}]}'
            return StreamingResponse(body(), media_type="application/json")
        if app.state.fail_after is not None and app.state.requests > app.state.fail_after:
            return JSONResponse({"error": "down"}, status_code=503)
        if app.state.fail_next:
            return JSONResponse({"error": "injected"}, status_code=app.state.fail_next.pop(0))
        return await call_next(request)

    @app.get("/v1/models")
    def models():
        return {"data": [{"id": name, "object": "model", "max_model_len": lm.context_length}]}

    def pieces(ids):  # llama-server gives a piece that is not whole UTF-8 as its bytes (a list), else text
        return [{"id": i, "piece": list(t.encode()) if "\ufffd" in t else t} for i, t in
                ((i, lm.decode([i])) for i in ids)]

    @app.get("/props")
    def props():
        if not app.state.llama_server:
            return JSONResponse({"error": "File Not Found"}, status_code=404)
        return {"total_slots": app.state.llama_server, "build_info": "fake",
                "bos_token": lm.tokenizer.convert_ids_to_tokens(lm.prefix_token()),
                "default_generation_settings": {"n_ctx": lm.context_length}}

    @app.post("/completion")
    def completion(body: dict):
        import torch

        if not app.state.llama_server:
            return JSONResponse({"error": "File Not Found"}, status_code=404)
        ids = [int(i) for i in body["prompt"]]
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        lp = torch.log_softmax(logits, -1)
        bias = torch.zeros_like(logits)
        for tok, b in body.get("logit_bias") or []:
            bias[int(tok)] += float(b)
        chosen = int(torch.argmax(logits + bias))
        app.state.slot_log.append((body.get("id_slot"), tuple(ids), chosen))
        if app.state.bias_fault:
            lp = torch.log_softmax(logits + bias, -1)
        text = lm.decode([chosen])
        if "\ufffd" in text or chosen == lm.tokenizer.eos_token_id:  # as llama-server: no probabilities
            return {"content": text, "tokens": [], "stop": True}
        n = max(1, int(body.get("n_probs") or 0))
        top = torch.topk(lp, min(n, lp.numel()))
        entry = {"id": chosen, "token": text, "logprob": float(lp[chosen]),
                 "top_logprobs": [{"id": int(i), "token": lm.decode([int(i)]), "logprob": float(v)}
                                  for v, i in zip(top.values, top.indices)]}
        return {"content": text, "tokens": [], "stop": True, "completion_probabilities": [entry]}

    @app.post("/tokenize")
    def tokenize(body: dict):
        if app.state.llama_server and "content" in body:
            ids = lm.tokenizer(body["content"], add_special_tokens=False)["input_ids"]
            return {"tokens": pieces(ids) if body.get("with_pieces") else list(ids)}
        if app.state.llama_server:  # llama-server answers a vLLM-style body with no tokens at all
            return {"tokens": []}
        if "messages" in body:
            ids = lm.encode(body["messages"])
        else:
            ids = lm.tokenizer(body["prompt"], add_special_tokens=bool(body.get("add_special_tokens")))["input_ids"]
            if body.get("add_special_tokens") and not ids:
                ids = [lm.prefix_token()]
        return {"tokens": list(ids), "count": len(ids), "max_model_len": lm.context_length}

    @app.post("/detokenize")
    def detokenize(body: dict):
        if app.state.llama_server:
            return {"content": lm.decode(body["tokens"])}
        return {"prompt": lm.decode(body["tokens"])}

    def config(body) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=body.get("max_tokens") or 16, temperature=body.get("temperature", 1.0),
                                top_p=body.get("top_p", 1.0), top_k=max(0, body.get("top_k", 0)),
                                repetition_penalty=body.get("repetition_penalty", 1.0), seed=body.get("seed"),
                                stop=tuple(body.get("stop") or ()))

    def stream_response(prompt, body, chat: bool):
        # token probabilities as vLLM streams them: the chat API's logprobs.content, completions' parallel lists
        top = (body.get("top_logprobs") or 0 if body.get("logprobs") else 0) if chat else (body.get("logprobs") or 0)
        s = lm.stream(prompt, config(body).replace(logprobs=top))

        def logprobs(infos):
            if chat:
                return {"content": [{"token": i.text, "logprob": math.log(i.p_before), "top_logprobs": [
                    {"token": a.text, "logprob": math.log(a.p_before)} for a in i.alternatives]} for i in infos]}
            return {"tokens": [i.text for i in infos], "token_logprobs": [math.log(i.p_before) for i in infos],
                    "top_logprobs": [{a.text: math.log(a.p_before) for a in i.alternatives} for i in infos]}

        async def events():
            import asyncio

            hostile = app.state.hostile
            if hostile == "endless":  # ignores max_tokens: 20,000 chunks (the client must stop reading)
                for _ in range(20_000):
                    delta = {"delta": {"content": "a"}} if chat else {"text": "a"}
                    yield f"data: {json.dumps({'choices': [{'index': 0, **delta, 'finish_reason': None}]})}\n\n"
                    await asyncio.sleep(0)
                return
            if hostile == "no_newline":  # 60 MB of one line, if the client reads it all
                yield "data: "
                for _ in range(60):
                    yield "x" * 1_000_000
                    await asyncio.sleep(0)
                return
            if hostile == "slow":  # a chunk every slow_s, for ever (until the client leaves)
                while True:
                    delta = {"delta": {"content": "a"}} if chat else {"text": "a"}
                    yield f"data: {json.dumps({'choices': [{'index': 0, **delta, 'finish_reason': None}]})}\n\n"
                    await asyncio.sleep(app.state.slow_s)
            if hostile == "bad_json":
                yield "data: {\"choices\": [oops\n\n"
                return
            if app.state.abort_next > 0:  # as llama-cpp-python's server does to a request another one interrupts
                app.state.abort_next -= 1
                yield "data: [DONE]\n\n"
                return
            if app.state.empty:
                end = {"delta": {}} if chat else {"text": ""}
                yield f"data: {json.dumps({'choices': [{'index': 0, **end, 'finish_reason': 'stop'}]})}\n\n"
                yield "data: [DONE]\n\n"
                return
            it = iter(s)
            try:  # as vLLM does: a client that leaves aborts its request (the finally closes the stream)
                i = sent = 0
                while (piece := await asyncio.to_thread(next, it, None)) is not None:
                    if app.state.die_after is not None and i >= app.state.die_after:
                        return  # the connection ends without [DONE]: a server that died mid-stream
                    i += 1
                    delta = {"delta": {"content": piece}} if chat else {"text": piece}
                    if top:
                        delta["logprobs"] = logprobs(s.token_info[sent:])
                        sent = len(s.token_info)
                    yield f"data: {json.dumps({'choices': [{'index': 0, **delta, 'finish_reason': None}]})}\n\n"
                if app.state.die_after is not None:  # fewer chunks than that (a loaded machine sends the text in
                    return  # fewer, larger pieces): it still dies before its end, never sends [DONE]
                reason = "length" if s.stats.finish_reason == "length" else "stop"
                end = {"delta": {}} if chat else {"text": ""}
                yield f"data: {json.dumps({'choices': [{'index': 0, **end, 'finish_reason': reason}]})}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                s.close()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        if body.get("stream"):
            return stream_response(body["messages"], body, chat=True)
        text = lm.generate(body["messages"], config(body))
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    @app.post("/v1/completions")
    def completions(body: dict):
        prompt = body["prompt"]
        ids = lm.encode(prompt)
        if body.get("stream"):
            return stream_response(ids, body, chat=False)
        if body.get("logprobs") is not None:  # one greedy token with its log-probability, echo optional
            s = lm.stream(ids, GenerationConfig(temperature=0, max_new_tokens=1))
            s.text()
            g = s.request.tokens[:1]
            gen_lp = lm._score_windows([(ids + g, 1)], 1)[0] if g else []
            lps = [None] + lm._score_windows([(ids, len(ids) - 1)], 1)[0] if body.get("echo") else []
            if lps and app.state.logprobs_fault == "shifted":  # as llama-cpp-python's server (its issue #1983)
                lps = [lm._score_windows([(ids[: i + 1] + [ids[i]], 1)], 1)[0][0] for i in range(len(ids))]
            elif lps and (app.state.logprobs_fault == "none" or app.state.llama_server):  # as llama-server
                lps = [None] * len(ids)
            text = (lm.decode(ids) if body.get("echo") else "") + lm.decode(g)
            return {"choices": [{"index": 0, "text": text, "finish_reason": "length",
                                 "logprobs": {"token_logprobs": lps + gen_lp}}]}
        text = lm.generate(ids, config(body))
        return {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}

    return app


class _Gate:
    """ASGI middleware for ``max_concurrent``: counts completions in flight from their arrival to their last
    chunk (or until the app returns: a client that left), and answers 429 to one more than the limit.
    All of it runs on the server's event loop, one thing at a time: no lock."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("completions"):
            return await self.app(scope, receive, send)
        st = self.state
        if st.max_concurrent is not None and st.in_flight >= st.max_concurrent:
            from fastapi.responses import JSONResponse

            st.rejected += 1
            st.rejected_at.append(time.monotonic())
            after = st.retry_after() if callable(st.retry_after) else st.retry_after  # a callable: made now
            headers = {} if after is None else {"Retry-After": str(after)}
            body = {"error": {"message": f"too many requests at once: this server takes {st.max_concurrent}",
                              "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}}
            return await JSONResponse(body, status_code=429, headers=headers)(scope, receive, send)
        st.in_flight += 1
        st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
        st.served_at.append(time.monotonic())
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                st.in_flight -= 1

        async def counted_send(message):
            # ended before the last chunk goes (a stream's "[DONE]", or any body's final part): a client that
            # reads it and sends its next request at once must not find this one still counted
            if message["type"] == "http.response.body" and (
                    not message.get("more_body", False) or message.get("body", b"").endswith(b"data: [DONE]\n\n")):
                end()
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            end()


class ServerThread:
    """Serve ``app`` on 127.0.0.1:port in a thread; ``stop()`` ends it."""

    def __init__(self, app, port: int):
        import uvicorn

        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
