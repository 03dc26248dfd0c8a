"""User errors as messages in the page's language; anything else as an internal error with an id.

Every handler is wrapped in :func:`friendly`: a visitor never sees a stack trace, and the server never
dies of a bad input. ``USER_ERRORS`` says which exceptions are the visitor's to fix (shown as they are);
any other exception is a bug or an outage, logged whole under a short id the visitor can report.
"""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
import traceback

import gradio as gr

from llmdemo.engine.request import OWNER
from llmdemo.errors import UserError

from .i18n import error_text, lang_of, text as msg

log = logging.getLogger("llmdemo.app")

# what the visitor can act on, all coded UserErrors (llmdemo/errors.py): their input or choice (settings,
# inputs, context, queue, models, contestants, votes), a server's answer (it names the server and what it
# said), an evaluation's data, run folder or task file. A ValueError or TypeError from anywhere else is a
# bug: logged with its traceback, shown by id.
USER_ERRORS = (UserError,)


def _as_gr_error(e: Exception, lang: str = "en") -> gr.Error:
    # print_exception=False: Gradio prints a traceback for every gr.Error otherwise, and a hostile client can
    # fill the log with refusals (a bug is logged below, once, with its traceback)
    if isinstance(e, USER_ERRORS):
        return gr.Error(error_text(e, lang), print_exception=False)
    # not the visitor's mistake: a bug or an outage, logged whole under an id they can report
    error_id = secrets.token_hex(4)
    log.error("unexpected error [%s]: %s", error_id, traceback.format_exc())
    return gr.Error(msg("internal_error", lang, kind=type(e).__name__, id=error_id), print_exception=False)


def in_lang(err: gr.Error, lang: str) -> gr.Error:
    """A handler's own ``gr.Error`` in the page's language (English: the error itself)."""
    if lang != "zh" or not isinstance(getattr(err, "message", None), str):
        return err
    return gr.Error(error_text(err.message, lang), duration=err.duration, visible=err.visible, title=err.title,
                    print_exception=getattr(err, "print_exception", True))


def _request_of(fn, args, kwargs):
    """The ``request`` argument of a call of ``fn`` (Gradio passes some by position), or None."""
    try:
        return inspect.signature(fn).bind_partial(*args, **kwargs).arguments.get("request")
    except TypeError:
        return kwargs.get("request")


def _request_lang(fn, args, kwargs) -> str:
    """The page's language for a call of ``fn`` (its ``request`` argument; English when it has none)."""
    return lang_of(_request_of(fn, args, kwargs))


def _request_owner(fn, args, kwargs) -> str | None:
    """The client a call of ``fn`` is for (its ``request``'s address, as the per-client caps count it)."""
    from .clients import owner_of

    return owner_of(_request_of(fn, args, kwargs))


def warn(message: str, lang: str = "en") -> None:
    """A notice (``gr.Warning``) in the page's language."""
    gr.Warning(error_text(message, lang, lead="注意："))


def friendly(fn):
    """Turn user errors into a clear message in the UI; never a stack trace, never a dead server.

    The message is in the page's language (the handler's ``request``), keeping the English detail."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            # the client owns the requests the handler submits (a fair share of the engine's rows): set
            # around each step, as Gradio may run each step of a generator on another thread
            owner = _request_owner(fn, args, kwargs)
            it = fn(*args, **kwargs)
            try:
                while True:
                    token = OWNER.set(owner)
                    try:
                        item = next(it)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        OWNER.reset(token)
                    yield item
            except gr.Error as e:
                said = in_lang(e, _request_lang(fn, args, kwargs))
                if said is e:
                    raise
                raise said from None
            except Exception as e:  # noqa: BLE001 - every error becomes a message
                raise _as_gr_error(e, _request_lang(fn, args, kwargs)) from None
            finally:
                it.close()  # the visitor left or pressed Stop: the handler's own clean-up runs now
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        token = OWNER.set(_request_owner(fn, args, kwargs))
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            said = in_lang(e, _request_lang(fn, args, kwargs))
            if said is e:
                raise
            raise said from None
        except Exception as e:  # noqa: BLE001
            raise _as_gr_error(e, _request_lang(fn, args, kwargs)) from None
        finally:
            OWNER.reset(token)
    return plain
