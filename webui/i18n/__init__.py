"""The interface's words in English and Simplified Chinese, for Gradio's own i18n (``gr.I18n``).

Gradio picks the language from the browser (``navigator.language``: ``zh-CN`` -> Chinese, anything
else -> English) and translates static text in the page (labels, help texts, Markdown). The switch in
the header calls the same ``changeLocale`` as Gradio's Settings panel and remembers the choice in the
browser. Task prompts are not translated: the model's language is the visitor's input.

Messages made by handlers (the stats line, why an output ended) are translated on the server by
:func:`text`, from the ``llmdemo_lang`` cookie the switch sets, else the browser's Accept-Language.
Keys are identifiers without dots (svelte-i18n reads dots as nesting); the page sees them prefixed.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import gradio as gr

from llmdemo.errors import MESSAGES, Notice, UserError

from .en import EN
from .zh import ERRORS_ZH, ZH

assert EN.keys() == ZH.keys(), set(EN) ^ set(ZH)
assert not any("." in k for k in EN)

# Gradio's page translates any displayed string that equals a key (a task named "translation" in a dropdown
# became "Translation"/"译文"), so the page's keys carry a prefix no real value starts with
PREFIX = "llmdemo_"
I18N = gr.I18n(**{loc: {PREFIX + k: v for k, v in d.items()} for loc, d in (("en", EN), ("zh", ZH), ("zh-CN", ZH))})


def t(key: str):
    """A label for the page: Gradio translates it in the browser."""
    if key not in EN:
        raise KeyError(key)
    return I18N(PREFIX + key)


def lang_of(request) -> str:
    """'zh' or 'en' for a request: the switch's cookie, else the browser's first Accept-Language."""
    if request is None:
        return "en"
    try:
        cookie = (request.cookies or {}).get("llmdemo_lang", "")
        accept = request.headers.get("accept-language", "") or ""
    except Exception:  # noqa: BLE001 - a request object without headers: English
        return "en"
    first = (cookie or accept.split(",")[0]).strip().lower()
    return "zh" if first.startswith("zh") else "en"


def text(key: str, lang: str = "en", **kw) -> str:
    """A server-side message in ``lang`` ("en" or "zh")."""
    return (ZH if lang == "zh" else EN)[key].format(**kw)


def _core_module() -> str | None:
    """The Gradio frontend module that exports ``changeLocale`` (its name carries a content hash)."""
    assets = Path(gr.__file__).parent / "templates" / "frontend" / "assets"
    for p in sorted(assets.glob("core-*.js")):
        try:
            if "changeLocale" in p.read_text(encoding="utf-8", errors="ignore"):
                return p.name
        except OSError:
            continue
    return None


_CORE = _core_module()


def switch_js(locale: str | None) -> str:
    """JS for the language buttons (and, with None, for page load: the remembered choice)."""
    # the active language's button is marked (class and aria-pressed): both looked the same before and after
    mark = ("const mark = (l) => { const zh = (l || '').toLowerCase().startsWith('zh');"
            "for (const [id, on] of [['lang-en', !zh], ['lang-zh', zh]]) { const b = document.getElementById(id);"
            "const btn = b && (b.tagName === 'BUTTON' ? b : b.querySelector('button')) || b;"
            "if (btn) { btn.classList.toggle('lang-active', on); btn.setAttribute('aria-pressed', String(on)); } } };")
    pick = (f"const loc = {locale!r}; localStorage.setItem('llmdemo-locale', loc); mark(loc);" if locale else
            "const loc = localStorage.getItem('llmdemo-locale'); mark(loc || navigator.language); if (!loc) return;")
    core = f"new URL('assets/{_CORE}', document.baseURI).href" if _CORE else "null"
    return ("async () => {" + mark + pick +
            "document.cookie = 'llmdemo_lang=' + loc + '; path=/; SameSite=Lax';"
            f"const url = {core}; if (!url) return;"
            "try { const m = await import(url); m.changeLocale(loc); } catch (e) { console.warn(e); } }")


# votes: the page says what the visitor can do (the Compare tab's words), not the payload's detail
_VOTE_PAGE = {code: "cmp_err_" + code.split(".", 1)[1] for code in MESSAGES if code.startswith("vote.")}
_NAMED_FIELDS = ("what",)  # fields whose value is a thing's name, said through _WHAT_ZH


def fields_of(template: str) -> set[str]:
    """The ``str.format`` fields a template uses (tests check that both languages use the same ones)."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def user_error_text(err: UserError | Notice, lang: str = "en") -> str:
    """A :class:`UserError` or :class:`Notice` in ``lang``, by its code (English: the page's words where they differ)."""
    if err.code in _VOTE_PAGE:
        return text(_VOTE_PAGE[err.code], lang, **err.params)
    if lang != "zh":
        return str(err)
    params: dict[str, Any] = dict(err.params)
    for k, v in params.items():  # an error given as another's detail ("could not load X: <why>") is said by its code
        if isinstance(v, (UserError, Notice)):
            params[k] = user_error_text(v, lang)
    for k in _NAMED_FIELDS:
        if isinstance(params.get(k), str):
            params[k] = _what(params[k])
    return ERRORS_ZH[err.code].format(**params)


# a field naming a thing ("the {what} is empty") is said through this table
_WHAT_ZH = {"text": "文字", "source text": "原文", "message": "消息", "document": "文档", "prompt": "提示词",
            "input": "输入", "edited message": "修改后的消息", "Looking inside the model": "查看模型内部",
            "branching from a token": "从词元分支"}


def _what(w: str) -> str:
    return _WHAT_ZH.get(w, w)


def error_text(message: str | BaseException, lang: str = "en", lead: str = "出错了：") -> str:
    """A message shown when something goes wrong (or needs explaining), in ``lang``.

    A :class:`UserError` or :class:`Notice` is said by its code. Other text (a server's own words, Gradio's,
    an internal error's) is English as it is; on a Chinese page it comes after ``lead``.
    """
    if isinstance(message, (UserError, Notice)):
        return user_error_text(message, lang)
    message = str(message)
    if lang != "zh" or not message:
        return message
    return lead + message
