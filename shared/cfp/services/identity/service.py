"""The platform's own identity (backends `local` and `emulators`): principals, passwords, TOTP,
sessions of rotating refresh tokens, access tokens, password resets, invites and API keys.

Every change is one `DocumentStore.apply`, guarded by compare-and-set on what it read (a
principal's `revision`, a token's `status`); a conflict re-reads and decides again, so racing
requests each see the other's outcome. An optional audit hook adds its writes to the same apply.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pyotp

from cfp.domain.documents import CompareAndSet, CreateDoc, DeleteDoc, Filter, Write
from cfp.domain.identity import (
    API_KEY_MAX_OVERLAP,
    API_KEY_PREFIX,
    API_KEYS,
    CHALLENGE_PREFIX,
    EXPIRING,
    INVITE_PREFIX,
    INVITE_TTL,
    INVITES,
    MFA_CHALLENGE_ATTEMPTS,
    MFA_CHALLENGE_TTL,
    REFRESH_PREFIX,
    REFRESH_TOKEN_TTL,
    RESET_PREFIX,
    RESET_TOKEN_TTL,
    SESSION_MAX_AGE,
    TOTP_DIGITS,
    TOTP_PERIOD,
    TOTP_WINDOW,
    ApiKeyCreated,
    ApiKeyView,
    Authenticated,
    AuthEvent,
    Client,
    InviteAccepted,
    InviteView,
    MfaEnabled,
    MfaRequired,
    PrincipalKind,
    PrincipalView,
    SigninResult,
    TokenPair,
    TotpEnrolment,
    api_key_path,
    challenge_path,
    check_email,
    check_password,
    email_path,
    family_path,
    invite_path,
    looks_like_totp,
    new_api_key,
    new_recovery_codes,
    new_secret,
    normalize_email,
    normalize_password,
    normalize_recovery_code,
    parse_api_key,
    principal_path,
    refresh_token_path,
    reset_path,
    same_hash,
    secret_hash,
    valid_email,
)
from cfp.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from cfp.ports import DocumentStore, KeyService, Mailer
from cfp.services.identity.passwords import OWASP, PasswordProfile, Passwords
from cfp.services.identity.ratelimit import RateLimits, SlidingWindowLimiter
from cfp.services.identity.tokens import AccessTokens

log = logging.getLogger("cfp.identity")

T = TypeVar("T")
AuditHook = Callable[[AuthEvent], Awaitable[Sequence[Write]]]
InviteHook = Callable[[InviteAccepted], Awaitable[Sequence[Write]]]

# Tries after compare-and-set conflicts, with full-jitter exponential backoff between them (as
# the audit log's appends, whose chain heads every recorded action also contends for).
ATTEMPTS = 32
BACKOFF_BASE = 0.005
BACKOFF_MAX = 0.25
ENROLMENT_TTL = 10 * 60  # a started TOTP enrolment must be confirmed within this
API_KEY_TOUCH_SECONDS = 60  # last_used_at is kept to this precision (one write a minute at most)
MAX_PASSWORD_INPUT = 4096  # longer sign-in input is refused without hashing it
_INVALID_CREDENTIALS = "the email or password is not right"


class _Stale(Exception):
    """A compare-and-set failed: what was read changed; read again and decide again."""


def _doc(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else {k: v for k, v in value.items() if k != "_id"}


class IdentityService:
    """Local identity. Errors: Unauthorized (bad or expired credentials, with a code saying
    which), Forbidden, NotFound, Conflict, ValidationFailed (the password policy), RateLimited
    (`details.retry_after`)."""

    def __init__(
        self,
        documents: DocumentStore,
        keys: KeyService,
        mailer: Mailer,
        *,
        password_profile: PasswordProfile = OWASP,
        rate_limits: RateLimits = RateLimits(),
        issuer: str = "cfp",
        signing_key_id: str = "platform-auth",
        secrets_key_id: str = "platform-secrets",
        public_url: str = "http://127.0.0.1:8080",
        totp_issuer: str = "CFP",
        audit: AuditHook | None = None,
        on_invite_accepted: InviteHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.keys = keys
        self.mailer = mailer
        self.passwords = Passwords(password_profile)
        self.limits = rate_limits
        self.limiter = SlidingWindowLimiter(clock=clock)
        self.tokens = AccessTokens(keys, key_id=signing_key_id, issuer=issuer, clock=clock)
        self.secrets_key_id = secrets_key_id
        self.public_url = public_url.rstrip("/")
        self.totp_issuer = totp_issuer
        self.audit = audit
        self.on_invite_accepted = on_invite_accepted
        self.clock = clock
        self.attempts = ATTEMPTS
        self._keys_ready = False

    async def start(self) -> None:
        """Create the signing and secrets keys if absent (also done on first use)."""
        await self._ensure_keys()

    async def _ensure_keys(self) -> None:
        if not self._keys_ready:
            await self.tokens.ensure_key()
            await self.keys.create_key(self.secrets_key_id)
            self._keys_ready = True

    # -- plumbing -------------------------------------------------------------------------

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until what it read stays unchanged while it commits."""
        for n in range(self.attempts):
            try:
                return await attempt()
            except _Stale:
                await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**n)))
        raise Unavailable("too many concurrent changes to the same records; try again")

    async def _commit(self, writes: Sequence[Write], *events: AuthEvent) -> None:
        """Apply `writes` with the audit hook's writes for `events`, atomically; _Stale when a
        precondition no longer holds."""
        audit: list[Write] = []
        if self.audit is not None:
            for event in events:
                # one event per commit: a second one on the same chain would be planned after
                # the same head and fail its own compare-and-set
                audit.extend(await self.audit(event))
            if len(events) > 1:
                raise AssertionError("an identity commit records one audit event")
        if not writes and not audit:
            return
        try:
            await self.documents.apply([*writes, *audit])
        except Conflict:
            raise _Stale() from None

    def _limit_both(self, action: str, account: str, client: Client | None) -> None:
        """Count one attempt of `action` against the account and the client's address."""
        limit = getattr(self.limits, action)
        self.limiter.hit(
            action,
            [
                ("account", account, limit.per_account),
                ("address", client and client.address, limit.per_address),
            ],
        )

    async def _record(self, event: AuthEvent) -> None:
        """Record an event that changes nothing else (a failed sign-in)."""
        if self.audit is not None:
            await self._retrying(lambda: self._commit([], event))

    async def _principal(self, principal_id: str) -> dict[str, Any] | None:
        return _doc(await self.documents.get(principal_path(principal_id)))

    async def _principal_by_email(self, email: str) -> dict[str, Any] | None:
        index = await self.documents.get(email_path(email))
        return None if index is None else await self._principal(index["principal"])

    async def _require(self, principal_id: str) -> dict[str, Any]:
        doc = await self._principal(principal_id)
        if doc is None:
            raise NotFound("no such principal", details={"principal": principal_id})
        return doc

    def _updated(self, doc: dict[str, Any], **changes: Any) -> tuple[dict[str, Any], Write]:
        """The principal with `changes`, and the write that stores it if nobody changed it since."""
        new = {**doc, **changes, "revision": doc["revision"] + 1, "updated_at": self.clock()}
        return new, CompareAndSet(principal_path(doc["id"]), doc["revision"], new, "revision")

    def _new_principal(
        self,
        kind: PrincipalKind,
        *,
        email: str | None,
        display_name: str,
        password_hash: str | None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        return {
            "id": secrets.token_hex(12),
            "kind": kind,
            "email": email,
            "display_name": display_name,
            "status": "active",
            "tenant": tenant,
            "password_hash": password_hash,
            "mfa": _no_mfa(),
            "sessions_epoch": 0,
            "revision": 0,
            "created_at": now,
            "updated_at": now,
        }

    def _event(self, action: str, client: Client | None, **fields: Any) -> AuthEvent:
        fields.setdefault("outcome", "success")
        return AuthEvent(action=action, client=client, **fields)

    # -- principals -----------------------------------------------------------------------

    async def create_user(
        self,
        email: str,
        *,
        display_name: str = "",
        password: str | None = None,
        actor: str | None = None,
    ) -> PrincipalView:
        """A user; without a password it signs in only after a reset or an invite.
        Conflict (code email_taken) if the email is in use."""
        address = check_email(email)
        hashed = None
        if password is not None:
            hashed = await self.passwords.hash(check_password(password, email=address))
        doc = self._new_principal(
            "user", email=address, display_name=display_name or address, password_hash=hashed
        )
        writes = [
            CreateDoc(email_path(address), {"principal": doc["id"]}),
            CreateDoc(principal_path(doc["id"]), doc),
        ]
        event = self._event("principal.create", None, actor_id=actor, target=doc["id"])
        try:
            await self._retrying(lambda: self._create_user(address, writes, event))
        except Conflict as exc:
            raise Conflict(
                "an account with this email exists", code="email_taken", details=exc.details
            ) from None
        return _view(doc)

    async def _create_user(self, address: str, writes: list[Write], event: AuthEvent) -> None:
        if await self.documents.get(email_path(address)) is not None:
            raise Conflict("an account with this email exists")
        await self._commit(writes, event)

    async def create_service_account(
        self,
        tenant: str,
        display_name: str,
        *,
        actor: str | None = None,
        with_writes: Callable[[PrincipalView], Sequence[Write]] | None = None,
    ) -> PrincipalView:
        """A service account of `tenant`: no email, no password; it authenticates with API keys.
        `with_writes` adds writes (its tenant directory entries) to the same transaction."""
        doc = self._new_principal(
            "service_account",
            email=None,
            display_name=display_name,
            password_hash=None,
            tenant=tenant,
        )
        event = self._event(
            "service_account.create", None, actor_id=actor, target=doc["id"], tenant=tenant
        )
        extra = list(with_writes(_view(doc))) if with_writes is not None else []
        await self._retrying(
            lambda: self._commit([CreateDoc(principal_path(doc["id"]), doc), *extra], event)
        )
        return _view(doc)

    async def get_principal(self, principal_id: str) -> PrincipalView:
        return _view(await self._require(principal_id))

    async def find_principal(self, email: str) -> PrincipalView | None:
        doc = await self._principal_by_email(normalize_email(email))
        return None if doc is None else _view(doc)

    async def set_status(
        self,
        principal_id: str,
        status: str,
        *,
        actor: str | None = None,
        tenant: str | None = None,
    ) -> PrincipalView:
        """Disable (ending every session and API key use) or enable a principal; recorded on
        `tenant`'s audit chain when a tenant's administrator does it."""
        if status not in ("active", "disabled"):
            raise BadRequest("status is active or disabled", details={"status": status})

        async def attempt() -> PrincipalView:
            doc = await self._require(principal_id)
            if doc["status"] == status:
                return _view(doc)
            new, write = self._updated(doc, status=status, sessions_epoch=doc["sessions_epoch"] + 1)
            action = "principal.disable" if status == "disabled" else "principal.enable"
            event = self._event(action, None, actor_id=actor, target=principal_id, tenant=tenant)
            await self._commit([write], event)
            return _view(new)

        return await self._retrying(attempt)

    async def end_sessions(self, principal_id: str, *, actor: str | None = None) -> None:
        """Sign a principal out everywhere: every refresh and access token stops working."""

        async def attempt() -> None:
            doc = await self._require(principal_id)
            _, write = self._updated(doc, sessions_epoch=doc["sessions_epoch"] + 1)
            event = self._event("auth.sessions.end", None, actor_id=actor, target=principal_id)
            await self._commit([write], event)

        await self._retrying(attempt)

    # -- sign-in ----------------------------------------------------------------------------

    async def signin(self, email: str, password: str, client: Client | None = None) -> SigninResult:
        """Tokens, or an MFA challenge when the account has a second factor. Unknown email,
        wrong password and a disabled account give the same Unauthorized
        (code invalid_credentials) after the same Argon2 work."""
        address = normalize_email(email)
        self._limit_both("signin", address, client)
        doc = await self._principal_by_email(address) if valid_email(address) else None
        password = _password_input(password)
        stored = doc.get("password_hash") if doc else None
        matches = await self.passwords.verify(stored, password)
        if not matches or doc is None or doc["status"] != "active" or doc["kind"] != "user":
            reason = "unknown_account" if doc is None else "wrong_password"
            if matches and doc is not None:
                reason = "disabled"
            target = doc["id"] if doc else None
            await self._record(
                self._event("auth.signin", client, outcome="failure", target=target, reason=reason)
            )
            log.info("sign-in refused (%s) principal=%s", reason, target)
            raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
        assert stored is not None
        if self.passwords.needs_rehash(stored):
            doc = await self._rehash(doc, password)
        if doc["mfa"]["enabled"]:
            return await self._challenge(doc, client)
        return await self._retrying(
            lambda: self._start_session(doc, ["pwd"], client, action="auth.signin")
        )

    async def _rehash(self, doc: dict[str, Any], password: str) -> dict[str, Any]:
        """Store the password hashed with the current parameters; if the principal changed
        meanwhile, keep what is stored (the next sign-in rehashes)."""
        new, write = self._updated(doc, password_hash=await self.passwords.hash(password))
        try:
            await self._commit([write])
        except _Stale:
            return doc
        return new

    async def _challenge(self, doc: dict[str, Any], client: Client | None) -> MfaRequired:
        challenge = new_secret(CHALLENGE_PREFIX)
        now = self.clock()
        record = {
            "principal": doc["id"],
            "epoch": doc["sessions_epoch"],
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "expires_at": now + MFA_CHALLENGE_TTL,
        }
        event = self._event("auth.signin.password", client, target=doc["id"])
        await self._retrying(
            lambda: self._commit([CreateDoc(challenge_path(secret_hash(challenge)), record)], event)
        )
        return MfaRequired(challenge_id=challenge)

    async def verify_mfa(
        self, challenge_id: str, code: str, client: Client | None = None
    ) -> TokenPair:
        """Complete a sign-in with a TOTP code (each accepted once) or a recovery code (each
        usable once). Unauthorized: code mfa_challenge_invalid (expired, used, or too many wrong
        codes: sign in again) or invalid_mfa_code."""
        limit = self.limits.mfa
        self.limiter.hit("mfa", [("address", client and client.address, limit.per_address)])
        path = challenge_path(secret_hash(challenge_id))
        challenge = await self.documents.get(path)
        self._check_challenge(challenge)
        assert challenge is not None
        self.limiter.hit("mfa", [("account", challenge["principal"], limit.per_account)])
        return await self._retrying(lambda: self._verify_mfa(path, code, client))

    def _check_challenge(self, challenge: dict[str, Any] | None) -> None:
        if (
            challenge is None
            or challenge["status"] != "pending"
            or challenge["expires_at"] <= self.clock()
            or challenge["attempts"] >= MFA_CHALLENGE_ATTEMPTS
        ):
            raise Unauthorized(
                "this sign-in has expired or was already completed; sign in again",
                code="mfa_challenge_invalid",
            )

    async def _verify_mfa(self, path: str, code: str, client: Client | None) -> TokenPair:
        challenge = _doc(await self.documents.get(path))
        self._check_challenge(challenge)
        assert challenge is not None
        doc = await self._principal(challenge["principal"])
        if (
            doc is None
            or doc["status"] != "active"
            or doc["sessions_epoch"] != challenge["epoch"]
            or not doc["mfa"]["enabled"]
        ):
            self._check_challenge(None)
        assert doc is not None
        found = await self._second_factor(doc, code)
        if found is None:
            event = self._event(
                "auth.mfa.verify", client, outcome="failure", target=doc["id"], reason="wrong_code"
            )
            await self._commit([_bump_attempts(path, challenge)], event)
            raise Unauthorized("the code is not right", code="invalid_mfa_code")
        mfa, amr = found
        new, write = self._updated(doc, mfa=mfa)
        done = CompareAndSet(path, "pending", {**challenge, "status": "done"}, "status")
        return await self._start_session(
            new, amr, client, action="auth.mfa.verify", writes=[done, write]
        )

    async def _second_factor(
        self, doc: dict[str, Any], code: str
    ) -> tuple[dict[str, Any], list[str]] | None:
        """The principal's new `mfa` after accepting `code`, and the session's amr; None if the
        code is wrong, or is a TOTP code whose time step was already used."""
        mfa = doc["mfa"]
        code = code.strip()
        if looks_like_totp(code):
            seed = await self._unseal(doc["id"], mfa["secret"])
            step = self._totp_step(seed, code, after=mfa.get("last_step"))
            if step is None:
                return None
            return {**mfa, "last_step": step}, ["pwd", "otp", "mfa"]
        wanted = normalize_recovery_code(code)
        kept, matched = [], False
        for stored in mfa["recovery_codes"]:
            if same_hash(stored, wanted) and not matched:
                matched = True
            else:
                kept.append(stored)
        if not matched:
            return None
        return {**mfa, "recovery_codes": kept}, ["pwd", "mfa"]

    def _totp_step(self, seed: str, code: str, *, after: int | None) -> int | None:
        """The time step (within ±TOTP_WINDOW of now) whose code is `code`, if later than
        `after`: a code, once accepted, is never accepted again, nor any earlier one."""
        totp = pyotp.TOTP(seed, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
        now_step = int(self.clock() // TOTP_PERIOD)
        found = None
        for step in range(now_step - TOTP_WINDOW, now_step + TOTP_WINDOW + 1):
            # bytes: compare_digest refuses non-ASCII str, and a code is whatever was sent
            given = code.replace(" ", "").encode()
            if hmac.compare_digest(totp.generate_otp(step).encode(), given):
                found = step
        if found is None or (after is not None and found <= after):
            return None
        return found

    async def _seal(self, principal_id: str, seed: str) -> str:
        await self._ensure_keys()
        sealed = await self.keys.encrypt(
            self.secrets_key_id, seed.encode(), aad=_totp_aad(principal_id)
        )
        return base64.b64encode(sealed).decode()

    async def _unseal(self, principal_id: str, sealed: str) -> str:
        await self._ensure_keys()
        plain = await self.keys.decrypt(
            self.secrets_key_id, base64.b64decode(sealed), aad=_totp_aad(principal_id)
        )
        return plain.decode()

    # -- sessions ----------------------------------------------------------------------------

    async def _start_session(
        self,
        doc: dict[str, Any],
        amr: list[str],
        client: Client | None,
        *,
        action: str,
        writes: Sequence[Write] = (),
    ) -> TokenPair:
        """A new token family for the principal `doc` (as it will be after `writes`)."""
        await self._ensure_keys()
        now = self.clock()
        session = secrets.token_urlsafe(16)
        family = {
            "id": session,
            "principal": doc["id"],
            "status": "active",
            "epoch": doc["sessions_epoch"],
            "amr": amr,
            "client": client.model_dump() if client else None,
            "created_at": now,
            "last_used_at": now,
            "expires_at": now + SESSION_MAX_AGE,
        }
        refresh, record = self._refresh_record(session, doc["id"], now, family["expires_at"])
        access, _ = await self.tokens.issue(
            doc["id"], {"sid": session, "sep": doc["sessions_epoch"], "amr": amr}
        )
        event = self._event(action, client, actor_id=doc["id"], actor_kind=doc["kind"])
        await self._commit(
            [
                *writes,
                CreateDoc(family_path(session), family),
                CreateDoc(refresh_token_path(secret_hash(refresh)), record),
            ],
            event,
        )
        log.info("session started principal=%s session=%s", doc["id"], session)
        return self._pair(access, refresh, session, now, family["expires_at"])

    def _refresh_record(
        self, family: str, principal: str, now: float, family_expires: float
    ) -> tuple[str, dict[str, Any]]:
        raw = new_secret(REFRESH_PREFIX)
        record = {
            "family": family,
            "principal": principal,
            "status": "active",
            "created_at": now,
            "expires_at": min(now + REFRESH_TOKEN_TTL, family_expires),
        }
        return raw, record

    def _pair(
        self, access: str, refresh: str, session: str, now: float, family_expires: float
    ) -> TokenPair:
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=self.tokens.ttl,
            refresh_expires_in=int(min(REFRESH_TOKEN_TTL, family_expires - now)),
            session_id=session,
        )

    async def refresh(self, refresh_token: str, client: Client | None = None) -> TokenPair:
        """Trade a refresh token for new tokens of the same session; the old one dies. A token
        used a second time revokes its whole session (code refresh_token_reused). Unauthorized
        (invalid_refresh_token or session_ended) otherwise."""
        token_hash = secret_hash(refresh_token)
        return await self._retrying(lambda: self._refresh(token_hash, client))

    async def _refresh(self, token_hash: str, client: Client | None) -> TokenPair:
        now = self.clock()
        path = refresh_token_path(token_hash)
        record = _doc(await self.documents.get(path))
        if record is None:
            raise Unauthorized("the refresh token is not valid", code="invalid_refresh_token")
        family = _doc(await self.documents.get(family_path(record["family"])))
        if record["status"] == "used":
            await self._revoke_family(family, "reuse", client)
            log.warning(
                "refresh token used twice: session %s of principal %s revoked",
                record["family"],
                record["principal"],
            )
            raise Unauthorized(
                "this refresh token was already used; the session has ended",
                code="refresh_token_reused",
            )
        if record["status"] != "active" or record["expires_at"] <= now:
            raise Unauthorized("the refresh token is not valid", code="invalid_refresh_token")
        doc = await self._principal(record["principal"])
        if not _session_alive(family, doc, now):
            raise Unauthorized("the session has ended; sign in again", code="session_ended")
        assert family is not None and doc is not None
        refresh, new_record = self._refresh_record(
            family["id"], doc["id"], now, family["expires_at"]
        )
        new_hash = secret_hash(refresh)
        await self._ensure_keys()
        access, _ = await self.tokens.issue(
            doc["id"], {"sid": family["id"], "sep": family["epoch"], "amr": family["amr"]}
        )
        used = {**record, "status": "used", "used_at": now, "replaced_by": new_hash}
        touched = {**family, "last_used_at": now}
        await self._commit(
            [
                CompareAndSet(path, "active", used, "status"),
                CompareAndSet(family_path(family["id"]), "active", touched, "status"),
                CreateDoc(refresh_token_path(new_hash), new_record),
            ]
        )
        return self._pair(access, refresh, family["id"], now, family["expires_at"])

    async def _revoke_family(
        self, family: dict[str, Any] | None, reason: str, client: Client | None
    ) -> None:
        if family is None or family["status"] == "revoked":
            return
        revoked = {**family, "status": "revoked", "revoked_at": self.clock(), "reason": reason}
        event = self._event(
            f"auth.session.{reason}",
            client,
            outcome="failure" if reason == "reuse" else "success",
            actor_id=family["principal"],
            target=family["id"],
            target_type="session",
        )
        await self._commit(
            [CompareAndSet(family_path(family["id"]), "active", revoked, "status")], event
        )

    async def signout(
        self,
        *,
        session_id: str | None = None,
        refresh_token: str | None = None,
        client: Client | None = None,
    ) -> None:
        """End one session, named by its id (an access token's `sid`) or by a refresh token.
        Ending a session that already ended, or an unknown one, does nothing."""
        if session_id is None and refresh_token is not None:
            record = await self.documents.get(refresh_token_path(secret_hash(refresh_token)))
            session_id = None if record is None else record["family"]
        if session_id is None:
            return

        async def attempt() -> None:
            family = _doc(await self.documents.get(family_path(session_id)))
            await self._revoke_family(family, "signout", client)

        await self._retrying(attempt)

    # -- authenticating requests -----------------------------------------------------------

    async def authenticate(self, credential: str) -> Authenticated:
        """Who a bearer credential (an access token or a `cfp_sk_` API key) names."""
        if credential.startswith(API_KEY_PREFIX):
            return await self.authenticate_api_key(credential)
        return await self.verify_access_token(credential)

    async def verify_access_token(self, token: str) -> Authenticated:
        """The principal of a valid access token whose session is still on. Unauthorized:
        invalid_token, token_expired, or session_ended (signout, disable, password or MFA
        change)."""
        await self._ensure_keys()
        claims = await self.tokens.verify(token)
        sid, sep = claims.get("sid"), claims.get("sep")
        if not isinstance(sid, str) or not isinstance(sep, int):
            raise Unauthorized("the access token is not valid", code="invalid_token")
        doc, family = await asyncio.gather(
            self._principal(claims["sub"]), self.documents.get(family_path(sid))
        )
        if (
            not _session_alive(family, doc, self.clock())
            or doc is None
            or family is None
            or family["principal"] != doc["id"]
            or doc["sessions_epoch"] != sep
        ):
            raise Unauthorized("the session has ended; sign in again", code="session_ended")
        return Authenticated(
            principal_id=doc["id"],
            kind=doc["kind"],
            email=doc["email"],
            method="access_token",
            session_id=sid,
            amr=[str(a) for a in claims.get("amr") or []],
            expires_at=float(claims["exp"]),
        )

    async def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set for `/.well-known/jwks.json`."""
        await self._ensure_keys()
        return await self.tokens.jwks()

    async def rotate_signing_key(self, *, actor: str | None = None) -> int:
        """A new version of the token signing key; tokens signed before stay valid."""
        await self._ensure_keys()
        version = await self.tokens.rotate()
        await self._record(
            self._event(
                "auth.signing_key.rotate",
                None,
                actor_id=actor,
                target=self.tokens.key_id,
                target_type="signing_key",
            )
        )
        return version

    # -- passwords ----------------------------------------------------------------------------

    async def change_password(
        self,
        principal_id: str,
        current_password: str,
        new_password: str,
        client: Client | None = None,
        *,
        amr: Sequence[str] = ("pwd",),
    ) -> TokenPair:
        """Change one's own password: every session ends, and a new one starts (with `amr`,
        the authentication methods of the caller's session). Unauthorized
        (invalid_credentials) if the current password is wrong."""
        doc = await self._require(principal_id)
        self._limit_both("signin", doc["email"] or doc["id"], client)
        if not await self.passwords.verify(doc["password_hash"], _password_input(current_password)):
            await self._record(
                self._event(
                    "auth.password.change",
                    client,
                    outcome="failure",
                    actor_id=principal_id,
                    target=principal_id,
                    reason="wrong_password",
                )
            )
            raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
        hashed = await self.passwords.hash(check_password(new_password, email=doc["email"]))

        async def attempt() -> TokenPair:
            fresh = await self._require(principal_id)
            if fresh["status"] != "active":
                raise Unauthorized("the session has ended; sign in again", code="session_ended")
            new, write = self._updated(
                fresh, password_hash=hashed, sessions_epoch=fresh["sessions_epoch"] + 1
            )
            return await self._start_session(
                new, list(amr), client, action="auth.password.change", writes=[write]
            )

        return await self._retrying(attempt)

    async def forgot(self, email: str, client: Client | None = None) -> None:
        """Mail a one-time reset link (valid RESET_TOKEN_TTL) if an active user has this email;
        the same answer, None, either way."""
        address = normalize_email(email)
        self._limit_both("forgot", address, client)
        doc = await self._principal_by_email(address) if valid_email(address) else None
        if doc is None or doc["status"] != "active" or doc["kind"] != "user":
            reason = "unknown_account" if doc is None else "inactive"
            await self._record(
                self._event(
                    "auth.password.forgot",
                    client,
                    outcome="failure",
                    target=doc and doc["id"],
                    reason=reason,
                )
            )
            return
        token = new_secret(RESET_PREFIX)
        now = self.clock()
        record = {
            "principal": doc["id"],
            "epoch": doc["sessions_epoch"],
            "status": "pending",
            "created_at": now,
            "expires_at": now + RESET_TOKEN_TTL,
        }
        event = self._event("auth.password.forgot", client, target=doc["id"])
        await self._retrying(
            lambda: self._commit([CreateDoc(reset_path(secret_hash(token)), record)], event)
        )
        minutes = RESET_TOKEN_TTL // 60
        await self.mailer.send(
            doc["email"],
            "Reset your CFP password",
            f"Someone asked to reset the password of your CFP account {doc['email']}.\n\n"
            f"To choose a new password, open\n\n    {self.public_url}/auth/reset?token={token}\n\n"
            f"or send this token to POST /v1/auth/reset:\n\n    {token}\n\n"
            f"It works once, within {minutes} minutes. If you did not ask, ignore this message: "
            "your password stays as it is.\n",
        )

    async def reset(self, token: str, new_password: str, client: Client | None = None) -> None:
        """Set a new password with a reset token; every session ends. Unauthorized (code
        invalid_reset_token) if the token is unknown, used, expired or outdated (the password
        or sessions changed since it was sent). Sign in afterwards (with MFA if it is on)."""
        limit = self.limits.reset
        self.limiter.hit("reset", [("address", client and client.address, limit.per_address)])
        path = reset_path(secret_hash(token))
        record = await self.documents.get(path)
        if record is not None:
            self.limiter.hit("reset", [("account", record["principal"], limit.per_account)])
        doc = await self._principal(record["principal"]) if record else None
        self._check_reset(record, doc)
        assert doc is not None
        hashed = await self.passwords.hash(check_password(new_password, email=doc["email"]))

        async def attempt() -> None:
            record = _doc(await self.documents.get(path))
            doc = await self._principal(record["principal"]) if record else None
            self._check_reset(record, doc)
            assert record is not None and doc is not None
            _, write = self._updated(
                doc, password_hash=hashed, sessions_epoch=doc["sessions_epoch"] + 1
            )
            used = {**record, "status": "used", "used_at": self.clock()}
            event = self._event("auth.password.reset", client, target=doc["id"])
            await self._commit([CompareAndSet(path, "pending", used, "status"), write], event)

        await self._retrying(attempt)

    def _check_reset(self, record: dict[str, Any] | None, doc: dict[str, Any] | None) -> None:
        if (
            record is None
            or doc is None
            or record["status"] != "pending"
            or record["expires_at"] <= self.clock()
            or record["epoch"] != doc["sessions_epoch"]
            or doc["status"] != "active"
        ):
            raise Unauthorized(
                "the reset link is not valid or has expired; ask for a new one",
                code="invalid_reset_token",
            )

    # -- TOTP ------------------------------------------------------------------------------

    async def start_totp(self, principal_id: str) -> TotpEnrolment:
        """Begin TOTP enrolment: a new seed, shown once, to confirm with `confirm_totp` within
        ten minutes. Conflict (code mfa_enabled) if MFA is already on."""
        doc = await self._require(principal_id)
        if doc["kind"] != "user" or doc["status"] != "active":
            raise Forbidden("only an active user enrols a second factor")
        if doc["mfa"]["enabled"]:
            raise Conflict("MFA is already on; it must be reset first", code="mfa_enabled")
        seed = pyotp.random_base32()
        sealed = await self._seal(principal_id, seed)

        async def attempt() -> None:
            fresh = await self._require(principal_id)
            if fresh["mfa"]["enabled"]:
                raise Conflict("MFA is already on; it must be reset first", code="mfa_enabled")
            mfa = {**fresh["mfa"], "pending_secret": sealed, "pending_at": self.clock()}
            _, write = self._updated(fresh, mfa=mfa)
            await self._commit([write])

        await self._retrying(attempt)
        uri = pyotp.TOTP(seed, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
            name=doc["email"] or doc["id"], issuer_name=self.totp_issuer
        )
        return TotpEnrolment(secret=seed, otpauth_uri=uri)

    async def confirm_totp(
        self, principal_id: str, code: str, client: Client | None = None
    ) -> MfaEnabled:
        """Turn MFA on with the first code from the authenticator: returns the recovery codes
        (shown once) and a new session, since every other session ends. ValidationFailed (code
        invalid_mfa_code) for a wrong code; Conflict (no_enrolment) without a recent
        `start_totp`."""
        limit = self.limits.mfa
        self.limiter.hit("mfa", [("account", principal_id, limit.per_account)])
        codes = new_recovery_codes()

        async def attempt() -> MfaEnabled:
            doc = await self._require(principal_id)
            mfa = doc["mfa"]
            if mfa["enabled"]:
                raise Conflict("MFA is already on; it must be reset first", code="mfa_enabled")
            pending = mfa.get("pending_secret")
            if not pending or mfa.get("pending_at", 0) + ENROLMENT_TTL <= self.clock():
                raise Conflict("start the TOTP enrolment again", code="no_enrolment")
            seed = await self._unseal(principal_id, pending)
            step = self._totp_step(seed, code.strip(), after=None)
            if step is None:
                raise ValidationFailed(
                    "the code is not right: check the authenticator's clock and try the next one",
                    details=[{"pointer": "/code", "message": "wrong code"}],
                    code="invalid_mfa_code",
                )
            enabled = {
                "enabled": True,
                "secret": pending,
                "pending_secret": None,
                "pending_at": None,
                "recovery_codes": [secret_hash(c) for c in codes],
                "last_step": step,
                "enabled_at": self.clock(),
            }
            new, write = self._updated(doc, mfa=enabled, sessions_epoch=doc["sessions_epoch"] + 1)
            tokens = await self._start_session(
                new, ["pwd", "otp", "mfa"], client, action="auth.mfa.enable", writes=[write]
            )
            return MfaEnabled(recovery_codes=codes, tokens=tokens)

        return await self._retrying(attempt)

    async def regenerate_recovery_codes(self, principal_id: str, code: str) -> list[str]:
        """New recovery codes (the old ones stop working), given a current TOTP code."""
        self.limiter.hit("mfa", [("account", principal_id, self.limits.mfa.per_account)])
        codes = new_recovery_codes()

        async def attempt() -> list[str]:
            doc = await self._require(principal_id)
            if not doc["mfa"]["enabled"]:
                raise Conflict("MFA is off", code="mfa_disabled")
            seed = await self._unseal(principal_id, doc["mfa"]["secret"])
            step = self._totp_step(seed, code.strip(), after=doc["mfa"].get("last_step"))
            if step is None:
                raise ValidationFailed(
                    "the code is not right",
                    details=[{"pointer": "/code", "message": "wrong code"}],
                    code="invalid_mfa_code",
                )
            mfa = {
                **doc["mfa"],
                "last_step": step,
                "recovery_codes": [secret_hash(c) for c in codes],
            }
            _, write = self._updated(doc, mfa=mfa)
            event = self._event("auth.mfa.recovery_codes", None, actor_id=principal_id)
            await self._commit([write], event)
            return codes

        return await self._retrying(attempt)

    async def reset_mfa(
        self, principal_id: str, *, actor: str | None = None, tenant: str | None = None
    ) -> PrincipalView:
        """An administrator turns a principal's MFA off (lost authenticator and codes); every
        session ends, and the principal signs in with the password alone until it enrols again."""

        async def attempt() -> PrincipalView:
            doc = await self._require(principal_id)
            new, write = self._updated(doc, mfa=_no_mfa(), sessions_epoch=doc["sessions_epoch"] + 1)
            event = self._event(
                "auth.mfa.reset", None, actor_id=actor, target=principal_id, tenant=tenant
            )
            await self._commit([write], event)
            return _view(new)

        return await self._retrying(attempt)

    # -- invites ----------------------------------------------------------------------------

    async def create_invite(
        self,
        tenant: str,
        email: str,
        *,
        role: str | None = None,
        scope: str | None = None,
        invited_by: str | None = None,
        client: Client | None = None,
    ) -> InviteView:
        """Mail a one-time invite (valid INVITE_TTL) to join `tenant`; the token is only in
        the mail. Forbidden if that email's principal is disabled."""
        address = check_email(email)
        existing = await self._principal_by_email(address)
        if existing is not None and existing["status"] != "active":
            raise Forbidden("this account is disabled", code="account_disabled")
        token = new_secret(INVITE_PREFIX)
        now = self.clock()
        token_hash = secret_hash(token)
        record = {
            "tenant": tenant,
            "email": address,
            "role": role,
            "scope": scope,
            "status": "pending",
            "invited_by": invited_by,
            "created_at": now,
            "expires_at": now + INVITE_TTL,
        }
        event = self._event(
            "invite.create",
            client,
            actor_id=invited_by,
            target=address,
            target_type="invite",
            tenant=tenant,
        )
        await self._retrying(
            lambda: self._commit([CreateDoc(invite_path(token_hash), record)], event)
        )
        days = INVITE_TTL // 86400
        await self.mailer.send(
            address,
            f"You are invited to {tenant} on CFP",
            f"You are invited to join {tenant} on CFP"
            + (f" as {role}" if role else "")
            + f".\n\nTo accept, open\n\n    {self.public_url}/auth/invite?token={token}\n\n"
            f"or send this token to POST /v1/auth/invites/accept:\n\n    {token}\n\n"
            f"It works once, within {days} days.\n",
        )
        return _invite_view(token_hash, record)

    async def list_invites(
        self, tenant: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[InviteView], str | None]:
        """A tenant's invites, newest first, and the cursor of the next page."""
        page = await self.documents.list(
            INVITES,
            where=[Filter("tenant", "==", tenant)],
            order_by="created_at",
            descending=True,
            limit=limit,
            cursor=cursor,
        )
        items = [_invite_view(item["_id"], _doc(item) or {}) for item in page.items]
        return items, page.next_cursor

    async def revoke_invite(
        self, tenant: str, invite_id: str, *, actor: str | None = None
    ) -> InviteView:
        """Withdraw a pending invite (by its id from `list_invites`); NotFound in another tenant."""
        if not invite_id.isalnum():
            raise NotFound("no such invite", details={"invite": invite_id})
        path = invite_path(invite_id)

        async def attempt() -> InviteView:
            record = _doc(await self.documents.get(path))
            if record is None or record["tenant"] != tenant:
                raise NotFound("no such invite", details={"invite": invite_id})
            if record["status"] != "pending":
                return _invite_view(invite_id, record)
            revoked = {**record, "status": "revoked", "revoked_at": self.clock()}
            event = self._event(
                "invite.revoke",
                None,
                actor_id=actor,
                target=record["email"],
                target_type="invite",
                tenant=tenant,
            )
            await self._commit([CompareAndSet(path, "pending", revoked, "status")], event)
            return _invite_view(invite_id, revoked)

        return await self._retrying(attempt)

    async def accept_invite(
        self,
        token: str,
        password: str,
        display_name: str = "",
        client: Client | None = None,
    ) -> InviteAccepted:
        """Accept an invite: a new principal with this password, or an existing one joining
        the tenant (its password must then be its current one; a principal created without
        a password takes this one). Unauthorized (invalid_invite, invalid_credentials),
        Forbidden (account_disabled), ValidationFailed (the password policy)."""
        limit = self.limits.reset
        self.limiter.hit("invite", [("address", client and client.address, limit.per_address)])
        path = invite_path(secret_hash(token))
        record = await self.documents.get(path)
        self._check_invite(record)
        assert record is not None
        existing = await self._principal_by_email(record["email"])
        hashed: str | None = None
        if existing is None or existing["password_hash"] is None:
            hashed = await self.passwords.hash(check_password(password, email=record["email"]))
        else:
            self.limiter.hit(
                "signin", [("account", record["email"], self.limits.signin.per_account)]
            )
            if not await self.passwords.verify(
                existing["password_hash"], _password_input(password)
            ):
                raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
        return await self._retrying(lambda: self._accept_invite(path, hashed, display_name, client))

    def _check_invite(self, record: dict[str, Any] | None) -> None:
        if record is None or record["status"] != "pending" or record["expires_at"] <= self.clock():
            raise Unauthorized(
                "the invite is not valid or has expired; ask for a new one", code="invalid_invite"
            )

    async def _accept_invite(
        self, path: str, hashed: str | None, display_name: str, client: Client | None
    ) -> InviteAccepted:
        record = _doc(await self.documents.get(path))
        self._check_invite(record)
        assert record is not None
        address = record["email"]
        existing = await self._principal_by_email(address)
        writes: list[Write] = []
        if existing is None:
            if hashed is None:  # the principal was removed since the password was checked
                raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
            doc = self._new_principal(
                "user", email=address, display_name=display_name or address, password_hash=hashed
            )
            writes += [
                CreateDoc(email_path(address), {"principal": doc["id"]}),
                CreateDoc(principal_path(doc["id"]), doc),
            ]
        elif existing["status"] != "active":
            raise Forbidden("this account is disabled", code="account_disabled")
        elif existing["password_hash"] is None:
            if hashed is None:
                raise Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")
            changes: dict[str, Any] = {"password_hash": hashed}
            if display_name:
                changes["display_name"] = display_name
            doc, write = self._updated(existing, **changes)
            writes.append(write)
        else:
            doc = existing
        accepted = {
            **record,
            "status": "accepted",
            "accepted_by": doc["id"],
            "accepted_at": self.clock(),
        }
        writes.append(CompareAndSet(path, "pending", accepted, "status"))
        result = InviteAccepted(
            principal=_view(doc),
            tenant=record["tenant"],
            role=record["role"],
            created=existing is None,
            scope=record.get("scope"),
            invited_by=record.get("invited_by"),
        )
        if self.on_invite_accepted is not None:
            writes.extend(await self.on_invite_accepted(result))
        event = self._event(
            "invite.accept",
            client,
            actor_id=doc["id"],
            actor_kind="user",
            target=doc["id"],
            tenant=record["tenant"],
        )
        await self._commit(writes, event)
        return result

    # -- API keys ----------------------------------------------------------------------------

    async def create_api_key(
        self, principal_id: str, *, tenant: str | None = None, actor: str | None = None
    ) -> ApiKeyCreated:
        """A new key for a service account (in its own tenant unless `tenant` is given): the
        whole key is in the result and nowhere else."""
        doc = await self._require(principal_id)
        if doc["kind"] != "service_account":
            raise BadRequest("API keys belong to service accounts", code="not_a_service_account")
        if doc["status"] != "active":
            raise Forbidden("this service account is disabled", code="account_disabled")
        tenant = tenant or doc["tenant"]
        if not tenant:
            raise BadRequest("an API key works in one tenant: name it")
        created, record = self._api_key_record(principal_id, tenant, actor)
        event = self._event(
            "api_key.create",
            None,
            actor_id=actor,
            target=record["key_id"],
            target_type="api_key",
            tenant=tenant,
        )
        await self._retrying(
            lambda: self._commit([CreateDoc(api_key_path(record["key_id"]), record)], event)
        )
        return created

    def _api_key_record(
        self, principal_id: str, tenant: str, actor: str | None
    ) -> tuple[ApiKeyCreated, dict[str, Any]]:
        key_id, secret, whole = new_api_key()
        record = {
            "key_id": key_id,
            "hash": secret_hash(secret),
            "principal": principal_id,
            "tenant": tenant,
            "status": "active",
            "created_at": self.clock(),
            "created_by": actor,
            "expires_at": None,
            "last_used_at": None,
        }
        return ApiKeyCreated(key=whole, api_key=_key_view(record)), record

    async def rotate_api_key(
        self, key_id: str, *, overlap: float = 0.0, actor: str | None = None
    ) -> ApiKeyCreated:
        """A new key for the same service account and tenant. The old key stops working now
        (overlap 0, the default) or after `overlap` seconds (at most seven days), so callers
        can switch without downtime."""
        if not 0 <= overlap <= API_KEY_MAX_OVERLAP:
            raise BadRequest(
                f"overlap is 0 to {API_KEY_MAX_OVERLAP} seconds", details={"overlap": overlap}
            )

        async def attempt() -> ApiKeyCreated:
            old = await self._api_key(key_id)
            if old["status"] != "active":
                raise Conflict("the key was revoked; create a new one", code="api_key_revoked")
            now = self.clock()
            if overlap:
                expires = now + overlap
                if old["expires_at"] is not None:
                    expires = min(expires, old["expires_at"])
                retired = {**old, "expires_at": expires}
            else:
                retired = {**old, "status": "revoked", "revoked_at": now}
            created, record = self._api_key_record(old["principal"], old["tenant"], actor)
            event = self._event(
                "api_key.rotate",
                None,
                actor_id=actor,
                target=key_id,
                target_type="api_key",
                tenant=old["tenant"],
            )
            await self._commit(
                [
                    CompareAndSet(api_key_path(key_id), "active", retired, "status"),
                    CreateDoc(api_key_path(record["key_id"]), record),
                ],
                event,
            )
            return created

        return await self._retrying(attempt)

    async def revoke_api_key(self, key_id: str, *, actor: str | None = None) -> ApiKeyView:
        """The key stops working now; revoking twice changes nothing."""

        async def attempt() -> ApiKeyView:
            record = await self._api_key(key_id)
            if record["status"] == "revoked":
                return _key_view(record)
            revoked = {**record, "status": "revoked", "revoked_at": self.clock()}
            event = self._event(
                "api_key.revoke",
                None,
                actor_id=actor,
                target=key_id,
                target_type="api_key",
                tenant=record["tenant"],
            )
            await self._commit(
                [CompareAndSet(api_key_path(key_id), "active", revoked, "status")], event
            )
            return _key_view(revoked)

        return await self._retrying(attempt)

    async def get_api_key(self, key_id: str) -> ApiKeyView:
        return _key_view(await self._api_key(key_id))

    async def list_api_keys(self, principal_id: str) -> list[ApiKeyView]:
        """A service account's keys (the active and the revoked), oldest first."""
        items: list[ApiKeyView] = []
        cursor = None
        while True:
            page = await self.documents.list(
                API_KEYS,
                where=[Filter("principal", "==", principal_id)],
                order_by="created_at",
                cursor=cursor,
            )
            items += [_key_view(_doc(item) or {}) for item in page.items]
            if page.next_cursor is None:
                return items
            cursor = page.next_cursor

    async def _api_key(self, key_id: str) -> dict[str, Any]:
        record = _doc(await self.documents.get(api_key_path(key_id)))
        if record is None:
            raise NotFound("no such API key", details={"key_id": key_id})
        return record

    async def authenticate_api_key(self, raw: str) -> Authenticated:
        """The service account of an active API key; Unauthorized (invalid_api_key) otherwise."""
        key_id, secret = parse_api_key(raw)
        record = _doc(await self.documents.get(api_key_path(key_id)))
        now = self.clock()
        invalid = Unauthorized("the API key is not valid", code="invalid_api_key")
        if record is None:
            same_hash("0" * 64, secret)  # the same work as for a known key
            raise invalid
        matches = same_hash(record["hash"], secret)
        expired = record["expires_at"] is not None and record["expires_at"] <= now
        if not matches or record["status"] != "active" or expired:
            raise invalid
        doc = await self._principal(record["principal"])
        if doc is None or doc["status"] != "active":
            raise invalid
        last = record.get("last_used_at")
        if last is None or now - last >= API_KEY_TOUCH_SECONDS:
            touched = {**record, "last_used_at": now}
            try:  # best effort: a concurrent use or revocation wins
                await self.documents.apply(
                    [CompareAndSet(api_key_path(key_id), "active", touched, "status")]
                )
            except Conflict:
                pass
        return Authenticated(
            principal_id=doc["id"],
            kind=doc["kind"],
            email=doc["email"],
            method="api_key",
            api_key_id=key_id,
            tenant=record["tenant"],
        )

    # -- housekeeping ------------------------------------------------------------------------

    async def purge_expired(self, *, grace: float = 24 * 3600, batch: int = 200) -> int:
        """Delete expired tokens, sessions, challenges, resets and invites (kept `grace`
        seconds past expiry); returns how many."""
        cutoff = self.clock() - grace
        removed = 0
        for collection in EXPIRING:
            while True:
                page = await self.documents.list(
                    collection, where=[Filter("expires_at", "<", cutoff)], limit=batch
                )
                if not page.items:
                    break
                await self.documents.apply(
                    [DeleteDoc(f"{collection}/{item['_id']}") for item in page.items]
                )
                removed += len(page.items)
        return removed


def _password_input(password: str) -> str:
    """A password as typed, normalized; input too long to be a password matches nothing."""
    return normalize_password(password) if len(password) <= MAX_PASSWORD_INPUT else ""


def _no_mfa() -> dict[str, Any]:
    return {
        "enabled": False,
        "secret": None,
        "pending_secret": None,
        "pending_at": None,
        "recovery_codes": [],
        "last_step": None,
        "enabled_at": None,
    }


def _totp_aad(principal_id: str) -> bytes:
    """Binds a sealed TOTP seed to its principal: copied onto another, it does not decrypt."""
    return f"cfp:totp:{principal_id}".encode()


def _bump_attempts(path: str, challenge: dict[str, Any]) -> Write:
    counted = {**challenge, "attempts": challenge["attempts"] + 1}
    return CompareAndSet(path, challenge["attempts"], counted, "attempts")


def _session_alive(family: dict[str, Any] | None, doc: dict[str, Any] | None, now: float) -> bool:
    return (
        family is not None
        and doc is not None
        and family["status"] == "active"
        and family["expires_at"] > now
        and doc["status"] == "active"
        and family["epoch"] == doc["sessions_epoch"]
    )


def _view(doc: dict[str, Any]) -> PrincipalView:
    return PrincipalView(
        id=doc["id"],
        kind=doc["kind"],
        email=doc["email"],
        display_name=doc["display_name"],
        status=doc["status"],
        tenant=doc.get("tenant"),
        mfa_enabled=doc["mfa"]["enabled"],
        created_at=doc["created_at"],
    )


def _invite_view(token_hash: str, record: dict[str, Any]) -> InviteView:
    return InviteView(
        id=token_hash,
        tenant=record["tenant"],
        email=record["email"],
        role=record["role"],
        scope=record.get("scope"),
        status=record["status"],
        invited_by=record["invited_by"],
        created_at=record["created_at"],
        expires_at=record["expires_at"],
    )


def _key_view(record: dict[str, Any]) -> ApiKeyView:
    return ApiKeyView(
        key_id=record["key_id"],
        principal_id=record["principal"],
        tenant=record["tenant"],
        status=record["status"],
        created_at=record["created_at"],
        expires_at=record.get("expires_at"),
        last_used_at=record.get("last_used_at"),
    )


__all__ = ["AuditHook", "IdentityService", "InviteHook"]
