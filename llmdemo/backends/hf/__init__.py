"""The transformers backend: exact float32 scoring, the Inside tab's internals, and models that are not GGUF.

``model.py`` (:class:`LM`, behind the engine's scheduler), ``loading.py`` (device and dtype, the GGUF ->
safetensors cache), ``runners.py`` (the scheduler's runners over a torch forward), and ``lean/``: the
batched Llama forward written for CPUs (``fast.py``), its key/value caches (``kvcache.py``) and the
choice of its kernels by measurement (``tuning.py``).
"""
