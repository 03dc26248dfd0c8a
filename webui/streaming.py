"""Which visitor's output is streaming where, so that Stop stops it at the model, at once.

Gradio's ``cancels=`` ends an event's generator from outside: the update already on its way to the
page can land after Stop's "stopped" and bring back "generating…", and the request leaves the model
only when the generator is next resumed (text went on arriving 1-3 s after Stop under load). Here Stop
sets the request's own stop event: the scheduler drops its row before the next step, the handler's
loop ends by itself, and its last update, sent after every earlier one on the same stream, says
"stopped". Stop then waits (briefly) for that end, so nothing from the run can follow its own answer.
"""

from __future__ import annotations

import functools
import html
import inspect
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

HEARTBEAT_S = 0.5  # how often a waiting handler yields (Gradio can only close a generator between yields)


@dataclass
class _Run:
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    # what the run's status line says once it is stopped (set by its handler): Stop shows it itself, since
    # a run whose step outlasts Stop's wait (an evaluation's batch of prompts) is cancelled before it can
    stopped_text: Callable[[], str] | None = None


class LiveRuns:
    """The runs in progress, one per (visitor session, tab)."""

    def __init__(self):
        self._runs: dict[tuple[str, str], list[_Run]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def run(self, session: str | None, tab: str):
        """Register a run while its handler streams; yields the stop event to hand to the model."""
        run = _Run()
        key = (session or "", tab)
        with self._lock:  # a list: an API client may run several at once in one session
            self._runs.setdefault(key, []).append(run)
        try:
            yield run.stop
        finally:
            run.ended.set()
            with self._lock:
                runs = self._runs.get(key, [])
                if run in runs:
                    runs.remove(run)
                if not runs:
                    self._runs.pop(key, None)

    def stop_event(self, session: str | None, tab: str) -> threading.Event | None:
        """The stop event of the page's run now in ``tab`` (None for an API call: no Stop button to press)."""
        with self._lock:
            runs = self._runs.get((session or "", tab))
            return runs[-1].stop if runs else None

    def when_stopped(self, session: str | None, tab: str, text: Callable[[], str]) -> None:
        """Say what the page's run now in ``tab`` shows once stopped (``text()`` is called at Stop)."""
        with self._lock:
            runs = self._runs.get((session or "", tab))
            if runs:
                runs[-1].stopped_text = text

    def stop(self, session: str | None, tab: str, wait_s: float = 2.0) -> str | None:
        """Stop the visitor's runs in ``tab``; wait until their handlers have sent their last update.

        Returns the stopped run's :meth:`when_stopped` text, if it gave one (else None: none was found, as
        it had ended or is still queued, which Gradio's own cancel removes, or it gave no text)."""
        with self._lock:
            runs = list(self._runs.get((session or "", tab), []))
        for run in runs:
            run.stop.set()
        for run in runs:
            run.ended.wait(wait_s)
        texts = [run.stopped_text() for run in runs if run.stopped_text is not None]
        return texts[-1] if texts else None

    def running(self) -> int:
        with self._lock:
            return sum(len(r) for r in self._runs.values())


# ------------------------------------------------------------------ a UI event from start to idle

def _buttons(running: bool) -> tuple:
    """(Go, Stop): while a run is going Stop replaces Go, and the other way round after."""
    return gr.update(visible=not running), gr.update(visible=running)


def page_run(fn, n_outputs: int, live: LiveRuns, tab: str, error_title=lambda request: "Error", on_error=None):
    """The page's event for a streaming handler: ``fn``'s outputs, then its tab's Go and Stop buttons.

    The first update swaps Go for Stop; the last swaps them back, whether the run finished, was stopped
    or failed: a failure is a message (a toast) and the outputs keep what they had, so no control is
    left in the wrong state and no red "Error" badge stays over an output (a raised ``gr.Error``
    marks every output and ends the event chain before its later steps). The API's endpoints call
    the handler itself, which raises, so a client gets the error as an error.

    The run is registered in ``live`` from its first update to its last, so the tab's Stop finds it
    (and waits for that last update) whenever it is pressed. ``on_error(**arguments)`` (the handler's
    arguments by name) may give the outputs' values after a failure (e.g. the chat as it was before a
    failed edit).
    """
    skip = (gr.skip(),) * n_outputs

    # updated=(): a bound method's __dict__ is its function's, whose __signature__ (a handler taking a
    # Decoding, webui/controls.py) still has `self`; copied here it would shift Gradio's arguments by one
    @functools.wraps(fn, updated=())
    def run(*args, **kwargs):
        named = inspect.signature(fn).bind_partial(*args, **kwargs).arguments  # Gradio passes some by position
        request = named.get("request")
        with live.run(getattr(request, "session_hash", None), tab):
            yield *skip, *_buttons(True)
            after = skip
            try:
                for out in fn(*args, **kwargs):
                    yield *out, gr.skip(), gr.skip()
            except gr.Error as e:
                # a toast's message is HTML: the visitor's own words in it are shown, never rendered
                gr.Warning(html.escape(str(e.message)), title=error_title(request))
                if on_error is not None:
                    after = tuple(on_error(**named))
            yield *after, *_buttons(False)

    # Gradio names an event after its function: the API's endpoint keeps the handler's own name
    run.__name__ = f"page_{fn.__name__}"
    return run
