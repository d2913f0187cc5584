#!/usr/bin/env bash
# Runs the Cloud Tasks emulator (gcloud-tasks-emulator) in the foreground on 127.0.0.1:PORT.
# App Engine tasks go to 127.0.0.1:TARGET_PORT (default 8080); HTTP tasks go to their own URL.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
port=$(port_arg "${1:-}")
venv=$(tasks_venv)
[ -x "$venv/bin/python" ] || die "Cloud Tasks emulator venv not found at $venv: $TASKS_INSTALL"
# The emulator's google-api-core warns about Python versions on every start: noise in its log.
exec "$venv/bin/python" -W ignore::FutureWarning "$(dirname "$0")/tasks_launcher.py" \
  --port "$port" --target-port "${2:-8080}"
