"""Where start-up time goes: importing torch, the first load (cache warm), a second load.

    python bench/startup.py

Run it in a fresh process (it is one); the second load shows what the first one spent on
one-time work. The default model takes the lean start (llmdemo/backends/hf/loading.py: no transformers import);
the last line says whether transformers was imported.
"""

import time

t0 = time.perf_counter()
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402,F401

t1 = time.perf_counter()
from llmdemo.load import load  # noqa: E402

t2 = time.perf_counter()
load()
t3 = time.perf_counter()
load()
t4 = time.perf_counter()
print(f"import torch {t1 - t0:.2f} s; import llmdemo {t2 - t1:.2f} s; first load {t3 - t2:.2f} s; "
      f"second load {t4 - t3:.2f} s; model ready {t3 - t0:.2f} s after the script started")
print(f"transformers imported: {'transformers' in sys.modules}")
