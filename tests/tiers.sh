#!/usr/bin/env bash
# Runs the test tiers in order, timing each; any tier that fails or runs no test fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
declare -a NAMES=() TIMES=() RESULTS=()
status=0

tier() {
  local name=$1; shift
  echo "=== tier: $name ==="
  local start=$SECONDS
  "$BIN/python" -m pytest -q -p no:cacheprovider "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then
    echo "tier $name ran no test: failing"; rc=1
  fi
  NAMES+=("$name"); TIMES+=($((SECONDS - start))); RESULTS+=($rc)
  [ $rc -eq 0 ] || status=1
}

# A tier that is a command of its own (not pytest): timed and tabled like the others.
run_tier() {
  local name=$1; shift
  echo "=== tier: $name ==="
  local start=$SECONDS
  "$@"
  local rc=$?
  NAMES+=("$name"); TIMES+=($((SECONDS - start))); RESULTS+=($rc)
  [ $rc -eq 0 ] || status=1
}

# The workbench's component tests (Vitest, jsdom); Vitest fails when it finds no test file.
web_tests() {
  (cd web && npx --no-install vitest run)
}

# The workbench in a real Chromium: the shell's JavaScript budget over the build `make install`
# made; Debian's Chromium, installed when missing (its time counts here); then the end-to-end
# run against a real `cfp dev` (web/e2e/run.mjs, screenshots in web/test-results/).
browser_tests() {
  local rc=0
  node web/e2e/budget.mjs || rc=1
  if make --no-print-directory chromium; then
    node web/e2e/run.mjs || rc=1
  else
    echo "tier browser: no Chromium (see above): failing"; rc=1
  fi
  return $rc
}

# The emulator tier's slowest set-up, firebase-tools from npm (minutes on a fresh machine, a
# no-op once cached outside the clone), installs in the background while the first tiers run.
firebase_log=$(mktemp)
bash emulators/install-firebase.sh >"$firebase_log" 2>&1 &
firebase_pid=$!

echo "=== lint ==="
lint_start=$SECONDS
"$BIN/ruff" check shared functions tests bench || status=1
NAMES+=("lint"); TIMES+=($((SECONDS - lint_start))); RESULTS+=($status)

tier unit tests/domain tests/services tests/test_cli.py tests/test_settings.py
tier contract -m "not emulator" tests/contract

# The emulator tier's set-up (the Tasks emulator's venv, firebase-tools, the check for Java and
# the Google emulators) counts in its time; anything missing fails the tier with what to install.
emulator_start=$SECONDS
firebase_ok=0
wait "$firebase_pid" || { firebase_ok=1; cat "$firebase_log"; }
if [ $firebase_ok -eq 0 ] && bash emulators/install-tasks.sh >/dev/null && bash emulators/check.sh; then
  tier emulator -m emulator tests/contract tests/emulator tests/api
  TIMES[-1]=$((SECONDS - emulator_start))
else
  echo "tier emulator: emulators missing (see above): failing"
  NAMES+=("emulator"); TIMES+=($((SECONDS - emulator_start))); RESULTS+=(1); status=1
fi

tier functions tests/functions
tier api -m "not emulator" tests/api
tier reliability tests/reliability
run_tier web web_tests
run_tier browser browser_tests

echo "=== tier times ==="
for i in "${!NAMES[@]}"; do
  printf '%-12s %4ss  %s\n' "${NAMES[$i]}" "${TIMES[$i]}" \
    "$([ "${RESULTS[$i]}" -eq 0 ] && echo ok || echo FAILED)"
done
exit $status
