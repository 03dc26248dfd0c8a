"""Command line: ``python -m llmdemo generate|translate|chat|summarize|models|votes``.

Output streams to stdout; notices and statistics go to stderr; bad input exits with
code 2 and one line of error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .errors import UserError
from .config import DECODE_MODES, TASK_DEFAULTS, GenerationConfig
from .presets import DEFAULT_MODEL, PRESETS
from . import prompts
from .load import load


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Flags shared with ``python -m eval``."""
    p.add_argument("--model", default=os.environ.get("LLMDEMO_MODEL", DEFAULT_MODEL),
                   help=f"preset, hub id, local folder or .gguf file (default: {DEFAULT_MODEL}); "
                        "llamacpp:PATH.gguf or llamacpp:default (llama.cpp in-process); openai:NAME (chat) or "
                        "openai-base:NAME (completions) on an OpenAI-compatible server")
    p.add_argument("--base-url", default=None,
                   help="the OpenAI-compatible server for openai:NAME (default: $OPENAI_BASE_URL; the key is read "
                        "from $OPENAI_API_KEY)")
    p.add_argument("--tokenizer", default=None,
                   help="openai:NAME: a local/hub tokenizer instead of the server's /tokenize route")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32, float16, bfloat16 (default: by device)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model")
    p.add_argument("--decode", default=os.environ.get("LLMDEMO_DECODE", "auto"),
                   choices=DECODE_MODES,
                   help="forward pass for generation: auto (a GGUF on llama.cpp when installed; else the lean "
                        "forward's kernel measured fastest on this CPU), a kernel name such as float32 or float16 "
                        "(the lean forward), transformers (the model's own)")


def model_options(args: argparse.Namespace) -> dict:
    """load()'s keyword arguments from the flags of add_model_args."""
    return dict(device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code, decode=args.decode,
                base_url=args.base_url, tokenizer=args.tokenizer, concurrency=getattr(args, "concurrency", "auto"))


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--repetition-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")


def decoding_config(args: argparse.Namespace, task: str) -> GenerationConfig:
    base = TASK_DEFAULTS.get(task, GenerationConfig())
    if task == "summarization" and getattr(args, "length", None) and args.max_new_tokens is None:
        base = base.replace(max_new_tokens=prompts.SUMMARY_LENGTHS[args.length][1])
    return base.replace(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                        top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed,
                        stop=tuple(args.stop) if args.stop else None)


MAX_CLI_CHARS = 1_000_000  # text read from --file or stdin (/dev/zero was read without end)


def _read_text(args: argparse.Namespace) -> str:
    def bounded(f, name: str) -> str:
        text = f.read(MAX_CLI_CHARS + 1)
        if len(text) > MAX_CLI_CHARS:
            raise prompts.InputError("input.file", file=name, reason=f"longer than {MAX_CLI_CHARS:,} characters")
        return text

    if getattr(args, "file", None):
        try:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                return bounded(f, args.file)
        except OSError as e:
            raise prompts.InputError("input.file", file=args.file, reason=e.strerror) from None
    if args.text:
        return " ".join(args.text)
    if not sys.stdin.isatty():
        return bounded(sys.stdin, "stdin")
    raise prompts.InputError("input.no_text")


def _run(lm, prompt: prompts.TaskPrompt, config: GenerationConfig, quiet: bool) -> str:
    if prompt.notice:
        print(f"note: {prompt.notice}", file=sys.stderr)
    stream = lm.stream(prompt.input, prompt.config(config))
    parts = []
    started = False
    for chunk in stream:
        if not started:  # models often open with whitespace; do not print it
            chunk = chunk.lstrip()
            started = bool(chunk)
        parts.append(chunk)
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    for n in stream.stats.notices:
        print(f"note: {n}", file=sys.stderr)
    if not quiet:
        print(f"[{stream.stats.summary()}]", file=sys.stderr)
    return "".join(parts)


def _chat_loop(lm, args, config: GenerationConfig) -> None:
    history: list[dict] = []
    print(f"Chatting with {lm.name}. Empty line or Ctrl-D to quit.", file=sys.stderr)
    while True:
        try:
            msg = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        if not msg.strip():
            return
        prompt = prompts.dialogue_prompt(lm, msg, history, args.system, config.max_new_tokens)
        sys.stdout.write("bot> ")
        reply = _run(lm, prompt, config, args.quiet)
        history += [{"role": "user", "content": msg}, {"role": "assistant", "content": reply.strip()}]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmdemo", description="Try a language model from the terminal.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, text: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        add_model_args(p)
        add_decoding_args(p)
        p.add_argument("-q", "--quiet", action="store_true", help="no statistics on stderr")
        if text:
            p.add_argument("text", nargs="*", help="the text (or use --file, or stdin)")
            p.add_argument("--file", help="read the text from this file")
        return p

    command("generate", "continue or answer a prompt")
    t = command("translate", "translate text")
    t.add_argument("--source", "-s", default="en", help="source language code (en, zh, fr, de, es, ja, ...)")
    t.add_argument("--target", "-t", default="fr", help="target language code")
    c = command("chat", "one chat turn; interactive when no message is given on a terminal")
    c.add_argument("--system", default=prompts.DEFAULT_SYSTEM_PROMPT, help="system prompt")
    s = command("summarize", "summarize a document")
    s.add_argument("--length", choices=list(prompts.SUMMARY_LENGTHS), default="short")
    sub.add_parser("models", help="list the model presets")
    v = sub.add_parser("votes", help="the blind votes: leaderboard, export")
    vsub = v.add_subparsers(dest="votes_command", required=True)
    lb = vsub.add_parser("leaderboard", help="Bradley-Terry ratings (Elo scale) with 95%% bootstrap intervals")
    lb.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    lb.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (default: 1000)")
    lb.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default: 0)")
    ex = vsub.add_parser("export", help="every vote with its prompt, outputs and contestants' settings")
    ex.add_argument("--format", choices=("jsonl",), default="jsonl")
    for p in (lb, ex):
        p.add_argument("--db", default=None,
                       help="the votes database (default: $LLMDEMO_VOTES_DB, else votes.sqlite3 in $LLMDEMO_OUTPUT_DIR "
                            "or ~/.cache/llmdemo/runs)")
    return parser


def _votes(args: argparse.Namespace) -> int:
    import json
    import sqlite3

    from .compare.votes import VoteStore, default_db_path

    path = args.db or default_db_path()
    try:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no votes database at {path}")
        store = VoteStore(path)
        if args.votes_command == "export":
            for record in store.votes():
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            return 0
        if args.rounds < 0:
            raise ValueError(f"--rounds must be 0 or more, got {args.rounds}")
        from .compare.ratings import leaderboard

        board = leaderboard(store.votes(), rounds=args.rounds, seed=args.seed)
        print({"text": board.to_text, "json": board.to_json, "markdown": board.to_markdown}[args.format]())
        return 0
    except (OSError, sqlite3.Error, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "models":
        for p in PRESETS.values():
            mark = "*" if p.name == DEFAULT_MODEL else " "
            print(f"{mark} {p.name:24} {p.description}")
        return 0
    if args.command == "votes":
        return _votes(args)
    task = {"generate": "generation", "translate": "translation", "chat": "dialogue",
            "summarize": "summarization"}[args.command]

    try:
        config = decoding_config(args, task)
        interactive = task == "dialogue" and not args.text and not args.file and sys.stdin.isatty()
        text = None if interactive else _read_text(args)
        if task == "translation":
            prompts.language_code(args.source), prompts.language_code(args.target)  # fail before loading
        if text is not None:
            prompts.clean_text(text)
        lm = load(args.model, **model_options(args))
        if interactive:
            _chat_loop(lm, args, config)
            return 0
        if task == "generation":
            prompt = prompts.generation_prompt(lm, text, config.max_new_tokens)
        elif task == "translation":
            prompt = prompts.translation_prompt(lm, text, args.source, args.target, config.max_new_tokens)
        elif task == "dialogue":
            prompt = prompts.dialogue_prompt(lm, text, None, args.system, config.max_new_tokens)
        else:
            prompt = prompts.summarization_prompt(lm, text, args.length, config.max_new_tokens)
        _run(lm, prompt, config, args.quiet)
        return 0
    except UserError as e:  # settings, input, model, context, server: what the user can act on (llmdemo/errors.py)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
