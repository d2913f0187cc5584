"""The emulators answer real client round trips, listen on 127.0.0.1 only, leave no process
behind, and say what is missing when they cannot start."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from cfp.adapters.gcp.emulators import SERVICES, EmulatorError, Emulators, start_emulators
from google.auth.credentials import AnonymousCredentials

pytestmark = pytest.mark.emulator

NAMED_DATABASE = "cfp-test-named"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- /proc helpers: which processes an emulator owns and what they listen on -------------------


def group_members(pgid: int) -> set[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.add(int(entry.name))
    return members


def listening_sockets() -> dict[int, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """inode -> (address, port) of every listening TCP socket on the machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], int(cols[9])
            if state != "0A":  # TCP_LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = b"".join(
                bytes.fromhex(hex_addr[i : i + 8])[::-1] for i in range(0, len(hex_addr), 8)
            )
            found[inode] = (ipaddress.ip_address(raw), int(hex_port, 16))
    return found


def sockets_of(pid: int) -> set[int]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def wait_gone(pids: set[int], within: float = 5.0) -> set[int]:
    """The pids of `pids` still alive (zombies count as gone) after waiting up to `within`."""
    deadline = time.monotonic() + within
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


# --- round trips through Google's own client libraries ----------------------------------------


def test_env_names_every_running_emulator(emulators: Emulators) -> None:
    env = emulators.env()
    assert env == {
        "FIRESTORE_EMULATOR_HOST": emulators.firestore_host,
        "PUBSUB_EMULATOR_HOST": emulators.pubsub_host,
        "STORAGE_EMULATOR_HOST": emulators.gcs_url,
        "CFP_TASKS_EMULATOR_HOST": emulators.tasks_host,
    }
    assert all(value.removeprefix("http://").startswith("127.0.0.1:") for value in env.values())


def test_firestore_round_trip_and_reset_per_database(emulator_env: Emulators) -> None:
    from google.cloud import firestore

    default = firestore.Client(project=emulator_env.project, credentials=AnonymousCredentials())
    named = firestore.Client(
        project=emulator_env.project, credentials=AnonymousCredentials(), database=NAMED_DATABASE
    )
    collection = unique("orders")
    default.collection(collection).document("a").set({"total": 3})
    named.collection(collection).document("b").set({"total": 4})
    assert default.collection(collection).document("a").get().to_dict() == {"total": 3}

    emulator_env.reset_firestore(["(default)"])
    assert not default.collection(collection).document("a").get().exists
    assert named.collection(collection).document("b").get().to_dict() == {"total": 4}

    emulator_env.reset_firestore([NAMED_DATABASE])
    assert not named.collection(collection).document("b").get().exists


@pytest.fixture
def firestore_databases() -> tuple[str, ...]:
    return ("(default)", NAMED_DATABASE)


@pytest.mark.parametrize("run", [1, 2])
def test_firestore_reset_fixture_empties_every_named_database(
    firestore_reset: Emulators, emulator_env: Emulators, run: int
) -> None:
    from google.cloud import firestore

    for database in ("(default)", NAMED_DATABASE):
        client = firestore.Client(
            project=emulator_env.project, credentials=AnonymousCredentials(), database=database
        )
        # The same document each run: the second run sees it only if the reset did not happen.
        doc = client.collection("reset-fixture").document("only")
        assert not doc.get().exists, f"{database} not reset before run {run}"
        doc.set({"run": run})


def test_pubsub_round_trip(emulator_env: Emulators) -> None:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        topic = publisher.topic_path(emulator_env.project, unique("orders"))
        subscription = subscriber.subscription_path(emulator_env.project, unique("sub"))
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)
        publisher.publish(topic, b'{"id": 1}', tenant="t1").result(timeout=30)

        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=30)
        [received] = response.received_messages
        assert received.message.data == b'{"id": 1}'
        assert received.message.attributes["tenant"] == "t1"
        subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
    finally:
        publisher.stop()
        publisher.transport.close()
        subscriber.close()


def test_gcs_round_trip(emulator_env: Emulators) -> None:
    from google.cloud import storage

    client = storage.Client(project=emulator_env.project, credentials=AnonymousCredentials())
    bucket = client.create_bucket(unique("payloads"))
    bucket.blob("events/1.json").upload_from_string(
        b'{"big": true}', content_type="application/json"
    )
    assert bucket.blob("events/1.json").download_as_bytes() == b'{"big": true}'
    assert [blob.name for blob in client.list_blobs(bucket.name)] == ["events/1.json"]


class _Received(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.calls.append((self.path, headers, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def task_target() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """An HTTP server on 127.0.0.1 recording what the Tasks emulator delivers."""
    calls: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Handler", (_Received,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_tasks_round_trip(
    emulators: Emulators, task_target: tuple[str, list[tuple[str, dict[str, str], bytes]]]
) -> None:
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    assert emulators.tasks_host
    url, calls = task_target
    channel = grpc.insecure_channel(emulators.tasks_host)
    try:
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        parent = f"projects/{emulators.project}/locations/us-central1"
        queue = client.create_queue(parent=parent, queue={"name": f"{parent}/queues/{unique('q')}"})
        task = client.create_task(
            parent=queue.name,
            task={"http_request": {"url": f"{url}/run", "body": b"retry-me"}},
        )
        assert task.name.startswith(f"{queue.name}/tasks/")

        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        [(path, headers, body)] = calls
        assert (path, body) == ("/run", b"retry-me")
        assert headers["x-cloudtasks-queuename"] == queue.name
    finally:
        channel.close()


# --- loopback only, nothing left behind --------------------------------------------------------


def test_emulators_listen_on_loopback_only(emulators: Emulators) -> None:
    listening = listening_sockets()
    seen: dict[str, set[int]] = {}
    for name, pgid in emulators.pids.items():
        for pid in group_members(pgid):
            for inode in sockets_of(pid) & listening.keys():
                address, port = listening[inode]
                assert is_loopback(address), f"{name} (pid {pid}) listens on {address}:{port}"
                seen.setdefault(name, set()).add(port)
    hosts = emulators.env()
    expected = {
        "firestore": hosts["FIRESTORE_EMULATOR_HOST"],
        "pubsub": hosts["PUBSUB_EMULATOR_HOST"],
        "gcs": hosts["STORAGE_EMULATOR_HOST"],
        "tasks": hosts["CFP_TASKS_EMULATOR_HOST"],
    }
    for name, host in expected.items():
        assert int(host.rsplit(":", 1)[1]) in seen.get(name, set()), f"{name} not found listening"


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    running = start_emulators(log_dir=tmp_path)
    members = {pid for pgid in running.pids.values() for pid in group_members(pgid)}
    assert set(running.pids.values()) <= members
    assert any("java" in Path(f"/proc/{pid}/comm").read_text() for pid in members)

    running.stop()
    assert wait_gone(members) == set()
    assert running.env() == {} and running.pids == {}
    running.stop()  # idempotent


# --- failures say what is missing -------------------------------------------------------------


def fake_scripts(folder: Path, scripts: dict[str, str]) -> Path:
    """An emulators folder whose scripts are the given bash bodies."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        body = scripts.get(name, "exit 1")
        (folder / f"{name}.sh").write_text(f"#!/usr/bin/env bash\n{body}\n")
    (folder / "install-tasks.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    return folder


def test_a_missing_emulator_raises_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = (
        "Firestore emulator not found at /nowhere: "
        "apt-get install google-cloud-cli-firestore-emulator"
    )
    monkeypatch.setenv(
        "CFP_EMULATORS_DIR",
        str(fake_scripts(tmp_path / "em", {"firestore": f"echo '{missing}' >&2; exit 1"})),
    )
    with pytest.raises(EmulatorError) as caught:
        start_emulators(["firestore"], log_dir=tmp_path / "logs")
    message = str(caught.value)
    assert "firestore emulator exited with code 1 before it was ready" in message
    assert missing in message


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(EmulatorError, match="java not found: install openjdk-17-jre-headless"):
        start_emulators(["pubsub"], log_dir=tmp_path)


def test_a_failure_stops_the_emulators_already_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "firestore.pid"
    scripts = {
        "firestore": f"echo $$ > {pid_file}; exec sleep 600",  # never answers
        "pubsub": "sleep 0.5; echo 'pubsub broke' >&2; exit 3",
    }
    monkeypatch.setenv("CFP_EMULATORS_DIR", str(fake_scripts(tmp_path / "em", scripts)))
    with pytest.raises(
        EmulatorError, match=r"(?s)pubsub emulator exited with code 3.*pubsub broke"
    ):
        start_emulators(["firestore", "pubsub"], log_dir=tmp_path / "logs")
    assert wait_gone({int(pid_file.read_text())}) == set()


def test_an_emulator_that_never_answers_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "gcs.pid"
    scripts = {"gcs": f"echo $$ > {pid_file}; echo 'still booting'; exec sleep 600"}
    monkeypatch.setenv("CFP_EMULATORS_DIR", str(fake_scripts(tmp_path / "em", scripts)))
    with pytest.raises(
        EmulatorError, match=r"(?s)gcs emulator did not answer .* within 1s.*still booting"
    ):
        start_emulators(["gcs"], log_dir=tmp_path / "logs", timeout=1)
    assert wait_gone({int(pid_file.read_text())}) == set()


def test_scripts_folder_missing_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CFP_EMULATORS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(EmulatorError, match="CFP_EMULATORS_DIR"):
        start_emulators(["firestore"])


def test_unknown_emulator_is_refused() -> None:
    with pytest.raises(EmulatorError, match="unknown emulator"):
        start_emulators(["spanner"])
