"""The app in Chromium for the browser tests: one server and one browser per test module (``serve``, which
each module's ``app`` fixture yields from), each test in a browser context of its own (size, theme, locale),
and the helpers that drive a page and wait on what it shows."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from types import SimpleNamespace

from conftest import ARTIFACTS, SIZES, chromium, launch


def serve(real_lm, benchmarks, tmp_path_factory):
    """The app on the bundled model (24 new tokens at most) and one Chromium: a module's ``app`` fixture
    yields from this."""
    from llmdemo.host import ModelHost
    from webui.settings import AppSettings

    host = ModelHost(real_lm)
    settings = AppSettings(max_new_tokens=24, data_dir=benchmarks, output_dir=tmp_path_factory.mktemp("runs"))
    demo, url = launch(host, settings)
    with chromium() as browser:
        yield SimpleNamespace(host=host, url=url, browser=browser)
    demo.close()


@contextlib.contextmanager
def page_in(app, size="desktop", dark=False, locale="en-US", open_tab: str | None = None):
    """A page of the app in a browser context of its own; ``open_tab``: the tab to open first."""
    ctx = app.browser.new_context(viewport=SIZES[size], locale=locale, color_scheme="dark" if dark else "light")
    pg = ctx.new_page()
    pg.goto(app.url + ("?__theme=dark" if dark else "?__theme=light"), wait_until="domcontentloaded")
    pg.locator("#tab-generation-button").wait_for(timeout=30_000)
    time.sleep(1.5)
    if open_tab:
        pg.locator(f"#tab-{open_tab}-button").click()
        time.sleep(0.5)
    try:
        yield pg
    finally:
        ctx.close()


@contextlib.contextmanager
def slow(lm, seconds: float):
    """Every forward pass of the model's scheduler takes at least ``seconds``: outputs stream for a while."""
    sched = lm.scheduler
    sched.step_hook = lambda kind, rows: time.sleep(seconds)
    try:
        yield
    finally:
        sched.step_hook = None


def wait_text(locator, pattern: str, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = locator.inner_text() if locator.count() else ""
        if re.search(pattern, text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared; last text: {text!r}")


def wait_value(locator, pred, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = locator.input_value()
        if pred(v):
            return v
        time.sleep(0.2)
    raise AssertionError(f"value never matched; last: {v!r}")


ENDED = r"ended: |stopped|结束|已停止"


def md(pg, sel: str):
    """A Markdown component's text itself (without Gradio's progress timer laid over it)."""
    return pg.locator(f"{sel} [data-testid=markdown]")


def run_and_wait(pg, button: str, stats: str, timeout: float = 120) -> str:
    """Click ``button`` and wait for a new stats line that says the output ended."""
    old = md(pg, stats).inner_text()
    pg.locator(button).click()
    deadline = time.time() + timeout
    text = old
    while time.time() < deadline:
        text = md(pg, stats).inner_text()
        if text != old and re.search(ENDED, text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"no new ending in {stats}; last: {text!r}")


def tab(pg, name: str):
    pg.locator(f"#tab-{name}-button").click()
    time.sleep(0.4)


def shot(pg, name: str, full_page: bool = True):
    pg.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=full_page)


def choose(pg, dropdown_id: str, option: str):
    """Pick an option of a Gradio dropdown by (part of) its label."""
    pg.locator(f"#{dropdown_id} input").click()
    time.sleep(0.3)
    pg.locator("[role=option]", has_text=option).first.click()
    time.sleep(0.5)


def wait_go_shown(pg, go: str, stop: str, timeout: float = 30) -> None:
    """Wait until ``go`` is shown and ``stop`` hidden (the run's last update swaps them back; under load it can
    arrive a moment after the status line that says the run ended)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pg.locator(go).is_visible() and not pg.locator(stop).is_visible():
            return
        time.sleep(0.1)
    raise AssertionError(f"{go} shown: {pg.locator(go).is_visible()}, {stop} shown: {pg.locator(stop).is_visible()}"
                         f" after {timeout} s")


@contextlib.contextmanager
def held(lm, after: int = 4, seconds: float = 0.15):
    """Each forward pass takes at least ``seconds``, and after ``after`` passes the model waits (60 s at most)
    until the test calls ``release()``: an output is surely still streaming while the test acts on it, on a
    machine of any speed or load. ``hold()`` arms it again for the next output."""
    gate, count = threading.Event(), [0]

    def hook(kind, rows):
        time.sleep(seconds)
        count[0] += 1
        if count[0] > after:
            gate.wait(60)

    def hold():
        count[0] = 0
        gate.clear()

    lm.scheduler.step_hook = hook
    try:
        yield SimpleNamespace(release=gate.set, hold=hold)
    finally:
        gate.set()
        lm.scheduler.step_hook = None
