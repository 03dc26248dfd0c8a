"""Prompt builders for the four tasks, shared by the CLI, the app and eval.

Each builder returns a :class:`TaskPrompt` whose ``input`` goes straight to
``LM.stream``: chat messages for chat models, a string for base and encoder-decoder
models. Inputs that do not fit the context window are cut with a notice (dialogue
drops its oldest turns first); nothing is refused silently.

>>> TEMPLATES["chat", "translation"].format(source="English", target="French", text="Hi")
'Translate the following English text into French. Reply with the translation only.\\n\\nHi'
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import InputError, Notice  # noqa: F401 (InputError: the app and the CLI catch it as prompts.InputError)

TASKS = ("generation", "translation", "dialogue", "summarization")

LANGUAGES: dict[str, str] = {
    "en": "English",
    "zh": "Chinese",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "ja": "Japanese",
    "it": "Italian",
    "pt": "Portuguese",
    "ru": "Russian",
    "ko": "Korean",
}

SUMMARY_LENGTHS: dict[str, tuple[str, int]] = {
    # name: (instruction, max new tokens that suits it)
    "short": ("in one sentence", 64),
    "medium": ("in about three sentences", 160),
    "long": ("in one paragraph of about five sentences", 300),
}

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely."

# (prompt style, task) -> template. "chat" templates become the user message.
TEMPLATES: dict[tuple[str, str], str] = {
    ("chat", "generation"): "{text}",
    ("base", "generation"): "{text}",
    ("seq2seq", "generation"): "{text}",
    ("t5", "generation"): "{text}",
    ("chat", "translation"): "Translate the following {source} text into {target}. "
                              "Reply with the translation only.\n\n{text}",
    ("base", "translation"): "{shots}{source}: {text}\n{target}:",  # shots: SHOTS below, one pair a line
    ("seq2seq", "translation"): "{text}",
    ("t5", "translation"): "translate {source} to {target}: {text}",
    ("chat", "summarization"): "Summarize the following text {length}.\n\n{text}",
    ("base", "summarization"): "{text}\n\nTL;DR:",
    ("seq2seq", "summarization"): "{text}",
    ("t5", "summarization"): "summarize: {text}",
    ("base", "dialogue"): "The following is a conversation between a User and a helpful Assistant.\n"
                          "{system}\n\n{history}User: {text}\nAssistant:",
}

# A base model is not told what to do: it is shown. Its translation prompt opens with two fixed example
# pairs (written for this table, not taken from any benchmark), the same two sentences in every language,
# so that any pair of these languages has its examples: "English: <en 1>\nChinese: <zh 1>\n...".
SHOTS: dict[str, tuple[str, str]] = {
    "en": ("The museum opens at ten in the morning.", "Could you tell me where the train station is?"),
    "zh": ("博物馆早上十点开门。", "你能告诉我火车站在哪里吗？"),
    "fr": ("Le musée ouvre à dix heures du matin.", "Pourriez-vous me dire où se trouve la gare ?"),
    "de": ("Das Museum öffnet um zehn Uhr morgens.", "Könnten Sie mir sagen, wo der Bahnhof ist?"),
    "es": ("El museo abre a las diez de la mañana.", "¿Podría decirme dónde está la estación de tren?"),
    "ja": ("博物館は朝十時に開館します。", "駅がどこにあるか教えていただけますか？"),
    "it": ("Il museo apre alle dieci del mattino.", "Potrebbe dirmi dov'è la stazione ferroviaria?"),
    "pt": ("O museu abre às dez da manhã.", "Poderia me dizer onde fica a estação de trem?"),
    "ru": ("Музей открывается в десять часов утра.", "Не могли бы вы сказать, где находится вокзал?"),
    "ko": ("박물관은 오전 열 시에 문을 엽니다.", "기차역이 어디에 있는지 알려 주시겠어요?"),
}


def shots(source: str, target: str) -> str:
    """The example lines that open a base model's translation prompt.

    >>> print(shots("en", "fr"), end="")
    English: The museum opens at ten in the morning.
    French: Le musée ouvre à dix heures du matin.
    English: Could you tell me where the train station is?
    French: Pourriez-vous me dire où se trouve la gare ?
    """
    return "".join(f"{LANGUAGES[source]}: {a}\n{LANGUAGES[target]}: {b}\n"
                   for a, b in zip(SHOTS[source], SHOTS[target]))


# Stop strings a style needs so a base model does not run on into the next line or turn.
STOPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("base", "translation"): ("\n",),
    ("base", "summarization"): ("\n\n",),
    ("base", "dialogue"): ("\nUser:", "\nAssistant:"),
}


@dataclass(frozen=True)
class TaskPrompt:
    task: str
    input: Any  # str or list of {"role", "content"} messages: what LM.stream takes
    stop: tuple[str, ...] = ()  # stop strings this prompt style needs
    notice: str | None = None  # shown to the user, e.g. when the input was cut
    template: str = ""  # the template used, for reports
    max_new_tokens: int | None = None  # a cap the task sets (a translation is not 10x its source)

    def config(self, config):
        """``config`` with this prompt's stop strings added and its token cap applied."""
        changes = {}
        if self.stop:
            changes["stop"] = tuple(dict.fromkeys(tuple(config.stop) + self.stop))
        if self.max_new_tokens is not None and self.max_new_tokens < config.max_new_tokens:
            changes["max_new_tokens"] = self.max_new_tokens
        return config.replace(**changes) if changes else config


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


MAX_COMBINING_RUN = 32  # combining marks kept on one character (no script uses more; "Zalgo" text does)


@functools.cache
def _combining_runs() -> "re.Pattern[str]":
    """Runs of more than MAX_COMBINING_RUN combining characters (built once, on first long text)."""
    ranges, start, prev = [], None, None
    for cp in range(0x300, 0x110000):
        if unicodedata.combining(chr(cp)):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
            start = None
    return re.compile(f"[{''.join(ranges)}]{{{MAX_COMBINING_RUN + 1},}}")


def clean_text(text: Any, what: str = "text") -> str:
    """Normalise user text: drop NUL/control characters and lone surrogates; refuse empty text."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError("input.not_text", what=what, kind=type(text).__name__)
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text.replace("\r\n", "\n")))
    if len(text) > 1000:  # NFC sorts a run of combining marks in quadratic time: 20,000 held the GIL ~1 s
        text = _combining_runs().sub(lambda m: m.group(0)[:MAX_COMBINING_RUN], text)
    text = unicodedata.normalize("NFC", text)
    if not text.strip():
        raise InputError("input.empty", what=what)
    return text


def language_name(code: str) -> str:
    code = (code or "").strip()
    if code in LANGUAGES:
        return LANGUAGES[code]
    for k, v in LANGUAGES.items():
        if code.lower() == v.lower():
            return v
    raise InputError("input.language", code=code, choices=", ".join(f"{k} ({v})" for k, v in LANGUAGES.items()))


def language_code(code_or_name: str) -> str:
    name = language_name(code_or_name)
    return next(k for k, v in LANGUAGES.items() if v == name)


def _wrap(lm, style: str, task: str, filled: str, system: str | None = None) -> Any:
    if style == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        return messages + [{"role": "user", "content": filled}]
    return filled


def _fit(lm, build: Callable[[str], Any], text: str, max_new_tokens: int, what: str) -> tuple[Any, str | None]:
    """Build the prompt; if it overflows the context, cut ``text`` from the end, with a notice."""
    prompt = build(text)
    n = len(lm.encode(prompt))
    room = lm.context_length - (0 if lm.is_encoder_decoder else max_new_tokens)
    if n <= room:
        return prompt, None
    have = lm.count_tokens(text)
    keep = max(0, have - (n - room) - 2)
    cut, _ = lm.truncate_text(text, keep)
    if not cut.strip():
        raise InputError("input.no_room", what=what, n=lm.context_length)
    return build(cut), Notice("notice.cut", what=what, have=have, keep=keep, context=lm.context_length,
                              new=max_new_tokens)


def generation_prompt(lm, text: str, max_new_tokens: int = 256) -> TaskPrompt:
    """Instruction for chat models, continuation for base models."""
    text = clean_text(text)
    key = (lm.style, "generation")
    prompt, notice = _fit(lm, lambda t: _wrap(lm, lm.style, "generation", TEMPLATES[key].format(text=t)),
                          text, max_new_tokens, "text")
    return TaskPrompt("generation", prompt, STOPS.get(key, ()), notice, TEMPLATES[key])


def translation_prompt(lm, text: str, source: str = "en", target: str = "fr",
                       max_new_tokens: int = 256) -> TaskPrompt:
    text = clean_text(text, "source text")
    src, tgt = language_code(source), language_code(target)
    if src == tgt:
        raise InputError("input.same_language", language=LANGUAGES[src])
    if lm.pairs and (src, tgt) not in lm.pairs:
        pairs = ", ".join(f"{a}->{b}" for a, b in lm.pairs)
        raise InputError("input.pair", model=lm.name, pairs=pairs, src=src, tgt=tgt)
    key = (lm.style, "translation")
    fill = dict(source=LANGUAGES[src], target=LANGUAGES[tgt], shots=shots(src, tgt))
    prompt, notice = _fit(lm, lambda t: _wrap(lm, lm.style, "translation", TEMPLATES[key].format(text=t, **fill)),
                          text, max_new_tokens, "source text")
    # small models sometimes run on after the translation; no translation needs 4x the source's tokens
    cap = 4 * lm.count_tokens(text) + 16
    # the template as reports print it: the examples filled in, the text left as {text}
    template = TEMPLATES[key].replace("{shots}", fill["shots"])
    return TaskPrompt("translation", prompt, STOPS.get(key, ()), notice, template, max_new_tokens=cap)


def summarization_prompt(lm, text: str, length: str = "short", max_new_tokens: int = 160) -> TaskPrompt:
    text = clean_text(text, "document")
    if length not in SUMMARY_LENGTHS:
        raise InputError("input.summary_length", length=length, choices=", ".join(SUMMARY_LENGTHS))
    key = (lm.style, "summarization")
    instr = SUMMARY_LENGTHS[length][0]
    prompt, notice = _fit(lm, lambda t: _wrap(lm, lm.style, "summarization", TEMPLATES[key].format(text=t, length=instr)),
                          text, max_new_tokens, "document")
    return TaskPrompt("summarization", prompt, STOPS.get(key, ()), notice, TEMPLATES[key])


def normalise_history(history: Sequence[Any] | None) -> list[dict]:
    """Messages as ``{"role", "content": str}``; content given as a list of text blocks is joined."""
    out = []
    for m in history or []:
        if not isinstance(m, dict) or m.get("role") not in {"user", "assistant", "system"}:
            raise InputError("input.chat_roles")
        content = m.get("content", "")
        if isinstance(content, (list, tuple)):
            content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        elif isinstance(content, dict):
            content = content.get("text", "")
        if not isinstance(content, str):
            content = str(content)
        out.append({"role": m["role"], "content": clean_text(content, "message") if content.strip() else ""})
    return out


def dialogue_prompt(lm, message: str, history: Sequence[Any] | None = None,
                    system: str | None = DEFAULT_SYSTEM_PROMPT, max_new_tokens: int = 256) -> TaskPrompt:
    """The conversation so far plus the new message; the oldest turns go first when it does not fit."""
    message = clean_text(message, "message")
    turns = [m for m in normalise_history(history) if m["role"] != "system"]
    system = (system or "").strip() or None
    key = (lm.style, "dialogue")

    def build(turns: list[dict], msg: str) -> Any:
        if lm.style == "chat":
            head = [{"role": "system", "content": system}] if system else []
            return head + turns + [{"role": "user", "content": msg}]
        if lm.is_encoder_decoder:
            return msg  # encoder-decoders here are not chat models: they see the last message only
        lines = "".join(f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['content']}\n" for t in turns)
        return TEMPLATES[key].format(system=system or "", history=lines, text=msg)

    room = lm.context_length - max_new_tokens
    dropped = 0
    over = len(lm.encode(build(turns, message))) - room
    if over > 0 and turns:
        # Linear in the history's length: each message's tokens are counted once, then the oldest
        # exchanges whose counts cover the excess go in one cut, checked with one encode. The counts
        # lean high (+1 per message over the template's measured overhead), so a cut never drops more
        # than needed; when it dropped too few, the next cut takes the rest (a few rounds at most).
        costs = [lm.count_tokens(t["content"]) for t in turns]
        two = turns[:2]
        per_message = max(0, (len(lm.encode(build(two, message))) - len(lm.encode(build([], message)))
                              - sum(costs[:2])) // len(two))  # the template's tokens around a message
        while over > 0 and turns:
            k, saved = 0, 0
            while k < len(turns) and saved < over:
                # drop the oldest exchange (user + assistant) so roles keep alternating
                n = 2 if k + 1 < len(turns) and turns[k + 1]["role"] == "assistant" else 1
                saved += sum(costs[k:k + n]) + n * (per_message + 1)
                k += n
            turns, costs, dropped = turns[k:], costs[k:], dropped + k
            over = len(lm.encode(build(turns, message))) - room
    prompt, notice = _fit(lm, lambda m: build(turns, m), message, max_new_tokens, "message")
    if dropped:
        notice = Notice("notice.dropped_cut", n=dropped, context=lm.context_length, cut=notice) if notice else \
            Notice("notice.dropped", n=dropped, context=lm.context_length)
    template = "chat template of the tokenizer (system + history + user)" if lm.style == "chat" else TEMPLATES.get(key, "{text}")
    return TaskPrompt("dialogue", prompt, STOPS.get(key, ()), notice, template)


_LEADS = re.compile(r"^\s*(?:here(?: is|'s) (?:the|a|my) [\w ]{0,30}?:|translation:|translated text:|summary:|"
                    r"tl;dr:|(?:english|chinese|french|german|spanish|japanese|italian|portuguese|russian|korean)"
                    r"(?: translation)?:)\s*", re.IGNORECASE)


def postprocess(task: str, text: str) -> str:
    """Strip what models add around the answer (a leading "Translation:", wrapping quotes)."""
    text = text.strip()
    if task in {"translation", "summarization"}:
        prev = None
        while prev != text:
            prev = text
            text = _LEADS.sub("", text, count=1).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" and text.count(text[0]) == 2:
            text = text[1:-1].strip()
    return text


# a full stop, then closing quotes or brackets; a Latin one before a space or the end (not "3.5"), a CJK one anywhere
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s|$)|[。！？][”’」』）]*")


def whole_sentences(text: str) -> str:
    """A summary cut by its token budget, back to its last full sentence (unchanged if it has none).

    >>> whole_sentences("The council approved the bridge. It will cost twenty mil")
    'The council approved the bridge.'
    >>> whole_sentences("市议会批准了新桥。造价约两千")
    '市议会批准了新桥。'
    """
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[:ends[-1]] if ends else text
