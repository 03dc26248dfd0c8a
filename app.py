"""llmdemo web app: ``python app.py`` serves http://127.0.0.1:7860 on the bundled default model.

Flags override the environment (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, LLMDEMO_MODEL, ...).
On Hugging Face Spaces this file runs unchanged (``python app.py``); ``app.demo`` is the Blocks, built on
first access (see ``__getattr__`` below).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from llmdemo.config import DECODE_MODES
from llmdemo.compare.contestants import parse_list
from llmdemo.host import ModelHost
from llmdemo.load import load
from webui.layout import build_demo, launch_options
from webui.settings import AppSettings


def make_demo(model: str | None = None, settings: AppSettings | None = None, device: str | None = None,
              decode: str | None = None, base_url: str | None = None):
    settings = settings or AppSettings()
    decode = decode or os.environ.get("LLMDEMO_DECODE", "auto")
    # the operator's choice: a preset, a path, llamacpp:FILE or openai:NAME at --base-url / OPENAI_BASE_URL
    lm = load(model or os.environ.get("LLMDEMO_MODEL"), device=device,
              trust_remote_code=settings.trust_remote_code, decode=decode, base_url=base_url)
    # models picked later in the Model tab load with the same decode mode
    host = ModelHost(lm, allow_paths=not settings.hosted, allow_hub_ids=not settings.hosted,
                     loader=functools.partial(load, decode=decode))
    return build_demo(host, settings), settings


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the app on this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it reaches the network


def settings_from_args(args) -> tuple[AppSettings, tuple[str, str] | None, list[str]]:
    """Settings, login and the notes to print, from the flags: exposing the app turns hosted mode on."""
    base = AppSettings()
    settings = AppSettings(**{**base.__dict__, **{k: v for k, v in {
        "host": args.host, "port": args.port, "share": args.share or None, "hosted": args.hosted or None,
        "contestants": parse_list(args.contestants) if getattr(args, "contestants", None) is not None else None}.items()
        if v is not None}})
    auth, notes = None, []
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("--auth needs USER:PASSWORD")
        auth = (user, password)
    exposed = settings.share or not is_loopback(settings.host)
    if exposed and not settings.hosted:
        if args.allow_local_models:
            notes.append("warning: the app is exposed and --allow-local-models keeps the model picker open: anyone "
                         "who reaches it can load any local path or hub id")
        else:  # exposing the app makes it a hosted app: the operator's model, no paths, no swaps
            settings = AppSettings(**{**settings.__dict__, "hosted": True})
            notes.append("note: the app is exposed (--host/--share), so hosted mode is on: visitors use the model "
                         "chosen here and cannot load others (--allow-local-models keeps the picker)")
    if exposed and auth is None:
        notes.append("warning: the app is exposed without --auth: anyone who reaches it can use it")
    return settings, auth, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the llmdemo web app.")
    p.add_argument("--model", default=None, help="preset, hub id, local folder or .gguf (default: bundled SmolLM2)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("--hosted", action="store_true", help="offer presets only in the model picker")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N")
    p.add_argument("--base-url", default=None,
                   help="OpenAI-compatible server for --model openai:NAME (default $OPENAI_BASE_URL; key from "
                        "$OPENAI_API_KEY)")
    p.add_argument("--decode", default=None, choices=DECODE_MODES,
                   help="forward pass for generation (default auto: a GGUF on llama.cpp when installed; else, for "
                        "a Llama-family model on a CPU, the lean forward with the kernel measured fastest on this "
                        "CPU (cached per CPU); otherwise transformers: the model's own)")
    p.add_argument("--allow-local-models", action="store_true",
                   help="keep the model picker open (hub ids, local paths) even when the app is exposed")
    p.add_argument("--contestants", default=None,
                   help="the Compare tab's contestants, comma-separated: PRESET or PRESET @ MODEL (e.g. \"greedy, "
                        "top-p 0.95, greedy @ llamacpp:default\"); visitors pick among these only (or "
                        "LLMDEMO_CONTESTANTS)")
    p.add_argument("--auth", default=os.environ.get("LLMDEMO_AUTH"),
                   help="USER:PASSWORD required to use the app (Gradio's login; or LLMDEMO_AUTH)")
    args = p.parse_args(argv)
    try:
        settings, auth, notes = settings_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in notes:
        print(line, file=sys.stderr)
    try:
        demo, settings = make_demo(args.model, settings, args.device, args.decode, args.base_url)
    except Exception as e:  # noqa: BLE001 - one clear line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share, auth=auth,
                **launch_options(settings))
    return 0


_DEMO = None


def __getattr__(name: str):
    """``app.demo``: the Blocks built on first access from the environment (LLMDEMO_MODEL, ...), for tools
    that import the file and look for a module-level ``demo`` (``gradio app.py``'s reload mode). Built on
    access, not at import, so importing ``app`` (the tests do) loads no model. ``python app.py`` is still
    the way to serve it with its launch options (CSS, the interface's languages, the request limit)."""
    global _DEMO
    if name == "demo":
        if _DEMO is None:
            _DEMO = make_demo()[0]
        return _DEMO
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # also how Hugging Face Spaces starts it (GRADIO_SERVER_NAME is set there)
    sys.exit(main())
