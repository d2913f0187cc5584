"""Secrets never in clear: passwords, access and refresh tokens, API keys, the TOTP seed,
recovery codes, MFA challenges, reset and invite tokens are made and used over HTTP the way
people and the workbench use them — and then looked for, value by value, in every log line
(the app's log stream and Python logging), every row of the data dir's SQLite database, every
other file the app stored (but the outbox, where the mails that carry tokens are meant to be)
and every error body. None may be there."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.api.conftest import ok_json
from tests.api.control import (
    ADMIN,
    PASSWORD,
    bearer,
    join,
    last_mail_token,
    platform,
    region,
    signin,
    start,
)

pytestmark = pytest.mark.api

NEW_PASSWORD = "a brand new passphrase for ada"
PERSON = "ada@acme.example"


class Recorder:
    """The client, keeping every response it got."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.responses: list[Any] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        self.responses.append(response)
        return response

    def errors(self) -> list[str]:
        return [
            f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text} "
            + json.dumps(dict(r.headers))
            for r in self.responses
            if r.status_code >= 400
        ]


def stored(data_dir: Path) -> dict[str, str]:
    """Every row of every SQLite database under `data_dir`, and every other file but the
    outbox's mails, as text by where it was found."""
    found: dict[str, str] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        if "outbox" in path.relative_to(data_dir).parts:
            continue
        if path.suffix == ".db":
            uri = f"file:{path}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                tables = [
                    r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                ]
                for table in tables:
                    for n, row in enumerate(db.execute(f'SELECT * FROM "{table}"')):
                        found[f"{path.name}:{table}:{n}"] = " ".join(map(str, row))
        elif not path.name.endswith((".db-wal", ".db-shm", ".db-journal")):  # read as rows
            found[str(path.relative_to(data_dir))] = path.read_bytes().decode("latin-1")
    return found


def variants(secret: str) -> set[str]:
    """A secret as it could be written down: as issued, and a recovery code without dashes."""
    return {secret, secret.replace("-", "")} if len(secret) > 12 else {secret}


def test_no_secret_is_in_logs_error_bodies_or_stored_documents(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = start(serve)
    http = Recorder(client)
    secrets: dict[str, str] = {"the admin's password": PASSWORD}

    # sign in, and refresh (the old refresh token, reused, ends the session)
    admin = ok_json(http("POST", "/v1/auth/signin", json={"email": ADMIN, "password": PASSWORD}))
    secrets |= {"access token": admin["access_token"], "refresh token": admin["refresh_token"]}
    rotated = ok_json(
        http("POST", "/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    )
    secrets |= {
        "rotated access": rotated["access_token"],
        "rotated refresh": rotated["refresh_token"],
    }
    assert (
        http("POST", "/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]}).status_code
        == 401
    )
    assert http("GET", "/v1/me", headers=bearer(rotated)).status_code == 401  # its session ended
    admin = signin(client)
    secrets |= {"admin access": admin["access_token"], "admin refresh": admin["refresh_token"]}
    tenant = {"name": "Acme", "region": region(client), "id": "acme"}
    ok_json(http("POST", "/v1/tenants", json=tenant, headers=bearer(admin)), 201)

    # an invite, accepted (the invite token travels by mail only)
    ada = join(client, admin, "acme", PERSON, "tenant_admin", "tenant/acme")
    secrets["invite token"] = last_mail_token(client, "cfp_inv_")
    secrets |= {
        "ada's access": ada.tokens["access_token"],
        "ada's refresh": ada.tokens["refresh_token"],
    }
    again = {"token": secrets["invite token"], "password": PASSWORD}
    assert http("POST", "/v1/auth/invites/accept", json=again).status_code == 401

    # TOTP: enrol, confirm, sign in with a challenge and a recovery code
    enrolment = ok_json(http("POST", "/v1/auth/mfa/totp", headers=bearer(ada.tokens)))
    secrets |= {"TOTP seed": enrolment["secret"], "otpauth URI": enrolment["otpauth_uri"]}
    wrong = {"code": enrolment["secret"]}
    assert (
        http(
            "POST", "/v1/auth/mfa/totp/confirm", json=wrong, headers=bearer(ada.tokens)
        ).status_code
        == 422
    )
    code = {"code": pyotp.TOTP(enrolment["secret"]).now()}
    enabled = ok_json(
        http("POST", "/v1/auth/mfa/totp/confirm", json=code, headers=bearer(ada.tokens))
    )
    for n, recovery in enumerate(enabled["recovery_codes"]):
        secrets[f"recovery code {n}"] = recovery
    secrets["access after MFA"] = enabled["tokens"]["access_token"]
    secrets["refresh after MFA"] = enabled["tokens"]["refresh_token"]
    challenge = ok_json(
        http("POST", "/v1/auth/signin", json={"email": PERSON, "password": PASSWORD})
    )["challenge_id"]
    secrets["MFA challenge"] = challenge
    verify = {"challenge_id": challenge, "code": enabled["recovery_codes"][0]}
    assert http("POST", "/v1/auth/mfa/verify", json={**verify, "code": "000000"}).status_code == 401
    ada_tokens = ok_json(http("POST", "/v1/auth/mfa/verify", json=verify))
    secrets["access after verify"] = ada_tokens["access_token"]
    secrets["refresh after verify"] = ada_tokens["refresh_token"]
    assert http("POST", "/v1/auth/mfa/verify", json=verify).status_code == 401  # used up

    # API keys: create, use, rotate; the old one refused
    h = bearer(ada_tokens, "acme")
    robot = ok_json(http("POST", "/v1/service-accounts", json={"name": "robot"}, headers=h), 201)
    keys = f"/v1/service-accounts/{robot['id']}/keys"
    first = ok_json(http("POST", keys, headers=h), 201)
    secrets["API key"] = first["key"]
    secrets["API key secret"] = first["key"][len("cfp_sk_") + 17 :]
    role = {"principal": robot["id"], "role": "tenant_viewer", "scope": "tenant/acme"}
    ok_json(http("POST", "/v1/role-bindings", json=role, headers=h), 201)
    ok_json(http("GET", "/v1/teams", headers=bearer(first["key"], "acme")))
    rotate = f"{keys}/{first['api_key']['key_id']}/rotate"
    second = ok_json(http("POST", rotate, headers=h), 201)
    secrets["rotated API key"] = second["key"]
    secrets["rotated API key secret"] = second["key"][len("cfp_sk_") + 17 :]
    assert http("GET", "/v1/teams", headers=bearer(first["key"], "acme")).status_code == 401

    # forgot and reset; the used token refused, the old password too
    accepted = http("POST", "/v1/auth/forgot", json={"email": ADMIN})
    assert accepted.status_code == 202
    secrets["reset token"] = last_mail_token(client, "cfp_pr_")
    reset = {"token": secrets["reset token"], "password": NEW_PASSWORD}
    assert http("POST", "/v1/auth/reset", json=reset).status_code == 204
    secrets["new password"] = NEW_PASSWORD
    assert http("POST", "/v1/auth/reset", json=reset).status_code == 401
    old = {"email": ADMIN, "password": PASSWORD}
    assert http("POST", "/v1/auth/signin", json=old).status_code == 401
    assert http("GET", "/v1/me", headers=bearer(admin)).status_code == 401  # sessions ended
    invalid = {"email": ADMIN, "password": NEW_PASSWORD, "remember": PASSWORD}
    assert http("POST", "/v1/auth/signin", json=invalid).status_code == 422
    ok_json(http("POST", "/v1/auth/signin", json={"email": ADMIN, "password": NEW_PASSWORD}))

    documents = stored(Path(platform(client).settings.data_dir))
    where = {
        "the log stream": platform(client).logbook.stream.getvalue(),
        "Python logging": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        **{f"error body {n}": text for n, text in enumerate(http.errors())},
        **documents,
    }
    # the scan sees what is stored in clear: the principals, the key's id, the session's
    for visible in (ada.id, PERSON, first["api_key"]["key_id"], ada_tokens["session_id"]):
        assert any(visible in text for text in documents.values()), visible
    assert len(http.errors()) >= 10 and len(secrets) > 20
    found = [
        f"{label} in {place}"
        for label, secret in secrets.items()
        for place, text in where.items()
        if any(v in text for v in variants(secret))
    ]
    assert found == []
