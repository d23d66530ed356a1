#!/usr/bin/env bash
# One command: set everything up, then run the main job (grade the example submissions).
#   bash setup.sh            # set up + grade examples/
#   bash setup.sh --no-run   # set up only
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

say() { printf '\n==> %s\n' "$*"; }

say "Python virtual environment in .venv"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

say "PyTorch 2.13.0 (CPU), installed first so nothing pulls a CUDA build"
.venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
  || "${PIP[@]}" install torch==2.13.0

say "The kit itself, with nbgrader and the test tools"
"${PIP[@]}" install -e '.[dev]'

say "Confinement for student code: bubblewrap"
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null \
      || echo "could not install bubblewrap; grading will run unconfined"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
    (sudo -n apt-get update -qq && sudo -n apt-get install -y -qq bubblewrap) >/dev/null \
      || echo "could not install bubblewrap; grading will run unconfined"
  else
    echo "bubblewrap (bwrap) is not installed and cannot be installed from here;"
    echo "grading still works but runs unconfined (install the 'bubblewrap' package to confine it)."
  fi
fi
.venv/bin/python -c 'from autograder.engine.sandbox import confinement; print(confinement()[1])'

say "A headless browser for the tests that look at the reports: Debian's chromium"
# Optional: without it those tests are skipped (and say why); grading never needs it.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || echo "could not install chromium; the browser tests will be skipped"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
    (sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      >/dev/null 2>&1 || echo "could not install chromium; the browser tests will be skipped"
  else
    echo "chromium is not installed and cannot be installed from here; the browser tests will be skipped."
  fi
fi

say "MNIST (mnist.pkl.gz, checksum-verified)"
.venv/bin/python -m autograder.data

if [ "${1:-}" != "--no-run" ]; then
  say "Main job: grading the example submissions in examples/"
  # Exit status 1 only means some example has mistakes (several do, on purpose).
  set +e
  .venv/bin/python -m autograder grade examples/*.ipynb --jobs 2 --json examples-report.json
  status=$?
  set -e
  [ "$status" -le 1 ] || exit "$status"
  echo "(per-exercise JSON written to examples-report.json)"
fi
