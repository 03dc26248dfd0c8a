"""In-process serving: what every in-process backend (transformers, llama.cpp) shares.

- ``scheduler.py``: ``Request`` (one generation: settings, seed, priority, its tokens, why it ended) and
  ``Scheduler`` (the policy — who runs next: visitors before batch work, a queue limit, budgets — and the
  loop that runs one step: prompt chunks and decode rows through the runner, each row's sampler);
- ``model.py``: ``ScheduledModel``, the facade an in-process backend inherits: ``stream`` / ``generate`` /
  ``chat`` / ``generate_batch`` and the scoring calls, as requests to its scheduler;
- ``runner.py``: the ``Runner`` protocol the scheduler steps, with each sequence's state (``Sequence``); the
  runners live with their backends (``backends/llamacpp/runner.py``, ``backends/hf/runners.py``);
- ``sampler.py``: one ``Sampler`` per request (its own settings and random generator, numpy: no torch);
- ``stream.py``: what a caller reads: ``Stream``, ``Stats``, ``Completion`` (text + ``finish_reason``), and
  ``IncrementalText`` / ``StopText`` (incremental detokenization and stop strings, in one place).
"""
