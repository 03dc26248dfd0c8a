"""A real server's token probabilities against the in-process engine's recorded ones.

    python bench/server_logprobs.py

Starts llama-cpp-python's OpenAI-compatible server on the bundled GGUF (the settings of the test
fixture in tests/test_backend_llamacpp.py: flash attention, 32-token micro-batches), asks it and the
in-process llama.cpp engine for the same three greedy answers (24 tokens, top-10 logprobs) and
prints, per prompt, whether the text is the same, how many top-10 alternatives both report and the
largest difference in probability.
"""

import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import free_port  # noqa: E402
from llmdemo.config import GenerationConfig  # noqa: E402
from llmdemo.load import load  # noqa: E402
from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset  # noqa: E402

QUESTIONS = ["What is the capital of France?", "Name three colours.", "Write one sentence about the sea."]


def main() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf(get_preset(DEFAULT_MODEL))),
         "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
         "--logits_all", "true", "--interrupt_requests", "false", "--flash_attn", "true", "--n_ubatch", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        cfg = GenerationConfig(temperature=0, max_new_tokens=24, stop=(), logprobs=10)
        remote, ours = load("openai:smollm2", base_url=url), load("llamacpp:default")
        for q in QUESTIONS:
            msgs = [{"role": "user", "content": q}]
            got, want = remote.stream(msgs, cfg), ours.stream(msgs, cfg)
            same = got.text() == want.text()
            worst, shared, total = 0.0, 0, 0
            for g, w in zip(got.token_info, want.token_info):
                theirs = {a.text: a.p_before for a in g.alternatives}
                both = [a for a in w.alternatives if a.text in theirs]
                shared, total = shared + len(both), total + len(w.alternatives)
                worst = max(worst, abs(g.p_before - w.p_before), *(abs(a.p_before - theirs[a.text]) for a in both))
            print(f"{q!r}: same text {same}, {len(got.token_info)} tokens, alternatives shared {shared}/{total}, "
                  f"worst |dp| {worst:.2e}")
        remote.close()
        ours.close()
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
