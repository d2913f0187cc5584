#!/usr/bin/env bash
# Runs fake-gcs-server (Cloud Storage) in the foreground on http://127.0.0.1:PORT, in memory.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
port=$(port_arg "${1:-}")
bin=$(fake_gcs_binary)
[ -n "$bin" ] && [ -x "$bin" ] || die "fake-gcs-server not found${bin:+ at $bin}: $FAKE_GCS_INSTALL"
# public-host/external-url make upload Locations and signed URLs point back at this server.
exec "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
  -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" -log-level warn
