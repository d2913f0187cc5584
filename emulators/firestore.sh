#!/usr/bin/env bash
# Runs Google's Firestore emulator in the foreground on 127.0.0.1:PORT (exec: the caller owns java).
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
port=$(port_arg "${1:-}")
java=$(need_java)
jar=$(firestore_jar)
[ -f "$jar" ] || die "Firestore emulator not found at $jar: $FIRESTORE_INSTALL"
# What the SDK's cloud_firestore_emulator launcher runs, minus its extra shell process.
exec "$java" -Duser.language=en -cp "$jar" com.google.cloud.datastore.emulator.firestore.CloudFirestore \
  start --host=127.0.0.1 --port="$port"
