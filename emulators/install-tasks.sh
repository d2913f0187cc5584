#!/usr/bin/env bash
# Creates the Cloud Tasks emulator's own venv (it pins protobuf<5, which the project cannot take).
# Idempotent: a no-op once the venv holds the pinned version. Prints the venv path on success.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"

VERSION=0.6.2
VENV=$(tasks_venv)
STAMP=$VENV/.cfp-installed
WANT="gcloud-tasks-emulator==$VERSION"

if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  echo "$VENV"
  exit 0
fi

PY=${CFP_TASKS_PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "install-tasks: $PY not found: install Python 3.9+ with venv (apt-get install python3-venv)" >&2
  exit 1
fi

echo "install-tasks: creating $VENV with $WANT" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
if ! "$PY" -m venv "$VENV" >&2; then
  echo "install-tasks: '$PY -m venv' failed: install python3-venv" >&2
  exit 1
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$VENV/bin/python" -m pip install --quiet "$WANT" >&2; then
  echo "install-tasks: 'pip install $WANT' failed (PyPI must be reachable)" >&2
  rm -rf "$VENV"
  exit 1
fi
echo "$WANT" >"$STAMP"
echo "$VENV"
