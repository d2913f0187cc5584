#!/usr/bin/env bash
# Installs the pinned firebase-tools (the Firebase Auth emulator) with npm into a cache folder
# outside the clone. Idempotent: a no-op once the folder holds the pinned version. Prints the
# folder on success. The first install downloads ~300 MB and can take minutes.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"

VERSION=15.34.2
DIR=$(firebase_tools_dir)
STAMP=$DIR/.cfp-installed
WANT="firebase-tools@$VERSION"

if [ -f "$(firebase_cli)" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  echo "$DIR"
  exit 0
fi

command -v node >/dev/null 2>&1 || die "install-firebase: node not found: $NODE_INSTALL"
command -v npm >/dev/null 2>&1 || die "install-firebase: npm not found: $NODE_INSTALL"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "install-firebase: $WANT needs Node.js 20+, found $(node --version): $NODE_INSTALL"

echo "install-firebase: installing $WANT into $DIR" >&2
mkdir -p "$DIR"
rm -f "$STAMP"
printf '{"private": true, "dependencies": {"firebase-tools": "%s"}}\n' "$VERSION" >"$DIR/package.json"
if ! npm install --prefix "$DIR" --omit=dev --no-audit --no-fund --no-update-notifier \
  --loglevel=error >&2; then
  die "install-firebase: 'npm install $WANT' failed (the npm registry must be reachable)"
fi
[ -f "$(firebase_cli)" ] || die "install-firebase: $(firebase_cli) missing after npm install"
echo "$WANT" >"$STAMP"
echo "$DIR"
