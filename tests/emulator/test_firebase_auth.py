"""Identity Platform / Firebase ID tokens: `FirebaseVerifier` (shared/cfp/adapters/gcp/
firebase_auth.py) and their mapping to the platform's principals (services/identity/external.py).

The sign-in path runs against the Firebase Auth emulator: users signed up and signed in over its
REST API, their ID tokens sent to the app. firebase-admin skips signature and expiry checks in
emulator mode, so those are proven without it, against Google-shaped certificates served on
127.0.0.1 by `FakeGoogle`; it also answers the revocation lookup, so revocation is checked in
both modes.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import firebase_admin._token_gen
import firebase_admin._user_mgt
import httpx
import jwt
import pytest
from cfp.adapters.gcp.emulators import SERVICES, EmulatorError, Emulators, start_emulators
from cfp.adapters.gcp.firebase_auth import FirebaseVerifier
from cfp.api.app import create_app
from cfp.app import Platform
from cfp.errors import SettingsError, Unauthorized, Unavailable
from cfp.services.identity.external import external_identity_path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.emulator.test_emulators import group_members, is_loopback, listening_sockets, sockets_of

pytestmark = pytest.mark.emulator

PROJECT = "cfp-local"  # the emulator's project, and the platform's on the local backend
PASSWORD = "correct horse battery staple"
MINI = {
    "steps/ping_step.py": """
        config = {"type": "api", "name": "Ping", "path": "/ping", "method": "GET", "flows": ["f"]}

        async def handler(req, context):
            return {"status": 200, "body": {"pong": True}}
    """,
}


# --- the Firebase Auth emulator over REST ------------------------------------------------------


class AuthEmulator:
    """The emulator's client (API key) and admin ("Bearer owner") REST endpoints."""

    def __init__(self, host: str, project: str) -> None:
        self.host = host
        self.project = project
        self.base = f"http://{host}/identitytoolkit.googleapis.com/v1"

    def _post(self, path: str, body: dict[str, Any], *, admin: bool = False) -> dict[str, Any]:
        headers = {"Authorization": "Bearer owner"} if admin else {}
        url = f"{self.base}/projects/{self.project}{path}" if admin else f"{self.base}{path}"
        response = httpx.post(url, json=body, headers=headers, params={"key": "fake-api-key"})
        assert response.status_code == 200, response.text
        return response.json()

    def sign_up(self, email: str, password: str = PASSWORD) -> str:
        """A new user with an unverified email; its uid."""
        body = {"email": email, "password": password, "returnSecureToken": True}
        return self._post("/accounts:signUp", body)["localId"]

    def sign_in(self, email: str, password: str = PASSWORD) -> str:
        """An ID token, as a web client gets it."""
        body = {"email": email, "password": password, "returnSecureToken": True}
        return self._post("/accounts:signInWithPassword", body)["idToken"]

    def update(self, uid: str, **fields: Any) -> None:
        """Change a user as an administrator: emailVerified, email, disableUser, validSince."""
        self._post("/accounts:update", {"localId": uid, **fields}, admin=True)


@pytest.fixture
def auth_emulator(
    firebase_auth_emulator: Emulators, monkeypatch: pytest.MonkeyPatch
) -> AuthEmulator:
    firebase_auth_emulator.reset_firebase_auth()
    host = str(firebase_auth_emulator.firebase_auth_host)
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", host)
    return AuthEmulator(host, firebase_auth_emulator.project)


@pytest.fixture
async def platform(make_platform: Any, auth_emulator: AuthEmulator) -> Platform:
    return await make_platform(
        MINI, firebase_auth_emulator_host=auth_emulator.host, password_profile="test"
    )


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def verified_user(emulator: AuthEmulator, email: str) -> tuple[str, str]:
    """A Firebase user whose email an administrator marked verified: (uid, fresh ID token)."""
    uid = emulator.sign_up(email)
    emulator.update(uid, emailVerified=True)
    return uid, emulator.sign_in(email)


# --- the emulator itself ----------------------------------------------------------------------


def test_the_emulator_listens_on_loopback_only(firebase_auth_emulator: Emulators) -> None:
    assert "firebase" not in SERVICES  # only the tests that ask for it pay its start
    listening = listening_sockets()
    ports = set()
    for pid in group_members(firebase_auth_emulator.pids["firebase"]):
        for inode in sockets_of(pid) & listening.keys():
            address, port = listening[inode]
            assert is_loopback(address), f"pid {pid} listens on {address}:{port}"
            ports.add(port)
    auth_port = int(str(firebase_auth_emulator.firebase_auth_host).rsplit(":", 1)[1])
    assert auth_port in ports and len(ports) == 3  # auth, the hub and the logging server


def test_missing_node_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat"):
        (bin_dir / tool).symlink_to(str(shutil.which(tool)))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("CFP_FIREBASE_TOOLS_DIR", str(tmp_path / "firebase-tools"))
    with pytest.raises(EmulatorError, match=r"node not found: install Node\.js 20"):
        start_emulators(["firebase"], log_dir=tmp_path / "logs")


# --- the sign-in path, on the emulator ---------------------------------------------------------


async def test_emulator_id_token_verifies_to_the_firebase_user(auth_emulator: AuthEmulator):
    uid, token = verified_user(auth_emulator, "grace@example.com")
    verifier = FirebaseVerifier(PROJECT, emulator_host=auth_emulator.host)
    try:
        identity = await verifier.verify(token)
    finally:
        await verifier.close()
    assert (identity.uid, identity.email, identity.email_verified, identity.provider) == (
        uid,
        "grace@example.com",
        True,
        "firebase:cfp-local",
    )
    assert identity.claims["firebase"]["sign_in_provider"] == "password"


async def test_signed_in_user_is_the_principal_with_the_same_verified_email(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    ada = await platform.control.identity.create_user("ada@example.com", password=PASSWORD)
    uid, token = verified_user(auth_emulator, "Ada@Example.com")

    response = await me(client, token)
    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["email"]) == (ada.id, "ada@example.com")

    link = await platform.documents.get(external_identity_path("firebase:cfp-local", uid))
    assert link is not None and link["principal"] == ada.id
    assert (await me(client, token)).json()["id"] == ada.id  # linked once, audited once
    records = await platform.control.audit.list("system", action="auth.external.link")
    assert [(r["actor"]["id"], r["target"]["id"]) for r in records.items] == [(ada.id, ada.id)]


async def test_an_unverified_email_never_links(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    await platform.control.identity.create_user("bob@example.com", password=PASSWORD)
    uid = auth_emulator.sign_up("bob@example.com")
    token = auth_emulator.sign_in("bob@example.com")

    response = await me(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unknown_identity"
    assert await platform.documents.get(external_identity_path("firebase:cfp-local", uid)) is None


async def test_an_identity_without_an_account_is_401(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    _, token = verified_user(auth_emulator, "stranger@example.com")
    response = await me(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unknown_identity"


async def test_once_linked_the_link_decides_not_the_email(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    carol = await platform.control.identity.create_user("carol@example.com", password=PASSWORD)
    await platform.control.identity.create_user("dave@example.com", password=PASSWORD)
    uid, token = verified_user(auth_emulator, "carol@example.com")
    assert (await me(client, token)).json()["id"] == carol.id

    auth_emulator.update(uid, email="dave@example.com", emailVerified=True)
    token = auth_emulator.sign_in("dave@example.com")
    assert (await me(client, token)).json()["id"] == carol.id


async def test_a_disabled_principal_is_refused(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    erin = await platform.control.identity.create_user("erin@example.com", password=PASSWORD)
    _, token = verified_user(auth_emulator, "erin@example.com")
    assert (await me(client, token)).status_code == 200
    await platform.control.identity.set_status(erin.id, "disabled")
    response = await me(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "account_disabled"


async def test_revoked_and_disabled_at_the_provider_are_401(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    await platform.control.identity.create_user("frank@example.com", password=PASSWORD)
    uid, token = verified_user(auth_emulator, "frank@example.com")
    assert (await me(client, token)).status_code == 200

    await asyncio.sleep(1.1)  # revocation has one-second precision: revoke after the token's `iat`
    auth_emulator.update(uid, validSince=str(int(time.time())))
    response = await me(client, token)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_revoked")

    token = auth_emulator.sign_in("frank@example.com")
    assert (await me(client, token)).status_code == 200
    auth_emulator.update(uid, disableUser=True)
    response = await me(client, token)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_revoked")


async def test_platform_tokens_and_api_keys_still_work_beside_the_verifier(
    platform: Platform, client: httpx.AsyncClient, auth_emulator: AuthEmulator
):
    gina = await platform.control.identity.create_user("gina@example.com", password=PASSWORD)
    signed_in = await platform.control.identity.signin("gina@example.com", PASSWORD)
    assert (await me(client, signed_in.access_token)).json()["id"] == gina.id  # type: ignore[union-attr]
    key = json.loads(platform.credentials_path.read_text())["api_key"]
    assert (await me(client, key)).status_code == 200


# --- signatures, expiry and revocation without the emulator -------------------------------------


def _self_signed(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class FakeGoogle:
    """Google's side of `verify_id_token(check_revoked=True)` on 127.0.0.1: the securetoken
    certificates `{kid: PEM}`, an OAuth token endpoint for the service account, and the Auth
    API's `accounts:lookup` answering from `users`."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    certs_fail: bool = False

    def mint(
        self,
        uid: str,
        *,
        key: rsa.RSAPrivateKey | None = None,
        project: str = PROJECT,
        age: float = 0,
        lifetime: float = 3600,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        """An ID token as securetoken.google.com issues it, issued `age` seconds ago."""
        issued = int(time.time() - age)
        payload = {
            "iss": f"https://securetoken.google.com/{project}",
            "aud": project,
            "auth_time": issued,
            "user_id": uid,
            "sub": uid,
            "iat": issued,
            "exp": int(issued + lifetime),
            "email": f"{uid}@example.com",
            "email_verified": True,
            "firebase": {"identities": {}, "sign_in_provider": "password"},
            **claims,
        }
        if algorithm == "none":
            return jwt.encode(payload, None, algorithm="none")
        signer = _pem(key or self.key)
        return jwt.encode(payload, signer, algorithm=algorithm, headers={"kid": self.kid})

    def add_user(self, uid: str, *, valid_since: float = 0, disabled: bool = False) -> None:
        self.users[uid] = {
            "localId": uid,
            "email": f"{uid}@example.com",
            "emailVerified": True,
            "validSince": str(int(valid_since)),
            "disabled": disabled,
        }


@pytest.fixture
def google(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state: dict[str, FakeGoogle] = {}

    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            fake = state["fake"]
            if self.path == "/certs" and not fake.certs_fail:
                self._json(200, {fake.kid: _self_signed(fake.key)})
            else:
                self._json(500, {"error": "unavailable"})

        def do_POST(self) -> None:
            fake = state["fake"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/token":
                self._json(200, {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"})
            elif re.fullmatch(r"/v1/projects/[^/]+/accounts:lookup", self.path):
                found = [fake.users[u] for u in json.loads(body)["localId"] if u in fake.users]
                self._json(200, {"users": found} if found else {})
            else:
                self._json(404, {"error": {"message": "NOT_FOUND"}})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    fake = state["fake"] = FakeGoogle(url=url, key=key, kid=secrets.token_hex(20))
    account = tmp_path / "service-account.json"
    account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "test",
                "private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                "client_email": f"verifier@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{url}/token",
            }
        )
    )
    # Google's addresses, as firebase-admin holds them (read when an App's auth client is made).
    monkeypatch.setattr(firebase_admin._token_gen, "ID_TOKEN_CERT_URI", f"{url}/certs")
    monkeypatch.setattr(firebase_admin._user_mgt.UserManager, "ID_TOOLKIT_URL", f"{url}/v1")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account))
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def verifier(google: FakeGoogle) -> AsyncIterator[FirebaseVerifier]:
    made = FirebaseVerifier(PROJECT)
    try:
        yield made
    finally:
        await made.close()


async def test_a_properly_signed_token_verifies(google: FakeGoogle, verifier: FirebaseVerifier):
    google.add_user("u1")
    identity = await verifier.verify(google.mint("u1"))
    assert (identity.uid, identity.email, identity.email_verified, identity.provider) == (
        "u1",
        "u1@example.com",
        True,
        "firebase:cfp-local",
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("signed by another key", "invalid_token"),
        ("unsigned, as the emulator issues them", "invalid_token"),
        ("of another project", "invalid_token"),
        ("expired", "token_expired"),
        ("issued in the future", "invalid_token"),
        ("revoked after it was issued", "token_revoked"),
        ("of a disabled user", "token_revoked"),
        ("of a deleted user", "token_revoked"),
        ("not a JWT", "invalid_token"),
    ],
)
async def test_tokens_google_would_refuse(
    google: FakeGoogle, verifier: FirebaseVerifier, case: str, code: str
):
    google.add_user("u1")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "signed by another key": lambda: google.mint("u1", key=other),
        "unsigned, as the emulator issues them": lambda: google.mint("u1", algorithm="none"),
        "of another project": lambda: google.mint("u1", project="someone-else"),
        "expired": lambda: google.mint("u1", age=7200),
        "issued in the future": lambda: google.mint("u1", age=-600),
        "revoked after it was issued": lambda: google.mint("u1", age=60),
        "of a disabled user": lambda: google.mint("u1"),
        "of a deleted user": lambda: google.mint("gone"),
        "not a JWT": lambda: "not-a-token",
    }[case]()
    if case == "revoked after it was issued":
        google.add_user("u1", valid_since=time.time() - 30)
    if case == "of a disabled user":
        google.add_user("u1", disabled=True)
    with pytest.raises(Unauthorized) as refused:
        await verifier.verify(token)
    assert refused.value.code == code
    assert token not in refused.value.message


async def test_unreachable_certificates_are_503_not_401(
    google: FakeGoogle, verifier: FirebaseVerifier
):
    google.certs_fail = True
    with pytest.raises(Unavailable):
        await verifier.verify(google.mint("u1"))


async def test_emulator_mode_must_match_the_environment(
    google: FakeGoogle, verifier: FirebaseVerifier, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    with pytest.raises(SettingsError, match="skip ID token signature checks"):
        await verifier.verify(google.mint("u1", algorithm="none"))
    emulated = FirebaseVerifier(PROJECT, emulator_host="127.0.0.1:9199")
    with pytest.raises(SettingsError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        await emulated.verify(google.mint("u1"))
