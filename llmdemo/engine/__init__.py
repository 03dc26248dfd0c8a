"""In-process serving: what every in-process backend (transformers, llama.cpp) shares.

- ``scheduler.py``: ``Request`` (one generation: settings, seed, priority, its tokens, why it ended) and
  ``Scheduler`` (the policy — who runs next: visitors before batch work, a queue limit, budgets — and the
  loop that runs one step: prompt chunks and decode rows through the runner, each row's sampler);
- ``runner.py``: the ``Runner`` protocol the scheduler steps (and the torch runners; llama.cpp's is in
  ``backends/llamacpp.py``), with each sequence's state (``Sequence``);
- ``sampler.py``: one ``Sampler`` per request (its own settings and random generator);
- ``stream.py``: what a caller reads: ``Stream``, ``Stats``, ``Completion`` (text + ``finish_reason``), and
  ``IncrementalText`` / ``StopText`` (incremental detokenization and stop strings, in one place).
"""
