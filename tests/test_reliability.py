"""Load, faults and bad input: the server keeps serving and nothing is lost."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import psutil
import pytest
from gradio_client import Client

from conftest import BENCHMARKS, launch
from llmdemo.load import load

SETTINGS = [8, 0, 0.9, 0, 1.0, 1]  # max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed


def test_concurrent_sessions_all_succeed_and_memory_is_bounded(tiny_lm):
    from llmdemo.host import ModelHost
    from webui.settings import AppSettings

    host = ModelHost(tiny_lm)
    # twenty visitors, each from its own address (one address holds at most events_per_client events)
    demo, url = launch(host, AppSettings(queue_size=64, concurrency=2, trusted_proxies=1))
    proc = psutil.Process()
    calls = [("/generate", ["The weather is"]), ("/translate", ["Hello there.", "en", "fr"]),
             ("/summarize", ["The council voted to build a bridge. It takes three years.", "short"]),
             ("/chat", ["Hello", [], "Be brief."])]
    errors, latencies = [], []

    def session(k: int, n: int) -> None:
        c = Client(url, verbose=False, headers={"x-forwarded-for": f"10.0.0.{k}"})
        for i in range(n):
            name, args = calls[(k + i) % 4]
            t = time.perf_counter()
            try:
                c.predict(*args, *SETTINGS, api_name=name)
                latencies.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - counted, asserted below
                errors.append(repr(e))

    try:
        rss = []
        for _round in range(2):  # 2 rounds x 20 sessions x 5 requests = 200 requests
            threads = [threading.Thread(target=session, args=(k, 5)) for k in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            rss.append(proc.memory_info().rss)
        assert not errors, errors[:3]
        assert len(latencies) == 200
        # memory after the second 100 requests stays within 10% (+50 MB) of after the first 100
        assert rss[1] <= rss[0] * 1.10 + 50e6, [r / 1e6 for r in rss]
    finally:
        demo.close()


def test_corrupt_model_is_reported_and_previous_kept(tiny_lm, tmp_path):
    from llmdemo.host import ModelHost
    from webui.handlers import Handlers
    from webui.settings import AppSettings

    bad = tmp_path / "broken-model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    h = Handlers(ModelHost(tiny_lm), AppSettings())
    with pytest.raises(gr.Error, match="could not load '.*broken-model': .*not a valid JSON file.*Still using tiny-llama"):
        h.load_model("", str(bad), progress=lambda *a, **k: None)
    assert h.host.lm is tiny_lm


def _eval_cmd(model_dir, out):
    return [sys.executable, "-m", "eval", "run", "--task", "translation", "--data",
            str(BENCHMARKS / "translation_flores200_devtest_en-fr.jsonl"), "--limit", "30", "--batch-size", "1",
            "--max-new-tokens", "24", "--model", str(model_dir), "--output", str(out)]


def test_kill_9_during_eval_then_resume_equals_uninterrupted(tiny_model_dir, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    full = tmp_path / "full"
    subprocess.run(_eval_cmd(tiny_model_dir, full), env=env, check=True, capture_output=True, timeout=600)
    part = tmp_path / "part"
    p = subprocess.Popen(_eval_cmd(tiny_model_dir, part), env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    preds = part / "predictions.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not preds.exists() or len(preds.read_text().splitlines()) < 5):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n_before = len(preds.read_text().splitlines())
    assert 5 <= n_before < 30, "the kill must land mid-run"
    subprocess.run(_eval_cmd(tiny_model_dir, part), env=env, check=True, capture_output=True, timeout=600)
    a, b = (json.loads((d / "results.json").read_text()) for d in (full, part))
    assert a["metrics"] == b["metrics"] and b["n_examples"] == 30
    ids = [json.loads(l)["id"] for l in preds.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 30


@pytest.mark.e2e
def test_kill_9_during_gguf_conversion_never_leaves_a_loadable_half_cache(tmp_path):
    from llmdemo.presets import DEFAULT_MODEL, bundled_gguf, get_preset

    gguf = bundled_gguf(get_preset(DEFAULT_MODEL))
    env = dict(os.environ, LLMDEMO_CACHE=str(tmp_path), HF_HUB_OFFLINE="1")
    code = "from llmdemo.backends.hf.loading import convert_gguf; import sys; convert_gguf(sys.argv[1])"
    p = subprocess.Popen([sys.executable, "-c", code, str(gguf)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    # kill it while it writes the cache: the temporary folder lives ~0.1 s here (tokenizer, config, weights)
    while time.time() < deadline and p.poll() is None:
        if list(Path(tmp_path).glob("gguf-*.tmp-*")):
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the conversion finished before it could be killed"
    assert list(Path(tmp_path).glob("gguf-*.tmp-*")), "the kill should leave the temporary folder behind"
    complete = [d for d in Path(tmp_path).glob("gguf-*") if not d.name.count(".tmp-")]
    assert complete == [], "a killed conversion left a final cache folder"
    r = subprocess.run([sys.executable, "-c", code, str(gguf)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "converting" in r.stderr  # it converted again
    assert not list(Path(tmp_path).glob("gguf-*.tmp-*"))  # and removed the dead process's temp folder
    final = [d for d in Path(tmp_path).glob("gguf-*")]
    assert len(final) == 1 and (final[0] / "llmdemo-complete.json").is_file()


def test_security_defaults():
    import inspect as _inspect

    from webui.settings import AppSettings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "LLMDEMO_", "SPACE_ID"))}
    code = ("from webui.settings import AppSettings as S; s = S(); "
            "print(s.host, s.share, s.hosted, s.trust_remote_code, s.max_input_chars, s.queue_size)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["127.0.0.1", "False", "False", "False", "20000", "64"]
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, SPACE_ID="me/demo"), capture_output=True,
                         text=True, check=True).stdout
    assert out.split()[2] == "True"  # on a Space, the model picker offers presets only
    assert _inspect.signature(load).parameters["trust_remote_code"].default is False
    assert AppSettings().max_new_tokens <= 4096


def test_eval_zero_examples_is_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "eval", "run", "--task", "translation", "--data",
                        str(BENCHMARKS / "translation_flores200_devtest_en-fr.jsonl"), "--limit", "0",
                        "--output", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--limit must be at least 1" in r.stderr
