"""pytest plugin: Google's emulators for the tests that ask for them (registered in conftest.py).

Nothing starts unless a test requests one of these fixtures:

- `emulators` (session): Firestore, Pub/Sub, fake-gcs-server and Cloud Tasks on 127.0.0.1, started
  together on first use and stopped at the end of the session, whatever happened. If one cannot
  start, every test that asks for it errors with what is missing (never a skip).
- `emulator_env` (function): the process environment pointed at them (`FIRESTORE_EMULATOR_HOST`,
  `PUBSUB_EMULATOR_HOST`, `STORAGE_EMULATOR_HOST`, `CFP_TASKS_EMULATOR_HOST`,
  `GOOGLE_CLOUD_PROJECT`), undone after the test.
- `firestore_reset` (function): empties the Firestore databases the test uses before it runs.
  Those are the value of the fixture `firestore_databases`, `("(default)",)` unless a test
  module or conftest overrides it, e.g.::

      @pytest.fixture
      def firestore_databases() -> tuple[str, ...]:
          return ("(default)", "eu-west1")

  (Resetting one database leaves the others as they were, so name every one the test writes.)
- `firebase_auth_emulator` (session): the Firebase Auth emulator (firebase-tools, node) on
  127.0.0.1, apart from the others so that only the tests asking for it pay its start (~10 s of
  compiling its API schema). It does not touch the environment: a test that wants firebase-admin
  to use it sets `FIREBASE_AUTH_EMULATOR_HOST` itself (monkeypatch), since that variable also
  turns off firebase-admin's signature checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cfp.adapters.gcp.emulators import Emulators, start_emulators


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    running = start_emulators(log_dir=tmp_path_factory.mktemp("emulator-logs"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def firebase_auth_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    running = start_emulators(
        ["firebase"], log_dir=tmp_path_factory.mktemp("firebase-logs"), timeout=90
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def emulator_env(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> Emulators:
    for name, value in {**emulators.env(), "GOOGLE_CLOUD_PROJECT": emulators.project}.items():
        monkeypatch.setenv(name, value)
    return emulators


@pytest.fixture
def firestore_databases() -> tuple[str, ...]:
    return ("(default)",)


@pytest.fixture
def firestore_reset(emulators: Emulators, firestore_databases: tuple[str, ...]) -> Emulators:
    emulators.reset_firestore(firestore_databases)
    return emulators
