#!/usr/bin/env bash
# Checks that everything the emulators need is installed; for each gap, says what to install.
# Exit 0 when all is present, 1 otherwise (the emulator tier fails on it: never a silent pass).
set -uo pipefail
. "$(dirname "$0")/_lib.sh"
missing=0
gap() {
  echo "emulators: missing $1" >&2
  missing=1
}

java=java
[ -n "${JAVA_HOME:-}" ] && java=$JAVA_HOME/bin/java
if command -v "$java" >/dev/null 2>&1; then
  java_version=$("$java" -version 2>&1 | head -n 1)
else
  gap "java: $JAVA_INSTALL"
fi
[ -f "$(firestore_jar)" ] || gap "Firestore emulator ($(firestore_jar)): $FIRESTORE_INSTALL"
[ -n "$(pubsub_jar)" ] || gap "Pub/Sub emulator ($(pubsub_dir)/lib): $PUBSUB_INSTALL"
gcs=$(fake_gcs_binary)
[ -n "$gcs" ] && [ -x "$gcs" ] || gap "fake-gcs-server: $FAKE_GCS_INSTALL"
[ -x "$(tasks_venv)/bin/python" ] || gap "Cloud Tasks emulator venv ($(tasks_venv)): $TASKS_INSTALL"

[ $missing -eq 0 ] && echo "emulators: all present (${java_version:-java}; SDK $(sdk_root))"
exit $missing
