"""Local identity on the embedded backend: passwords, sign-in, rotating refresh tokens, access
tokens and their JWKS, TOTP and recovery codes, password resets, invites, API keys, rate limits,
the audit seam, and secrets that never reach the store or the log in clear."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import json
import logging
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest
from cfp.adapters.local.documents import SqliteDocumentStore
from cfp.adapters.local.keyring import LocalKeyring
from cfp.adapters.local.mailer import OutboxMailer
from cfp.adapters.local.sqlite import Database
from cfp.domain.documents import CreateDoc, SetDoc, Write
from cfp.domain.identity import (
    ACCESS_TOKEN_TTL,
    MFA_CHALLENGE_TTL,
    REFRESH_TOKEN_TTL,
    RESET_TOKEN_TTL,
    SESSION_MAX_AGE,
    AuthEvent,
    Client,
    InviteAccepted,
    MfaRequired,
    TokenPair,
    b64url,
    b64url_decode,
    email_path,
    new_recovery_codes,
    normalize_recovery_code,
    password_problems,
    principal_path,
    secret_hash,
)
from cfp.errors import (
    BadRequest,
    CfpError,
    Conflict,
    Forbidden,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from cfp.services.identity import (
    OWASP,
    TEST,
    IdentityService,
    Limit,
    PasswordProfile,
    Passwords,
    RateLimit,
    RateLimits,
    SlidingWindowLimiter,
)

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ubadour & the unicorn"
ADA = "ada@example.com"
HERE = Client(address="203.0.113.7", user_agent="pytest")


class Clock:
    """Wall-clock time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    tmp: Path
    store: SqliteDocumentStore
    keys: LocalKeyring
    mailer: OutboxMailer
    clock: Clock
    service: IdentityService

    def using(self, service: IdentityService) -> Env:
        return dataclasses.replace(self, service=service)

    def make(self, **options: Any) -> IdentityService:
        """Another service over the same store and keys (another process, other settings)."""
        options.setdefault("password_profile", TEST)
        options.setdefault("clock", self.clock)
        return IdentityService(self.store, self.keys, self.mailer, **options)

    def mails(self) -> list[Message]:
        return [email.message_from_bytes(p.read_bytes()) for p in self.mailer.messages()]

    def token_in_last_mail(self, prefix: str) -> str:
        body = self.mails()[-1].get_payload(decode=True).decode()
        found = set(re.findall(rf"{prefix}[A-Za-z0-9_-]+", body))
        assert len(found) == 1, body
        return found.pop()

    async def doc(self, path: str) -> dict[str, Any] | None:
        return await self.store.get(path)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    db = Database(tmp_path / "cfp.db")
    store = SqliteDocumentStore(db)
    keys = LocalKeyring(tmp_path / "keyring.json")
    mailer = OutboxMailer(tmp_path / "outbox")
    clock = Clock()
    service = IdentityService(store, keys, mailer, password_profile=TEST, clock=clock)
    yield Env(tmp_path, store, keys, mailer, clock, service)
    db.close()


async def signed_in(env: Env, email_: str = ADA, password: str = PASSWORD) -> TokenPair:
    result = await env.service.signin(email_, password, HERE)
    assert isinstance(result, TokenPair)
    return result


async def ada(env: Env) -> str:
    return (await env.service.create_user(ADA, password=PASSWORD, display_name="Ada")).id


def totp_code(secret: str, clock: Clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).generate_otp(int(clock() // 30) + steps)


async def enrolled(env: Env, principal_id: str) -> tuple[str, list[str]]:
    """Turn TOTP on for the principal; (seed, recovery codes)."""
    enrolment = await env.service.start_totp(principal_id)
    enabled = await env.service.confirm_totp(principal_id, totp_code(enrolment.secret, env.clock))
    env.clock.advance(30)  # the confirming code's step is used up
    return enrolment.secret, enabled.recovery_codes


async def refused(code: str, awaitable: Any) -> CfpError:
    with pytest.raises(CfpError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    return caught.value


# -- passwords ----------------------------------------------------------------------------------


def test_the_password_policy_asks_for_length_not_composition() -> None:
    assert password_problems("correct horse battery staple") == []
    assert password_problems("ÄÖÜ-ßñ-密码-пароль") == []  # any characters
    assert password_problems("short") == ["a password has at least 12 characters"]
    assert password_problems("a" * 257) == [
        "a password has at most 256 characters",
        "a password is not one character repeated",
    ]
    assert password_problems("Password1234") == ["this password is among the most common ones"]
    assert password_problems("adalovelace1815", email="AdaLovelace1815@example.com") == [
        "a password is not the account's email"
    ]


async def test_a_weak_password_is_refused_with_pointers(env: Env) -> None:
    error = await refused("weak_password", env.service.create_user(ADA, password="short"))
    assert isinstance(error, ValidationFailed) and error.status == 422
    assert error.details == [
        {"pointer": "/password", "message": "a password has at least 12 characters"}
    ]
    assert await env.service.find_principal(ADA) is None


async def test_owasp_parameters_are_the_default() -> None:
    stored = await Passwords().hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert OWASP == PasswordProfile(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    assert await Passwords().verify(stored, PASSWORD)
    assert not await Passwords().verify(stored, PASSWORD + "!")
    assert not await Passwords().verify("not a hash", PASSWORD)


async def test_signin_rehashes_a_password_stored_with_other_parameters(env: Env) -> None:
    principal = await ada(env)
    assert (await env.doc(principal_path(principal)))["password_hash"].startswith(
        "$argon2id$v=19$m=8,t=1,p=1$"
    )
    stronger = env.make(
        password_profile=PasswordProfile(time_cost=2, memory_cost=16, parallelism=1)
    )
    await signed_in(env.using(stronger))
    rehashed = (await env.doc(principal_path(principal)))["password_hash"]
    assert rehashed.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    await signed_in(env.using(stronger))  # and it still verifies
    assert (await env.doc(principal_path(principal)))["password_hash"] == rehashed


# -- principals ---------------------------------------------------------------------------------


async def test_emails_are_lower_cased_and_unique(env: Env) -> None:
    user = await env.service.create_user(" Ada@Example.COM ", password=PASSWORD)
    assert user.email == ADA and user.kind == "user" and user.status == "active"
    assert await env.doc(email_path(ADA)) == {"principal": user.id}
    assert (await env.service.find_principal("ADA@example.com")) == user
    error = await refused("email_taken", env.service.create_user(ADA.upper(), password=PASSWORD))
    assert isinstance(error, Conflict)
    await refused("validation_failed", env.service.create_user("not-an-email"))


async def test_two_accounts_created_at_once_for_one_email_make_one(env: Env) -> None:
    results = await asyncio.gather(
        *(env.service.create_user(ADA, password=PASSWORD) for _ in range(4)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert (await env.doc(email_path(ADA)))["principal"] == created[0].id


async def test_a_principal_document_has_the_documented_shape(env: Env) -> None:
    principal = await ada(env)
    doc = await env.doc(principal_path(principal))
    assert set(doc) == {
        "id", "kind", "email", "display_name", "password_hash", "status", "tenant", "mfa",
        "sessions_epoch", "revision", "created_at", "updated_at",
    }  # fmt: skip
    assert doc["mfa"]["enabled"] is False and doc["sessions_epoch"] == 0
    await refused("not_found", env.service.get_principal("nobody"))


# -- sign-in --------------------------------------------------------------------------------------


async def test_signin_gives_tokens_that_authenticate(env: Env) -> None:
    principal = await ada(env)
    tokens = await signed_in(env, "ADA@example.com")
    assert tokens.token_type == "Bearer" and tokens.expires_in == ACCESS_TOKEN_TTL == 900
    assert tokens.refresh_token.startswith("cfp_rt_")
    who = await env.service.authenticate(tokens.access_token)
    assert (who.principal_id, who.method, who.session_id, who.amr) == (
        principal,
        "access_token",
        tokens.session_id,
        ["pwd"],
    )
    assert who.email == ADA and who.kind == "user"


async def test_unknown_email_wrong_password_and_disabled_account_look_the_same(env: Env) -> None:
    principal = await ada(env)
    checks: list[str] = []
    original = env.service.passwords._check

    def counting(stored: str, password: str) -> bool:
        checks.append(stored.split("$")[3])  # the Argon2 parameters each check used
        return original(stored, password)

    env.service.passwords._check = counting  # type: ignore[method-assign]
    errors = [
        await refused("invalid_credentials", env.service.signin("eve@example.com", PASSWORD)),
        await refused("invalid_credentials", env.service.signin(ADA, "wrong password!")),
        await refused("invalid_credentials", env.service.signin("not an email", PASSWORD)),
    ]
    await env.service.set_status(principal, "disabled")
    errors.append(await refused("invalid_credentials", env.service.signin(ADA, PASSWORD)))
    assert {(type(e), e.message, e.details) for e in errors} == {
        (Unauthorized, "the email or password is not right", None)
    }
    # every attempt paid for one Argon2 check with the same parameters, known account or not
    assert checks == ["m=8,t=1,p=1"] * 4


async def test_an_overlong_password_is_not_hashed_as_typed(env: Env) -> None:
    await ada(env)
    await refused("invalid_credentials", env.service.signin(ADA, PASSWORD + "x" * 100_000))


# -- access tokens, JWKS and key rotation ---------------------------------------------------------


async def test_the_access_token_is_a_jwt_pyjwt_verifies_with_the_jwks_key(env: Env) -> None:
    principal = await ada(env)
    tokens = await signed_in(env)
    header = jwt.get_unverified_header(tokens.access_token)
    assert header == {"alg": "EdDSA", "kid": "platform-auth:1", "typ": "JWT"}
    jwks = await env.service.jwks()
    assert jwks["keys"][0]["kid"] == "platform-auth:1"
    key = jwks["keys"][0]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert len(b64url_decode(key["x"])) == 32
    claims = jwt.decode(
        tokens.access_token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        issuer="cfp",
        options={"require": ["iss", "sub", "iat", "exp", "jti"]},
    )
    assert claims["sub"] == principal and claims["sid"] == tokens.session_id
    assert claims["exp"] - claims["iat"] == 900 and claims["amr"] == ["pwd"]


async def test_rotating_the_signing_key_logs_nobody_out(env: Env) -> None:
    await ada(env)
    before = await signed_in(env)
    assert await env.service.rotate_signing_key() == 2
    after = await signed_in(env)
    assert jwt.get_unverified_header(after.access_token)["kid"] == "platform-auth:2"
    jwks = {k["kid"]: k for k in (await env.service.jwks())["keys"]}
    assert list(jwks) == ["platform-auth:2", "platform-auth:1"]
    for tokens in (before, after):
        kid = jwt.get_unverified_header(tokens.access_token)["kid"]
        jwt.decode(tokens.access_token, jwt.PyJWK(jwks[kid]).key, algorithms=["EdDSA"])
        # this process, and another one that has cached nothing yet
        assert (await env.service.authenticate(tokens.access_token)).session_id
        assert (await env.make().authenticate(tokens.access_token)).session_id
    # a process that cached version 2 as current learns of version 3 from a token
    other = env.make()
    await other.jwks()
    await env.service.rotate_signing_key()
    later = time.monotonic() + 2  # it looks the current version up again at most once a second
    other.tokens.monotonic = lambda: later
    newest = await signed_in(env)
    assert jwt.get_unverified_header(newest.access_token)["kid"] == "platform-auth:3"
    assert (await other.authenticate(newest.access_token)).session_id == newest.session_id


async def test_forged_altered_and_expired_tokens_are_refused(env: Env, tmp_path: Path) -> None:
    await ada(env)
    tokens = await signed_in(env)
    head, body, sig = tokens.access_token.split(".")
    claims = json.loads(b64url_decode(body))

    def forge(header: dict[str, Any] | None = None, **changes: Any) -> str:
        new_head = head if header is None else b64url(json.dumps(header).encode())
        return f"{new_head}.{b64url(json.dumps({**claims, **changes}).encode())}.{sig}"

    # the same key id in another keyring signs a token that looks right in every other way
    stranger = IdentityService(
        env.store, LocalKeyring(tmp_path / "other.json"), env.mailer, password_profile=TEST
    )
    forged = (await stranger.signin(ADA, PASSWORD)).access_token  # type: ignore[union-attr]
    for token in (
        forge(sub="someone-else"),
        forge(exp=claims["exp"] + 3600),
        forge({"alg": "none", "kid": "platform-auth:1", "typ": "JWT"}),
        forge({"alg": "EdDSA", "kid": "platform-auth:99", "typ": "JWT"}),
        forge({"alg": "EdDSA", "kid": "other-key:1", "typ": "JWT"}),
        forge({"alg": "HS256", "kid": "platform-auth:1", "typ": "JWT"}),
        f"{head}.{body}.",
        f"{head}.{body}",
        "not.a.token",
        "",
        "x" * 10_000,
        forged,
    ):
        await refused("invalid_token", env.service.authenticate(token))
    env.clock.advance(ACCESS_TOKEN_TTL + 5)
    await refused("token_expired", env.service.authenticate(tokens.access_token))


@pytest.mark.parametrize(
    ("algorithm", "jws", "kty"), [("ed25519", "EdDSA", "OKP"), ("ecdsa-p256-sha256", "ES256", "EC")]
)
async def test_tokens_signed_by_cloud_kms_verify_with_pyjwt(
    env: Env, algorithm: str, jws: str, kty: str
) -> None:
    from cfp.adapters.gcp.kms import CloudKmsKeyService

    from tests.fakes.kms import FakeKmsClient

    kms = CloudKmsKeyService(
        project="cfp-test",
        region="europe-west1",
        keyring="cfp",
        client=FakeKmsClient(),
        signing_algorithm=algorithm,  # type: ignore[arg-type]
        poll_seconds=0,
    )
    service = IdentityService(env.store, kms, env.mailer, password_profile=TEST, clock=env.clock)
    await service.create_user(ADA, password=PASSWORD)
    tokens = await signed_in(env.using(service))
    (key,) = (await service.jwks())["keys"]
    assert (key["kty"], key["alg"], key["kid"]) == (kty, jws, "platform-auth:1")
    assert jwt.get_unverified_header(tokens.access_token)["alg"] == jws
    claims = jwt.decode(tokens.access_token, jwt.PyJWK(key).key, algorithms=[jws], issuer="cfp")
    assert claims["sid"] == tokens.session_id
    assert (await service.authenticate(tokens.access_token)).session_id == tokens.session_id
    head, body, sig = tokens.access_token.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    await refused("invalid_token", service.authenticate(f"{head}.{body}.{flipped}"))


# -- refresh tokens and sessions ----------------------------------------------------------------


async def test_refresh_rotates_and_a_reused_token_ends_the_session(env: Env) -> None:
    await ada(env)
    first = await signed_in(env)
    second = await env.service.refresh(first.refresh_token)
    assert second.session_id == first.session_id
    assert second.refresh_token != first.refresh_token
    assert (await env.service.authenticate(second.access_token)).session_id == first.session_id
    stored = await env.doc(f"refresh_tokens/{secret_hash(first.refresh_token)}")
    assert stored["status"] == "used" and stored["family"] == first.session_id

    await refused("refresh_token_reused", env.service.refresh(first.refresh_token))
    family = await env.doc(f"refresh_families/{first.session_id}")
    assert family["status"] == "revoked" and family["reason"] == "reuse"
    await refused("session_ended", env.service.refresh(second.refresh_token))
    await refused("session_ended", env.service.authenticate(second.access_token))
    await refused("invalid_refresh_token", env.service.refresh("cfp_rt_made-up"))


async def test_two_simultaneous_uses_of_one_refresh_token_one_wins_and_the_family_dies(
    env: Env,
) -> None:
    await ada(env)
    tokens = await signed_in(env)
    results = await asyncio.gather(
        env.service.refresh(tokens.refresh_token),
        env.service.refresh(tokens.refresh_token),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, TokenPair)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], Unauthorized) and losers[0].code == "refresh_token_reused"
    assert (await env.doc(f"refresh_families/{tokens.session_id}"))["status"] == "revoked"
    await refused("session_ended", env.service.refresh(winners[0].refresh_token))
    await refused("session_ended", env.service.authenticate(winners[0].access_token))


async def test_many_simultaneous_uses_still_let_exactly_one_through(env: Env) -> None:
    await ada(env)
    tokens = await signed_in(env)
    services = [env.make() for _ in range(3)] + [env.service]  # several processes, one store
    results = await asyncio.gather(
        *(s.refresh(tokens.refresh_token) for s in services for _ in range(2)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, TokenPair) for r in results) == 1
    assert {r.code for r in results if isinstance(r, CfpError)} == {"refresh_token_reused"}


async def test_refresh_tokens_and_sessions_expire(env: Env) -> None:
    await ada(env)
    tokens = await signed_in(env)
    assert tokens.refresh_expires_in == REFRESH_TOKEN_TTL
    env.clock.advance(REFRESH_TOKEN_TTL)
    await refused("invalid_refresh_token", env.service.refresh(tokens.refresh_token))

    tokens = await signed_in(env)
    started = env.clock()
    while env.clock() + REFRESH_TOKEN_TTL - 60 < started + SESSION_MAX_AGE:
        env.clock.advance(REFRESH_TOKEN_TTL - 60)
        tokens = await env.service.refresh(tokens.refresh_token)
    assert tokens.refresh_expires_in < REFRESH_TOKEN_TTL  # capped by the session's end
    env.clock.advance(tokens.refresh_expires_in)
    await refused("invalid_refresh_token", env.service.refresh(tokens.refresh_token))


async def test_signout_ends_that_session_only(env: Env) -> None:
    await ada(env)
    laptop, phone, tablet = [await signed_in(env) for _ in range(3)]
    await env.service.signout(session_id=laptop.session_id, client=HERE)
    await env.service.signout(refresh_token=phone.refresh_token)
    for ended in (laptop, phone):
        await refused("session_ended", env.service.authenticate(ended.access_token))
        await refused("session_ended", env.service.refresh(ended.refresh_token))
    assert (await env.service.authenticate(tablet.access_token)).session_id == tablet.session_id
    await env.service.refresh(tablet.refresh_token)
    # signing out again, or out of nothing, is harmless
    await env.service.signout(session_id=laptop.session_id)
    await env.service.signout(session_id="no-such-session")
    await env.service.signout(refresh_token="cfp_rt_unknown")
    await env.service.signout()


async def test_disable_ends_every_session_and_enable_does_not_revive_them(env: Env) -> None:
    principal = await ada(env)
    tokens = await signed_in(env)
    disabled = await env.service.set_status(principal, "disabled")
    assert disabled.status == "disabled"
    await refused("session_ended", env.service.authenticate(tokens.access_token))
    await refused("session_ended", env.service.refresh(tokens.refresh_token))
    await env.service.set_status(principal, "active")
    await refused("session_ended", env.service.authenticate(tokens.access_token))
    await signed_in(env)
    await refused("bad_request", env.service.set_status(principal, "deleted"))


async def test_a_password_change_ends_every_other_session(env: Env) -> None:
    principal = await ada(env)
    old = await signed_in(env)
    await refused(
        "invalid_credentials",
        env.service.change_password(principal, "not my password", NEW_PASSWORD),
    )
    await refused("weak_password", env.service.change_password(principal, PASSWORD, "short"))
    assert (await env.service.authenticate(old.access_token)).session_id  # nothing changed yet
    new = await env.service.change_password(principal, PASSWORD, NEW_PASSWORD, HERE)
    await refused("session_ended", env.service.authenticate(old.access_token))
    await refused("session_ended", env.service.refresh(old.refresh_token))
    assert (await env.service.authenticate(new.access_token)).principal_id == principal
    await refused("invalid_credentials", env.service.signin(ADA, PASSWORD))
    await signed_in(env, password=NEW_PASSWORD)


async def test_end_sessions_signs_out_everywhere(env: Env) -> None:
    principal = await ada(env)
    sessions = [await signed_in(env) for _ in range(2)]
    await env.service.end_sessions(principal)
    for tokens in sessions:
        await refused("session_ended", env.service.authenticate(tokens.access_token))


# -- TOTP and recovery codes ----------------------------------------------------------------------


async def test_totp_enrolment_then_signin_with_a_code(env: Env) -> None:
    principal = await ada(env)
    before = await signed_in(env)
    enrolment = await env.service.start_totp(principal)
    assert re.fullmatch(r"[A-Z2-7]{32}", enrolment.secret)
    assert enrolment.otpauth_uri.startswith("otpauth://totp/CFP:ada%40example.com?")
    assert f"secret={enrolment.secret}" in enrolment.otpauth_uri and "issuer=CFP" in (
        enrolment.otpauth_uri
    )
    assert not (await env.service.get_principal(principal)).mfa_enabled
    assert isinstance(await env.service.signin(ADA, PASSWORD), TokenPair)  # not on yet

    wrong = await refused("invalid_mfa_code", env.service.confirm_totp(principal, "000000"))
    assert isinstance(wrong, ValidationFailed)
    enabled = await env.service.confirm_totp(
        principal, totp_code(enrolment.secret, env.clock), HERE
    )
    assert len(enabled.recovery_codes) == 10 == len(set(enabled.recovery_codes))
    assert all(re.fullmatch(r"([a-z2-7]{4}-){3}[a-z2-7]{4}", c) for c in enabled.recovery_codes)
    assert (await env.service.get_principal(principal)).mfa_enabled
    # the MFA change ended the old session; the confirming one goes on
    await refused("session_ended", env.service.authenticate(before.access_token))
    who = await env.service.authenticate(enabled.tokens.access_token)
    assert who.amr == ["pwd", "otp", "mfa"]
    await refused("mfa_enabled", env.service.start_totp(principal))

    env.clock.advance(30)
    challenge = await env.service.signin(ADA, PASSWORD, HERE)
    assert isinstance(challenge, MfaRequired) and challenge.mfa_required is True
    assert challenge.expires_in == MFA_CHALLENGE_TTL
    await refused("invalid_mfa_code", env.service.verify_mfa(challenge.challenge_id, "123456"))
    tokens = await env.service.verify_mfa(
        challenge.challenge_id, totp_code(enrolment.secret, env.clock, steps=1), HERE
    )  # one step of clock drift is allowed
    assert (await env.service.authenticate(tokens.access_token)).amr == ["pwd", "otp", "mfa"]
    await refused(
        "mfa_challenge_invalid",
        env.service.verify_mfa(challenge.challenge_id, totp_code(enrolment.secret, env.clock)),
    )


async def test_a_used_totp_code_is_refused_the_second_time(env: Env) -> None:
    principal = await ada(env)
    seed, _ = await enrolled(env, principal)
    code = totp_code(seed, env.clock)
    first = await env.service.signin(ADA, PASSWORD)
    assert isinstance(first, MfaRequired)
    await env.service.verify_mfa(first.challenge_id, code)
    second = await env.service.signin(ADA, PASSWORD)
    assert isinstance(second, MfaRequired)
    await refused("invalid_mfa_code", env.service.verify_mfa(second.challenge_id, code))
    # nor is an earlier step's code, still inside the window
    await refused(
        "invalid_mfa_code",
        env.service.verify_mfa(second.challenge_id, totp_code(seed, env.clock, steps=-1)),
    )
    env.clock.advance(30)
    await env.service.verify_mfa(second.challenge_id, totp_code(seed, env.clock))


async def test_one_code_sent_twice_at_once_signs_in_once(env: Env) -> None:
    principal = await ada(env)
    seed, _ = await enrolled(env, principal)
    challenges = [await env.service.signin(ADA, PASSWORD) for _ in range(2)]
    code = totp_code(seed, env.clock)
    results = await asyncio.gather(
        *(env.service.verify_mfa(c.challenge_id, code) for c in challenges),  # type: ignore[union-attr]
        return_exceptions=True,
    )
    assert sum(isinstance(r, TokenPair) for r in results) == 1
    assert [r.code for r in results if isinstance(r, CfpError)] == ["invalid_mfa_code"]


async def test_recovery_codes_work_once_each(env: Env) -> None:
    principal = await ada(env)
    _, codes = await enrolled(env, principal)
    challenge = await env.service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    typed = codes[3].upper().replace("-", " ")  # read out over the phone
    tokens = await env.service.verify_mfa(challenge.challenge_id, typed)
    assert (await env.service.authenticate(tokens.access_token)).amr == ["pwd", "mfa"]
    challenge = await env.service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    await refused("invalid_mfa_code", env.service.verify_mfa(challenge.challenge_id, codes[3]))
    await env.service.verify_mfa(challenge.challenge_id, codes[4])
    doc = await env.doc(principal_path(principal))
    assert len(doc["mfa"]["recovery_codes"]) == 8


async def test_new_recovery_codes_replace_the_old_ones(env: Env) -> None:
    principal = await ada(env)
    seed, old = await enrolled(env, principal)
    await refused("invalid_mfa_code", env.service.regenerate_recovery_codes(principal, "000000"))
    new = await env.service.regenerate_recovery_codes(principal, totp_code(seed, env.clock))
    assert len(new) == 10 and not set(new) & set(old)
    challenge = await env.service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    await refused("invalid_mfa_code", env.service.verify_mfa(challenge.challenge_id, old[0]))
    await env.service.verify_mfa(challenge.challenge_id, new[0])


async def test_a_challenge_dies_after_five_wrong_codes_or_five_minutes(env: Env) -> None:
    principal = await ada(env)
    seed, _ = await enrolled(env, principal)
    challenge = await env.service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    for _ in range(5):
        await refused("invalid_mfa_code", env.service.verify_mfa(challenge.challenge_id, "999999"))
    await refused(
        "mfa_challenge_invalid",
        env.service.verify_mfa(challenge.challenge_id, totp_code(seed, env.clock)),
    )
    challenge = await env.service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    env.clock.advance(MFA_CHALLENGE_TTL)
    await refused(
        "mfa_challenge_invalid",
        env.service.verify_mfa(challenge.challenge_id, totp_code(seed, env.clock)),
    )
    await refused("mfa_challenge_invalid", env.service.verify_mfa("cfp_mfa_made-up", "123456"))


async def test_an_enrolment_must_be_confirmed_soon(env: Env) -> None:
    principal = await ada(env)
    await refused("no_enrolment", env.service.confirm_totp(principal, "123456"))
    enrolment = await env.service.start_totp(principal)
    env.clock.advance(11 * 60)
    await refused(
        "no_enrolment", env.service.confirm_totp(principal, totp_code(enrolment.secret, env.clock))
    )


async def test_an_admin_mfa_reset_turns_mfa_off_and_ends_sessions(env: Env) -> None:
    principal = await ada(env)
    seed, _ = await enrolled(env, principal)
    challenge = await env.service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    tokens = await env.service.verify_mfa(challenge.challenge_id, totp_code(seed, env.clock))
    view = await env.service.reset_mfa(principal, actor="admin-1")
    assert not view.mfa_enabled
    await refused("session_ended", env.service.authenticate(tokens.access_token))
    assert isinstance(await env.service.signin(ADA, PASSWORD), TokenPair)
    doc = await env.doc(principal_path(principal))
    assert doc["mfa"]["secret"] is None and doc["mfa"]["recovery_codes"] == []


async def test_the_totp_seed_is_sealed_for_its_principal_only(env: Env) -> None:
    principal = await ada(env)
    other = (await env.service.create_user("bob@example.com", password=PASSWORD)).id
    seed, _ = await enrolled(env, principal)
    doc = await env.doc(principal_path(principal))
    assert seed not in json.dumps(doc)
    # copied onto another principal, the sealed seed does not open
    bob = await env.doc(principal_path(other))
    bob["mfa"] = {**doc["mfa"]}
    bob["revision"] += 1
    await env.store.apply([SetDoc(principal_path(other), bob)])
    challenge = await env.service.signin("bob@example.com", PASSWORD)
    assert isinstance(challenge, MfaRequired)
    await refused(
        "decrypt_failed", env.service.verify_mfa(challenge.challenge_id, totp_code(seed, env.clock))
    )


def test_recovery_codes_are_80_random_bits_and_normalize() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10
    assert normalize_recovery_code(" ABCD efgh-IJKL mnop ") == "abcd-efgh-ijkl-mnop"


# -- forgot and reset -----------------------------------------------------------------------------


async def test_forgot_mails_a_one_time_reset_link(env: Env) -> None:
    principal = await ada(env)
    old = await signed_in(env)
    assert await env.service.forgot("ADA@example.com", HERE) is None
    (mail,) = env.mails()
    assert mail["To"] == ADA and mail["Subject"] == "Reset your CFP password"
    token = env.token_in_last_mail("cfp_pr_")
    assert f"/auth/reset?token={token}" in mail.get_payload(decode=True).decode()

    await refused("weak_password", env.service.reset(token, "short"))  # the token survives
    await env.service.reset(token, NEW_PASSWORD, HERE)
    await refused("session_ended", env.service.authenticate(old.access_token))
    await refused("invalid_credentials", env.service.signin(ADA, PASSWORD))
    await signed_in(env, password=NEW_PASSWORD)
    await refused("invalid_reset_token", env.service.reset(token, "another fine password"))
    assert (await env.doc(f"password_resets/{secret_hash(token)}"))["principal"] == principal


async def test_forgot_answers_the_same_for_an_unknown_account(env: Env) -> None:
    await ada(env)
    assert await env.service.forgot("eve@example.com") is None
    assert await env.service.forgot("not an email") is None
    assert env.mails() == []
    assert (await env.store.list("password_resets")).items == []


async def test_reset_tokens_expire_and_a_newer_reset_outdates_older_links(env: Env) -> None:
    await ada(env)
    await env.service.forgot(ADA)
    expired = env.token_in_last_mail("cfp_pr_")
    env.clock.advance(RESET_TOKEN_TTL)
    await refused("invalid_reset_token", env.service.reset(expired, NEW_PASSWORD))
    await env.service.forgot(ADA)
    first = env.token_in_last_mail("cfp_pr_")
    await env.service.forgot(ADA)
    second = env.token_in_last_mail("cfp_pr_")
    await env.service.reset(second, NEW_PASSWORD)
    await refused("invalid_reset_token", env.service.reset(first, "yet another password"))
    await refused("invalid_reset_token", env.service.reset("cfp_pr_made-up", NEW_PASSWORD))


# -- invites --------------------------------------------------------------------------------------


async def test_an_invite_creates_the_principal_and_works_once(env: Env) -> None:
    bindings: list[InviteAccepted] = []

    async def bind(accepted: InviteAccepted) -> list[Write]:
        bindings.append(accepted)
        path = f"role_bindings/{accepted.principal.id}"
        return [CreateDoc(path, {"role": accepted.role, "tenant": accepted.tenant})]

    service = env.make(on_invite_accepted=bind)
    invite = await service.create_invite("acme", "Grace@Example.com", role="project-editor")
    assert (invite.tenant, invite.email, invite.role, invite.status) == (
        "acme",
        "grace@example.com",
        "project-editor",
        "pending",
    )
    (mail,) = env.mails()
    assert mail["To"] == "grace@example.com" and "acme" in mail["Subject"]
    token = env.token_in_last_mail("cfp_inv_")
    assert invite.id == secret_hash(token)

    await refused("weak_password", service.accept_invite(token, "short"))
    accepted = await service.accept_invite(token, PASSWORD, "Grace Hopper", HERE)
    assert accepted.created and accepted.tenant == "acme" and accepted.role == "project-editor"
    assert accepted.principal.display_name == "Grace Hopper"
    assert accepted.principal.email == "grace@example.com"
    assert await env.doc(f"role_bindings/{accepted.principal.id}") == {
        "role": "project-editor",
        "tenant": "acme",
    }
    await signed_in(env.using(service), "grace@example.com")
    await refused("invalid_invite", service.accept_invite(token, PASSWORD))
    items, cursor = await service.list_invites("acme")
    assert [i.status for i in items] == ["accepted"] and cursor is None
    assert (await service.list_invites("other-tenant"))[0] == []


async def test_an_existing_user_joins_with_their_own_password(env: Env) -> None:
    principal = await ada(env)
    await env.service.create_invite("acme", ADA)
    token = env.token_in_last_mail("cfp_inv_")
    await refused("invalid_credentials", env.service.accept_invite(token, "a different password"))
    accepted = await env.service.accept_invite(token, PASSWORD)
    assert accepted.principal.id == principal and not accepted.created
    await signed_in(env)  # the password is unchanged


async def test_a_principal_made_without_a_password_takes_the_invites(env: Env) -> None:
    made = await env.service.create_user("carol@example.com")  # e.g. `cfp admin create-user`
    await refused("invalid_credentials", env.service.signin("carol@example.com", PASSWORD))
    await env.service.create_invite("acme", "carol@example.com")
    accepted = await env.service.accept_invite(env.token_in_last_mail("cfp_inv_"), PASSWORD)
    assert accepted.principal.id == made.id and not accepted.created
    await signed_in(env, "carol@example.com")


async def test_invites_expire_can_be_revoked_and_skip_disabled_accounts(env: Env) -> None:
    invite = await env.service.create_invite("acme", "dan@example.com")
    token = env.token_in_last_mail("cfp_inv_")
    await refused("not_found", env.service.revoke_invite("other", invite.id))
    assert (await env.service.revoke_invite("acme", invite.id, actor="admin")).status == "revoked"
    await refused("invalid_invite", env.service.accept_invite(token, PASSWORD))

    await env.service.create_invite("acme", "dan@example.com")
    token = env.token_in_last_mail("cfp_inv_")
    env.clock.advance(7 * 24 * 3600)
    await refused("invalid_invite", env.service.accept_invite(token, PASSWORD))

    principal = await ada(env)
    await env.service.create_invite("acme", ADA)
    token = env.token_in_last_mail("cfp_inv_")
    await env.service.set_status(principal, "disabled")
    error = await refused("account_disabled", env.service.accept_invite(token, PASSWORD))
    assert isinstance(error, Forbidden)
    await refused("account_disabled", env.service.create_invite("acme", ADA))


# -- API keys -------------------------------------------------------------------------------------


async def test_api_keys_are_shown_once_and_stored_as_hashes(env: Env) -> None:
    robot = await env.service.create_service_account("acme", "deploy bot", actor="admin")
    assert robot.kind == "service_account" and robot.email is None and robot.tenant == "acme"
    created = await env.service.create_api_key(robot.id)
    match = re.fullmatch(r"cfp_sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", created.key)
    assert match is not None
    key_id, secret = match.groups()
    assert created.api_key.key_id == key_id and created.api_key.tenant == "acme"
    stored = await env.doc(f"api_keys/{key_id}")
    assert stored["hash"] == secret_hash(secret) and secret not in json.dumps(stored)
    assert stored["last_used_at"] is None

    who = await env.service.authenticate(created.key)
    assert (who.principal_id, who.method, who.api_key_id, who.tenant, who.kind) == (
        robot.id,
        "api_key",
        key_id,
        "acme",
        "service_account",
    )
    assert (await env.service.get_api_key(key_id)).last_used_at == env.clock()
    for wrong in (
        created.key[:-1] + ("A" if created.key[-1] != "A" else "B"),
        f"cfp_sk_{'0' * 16}_{secret}",
        "cfp_sk_nonsense",
    ):
        await refused("invalid_api_key", env.service.authenticate(wrong))
    user = await ada(env)
    await refused("not_a_service_account", env.service.create_api_key(user))


async def test_rotating_an_api_key_retires_the_old_one_now_or_after_an_overlap(env: Env) -> None:
    robot = await env.service.create_service_account("acme", "bot")
    first = await env.service.create_api_key(robot.id)
    env.clock.advance(1)
    second = await env.service.rotate_api_key(first.api_key.key_id)
    await refused("invalid_api_key", env.service.authenticate(first.key))
    assert (await env.service.authenticate(second.key)).principal_id == robot.id
    await refused("api_key_revoked", env.service.rotate_api_key(first.api_key.key_id))

    env.clock.advance(1)
    third = await env.service.rotate_api_key(second.api_key.key_id, overlap=3600)
    assert (await env.service.authenticate(second.key)).api_key_id == second.api_key.key_id
    assert (await env.service.authenticate(third.key)).api_key_id == third.api_key.key_id
    env.clock.advance(3600)
    await refused("invalid_api_key", env.service.authenticate(second.key))
    await refused("bad_request", env.service.rotate_api_key(third.api_key.key_id, overlap=1e9))

    keys = await env.service.list_api_keys(robot.id)
    assert [k.key_id for k in keys] == [
        first.api_key.key_id,
        second.api_key.key_id,
        third.api_key.key_id,
    ]
    assert [k.status for k in keys] == ["revoked", "active", "active"]


async def test_revoked_keys_and_disabled_accounts_do_not_authenticate(env: Env) -> None:
    robot = await env.service.create_service_account("acme", "bot")
    one, two = [await env.service.create_api_key(robot.id) for _ in range(2)]
    assert (await env.service.revoke_api_key(one.api_key.key_id)).status == "revoked"
    assert (await env.service.revoke_api_key(one.api_key.key_id)).status == "revoked"
    await refused("invalid_api_key", env.service.authenticate(one.key))
    await env.service.set_status(robot.id, "disabled")
    await refused("invalid_api_key", env.service.authenticate(two.key))
    await refused("account_disabled", env.service.create_api_key(robot.id))
    await refused("not_found", env.service.revoke_api_key("0" * 16))


# -- rate limits ----------------------------------------------------------------------------------


def test_the_sliding_window_counts_attempts_and_says_when_to_retry() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(clock=lambda: now[0])
    limit = Limit(3, 60)
    for _ in range(3):
        limiter.hit("signin", [("account", "ada", limit)])
        now[0] += 10
    with pytest.raises(RateLimited) as caught:
        limiter.hit("signin", [("account", "ada", limit)])
    assert caught.value.status == 429
    assert caught.value.details == {"retry_after": 30} == {"retry_after": caught.value.retry_after}
    limiter.hit("signin", [("account", "bob", limit)])  # other keys are not affected
    limiter.hit("forgot", [("account", "ada", limit)])  # nor other actions
    now[0] += 30
    limiter.hit("signin", [("account", "ada", limit)])  # the oldest attempt left the window
    # a refused attempt counts against no key
    with pytest.raises(RateLimited):
        limiter.hit("signin", [("address", "1.2.3.4", Limit(5, 60)), ("account", "ada", limit)])
    for _ in range(5):
        limiter.hit("signin", [("address", "1.2.3.4", Limit(5, 60))])


def test_the_limiter_forgets_idle_keys_when_it_grows() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(clock=lambda: now[0], max_keys=10)
    for n in range(10):
        limiter.hit("signin", [("address", str(n), Limit(1, 60))])
    now[0] += 61
    limiter.hit("signin", [("address", "new", Limit(1, 60))])
    assert len(limiter._hits) == 1


async def test_signin_is_limited_per_account_and_per_address(env: Env) -> None:
    limits = RateLimits(signin=RateLimit(Limit(3, 60), Limit(5, 60)))
    service = env.make(rate_limits=limits)
    await ada(env)
    for _ in range(3):
        await refused("invalid_credentials", service.signin(ADA, "wrong password!", HERE))
    error = await refused("rate_limited", service.signin(ADA, PASSWORD, HERE))
    assert error.details["retry_after"] == 60
    # other accounts from this address, until the address runs out
    for n in range(2):
        await refused("invalid_credentials", service.signin(f"u{n}@example.com", "x" * 12, HERE))
    await refused("rate_limited", service.signin("u9@example.com", "x" * 12, HERE))
    # another address may still try another account; this account waits out its window
    elsewhere = Client(address="198.51.100.1")
    await refused("invalid_credentials", service.signin("u9@example.com", "x" * 12, elsewhere))
    await refused("rate_limited", service.signin(ADA, PASSWORD, elsewhere))
    env.clock.advance(60)
    assert isinstance(await service.signin(ADA, PASSWORD, elsewhere), TokenPair)


async def test_forgot_reset_and_mfa_verify_are_limited(env: Env) -> None:
    tight = RateLimit(Limit(2, 600), Limit(3, 600))
    service = env.make(rate_limits=RateLimits(forgot=tight, reset=tight, mfa=tight))
    principal = await ada(env)
    for _ in range(2):
        await service.forgot(ADA, HERE)
    await refused("rate_limited", service.forgot(ADA, HERE))
    await refused("rate_limited", service.forgot("Ada@Example.com", Client(address="10.0.0.1")))
    await service.forgot("eve@example.com", HERE)  # the address's third
    await refused("rate_limited", service.forgot("zoe@example.com", HERE))

    for _ in range(3):
        await refused("invalid_reset_token", service.reset("cfp_pr_guess", NEW_PASSWORD, HERE))
    await refused(
        "rate_limited", service.reset(env.token_in_last_mail("cfp_pr_"), NEW_PASSWORD, HERE)
    )

    await enrolled(env.using(service), principal)
    challenge = await service.signin(ADA, PASSWORD, Client(address="10.9.9.9"))
    assert isinstance(challenge, MfaRequired)
    other = Client(address="10.8.8.8")
    await refused("invalid_mfa_code", service.verify_mfa(challenge.challenge_id, "000000", other))
    await refused("rate_limited", service.verify_mfa(challenge.challenge_id, "000001", other))


# -- the audit seam -------------------------------------------------------------------------------


async def test_the_audit_hook_writes_in_the_same_transaction(env: Env) -> None:
    events: list[AuthEvent] = []

    async def audit(event: AuthEvent) -> list[Write]:
        events.append(event)
        return [CreateDoc(f"audit/{len(events):04d}", event.model_dump())]

    service = env.make(audit=audit)
    principal = (await service.create_user(ADA, password=PASSWORD)).id
    await refused("invalid_credentials", service.signin(ADA, "wrong password!", HERE))
    await refused("invalid_credentials", service.signin("eve@example.com", PASSWORD, HERE))
    await service.signin(ADA, PASSWORD, HERE)
    records = [item for item in (await env.store.list("audit")).items]
    assert [(r["action"], r["outcome"], r["reason"]) for r in records] == [
        ("principal.create", "success", None),
        ("auth.signin", "failure", "wrong_password"),
        ("auth.signin", "failure", "unknown_account"),
        ("auth.signin", "success", None),
    ]
    assert records[1]["target"] == principal and records[1]["client"]["address"] == HERE.address
    assert records[2]["target"] is None and records[2]["tenant"] is None  # the system chain
    robot = await service.create_service_account("acme", "bot")
    key = await service.create_api_key(robot.id, actor=principal)
    last = (await env.store.list("audit")).items[-1]
    assert (last["action"], last["target_type"], last["target"], last["tenant"]) == (
        "api_key.create",
        "api_key",
        key.api_key.key_id,
        "acme",
    )

    async def broken(event: AuthEvent) -> list[Write]:
        return [CreateDoc("audit/0001", {})]  # always conflicts

    failing = env.make(audit=broken)
    failing.attempts = 3
    await refused("unavailable", failing.set_status(principal, "disabled"))
    assert (await env.service.get_principal(principal)).status == "active"  # nothing applied


# -- housekeeping ---------------------------------------------------------------------------------


async def test_purge_expired_removes_only_what_expired(env: Env) -> None:
    await ada(env)
    await signed_in(env)
    await env.service.forgot(ADA)
    env.clock.advance(SESSION_MAX_AGE + 2 * 24 * 3600)
    fresh = await signed_in(env)
    removed = await env.service.purge_expired()
    assert removed == 3  # a session, its refresh token, a reset token
    assert (await env.service.authenticate(fresh.access_token)).session_id == fresh.session_id
    assert len((await env.store.list("refresh_tokens")).items) == 1


# -- the outbox -----------------------------------------------------------------------------------


async def test_the_outbox_holds_one_private_eml_file_per_message(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path / "outbox")
    assert mailer.messages() == []
    await mailer.send("a@example.com", "One", "first\n")
    await mailer.send("b@example.com", "Two", "second, with ünïcode\n")
    first, second = mailer.messages()
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    parsed = email.message_from_bytes(second.read_bytes())
    assert (parsed["To"], parsed["Subject"]) == ("b@example.com", "Two")
    assert parsed.get_payload(decode=True).decode() == "second, with ünïcode\n"
    assert parsed["From"] and parsed["Message-ID"] and parsed["Date"]
    with pytest.raises(BadRequest):
        await mailer.send("a@example.com\r\nBcc: x@example.com", "Hi", "text")
    assert [p.suffix for p in (tmp_path / "outbox").iterdir()] == [".eml", ".eml"]


# -- secrets stay secret --------------------------------------------------------------------------


async def test_secrets_never_reach_the_store_or_the_log_in_clear(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_seen: dict[str, str] = {}
    errors: list[CfpError] = []

    def keep(name: str, value: str) -> str:
        secrets_seen[name] = value
        return value

    async def expect_error(awaitable: Any) -> None:
        try:
            await awaitable
        except CfpError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected an error")

    service = env.service
    principal = (await service.create_user(ADA, password=keep("password", PASSWORD))).id
    tokens = await signed_in(env)
    keep("access token", tokens.access_token)
    keep("refresh token", tokens.refresh_token)
    keep("refreshed", (await service.refresh(tokens.refresh_token)).refresh_token)
    await expect_error(service.refresh(tokens.refresh_token))  # reuse: logged as a warning
    await expect_error(service.signin(ADA, keep("wrong password", "wrong password 1")))
    enrolment = await service.start_totp(principal)
    keep("totp seed", enrolment.secret)
    enabled = await service.confirm_totp(principal, totp_code(enrolment.secret, env.clock))
    for n, code in enumerate(enabled.recovery_codes):
        keep(f"recovery code {n}", code)
    keep("mfa refresh", enabled.tokens.refresh_token)
    env.clock.advance(30)
    challenge = await service.signin(ADA, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    keep("challenge", challenge.challenge_id)
    await expect_error(service.verify_mfa(challenge.challenge_id, "000000"))
    keep(
        "after mfa",
        (await service.verify_mfa(challenge.challenge_id, enabled.recovery_codes[0])).refresh_token,
    )
    await service.forgot(ADA)
    reset = keep("reset token", env.token_in_last_mail("cfp_pr_"))
    await expect_error(service.reset(reset, keep("weak", "weakpass")))
    await service.reset(reset, keep("new password", NEW_PASSWORD))
    await expect_error(service.reset(reset, NEW_PASSWORD))
    await service.create_invite("acme", "grace@example.com")
    invite = keep("invite token", env.token_in_last_mail("cfp_inv_"))
    await service.accept_invite(invite, keep("grace password", "grace's own passphrase"))
    await expect_error(service.accept_invite(invite, "grace's own passphrase"))
    robot = await service.create_service_account("acme", "bot")
    api_key = keep("api key", (await service.create_api_key(robot.id)).key)
    keep("api key secret", api_key[-43:])
    await service.authenticate(api_key)
    rotated = keep("rotated key", (await service.rotate_api_key(api_key[7:23])).key)
    await expect_error(service.authenticate(api_key))
    await service.authenticate(rotated)
    await expect_error(service.authenticate(api_key[:-2] + "xx"))

    raw = b"".join(p.read_bytes() for p in env.tmp.glob("cfp.db*"))
    rows: list[str] = []
    with sqlite3.connect(env.tmp / "cfp.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            rows += [repr(row) for row in conn.execute(f"SELECT * FROM {table}")]
    assert any("password_hash" in row for row in rows)  # the scan does see the documents
    texts = {
        "store": "\n".join(rows),
        "log": caplog.text,
        "errors": "\n".join(f"{e.message} {e.details!r}" for e in errors),
    }
    assert any("revoked" in r.getMessage() for r in caplog.records)  # something was logged
    for name, value in secrets_seen.items():
        assert value.encode() not in raw, f"{name} is in the database file"
        for where, text in texts.items():
            assert value not in text, f"{name} appears in the {where}"
