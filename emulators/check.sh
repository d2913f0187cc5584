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
# The Firebase Auth emulator: firebase-tools on node 20+ (no Java).
if command -v node >/dev/null 2>&1; then
  node_version=$(node --version)
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] \
    || gap "Node.js 20+ (found $node_version): $NODE_INSTALL"
else
  gap "node: $NODE_INSTALL"
fi
command -v npm >/dev/null 2>&1 || gap "npm: $NODE_INSTALL"
[ -f "$(firebase_cli)" ] || gap "firebase-tools ($(firebase_tools_dir)): $FIREBASE_INSTALL"

[ $missing -eq 0 ] && echo "emulators: all present (${java_version:-java}; node ${node_version:-?}; SDK $(sdk_root))"
exit $missing
