"""Compare with a second model beside the loaded one: what it costs in memory and in time.

    python bench/compare_models.py [--other llamacpp:default] [--tokens 64] [--repeat 3]

Loads the default model (as the app does), then ``--other`` beside it through the Compare tab's
``Companions`` (the budget: LLMDEMO_COMPARE_MEMORY_MB, default 4096), and prints its estimated and
measured size (growth of this process's resident memory over the load), the load time, and the wall
time of one comparison (greedy vs repetition penalty 1.3, at most ``--tokens`` new tokens each: an answer
may end sooner, so the token counts are printed too) with both sides on the loaded model (one batch of
its scheduler) and with the second side on the other model (two engines stepping at once).
"""

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmdemo.compare.models import Companions, rss_mb  # noqa: E402
from llmdemo.host import ModelHost
from llmdemo.load import load
from llmdemo.compare.votes import VoteStore
from webui.tabs.compare.handlers import CompareHandlers
from webui.settings import AppSettings
from webui.streaming import LiveRuns


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", default="llamacpp:default")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import tempfile

    tmp = tempfile.mkdtemp()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    host = ModelHost(load())
    print(f"loaded model: {host.lm.name} ({host.lm.info().get('backend')}) in {time.perf_counter() - t0:.2f} s, "
          f"rss +{rss_mb() - rss0:.0f} MB")
    settings = AppSettings(output_dir=tmp)
    cmp = CompareHandlers(host, settings, LiveRuns(), VoteStore(f"{tmp}/votes.sqlite3"),
                          Companions(host, settings.compare_memory_mb))
    est = cmp.companions._estimate(a.other)
    t0 = time.perf_counter()
    other = cmp.companions.get(a.other)
    load_s = time.perf_counter() - t0
    st = cmp.companions.status()
    print(f"other model: {a.other} -> {other.name} ({other.info().get('backend')}): estimated {est:.0f} MB, "
          f"charged {st['used_mb']} MB of {st['budget_mb']} MB, loaded in {load_s:.2f} s")
    req = SimpleNamespace(session_hash="bench", cookies={}, headers={})
    prompt = "Write a short story about a lighthouse keeper."
    for label, model_2 in (("same model, one batch", ""), ("second side on the other model", a.other)):
        times, toks = [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            last = list(cmp.compare(task="generation", prompt=prompt, contestant_1="greedy",
                                    contestant_2="repetition penalty 1.3", model_2=model_2, blind=False,
                                    max_new_tokens=a.tokens, request=req))[-1]
            times.append(time.perf_counter() - t0)
            toks.append([getattr(s.stats, "new_tokens", None) for s in last.sides])
        print(f"{label}: {min(times):.2f} s best of {a.repeat} (median {sorted(times)[len(times) // 2]:.2f} s), "
              f"tokens per side {toks[0]}")
    cmp.companions.close()
    host.lm.close()


if __name__ == "__main__":
    main()
