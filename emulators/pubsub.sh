#!/usr/bin/env bash
# Runs Google's Pub/Sub emulator in the foreground on 127.0.0.1:PORT (exec: the caller owns java).
# PROJECT, if given, is the only project it accepts (others get 404 "Invalid (project=...)");
# without it every project is valid, so tests can isolate themselves in projects of their own.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
port=$(port_arg "${1:-}")
project=${2:-}
java=$(need_java)
jar=$(pubsub_jar)
[ -n "$jar" ] || die "Pub/Sub emulator not found in $(pubsub_dir)/lib: $PUBSUB_INSTALL"
args=(--host=127.0.0.1 --port="$port")
[ -z "$project" ] || args+=(--projects="$project")
# What the SDK's cloud-pubsub-emulator launcher execs.
# shellcheck disable=SC2086  # JVM options are a word list, as in the SDK launcher
exec "$java" ${CLOUD_PUBSUB_EMULATOR_OPTS:-} -jar "$jar" "${args[@]}"
