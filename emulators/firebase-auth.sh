#!/usr/bin/env bash
# Runs the Firebase Auth emulator (firebase-tools on node; no Java) in the foreground on
# 127.0.0.1:PORT, with the emulator hub and logging servers firebase-tools also starts on
# 127.0.0.1:HUB_PORT and 127.0.0.1:LOGGING_PORT (default 4400 and 4500), for PROJECT (default
# cfp-local). Its generated firebase.json, config and debug log live in CFP_FIREBASE_WORKDIR
# (default: a new temporary folder): it never reads or writes the user's Firebase login.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
port=$(port_arg "${1:-}")
hub=$(port_arg "${2:-4400}")
logging=$(port_arg "${3:-4500}")
project=${4:-cfp-local}
command -v node >/dev/null 2>&1 || die "node not found: $NODE_INSTALL"
cli=$(firebase_cli)
[ -f "$cli" ] || die "firebase-tools not found at $cli: $FIREBASE_INSTALL"

work=${CFP_FIREBASE_WORKDIR:-$(mktemp -d -t cfp-firebase-XXXXXX)}
mkdir -p "$work/config"
cat >"$work/firebase.json" <<JSON
{
  "emulators": {
    "auth": {"host": "127.0.0.1", "port": $port},
    "hub": {"host": "127.0.0.1", "port": $hub},
    "logging": {"host": "127.0.0.1", "port": $logging},
    "ui": {"enabled": false},
    "singleProjectMode": false
  }
}
JSON
cd "$work"
# TMPDIR holds the hub's per-project locator file: private, so two runs never find each other.
# CI=1 skips the CLI's message-of-the-day fetch; METADATA_SERVER_DETECTION=none stops it probing
# for the GCE metadata server while it looks for (absent) credentials.
export TMPDIR=$work XDG_CONFIG_HOME=$work/config NO_UPDATE_NOTIFIER=1 CI=1 \
  METADATA_SERVER_DETECTION=none
exec node "$cli" emulators:start --only auth --project "$project" --config "$work/firebase.json" \
  --non-interactive
