"""The scheduler that owns the model: batching changes no output, Stop stops decoding, visitors go first.

Stop and cancel tests count forward passes in the scheduler's own loop (``step_hook`` runs before
every prompt chunk and decode step, whatever forward is in use) and slow them down, so a version
that went on decoding after a cancel would fail them.
"""

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from llmdemo.config import GenerationConfig
from llmdemo.engine.scheduler import BATCH, INTERACTIVE
from llmdemo.load import load

# eight requests with different settings and seeds (greedy, sampled, penalties, top-k/top-p)
SETTINGS = [
    GenerationConfig(temperature=0, max_new_tokens=24, stop=()),
    GenerationConfig(temperature=1.0, top_p=0.9, top_k=0, max_new_tokens=30, seed=1, stop=()),
    GenerationConfig(temperature=0.7, top_k=20, max_new_tokens=18, seed=2, stop=()),
    GenerationConfig(temperature=0, repetition_penalty=1.3, max_new_tokens=26, stop=()),
    GenerationConfig(temperature=1.2, top_p=0.8, repetition_penalty=1.1, max_new_tokens=22, seed=3, stop=()),
    GenerationConfig(temperature=0.9, top_k=5, max_new_tokens=28, seed=4, stop=()),
    GenerationConfig(temperature=0, max_new_tokens=12, stop=()),
    GenerationConfig(temperature=1.0, max_new_tokens=32, seed=5, stop=()),
]
PROMPTS = ["The weather is", "Once upon a time there was a small", "Hello", "The city council voted to build a new",
           [{"role": "user", "content": "Hello, who are you?"}], "the cat sat on the mat", "a b c d e", "Le temps"]


@pytest.fixture
def lm32(tiny_lm):
    """The tiny model with the lean forward in float32 and a slowed, counted loop."""
    tiny_lm.set_decode("float32")
    log = []

    def hook(kind, rows):
        log.append((kind, rows))
        time.sleep(0.002)  # long enough for requests from other threads to join the batch

    tiny_lm.scheduler.step_hook = hook
    tiny_lm.log = log
    yield tiny_lm
    tiny_lm.scheduler.step_hook = None
    tiny_lm.set_decode("auto")


def test_eight_interleaved_requests_equal_eight_sequential(lm32):
    alone = [lm32.generate(p, c) for p, c in zip(PROMPTS, SETTINGS)]
    assert len(set(alone)) == len(alone)
    lm32.log.clear()
    with ThreadPoolExecutor(8) as ex:
        together = list(ex.map(lambda pc: lm32.generate(*pc), zip(PROMPTS, SETTINGS)))
    assert together == alone
    assert max(rows for kind, rows in lm32.log if kind == "decode") >= 4  # they really shared steps


def test_a_cancelled_request_leaves_the_batch_and_the_others_unchanged(lm32):
    cfgs = [c.replace(max_new_tokens=40) for c in SETTINGS[:4]]
    alone = [lm32.generate(p, c) for p, c in zip(PROMPTS[:4], cfgs)]
    streams = [lm32.stream(p, c) for p, c in zip(PROMPTS[:4], cfgs)]
    victim = iter(streams[1])
    next(victim)  # submitted and producing
    with ThreadPoolExecutor(3) as ex:
        futs = [ex.submit(s.text) for i, s in enumerate(streams) if i != 1]
        time.sleep(0.05)
        streams[1].close()
        req = streams[1].request
        steps = req.steps
        others = [f.result() for f in futs]
    time.sleep(0.05)
    assert req.finish_reason == "stopped" and streams[1].stats.finish_reason != "length"
    assert req.steps <= steps + 1  # at most the step already under way
    assert len(req.tokens) < 40
    assert others == [alone[0], alone[2], alone[3]]


def test_closing_a_stream_stops_the_decoding_steps(lm32):
    """Stop/disconnect close the stream: the forward passes stop, not just the delivery of text."""
    lm32.scheduler.step_hook = lambda kind, rows: time.sleep(0.01)
    s = lm32.stream("Hello", GenerationConfig(temperature=1.0, max_new_tokens=200, seed=1, stop=()))
    it = iter(s)
    for _ in range(3):
        next(it)
    s.close()
    time.sleep(0.05)
    n = lm32.scheduler.steps
    time.sleep(0.5)  # 50 more steps would have run by now
    assert lm32.scheduler.steps == n
    assert s.request.finish_reason == "stopped" and len(s.request.tokens) < 20


def test_stop_event_ends_a_request_that_nobody_reads(lm32):
    ev = threading.Event()
    req = lm32.submit(lm32.encode("Hello"), GenerationConfig(temperature=0, max_new_tokens=200, stop=()),
                      budget=200, seed=0, stop_event=ev)
    while len(req.tokens) < 3:
        req.wait(len(req.tokens), 5)
    ev.set()
    assert req.wait(10**6, 5) and req.finish_reason == "stopped"
    assert len(req.tokens) < 200


def test_interactive_request_waits_one_step_plus_its_prefill_behind_batch_work(lm32):
    """A visitor's request while an evaluation runs: its first token comes after at most the step under
    way and its own prompt chunk, whatever the evaluation's size (counted in forward passes, not seconds)."""
    cfg = GenerationConfig(temperature=0, max_new_tokens=60, stop=())
    stop = threading.Event()
    prompts = [f"the cat sat on the mat number {i}" for i in range(24)]
    bg = threading.Thread(target=lm32.generate_batch, args=(prompts, cfg),
                          kwargs=dict(batch_size=8, stop_event=stop), daemon=True)
    bg.start()
    try:
        while sum(1 for k, r in lm32.log if k == "decode" and r >= 8) < 5:  # the batch is full and decoding
            time.sleep(0.01)
        s = lm32.stream("Hello", GenerationConfig(temperature=0, max_new_tokens=4, stop=()))
        s.text()
        req = s.request
        assert req.first_token_step - req.submitted_step <= 2  # the step under way + its one prompt chunk
        assert req.priority == INTERACTIVE
    finally:
        stop.set()
        bg.join(30)
    assert not bg.is_alive()


def test_batch_calls_wait_while_visitors_are_served(lm32):
    """Scoring windows of an evaluation (batch calls) do not run ahead of a visitor's steps."""
    text = "the cat sat on the mat and looked at the bird in the tree " * 20
    stop = threading.Event()

    def score_forever():
        while not stop.is_set():
            lm32.token_logprobs(text, max_length=64, stride=32, batch_size=1, priority="batch")

    bg = threading.Thread(target=score_forever, daemon=True)
    bg.start()
    try:
        while sum(1 for k, _ in lm32.log if k == "call") < 3:
            time.sleep(0.01)
        lm32.log.clear()
        s = lm32.stream("Hello", GenerationConfig(temperature=0, max_new_tokens=20, stop=()))
        s.text()
        # calls made while the visitor decoded: only the one under way, and patience-bound ones (2 s)
        kinds = [k for k, _ in lm32.log]
        assert kinds.count("decode") >= 10
        assert kinds[: kinds.index("prefill")].count("call") <= 1
    finally:
        stop.set()
        bg.join(30)


def test_refill_keeps_the_batch_full(lm32):
    """generate_batch with refill: a finished row's place goes to the next prompt at once."""
    cfg = GenerationConfig(temperature=0, max_new_tokens=30, stop=())
    prompts = [f"the cat number {i}" for i in range(10)]
    caps = [3 if i % 2 else 30 for i in range(10)]
    single = [lm32.generate(p, cfg.replace(max_new_tokens=c)) for p, c in zip(prompts, caps)]
    lm32.log.clear()
    assert lm32.generate_batch(prompts, cfg, batch_size=4, max_new_tokens=caps) == single
    log = lm32.log
    first_full = log.index(("decode", 4))
    last_refill = max(i for i, (k, _) in enumerate(log) if "prefill" in k)  # a step that read a prompt
    steady = [r for k, r in log[first_full:last_refill] if k == "decode"]
    # while prompts remain, a finished row's place is taken at once (a step at most in between);
    # with static batches the short rows' places would stay empty for ~27 steps
    assert len(steady) > 20 and min(steady) >= 3 and steady.count(4) >= 0.8 * len(steady)


def test_batch_priority_requests_never_take_a_visitors_place(tiny_lm):
    sched = tiny_lm.scheduler
    old = sched.max_running
    sched.max_running = 2
    try:
        cfg = GenerationConfig(temperature=0, max_new_tokens=40, stop=())
        ev = threading.Event()
        reqs = [tiny_lm.submit(tiny_lm.encode(f"the cat {i}"), cfg, budget=40, seed=0, priority=BATCH,
                               stop_event=ev) for i in range(4)]
        time.sleep(0.05)
        assert sched.stats()["running"] <= 2  # batch work stays within max_running
        s = tiny_lm.stream("Hello", cfg.replace(max_new_tokens=3))
        s.text()
        assert s.request.first_token_step - s.request.submitted_step <= 2  # admitted beyond the cap at once
        ev.set()
        for r in reqs:
            r.wait(10**6, 10)
    finally:
        sched.max_running = old


def test_queue_limit_refuses_with_a_clear_message(tiny_lm):
    from llmdemo.engine.scheduler import SchedulerBusy

    sched = tiny_lm.scheduler
    old = sched.max_running, sched.max_waiting
    sched.max_running, sched.max_waiting = 1, 2
    ev = threading.Event()
    try:
        cfg = GenerationConfig(temperature=0, max_new_tokens=200, stop=())
        ids = tiny_lm.encode("Hello")
        held = [tiny_lm.submit(ids, cfg, budget=200, seed=0, stop_event=ev)]
        held[0].wait(0, 10)  # running: it holds the one place
        held += [tiny_lm.submit(ids, cfg, budget=200, seed=0, stop_event=ev) for _ in range(2)]  # waiting
        with pytest.raises(SchedulerBusy, match="busy"):
            tiny_lm.submit(ids, cfg, budget=200, seed=0, stop_event=ev)
    finally:
        ev.set()
        sched.max_running, sched.max_waiting = old
    for r in held:
        assert r.wait(10**6, 10) and r.finish_reason == "stopped"


def test_transformers_forward_interleaves_requests_with_the_same_outputs(tiny_lm):
    tiny_lm.set_decode("transformers")
    try:
        alone = [tiny_lm.generate(p, c) for p, c in zip(PROMPTS, SETTINGS)]
        with ThreadPoolExecutor(8) as ex:
            assert list(ex.map(lambda pc: tiny_lm.generate(*pc), zip(PROMPTS, SETTINGS))) == alone
    finally:
        tiny_lm.set_decode("auto")


def test_float16_batched_agrees_closely(tiny_lm):
    assert tiny_lm.decode_mode == "float16"
    greedy = [c for c in SETTINGS if c.greedy]
    prompts = PROMPTS[: len(greedy)]
    alone = [tiny_lm.generate(p, c) for p, c in zip(prompts, greedy)]
    with ThreadPoolExecutor(len(greedy)) as ex:
        together = list(ex.map(lambda pc: tiny_lm.generate(*pc), zip(prompts, greedy)))
    assert sum(a == b for a, b in zip(alone, together)) >= len(alone) - 1


def test_loglikelihood_against_hand_computation(tiny_lm):
    """log p(continuation | context) from a plain forward pass, with a context and without one."""
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    cont = " sat on the mat"
    cont_ids = tok(cont, add_special_tokens=False)["input_ids"]

    def by_hand(ctx_ids):
        ids = torch.tensor([ctx_ids + cont_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # (T, V)
        n = len(ctx_ids)
        return math.fsum(float(logp[n + j - 1, t]) for j, t in enumerate(cont_ids))

    for context in ("the cat", "Once upon a time there was a small dog and"):
        ll, n = tiny_lm.loglikelihood(context, cont)
        assert n == len(cont_ids)
        assert ll == pytest.approx(by_hand(tiny_lm.encode(context)), abs=1e-4)
    a, _ = tiny_lm.loglikelihood("the cat", cont)
    b, _ = tiny_lm.loglikelihood("Once upon a time there was a small dog and", cont)
    assert abs(a - b) > 1e-3  # the context is used
    # no context: the text scored from the prefix token (BOS), as loglikelihood_rolling scores it
    ll, n = tiny_lm.loglikelihood("", cont)
    assert n == len(cont_ids) and ll == pytest.approx(by_hand([tiny_lm.prefix_token()]), abs=1e-4)
    ll, n = tiny_lm.loglikelihood_rolling("the cat sat on the mat")
    assert ll == pytest.approx(_rolling_by_hand(tiny_lm, "the cat sat on the mat"), abs=1e-4)


def _rolling_by_hand(lm, text):
    ids = [lm.prefix_token()] + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return math.fsum(float(logp[i - 1, ids[i]]) for i in range(1, len(ids)))


def test_closing_the_model_ends_its_requests_with_a_message(tiny_model_dir):

    lm = load(str(tiny_model_dir))
    ev = threading.Event()
    lm.scheduler.step_hook = lambda kind, rows: time.sleep(0.01)
    req = lm.submit(lm.encode("Hello"), GenerationConfig(temperature=0, max_new_tokens=200, stop=()),
                    budget=200, seed=0, stop_event=ev)
    req.wait(0, 10)
    lm.close("the model was replaced")
    # ended by the close, with its reason: not run on to its 200 tokens (~2 s at 10 ms a step) or its end
    assert req.done and req.finish_reason == "error" and "replaced" in str(req.error), (req.finish_reason, req.error)
    assert len(req.tokens) < 200
    with pytest.raises(RuntimeError, match="unloaded"):
        lm.submit(lm.encode("Hello"), GenerationConfig(), budget=1, seed=0)


def test_one_failing_row_fails_alone(lm32, monkeypatch):
    """A request whose sampling breaks (say NaN logits) ends with its error; the others in its batch go on."""
    from llmdemo.engine import sampler as sampling

    real = sampling.Sampler.__call__

    def flaky(self, logits, seen):
        if self.seed == 666:
            raise RuntimeError("probability tensor contains nan")
        return real(self, logits, seen)

    monkeypatch.setattr(sampling.Sampler, "__call__", flaky)
    cfg = GenerationConfig(temperature=1.0, max_new_tokens=20, stop=())
    alone = lm32.generate("Hello", cfg.replace(seed=1))
    with ThreadPoolExecutor(2) as ex:
        bad = ex.submit(lambda: lm32.generate("the cat", cfg.replace(seed=666)))
        good = ex.submit(lambda: lm32.generate("Hello", cfg.replace(seed=1)))
        assert good.result(30) == alone
        with pytest.raises(RuntimeError, match="nan"):
            bad.result(30)


def test_an_empty_prompt_in_a_batch_is_refused_up_front(tiny_lm):
    with pytest.raises(ValueError, match="empty prompt \\(number 1 of 2\\)"):
        tiny_lm.generate_batch(["Hello", []], GenerationConfig(temperature=0, max_new_tokens=4))


def test_a_dropped_stream_cancels_its_request_at_once(lm32):
    import gc

    gc.disable()  # no cyclic collection: only reference counting may end it
    try:
        s = lm32.stream("Hello", GenerationConfig(temperature=1.0, max_new_tokens=200, seed=1, stop=()))
        it = iter(s)
        next(it)
        req = s.request
        del it, s
        deadline = time.time() + 5
        while not req.done and time.time() < deadline:
            req.wait(10**6, 0.05)
        assert req.finish_reason == "stopped" and len(req.tokens) < 200
    finally:
        gc.enable()


# ------------------------------------------------------------------ admission and reading order (issue 37)
class _RoomRunner:
    """A runner with a fixed room, as llama.cpp's (cells of one context), reading prompts and decode rows
    in one call of at most ``n_batch`` prompt tokens; it records which sequences each call read."""

    def __init__(self, cells: int, n_batch: int = 64, vocab: int = 8):
        self.cells, self.n_batch, self.vocab = cells, n_batch, vocab
        self.held: dict[int, int] = {}
        self.calls: list[dict[int, int]] = []  # per call: prompt length -> tokens read
        self.gate = threading.Event()
        self.gate.set()

    def can_start(self, n_prompt: int, budget: int) -> bool:
        return n_prompt + budget <= self.cells - sum(self.held.values())

    def start(self, seq) -> None:
        self.held[id(seq)] = len(seq.prompt) + seq.budget

    def step(self, prefills, decodes):
        self.gate.wait(30)
        self.calls.append({len(seq.prompt): n for seq, n in prefills})
        out = []
        for seq, n in prefills:
            seq.filled += n
            out.append(torch.zeros(1, self.vocab) if seq.prefilled else None)
        return out, torch.zeros(len(decodes), self.vocab)

    def finish(self, seq, keep_prefix: bool) -> None:
        self.held.pop(id(seq), None)


@pytest.fixture
def room_lm():
    from types import SimpleNamespace

    from llmdemo.engine.scheduler import Scheduler

    lm = SimpleNamespace(name="room", device="cpu", suppress_ids=[], eos_ids=set(), decode=lambda ids: "",
                         runner=_RoomRunner(cells=1000))
    lm.scheduler = Scheduler(lm, max_running=16)
    yield lm
    lm.scheduler.close()


def _request(n_prompt: int, budget: int):
    from llmdemo.engine.scheduler import Request

    return Request(list(range(1, n_prompt + 1)), GenerationConfig(temperature=0, max_new_tokens=budget, stop=()),
                   budget=budget, seed=0)


def test_a_short_prompt_is_read_before_longer_ones_sent_earlier(room_lm):
    sched, runner = room_lm.scheduler, room_lm.runner
    runner.gate.clear()  # hold the loop while the three arrive
    longs = [sched.submit(_request(300, 1)), sched.submit(_request(301, 1))]
    short = sched.submit(_request(5, 1))
    runner.gate.set()
    assert short.wait(0, 30) and all(r.wait(0, 30) for r in longs)
    first_with_short = next(i for i, c in enumerate(runner.calls) if 5 in c)
    assert first_with_short <= 1, runner.calls  # the call under way, then its own (oldest first: call 9)
    assert runner.calls[first_with_short] == {5: 5}  # read whole, in a light step without the long prompts
    assert len(runner.calls[first_with_short + 1]) >= 1 and 5 not in runner.calls[first_with_short + 1]


def test_a_small_request_that_fits_passes_a_large_one_that_does_not_for_a_while(room_lm):
    sched = room_lm.scheduler
    sched.step_hook = lambda kind, rows: time.sleep(0.005)  # the held request decodes for seconds

    def steps_pass(n: int) -> None:
        target = sched.steps + n
        deadline = time.monotonic() + 30
        while sched.steps < target and time.monotonic() < deadline:
            time.sleep(0.005)

    held = sched.submit(_request(10, 590))  # 600 of the 1000 cells, for 590 steps
    steps_pass(2)
    large = sched.submit(_request(10, 490))  # 500 cells: does not fit beside it
    small = sched.submit(_request(5, 3))  # 8 cells: fits
    try:
        assert small.wait(2, 30) and small.done, "the small request waited behind the large one"
        assert large.started_at is None and not held.done
        # once the first in line has waited hold_s, nothing passes it any more
        sched.hold_s = 0.0
        later = sched.submit(_request(5, 3))
        steps_pass(20)
        assert later.started_at is None and not held.done
        held.cancel()  # room for the large one: it goes first, then the one behind it
        assert later.wait(2, 30) and later.done and large.started_at is not None
        assert large.started_at <= later.started_at
    finally:
        for r in (held, large, small):
            r.cancel()


def test_a_scoring_call_carries_a_bounded_number_of_tokens(tiny_lm, monkeypatch):
    """Issue 37, finding 3: eight 1,024-token windows in one call held every visitor's stream for tens of
    seconds; a call now carries at most SCORE_TOKENS_PER_CALL tokens (one window at least), same numbers."""
    import llmdemo.engine.scoring as scoring

    text = "the cat sat on the mat and the dog sat on the log " * 12
    _, whole = tiny_lm.token_logprobs(text, max_length=32, stride=16, batch_size=8)
    sizes = []
    score = tiny_lm._score_batch
    monkeypatch.setattr(tiny_lm, "_score_batch", lambda chunk: sizes.append(sum(len(i) for i, _ in chunk)) or score(chunk))
    monkeypatch.setattr(scoring, "SCORE_TOKENS_PER_CALL", 40)
    _, bounded = tiny_lm.token_logprobs(text, max_length=32, stride=16, batch_size=8)
    assert len(sizes) > 1 and max(sizes) <= 40, sizes
    torch.testing.assert_close(torch.tensor(bounded), torch.tensor(whole), atol=1e-5, rtol=1e-5)


def test_a_new_client_is_admitted_before_a_client_holding_rows(lm32):
    """Issue 37, finding 5: one client streaming many generations held every row while others waited. Among
    waiting requests of one priority, the one whose owner holds the fewest rows goes first."""
    from llmdemo.engine.scheduler import OWNER

    sched = lm32.scheduler
    old_max = sched.max_running
    cfg = GenerationConfig(temperature=0, max_new_tokens=60, stop=())
    ids = lm32.encode("Once upon a time")
    gate = threading.Event()  # nothing steps until every request is queued
    sched.step_hook = lambda kind, rows: (gate.wait(10), time.sleep(0.002))
    try:
        sched.max_running = 2
        token = OWNER.set("client-a")
        try:
            a_short = lm32.submit(ids, cfg, budget=3, seed=0)  # frees its row first
            a_long = lm32.submit(ids, cfg, budget=60, seed=0)
            a_third = lm32.submit(ids, cfg, budget=60, seed=0)  # waits: client a holds both rows
        finally:
            OWNER.reset(token)
        token = OWNER.set("client-b")
        try:
            b = lm32.submit(ids, cfg, budget=3, seed=0)  # arrives after a_third
        finally:
            OWNER.reset(token)
        gate.set()
        assert b.wait(0, 30) and a_third.wait(0, 30)
        for r in (a_short, a_long, a_third, b):
            r.wait(10**6, 60)
        assert a_short.owner == "client-a" and b.owner == "client-b"
        # b passed a_third (before: arrival order, a_third first)
        assert b.first_token_step < a_third.first_token_step, (b.first_token_step, a_third.first_token_step)
    finally:
        sched.max_running = old_max
        gate.set()


def test_a_client_holding_rows_leaves_the_last_row_to_a_newcomer(lm32):
    """One client's many generations once took every row, and a newcomer waited for one of them to end.
    Client a sends two long requests to two rows, then b asks: a kept the last row for b."""
    _newcomer_before_the_holders_second(lm32, rows=2, n_ctx=None, a=(60, 60), b=3)


def _newcomer_before_the_holders_second(lm32, rows, n_ctx, a, b):
    """Client a submits two requests (budgets ``a``), the first starts; then client b submits one (``b``).
    b must start before a's second. With ``n_ctx``, the runner's room is that many cells (a fake count)."""
    from llmdemo.engine.scheduler import OWNER

    sched, runner = lm32.scheduler, lm32.runner
    cfg = GenerationConfig(temperature=0, max_new_tokens=60, stop=())
    ids = lm32.encode("Once upon a time")
    gate = threading.Event()  # nothing steps until a's two requests are queued
    sched.step_hook = lambda kind, rows: (gate.wait(10), time.sleep(0.002))
    old_rows = sched.max_running
    used = {}
    try:
        sched.max_running = rows
        if n_ctx is not None:
            start, finish = runner.start, runner.finish

            def counted(seq):
                used[id(seq)] = seq.budget
                start(seq)

            def released(seq, keep_prefix):
                used.pop(id(seq), None)
                finish(seq, keep_prefix)

            runner.n_ctx = n_ctx
            runner.can_start = lambda n, budget: sum(used.values()) + budget <= n_ctx
            runner.start, runner.finish = counted, released
        token = OWNER.set("client-a")
        try:
            a1, a2 = (lm32.submit(ids, cfg, budget=n, seed=0) for n in a)
        finally:
            OWNER.reset(token)
        gate.set()
        assert a1.wait(1, 30)  # a1 has two tokens: a2 had its chance to start
        token = OWNER.set("client-b")
        try:
            rb = lm32.submit(ids, cfg, budget=b, seed=0)
        finally:
            OWNER.reset(token)
        assert rb.wait(0, 30) and a2.wait(0, 60)
        # before: a2 started at once beside a1, and b waited for one of them to end
        assert rb.first_token_step < a2.first_token_step, (rb.first_token_step, a2.first_token_step)
    finally:
        sched.max_running = old_rows
        for name in ("can_start", "start", "finish", "n_ctx"):
            runner.__dict__.pop(name, None)
        gate.set()


def test_a_client_holding_rows_leaves_a_rows_share_of_cells_to_a_newcomer(lm32):
    """A client may hold every row's cells (long budgets) without holding every row. A fake room of 100
    cells, 3 rows: a's second request (30) beside its first (60) would leave 10 cells, under a row's share
    (100 / 3 = 33), so it waits and b's (20) starts."""
    _newcomer_before_the_holders_second(lm32, rows=3, n_ctx=100, a=(60, 30), b=20)
