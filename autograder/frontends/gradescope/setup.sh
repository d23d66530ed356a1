#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image
# (see autograder/frontends/gradescope/ and docs/gradescope.md in the kit's repository).
#   GRADESCOPE_ROOT   Gradescope's root folder (default /autograder); source/ is the unzipped bundle
#   GRADESCOPE_VENV   the virtual environment to create (default $GRADESCOPE_ROOT/venv)
#   AUTOGRADER_PYTHON a Python 3.11+ to build it with (default: the newest python3.1x found)
#   AUTOGRADER_SETUP_APT=0   never call apt-get (default: when root and apt-get exists)
#   AUTOGRADER_TORCH_INDEX   where pip finds torch (default: PyTorch's CPU index; empty: pip's own)
set -euo pipefail
ROOT=${GRADESCOPE_ROOT:-/autograder}
SRC=$(cd "$(dirname "$0")" && pwd)
VENV=${GRADESCOPE_VENV:-$ROOT/venv}
CACHE=${AUTOGRADER_CACHE:-$ROOT/cache}
CONFIG="$SRC/gradescope.json"
setting() { sed -n "s/^ *\"$1\": *\"\([^\"]*\)\".*/\1/p" "$CONFIG" | head -n 1; }
TORCH=$(setting torch)
WHEEL="$SRC/wheels/$(setting wheel)"
TORCH_INDEX=${AUTOGRADER_TORCH_INDEX-$(setting torch_index)}
say() { printf '\n==> %s\n' "$*"; }

apt_ok() {
  [ "${AUTOGRADER_SETUP_APT:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
}

find_python() {
  for candidate in "${AUTOGRADER_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

say "A Python 3.11+ (Gradescope's Ubuntu images ship 3.10; the kit needs 3.11)"
PY=$(find_python) || {
  if apt_ok; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Ubuntu 22.04 has python3.11 in universe; elsewhere the deadsnakes PPA has it.
    apt-get install -y -qq python3.11 python3.11-venv >/dev/null 2>&1 || {
      apt-get install -y -qq software-properties-common >/dev/null
      add-apt-repository -y ppa:deadsnakes/ppa >/dev/null
      apt-get update -qq
      apt-get install -y -qq python3.11 python3.11-venv >/dev/null
    }
  fi
  PY=$(find_python) || { echo "setup failed: no Python 3.11 or newer could be found or installed" >&2; exit 1; }
}
"$PY" --version

say "bubblewrap, to confine the student's code (optional: without it grading runs unconfined)"
if ! command -v bwrap >/dev/null 2>&1 && apt_ok; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null 2>&1 \
    || echo "could not install bubblewrap; grading will run unconfined (the results say so)"
fi

say "Virtual environment $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

say "PyTorch $TORCH (CPU), first, so that nothing pulls a CUDA build"
if ! "$VENV/bin/python" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH')" 2>/dev/null; then
  if [ -n "$TORCH_INDEX" ]; then
    "${PIP[@]}" install "torch==$TORCH" --index-url "$TORCH_INDEX"
  else
    "${PIP[@]}" install "torch==$TORCH"
  fi
fi

say "The kit, from the instructor's wheel: $(basename "$WHEEL")"
"${PIP[@]}" install --force-reinstall --no-deps "$WHEEL"
"${PIP[@]}" install "$WHEEL"

say "The lesson's data, fetched and checksum-verified, into $CACHE"
mkdir -p "$CACHE"
found=$(AUTOGRADER_CACHE="$CACHE" "$VENV/bin/python" -m autograder.data)
if [ "$(dirname "$found")" != "$CACHE" ]; then      # an explicit AUTOGRADER_MNIST: keep a copy
  cp "$found" "$CACHE/$(basename "$found").part" && mv "$CACHE/$(basename "$found").part" "$CACHE/$(basename "$found")"
fi
env -u AUTOGRADER_MNIST AUTOGRADER_CACHE="$CACHE" "$VENV/bin/python" -m autograder.data --offline

say "Preflight: a worker starts, imports the kit and runs the canary cell"
env -u AUTOGRADER_MNIST AUTOGRADER_CACHE="$CACHE" "$VENV/bin/python" -m autograder preflight
