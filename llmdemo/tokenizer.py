"""A tokenizer read straight from ``tokenizer.json`` (the ``tokenizers`` library), without transformers.

Why: importing transformers and building its tokenizer costs about a second at every start, more
than the rest of a warm start together; the lean forward needs none of it. This class gives the
part of the transformers tokenizer API that llmdemo uses (``__call__``, ``decode``,
``apply_chat_template``, the special token ids), over the same ``tokenizer.json``, with the chat
template rendered as transformers renders it. tests/test_lightload.py checks that it gives the
same ids and text as ``AutoTokenizer`` on the same folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def render_chat(template: str, messages: list[dict], *, add_generation_prompt: bool = True,
                **special_tokens: Any) -> str:
    """The chat template rendered as transformers renders it (jinja2, trim_blocks, lstrip_blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            **special_tokens)


def _raise(message):
    raise ValueError(message)


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # older tokenizer_config.json files store AddedToken dicts
        value = value.get("content")
    return value if isinstance(value, str) else None


# transformers' clean_up_tokenization (for tokenizers configured to use it)
_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class LightTokenizer:
    """``tokenizer.json`` + ``tokenizer_config.json`` (+ ``chat_template.jinja``) of a model folder."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cfg_file = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
        self.init_kwargs = cfg
        template = cfg.get("chat_template")
        jinja = folder / "chat_template.jinja"
        if template is None and jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        self.chat_template = template if isinstance(template, str) else None
        self.special_tokens = {k: _token_text(cfg.get(k)) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        for k, v in self.special_tokens.items():
            setattr(self, k, v)
            setattr(self, f"{k}_id", self._tok.token_to_id(v) if v is not None else None)
        self.clean_up_tokenization_spaces = bool(cfg.get("clean_up_tokenization_spaces", False))
        n = cfg.get("model_max_length")
        self.model_max_length = n if isinstance(n, int) else 1_000_000_000
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

    @staticmethod
    def supported(folder: str | Path) -> str | None:
        """Why this folder's tokenizer needs transformers, or None when this class reads it as transformers does."""
        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            return "no tokenizer.json"
        cfg_file = folder / "tokenizer_config.json"
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
        except ValueError:
            return "unreadable tokenizer_config.json"
        # Tokenizer classes that rewrite tokenizer.json's post-processor or normalizer when loaded
        # (Llama/Gemma add BOS by flags, ...) are left to transformers; these keep it as it is.
        if cfg.get("tokenizer_class") not in ("TokenizersBackend", "PreTrainedTokenizerFast", "GPT2Tokenizer",
                                              "GPT2TokenizerFast"):
            return f"tokenizer class {cfg.get('tokenizer_class')!r}"
        if cfg.get("add_bos_token") or cfg.get("add_eos_token") or cfg.get("auto_map"):
            return "tokenizer options that transformers applies itself"
        return None

    def __len__(self) -> int:
        return self.vocab_size

    def __call__(self, text: str, add_special_tokens: bool = True, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
               **_: Any) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        text = self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if clean:
            for a, b in _CLEANUPS:
                text = text.replace(a, b)
        return text

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self._tok.id_to_token(ids)
        return [self._tok.id_to_token(int(i)) for i in ids]

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False, tokenize: bool = True,
                            return_dict: bool = False, **_: Any):
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        text = render_chat(self.chat_template, list(messages), add_generation_prompt=add_generation_prompt,
                           **{k: v for k, v in self.special_tokens.items() if v is not None})
        if not tokenize:
            return text
        ids = self.encode(text, add_special_tokens=False)
        return {"input_ids": ids} if return_dict else ids
