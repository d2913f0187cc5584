"""Start and stop Google's emulators (Firestore, Pub/Sub, Firebase Auth) and fakes (fake-gcs-server,
Cloud Tasks) on 127.0.0.1, for `cfp dev --backend emulators` and the tests.

Each emulator is one script in the repository's `emulators/` folder (or `CFP_EMULATORS_DIR`) that
execs the server in the foreground; this module runs it in its own process group, waits until it
answers and kills the whole group on stop. No cloud library is imported here.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cfp.errors import CfpError

SERVICES = ("firestore", "pubsub", "gcs", "tasks")  # the default set
# Started only when asked for: the Firebase Auth emulator (firebase-tools, node).
OPTIONAL_SERVICES = ("firebase",)
SCRIPTS = {"firebase": "firebase-auth.sh"}  # else `{name}.sh`
EXTRA_PORTS = {"firebase": 2}  # its emulator hub and logging ports
DEFAULT_PROJECT = "cfp-local"
LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40
STOP_GRACE_SECONDS = 10.0


class EmulatorError(CfpError):
    """An emulator is missing, failed to start or did not answer; the message says which and why."""

    status, code = 503, "emulator_unavailable"


def emulators_dir() -> Path:
    """The folder holding the emulator scripts: `CFP_EMULATORS_DIR`, else the repository's."""
    configured = os.environ.get("CFP_EMULATORS_DIR")
    folder = Path(configured) if configured else Path(__file__).resolve().parents[4] / "emulators"
    if not (folder / "firestore.sh").is_file():
        raise EmulatorError(
            f"emulator scripts not found in {folder}: set CFP_EMULATORS_DIR to the clone's "
            "emulators/ folder"
        )
    return folder


@dataclass
class Emulators:
    """Running emulators: their addresses, and the processes this object owns."""

    project: str
    firestore_host: str | None = None  # "127.0.0.1:PORT"
    pubsub_host: str | None = None  # "127.0.0.1:PORT"
    gcs_url: str | None = None  # "http://127.0.0.1:PORT"
    tasks_host: str | None = None  # "127.0.0.1:PORT" (gRPC, insecure channel)
    firebase_auth_host: str | None = None  # "127.0.0.1:PORT"
    log_dir: Path | None = None
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """The variables that point Google's client libraries (and cfp) at the running emulators."""
        pairs = {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            "CFP_TASKS_EMULATOR_HOST": self.tasks_host,
            "FIREBASE_AUTH_EMULATOR_HOST": self.firebase_auth_host,
        }
        return {name: value for name, value in pairs.items() if value}

    @property
    def pids(self) -> dict[str, int]:
        """Process id (also the process group id) of each emulator started."""
        return {name: proc.pid for name, proc in self._procs.items()}

    def reset_firestore(self, databases: Iterable[str] = ("(default)",)) -> None:
        """Delete every document of each database (resetting one leaves the others as they were)."""
        if not self.firestore_host:
            raise EmulatorError("the Firestore emulator is not running")
        project = urllib.parse.quote(self.project, safe="")
        for database in databases:
            name = urllib.parse.quote(database, safe="()")
            url = (
                f"http://{self.firestore_host}/emulator/v1/projects/{project}"
                f"/databases/{name}/documents"
            )
            request = urllib.request.Request(url, method="DELETE")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")
                hint = (
                    " (a transaction left open still holds a lock: roll it back or finish it)"
                    if exc.code == 409
                    else ""
                )
                raise EmulatorError(
                    f"resetting Firestore database {database!r} failed: "
                    f"HTTP {exc.code} {body}{hint}"
                ) from exc
            except (urllib.error.URLError, OSError) as exc:
                raise EmulatorError(
                    f"resetting Firestore database {database!r} failed: {exc}"
                ) from exc

    def reset_firebase_auth(self) -> None:
        """Delete every user of the Firebase Auth emulator's project."""
        if not self.firebase_auth_host:
            raise EmulatorError("the Firebase Auth emulator is not running")
        project = urllib.parse.quote(self.project, safe="")
        url = f"http://{self.firebase_auth_host}/emulator/v1/projects/{project}/accounts"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, method="DELETE"), timeout=30
            ) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise EmulatorError(f"resetting the Firebase Auth emulator failed: {exc}") from exc

    def stop(self) -> None:
        """Stop every emulator and all its processes (java and node included); safe to call
        twice."""
        procs, self._procs = self._procs, {}
        for proc in procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Also catches anything the leader left behind in its group.
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        self.firestore_host = self.pubsub_host = self.gcs_url = self.tasks_host = None
        self.firebase_auth_host = None
        atexit.unregister(self.stop)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.log_dir = None


def start_emulators(
    services: Iterable[str] = SERVICES,
    *,
    project: str = DEFAULT_PROJECT,
    log_dir: Path | None = None,
    timeout: float = 60,
) -> Emulators:
    """Start the requested emulators on free 127.0.0.1 ports and wait until each answers
    (the default set: SERVICES; "firebase" only when named).

    On any failure the ones already started are stopped and EmulatorError says which emulator
    failed, and shows the tail of its log.
    """
    wanted = list(dict.fromkeys(services))
    known = [*SERVICES, *OPTIONAL_SERVICES]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise EmulatorError(f"unknown emulator(s) {unknown}; known: {known}")
    folder = emulators_dir()
    if "tasks" in wanted:
        _install(folder, "install-tasks.sh", "the Cloud Tasks emulator")
    if "firebase" in wanted:
        _install(folder, "install-firebase.sh", "firebase-tools (the Firebase Auth emulator)")

    emulators = Emulators(project=project)
    if log_dir is None:
        emulators._tmp = tempfile.TemporaryDirectory(prefix="cfp-emulators-")
        log_dir = Path(emulators._tmp.name)
    log_dir.mkdir(parents=True, exist_ok=True)
    emulators.log_dir = log_dir
    atexit.register(emulators.stop)

    free = iter(_free_ports(len(wanted) + sum(EXTRA_PORTS.get(name, 0) for name in wanted)))
    ports = {name: next(free) for name in wanted}
    env = {
        **os.environ,
        "CFP_PYTHON": sys.executable,
        "CFP_FIREBASE_WORKDIR": str(log_dir / "firebase"),
    }
    try:
        for name in wanted:
            # Pub/Sub accepts every project (pubsub.sh is given none), so a test may isolate
            # itself in a project of its own; `project` is the default the callers share.
            args = [str(ports[name])]
            if name == "firebase":
                args += [str(next(free)), str(next(free)), project]
            with (log_dir / f"{name}.log").open("wb") as log:
                emulators._procs[name] = subprocess.Popen(
                    ["bash", str(folder / SCRIPTS.get(name, f"{name}.sh")), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
        _wait_ready(emulators, ports, log_dir, timeout)
    except BaseException:
        emulators.stop()
        raise
    address = {name: f"{LOOPBACK}:{port}" for name, port in ports.items()}
    emulators.firestore_host = address.get("firestore")
    emulators.pubsub_host = address.get("pubsub")
    emulators.gcs_url = f"http://{address['gcs']}" if "gcs" in address else None
    emulators.tasks_host = address.get("tasks")
    emulators.firebase_auth_host = address.get("firebase")
    return emulators


def _install(folder: Path, script: str, what: str) -> None:
    """Run an emulator's installer (the Tasks emulator's venv, firebase-tools): a fast no-op once
    installed."""
    result = subprocess.run(
        ["bash", str(folder / script)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise EmulatorError(
            f"installing {what} failed (emulators/{script} exited "
            f"{result.returncode}):\n{_tail(result.stderr + result.stdout)}"
        )


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free on 127.0.0.1, all distinct."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_ready(emulators: Emulators, ports: dict[str, int], log_dir: Path, timeout: float) -> None:
    pending = dict(ports)
    deadline = time.monotonic() + timeout
    while pending:
        for name, port in list(pending.items()):
            code = emulators._procs[name].poll()
            if code is not None:
                raise EmulatorError(
                    f"{name} emulator exited with code {code} before it was ready; "
                    f"log {log_dir / f'{name}.log'}:\n{_log_tail(log_dir, name)}"
                )
            if _answers(name, port):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            name = next(iter(pending))
            raise EmulatorError(
                f"{name} emulator did not answer on {LOOPBACK}:{pending[name]} within {timeout}s; "
                f"log {log_dir / f'{name}.log'}:\n{_log_tail(log_dir, name)}"
            )
        time.sleep(0.05)


def _answers(name: str, port: int) -> bool:
    """Whether the emulator on `port` is ready: HTTP for the HTTP ones, a TCP connect for gRPC."""
    if name == "tasks":
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return True
        except OSError:
            return False
    path = "/storage/v1/b" if name == "gcs" else "/"
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=0.5) as response:
            body = response.read()
    except (urllib.error.URLError, OSError):
        return False
    if name == "firebase":  # {"authEmulator": {"ready": true, ...}}
        try:
            return json.loads(body)["authEmulator"]["ready"] is True
        except (ValueError, KeyError, TypeError):
            return False
    # Firestore and Pub/Sub answer "Ok" on / once they serve.
    return name == "gcs" or body.strip() == b"Ok"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _log_tail(log_dir: Path, name: str) -> str:
    try:
        return _tail((log_dir / f"{name}.log").read_text(errors="replace"))
    except OSError as exc:
        return f"(no log: {exc})"


def _tail(text: str) -> str:
    lines = text.rstrip().splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(empty log)"
