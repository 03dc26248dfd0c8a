"""The adaptive concurrency controller (llmdemo/backends/concurrency.py) by itself, on a fake clock."""

import email.utils
import threading

import pytest

from llmdemo.backends.concurrency import Concurrency, parse_retry_after


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def saturate(c: Concurrency, n: int) -> None:
    """``n`` clean successes, each completed with the limit reached (``limit`` slots held)."""
    for _ in range(n):
        slots = [c.acquire() for _ in range(c.limit)]
        slots[0].success()
        for s in slots:
            s.release()


def test_cut_once_per_episode_within_the_cooldown():
    clock = Clock()
    c = Concurrency(clock=clock)
    assert (c.limit, c.mode) == (20, "adaptive")
    for _ in range(5):  # a burst of 429s: one episode, one cut
        c.overloaded()
    assert (c.limit, c.episodes, c.rate_limited) == (16, 1, 5)
    clock.t += 14.9
    c.overloaded()
    assert (c.limit, c.episodes) == (16, 1)
    clock.t += 0.2  # the cool-down is over: a new episode
    c.overloaded()
    assert (c.limit, c.episodes, c.rate_limited) == (13, 2, 7)  # x0.8, rounded
    assert c.min_seen == 13


def test_a_429_to_a_request_sent_before_the_cut_is_the_same_episode():
    clock = Clock()
    c = Concurrency(clock=clock, cooldown_s=0)
    old = [c.acquire() for _ in range(20)]  # all sent at limit 20
    old[0].overloaded()
    assert c.limit == 16
    for s in old[1:]:
        s.overloaded()  # the same burst, answered later: says nothing about 16
    assert (c.limit, c.episodes, c.rate_limited) == (16, 1, 20)
    for s in old:
        s.release()
    new = c.acquire()
    new.overloaded()  # sent after the cut and still refused: a new episode
    new.release()
    assert (c.limit, c.episodes) == (13, 2)


def test_transient_errors_never_shrink_and_bounds_hold():
    clock = Clock()
    c = Concurrency(start=3, minimum=2, maximum=4, cooldown_s=0, clock=clock)
    # a 500, 502, 504 or a dropped connection is never reported to the controller: the limit stays
    assert c.limit == 3 and c.info()["episodes"] == 0
    for _ in range(10):
        s = c.acquire()
        s.overloaded()
        s.release()
    assert c.limit == 2 == c.min_seen  # never below the minimum
    saturate(c, 100)
    assert c.limit == 4  # never above the maximum
    assert Concurrency(start=1, clock=clock).limit == 1
    c1 = Concurrency(start=1, cooldown_s=0, clock=clock)
    c1.overloaded()
    assert c1.limit == 1  # the default minimum is 1
    assert Concurrency(start=500, maximum=100).limit == 100
    with pytest.raises(ValueError):
        Concurrency(minimum=0)


def test_growth_only_when_saturated_and_consecutive():
    clock = Clock()
    c = Concurrency(start=4, clock=clock)
    for _ in range(50):  # one request at a time: the workload, not the limit, holds it back
        with c.slot() as s:
            s.success()
    assert c.limit == 4
    saturate(c, 3)
    assert c.limit == 4
    saturate(c, 1)  # the 4th success in a row at the limit
    assert c.limit == 5
    saturate(c, 4)
    s = c.acquire()
    s.overloaded()  # a 429 breaks the run (and cuts: no cool-down yet)
    s.release()
    assert c.limit == 4
    clock.t += 20
    saturate(c, 3)
    with c.slot() as s:
        s.success(clean=False)  # succeeded after a retry: neutral
    assert c.limit == 4
    saturate(c, 1)
    assert c.limit == 5


def test_no_growth_within_the_cooldown_after_a_cut():
    clock = Clock()
    c = Concurrency(start=10, clock=clock)
    c.overloaded()
    assert c.limit == 8
    saturate(c, 50)
    assert c.limit == 8
    clock.t += 15
    saturate(c, 8)
    assert c.limit == 9


def test_fixed_never_changes_but_honours_retry_after():
    clock = Clock()
    c = Concurrency.of(4)
    c._clock = clock
    assert (c.mode, c.limit, c.minimum, c.maximum) == ("fixed", 4, 4, 4)
    for _ in range(3):
        assert c.overloaded(2.5) == 2.5
        clock.t += 100
    saturate(c, 100)
    assert c.limit == 4 and c.rate_limited == 3
    assert c.overloaded(3600) == 60.0  # capped
    assert c.overloaded(None) is None  # no header: the caller backs off as it would
    info = c.info()
    assert info["mode"] == "fixed" and info["limit"] == info["start"] == info["lowest"] == 4


def test_of_parses_the_constructor_argument():
    auto = Concurrency.of("auto", 100)
    assert (auto.mode, auto.start, auto.minimum, auto.maximum) == ("adaptive", 20, 1, 100)
    small = Concurrency.of("auto", 8)
    assert (small.limit, small.maximum) == (8, 8)
    assert Concurrency.of("6").mode == "fixed" and Concurrency.of("6").limit == 6
    assert Concurrency.of(auto) is auto
    for bad in ("fast", 0, None):
        with pytest.raises(ValueError):
            Concurrency.of(bad)


def test_info_keys():
    c = Concurrency(clock=Clock())
    with c.slot():
        pass
    c.overloaded()
    assert c.info() == {"mode": "adaptive", "start": 20, "min": 1, "max": 100, "limit": 16, "peak": 1,
                        "lowest": 16, "episodes": 1, "rate_limited": 1}


def test_retry_after_as_seconds_and_as_an_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0  # past: at once
    for bad in (None, "", "soon", "nan", "Wed, 99 Foo 2015 07:28:00 GMT"):
        assert parse_retry_after(bad) is None


def test_acquire_blocks_at_the_limit_and_a_growth_lets_one_in():
    c = Concurrency(start=2, maximum=3, clock=Clock())
    held = [c.acquire(), c.acquire()]
    got = []
    t = threading.Thread(target=lambda: got.append(c.acquire()))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # waits: 2 in flight at limit 2
    held[0].success()
    held[1].success()  # two saturated successes: limit 3, the waiter goes
    t.join(10)
    assert not t.is_alive() and got and c.in_flight == 3 and c.peak == 3
    stop = threading.Event()
    t2 = threading.Thread(target=lambda: got.append(c.acquire(stop.is_set)))
    t2.start()
    stop.set()
    t2.join(10)
    assert not t2.is_alive() and got[-1] is None  # stopped while waiting: no slot
    for s in [*held, got[0]]:
        s.release()
        s.release()  # a slot releases once
    assert c.in_flight == 0
    with pytest.raises(RuntimeError):
        c.release()


def test_retry_after_lengthens_the_episode_but_later_429s_do_not_put_the_next_cut_off():
    clock = Clock()
    c = Concurrency(clock=clock)
    assert c.overloaded(30.0) == 30.0
    assert (c.limit, c.episodes) == (16, 1)
    clock.t += 20  # past the 15 s cool-down, not past the 30 s the server asked for: the same episode
    assert c.overloaded(30.0) == 30.0
    assert (c.limit, c.episodes) == (16, 1)
    clock.t += 10.5  # 30.5 s after the cut: the 429 at 20 s did not move the episode's end
    c.overloaded(30.0)
    assert (c.limit, c.episodes, c.rate_limited) == (13, 2, 3)
