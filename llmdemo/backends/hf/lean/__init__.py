"""The lean Llama forward for CPUs: a batched forward over the model's own weights (``fast.py``), its
key/value caches with prefix reuse (``kvcache.py``), and the kernel chosen by measuring on the CPU at hand
(``tuning.py``). Used for Llama-family models that are not GGUF, or where llama.cpp is not installed."""
