#!/usr/bin/env bash
# Creates .venv with the pinned packages and registers the project's Jupyter kernel ("retrain").
# Re-running is cheap: the install is skipped while requirements.txt and pyproject.toml are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
  echo "Python 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }

stamp_want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp_want" ]; then
  echo "Setting up .venv (first run takes a few minutes: TensorFlow is large)..."
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  .venv/bin/python -m pip install --quiet --no-deps -e .
  .venv/bin/python -m ipykernel install --sys-prefix --name retrain --display-name "Python (retrain)" >/dev/null
  echo "$stamp_want" > .venv/.setup-stamp
fi
