"""Tokens for the ``openai:`` backend: from a local tokenizer (``--tokenizer``), llama-server's
``/tokenize``, vLLM's ``/tokenize`` or llama-cpp-python's ``/extras/tokenize``, whichever the server has."""

from __future__ import annotations

from typing import Any, Sequence

from ..server_errors import ServerError


class _Tokens:
    """Tokenizing for :class:`~llmdemo.backends.openai.model.OpenAILM` (over its ``_request``, ``_tok``,
    ``_tokenizer_source`` and ``_scorer``)."""

    def _models(self) -> list[dict]:
        return self._request("GET", "/models").get("data", [])

    def _find_tokenize_route(self) -> str | None:
        for path, body in (("/tokenize", {"model": self.model, "prompt": "a"}), ("/extras/tokenize", {"input": "a"})):
            try:
                self._request("POST", path, root=True, json=body)
                return path
            except ServerError:
                continue
        return None

    # ------------------------------------------------------------ tokens
    def _tokenize(self, text: str, special: bool = False) -> list[int]:
        if self._tok is not None:
            return list(self._tok(text, add_special_tokens=special)["input_ids"])
        if self._tokenizer_source == "llama-server":
            return self._scorer.tokenize(text, special)
        if self._tokenizer_source == "/tokenize":
            out = self._request("POST", "/tokenize", root=True,
                                json={"model": self.model, "prompt": text, "add_special_tokens": special})
        elif self._tokenizer_source == "/extras/tokenize":
            out = self._request("POST", "/extras/tokenize", root=True, json={"input": text})
        else:
            raise ValueError(f"{self.name}: the server has no tokenize route; pass --tokenizer HUB_ID_OR_PATH")
        return list(out["tokens"])

    def _detokenize(self, ids: Sequence[int]) -> str:
        if self._tok is not None:
            return self._tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if self._tokenizer_source == "llama-server":
            return self._scorer.detokenize(ids)
        if self._tokenizer_source == "/tokenize":
            return self._request("POST", "/detokenize", root=True, json={"model": self.model, "tokens": list(ids)})["prompt"]
        return self._request("POST", "/extras/detokenize", root=True, json={"tokens": list(ids)})["text"]

    def encode(self, prompt: Any) -> list[int]:
        """Token ids of a prompt. Chat messages: exact with a local tokenizer or vLLM's /tokenize, otherwise
        the messages' tokens plus 4 per message for the template (an estimate, used to fit the context)."""
        if isinstance(prompt, str):
            return self._tokenize(prompt)
        prompt = list(prompt)
        if prompt and isinstance(prompt[0], dict):
            if self._tok is not None and getattr(self._tok, "chat_template", None):
                ids = self._tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False)
                return [int(i) for i in (ids["input_ids"] if hasattr(ids, "keys") else ids)]
            if self._tokenizer_source == "/tokenize":
                try:
                    return list(self._request("POST", "/tokenize", root=True, json={
                        "model": self.model, "messages": prompt, "add_generation_prompt": True})["tokens"])
                except ServerError:
                    pass
            return [t for m in prompt for t in [0] * 4 + self._tokenize(str(m.get("content", "")))]
        return [int(i) for i in prompt]

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def truncate_text(self, text: str, max_tokens: int) -> tuple[str, bool]:
        ids = self._tokenize(text)
        if len(ids) <= max_tokens:
            return text, False
        return self._detokenize(ids[: max(0, max_tokens)]), True

    def decode(self, ids: Sequence[int]) -> str:
        return self._detokenize(ids)

    def prefix_token(self) -> int:
        if self._tok is not None:
            bos = self._tok.bos_token_id if self._tok.bos_token_id is not None else self._tok.eos_token_id
            if bos is not None:
                return int(bos)
        bos = (self._props or {}).get("bos_token")
        ids = self._scorer.tokenize(bos) if self._scorer is not None and bos else self._tokenize("", special=True)
        if ids:
            return int(ids[0])
        raise ValueError(f"{self.name}: cannot tell the server's BOS token; pass --tokenizer HUB_ID_OR_PATH")


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)
