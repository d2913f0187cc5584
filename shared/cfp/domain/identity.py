"""Local identity as values and rules: principals, the password policy, secret formats and
hashes, where identity documents live, and the models the auth routes return. No I/O.

Every secret the platform hands out (refresh, reset, invite and challenge tokens, API key
secrets, recovery codes) carries at least 80 random bits and is stored only as its SHA-256:
with that much entropy a fast hash is as good as a slow one, and a lookup by hash is one read.
Passwords, which people choose, get Argon2id instead (`cfp.services.identity.passwords`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cfp.domain.documents import doc_id
from cfp.errors import Unauthorized, ValidationFailed

# -- lifetimes (seconds) -------------------------------------------------------------------

ACCESS_TOKEN_TTL = 15 * 60
REFRESH_TOKEN_TTL = 14 * 24 * 3600  # each refresh token; using it yields a fresh one
SESSION_MAX_AGE = 30 * 24 * 3600  # a token family (a session) ends this long after sign-in
MFA_CHALLENGE_TTL = 5 * 60
MFA_CHALLENGE_ATTEMPTS = 5  # wrong codes before a challenge dies and the password is asked again
RESET_TOKEN_TTL = 30 * 60
INVITE_TTL = 7 * 24 * 3600
API_KEY_MAX_OVERLAP = 7 * 24 * 3600  # the longest a rotated API key may keep working
TOTP_PERIOD = 30
TOTP_DIGITS = 6
TOTP_WINDOW = 1  # steps accepted either side of now (RFC 6238 section 5.2)
RECOVERY_CODES = 10

PrincipalKind = Literal["user", "service_account"]
PrincipalStatus = Literal["active", "disabled"]

# -- where identity documents live (global: principals belong to no tenant) ----------------

PRINCIPALS = "principals"
PRINCIPAL_EMAILS = "principal_emails"
REFRESH_TOKENS = "refresh_tokens"
REFRESH_FAMILIES = "refresh_families"
MFA_CHALLENGES = "mfa_challenges"
PASSWORD_RESETS = "password_resets"
INVITES = "invites"
API_KEYS = "api_keys"
# Collections whose documents carry `expires_at` and are useless after it.
EXPIRING = (REFRESH_TOKENS, REFRESH_FAMILIES, MFA_CHALLENGES, PASSWORD_RESETS, INVITES)


def principal_path(principal_id: str) -> str:
    return f"{PRINCIPALS}/{doc_id(principal_id)}"


def email_path(email: str) -> str:
    """The index document that makes an email unique: {principal}."""
    return f"{PRINCIPAL_EMAILS}/{doc_id(email)}"


def refresh_token_path(token_hash: str) -> str:
    return f"{REFRESH_TOKENS}/{token_hash}"


def family_path(family: str) -> str:
    return f"{REFRESH_FAMILIES}/{doc_id(family)}"


def challenge_path(challenge_hash: str) -> str:
    return f"{MFA_CHALLENGES}/{challenge_hash}"


def reset_path(token_hash: str) -> str:
    return f"{PASSWORD_RESETS}/{token_hash}"


def invite_path(token_hash: str) -> str:
    return f"{INVITES}/{token_hash}"


def api_key_path(key_id: str) -> str:
    return f"{API_KEYS}/{doc_id(key_id)}"


# -- secrets ---------------------------------------------------------------------------------

REFRESH_PREFIX = "cfp_rt_"
RESET_PREFIX = "cfp_pr_"
INVITE_PREFIX = "cfp_inv_"
CHALLENGE_PREFIX = "cfp_mfa_"
API_KEY_PREFIX = "cfp_sk_"
_API_KEY = re.compile(r"cfp_sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower-case: easy to read out


def new_secret(prefix: str) -> str:
    """A bearer secret: the prefix (says what it is, helps secret scanners) and 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def secret_hash(raw: str) -> str:
    """What is stored of a high-entropy secret: its SHA-256, hex."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """(key id, secret, the whole key `cfp_sk_{key id}_{secret}`)."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return key_id, secret, f"{API_KEY_PREFIX}{key_id}_{secret}"


def parse_api_key(raw: str) -> tuple[str, str]:
    """(key id, secret) of a well-formed API key; Unauthorized otherwise."""
    match = _API_KEY.fullmatch(raw)
    if match is None:
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    return match.group(1), match.group(2)


def same_hash(stored: str, raw: str) -> bool:
    """Whether `raw` hashes to `stored`, in constant time."""
    return hmac.compare_digest(stored.encode(), secret_hash(raw).encode())


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """Recovery codes of 80 random bits each, as `xxxx-xxxx-xxxx-xxxx` (base32)."""
    codes = []
    for _ in range(count):
        chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(chars[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize_recovery_code(code: str) -> str:
    """A recovery code as it was issued, whatever the case, spaces or dashes typed."""
    chars = re.sub(r"[\s-]", "", code).lower()
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def looks_like_totp(code: str) -> bool:
    return re.fullmatch(rf"[0-9]{{{TOTP_DIGITS}}}", code.replace(" ", "")) is not None


# -- emails and passwords ----------------------------------------------------------------------

MAX_EMAIL = 254
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
PASSWORD_MIN = 12
PASSWORD_MAX = 256
# Passwords of the minimum length that breach lists show first; a full list belongs in a service.
_COMMON = frozenset(
    {
        "password1234",
        "passwordpassword",
        "123456789012",
        "1234567890123",
        "qwertyuiopas",
        "qwerty123456",
        "iloveyou1234",
        "administrator",
        "letmein12345",
        "changeme1234",
    }
)


def normalize_email(email: str) -> str:
    """An email as stored and compared: trimmed, lower-cased."""
    return email.strip().lower()


def valid_email(email: str) -> bool:
    return len(email) <= MAX_EMAIL and _EMAIL.fullmatch(email) is not None


def check_email(email: str) -> str:
    """The normalized email; ValidationFailed if it is not an address."""
    normalized = normalize_email(email)
    if not valid_email(normalized):
        raise ValidationFailed(
            "not an email address",
            details=[{"pointer": "/email", "message": "expected an address like name@example.com"}],
        )
    return normalized


def normalize_password(password: str) -> str:
    """NFKC, so a password typed on another keyboard or platform hashes the same
    (NIST SP 800-63B section 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why `password` is refused (empty: it is accepted).

    The policy, after NIST SP 800-63B: at least 12 and at most 256 characters, any characters,
    no composition rules; refused when it is one repeated character, a well-known password, or
    the account's email or its name part."""
    password = normalize_password(password)
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"a password has at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        problems.append(f"a password has at most {PASSWORD_MAX} characters")
    if password and len(set(password)) == 1:
        problems.append("a password is not one character repeated")
    lowered = password.lower()
    if lowered in _COMMON:
        problems.append("this password is among the most common ones")
    if email:
        address = normalize_email(email)
        if lowered in {address, address.partition("@")[0]}:
            problems.append("a password is not the account's email")
    return problems


def check_password(password: str, *, email: str | None = None) -> str:
    """The normalized password; ValidationFailed (code weak_password) naming what is wrong."""
    problems = password_problems(password, email=email)
    if problems:
        raise ValidationFailed(
            "the password does not meet the policy: " + "; ".join(problems),
            details=[{"pointer": "/password", "message": p} for p in problems],
            code="weak_password",
        )
    return normalize_password(password)


# -- JWT (RFC 7519) in compact form -----------------------------------------------------------

MAX_TOKEN_BYTES = 8 * 1024
JWT_ALGORITHMS = {"ed25519": "EdDSA", "ecdsa-p256-sha256": "ES256"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def jwt_signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    """`BASE64URL(header) "." BASE64URL(claims)`, what the signature covers."""
    return f"{b64url(_compact(header))}.{b64url(_compact(claims))}".encode()


def kid_of(key_id: str, version: int) -> str:
    return f"{key_id}:{version}"


def parse_kid(kid: Any) -> tuple[str, int] | None:
    if not isinstance(kid, str):
        return None
    key_id, _, version = kid.rpartition(":")
    if not key_id or not version.isdigit() or len(version) > 9 or int(version) < 1:
        return None
    return key_id, int(version)


def split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; Unauthorized if malformed.
    Nothing here is verified yet."""
    invalid = Unauthorized("the access token is not valid", code="invalid_token")
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise invalid
    head, body, sig = token.split(".")
    try:
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(body))
        signature = b64url_decode(sig)
    except ValueError:
        raise invalid from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid
    return header, claims, f"{head}.{body}".encode(), signature


# -- what the services return -------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrincipalView(_Model):
    """A principal as the API shows it: never its password hash, TOTP seed or codes."""

    id: str
    kind: PrincipalKind
    email: str | None
    display_name: str
    status: PrincipalStatus
    tenant: str | None = None  # a service account's own tenant
    mfa_enabled: bool = False
    created_at: float


class TokenPair(_Model):
    """Signed in: a 15-minute access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = ACCESS_TOKEN_TTL
    refresh_expires_in: int = REFRESH_TOKEN_TTL
    session_id: str


class MfaRequired(_Model):
    """The password was right; a second factor is due at `POST /v1/auth/mfa/verify`."""

    mfa_required: Literal[True] = True
    challenge_id: str
    expires_in: int = MFA_CHALLENGE_TTL


SigninResult = TokenPair | MfaRequired


class Authenticated(_Model):
    """Who a request's credential names: an access token's session, an API key, or an outside
    provider's ID token (`id_token`, cfp.services.identity.external)."""

    principal_id: str
    kind: PrincipalKind
    email: str | None
    method: Literal["access_token", "api_key", "id_token"]
    session_id: str | None = None
    amr: list[str] = []
    api_key_id: str | None = None
    tenant: str | None = None  # an API key works in its tenant only
    expires_at: float | None = None


class TotpEnrolment(_Model):
    """Shown once: the seed to type in, and the same as an `otpauth://` URI for a QR code."""

    secret: str
    otpauth_uri: str


class MfaEnabled(_Model):
    """Shown once: the recovery codes; and a new session, since every other one ended."""

    recovery_codes: list[str]
    tokens: TokenPair


class InviteView(_Model):
    id: str  # the hash of the token: enough to revoke or list it, useless to accept it
    tenant: str
    email: str
    role: str | None
    scope: str | None = None  # where the role is bound; None: the tenant
    status: Literal["pending", "accepted", "revoked"]
    invited_by: str | None
    created_at: float
    expires_at: float


class InviteAccepted(_Model):
    principal: PrincipalView
    tenant: str
    role: str | None
    created: bool  # a new principal, rather than an existing one joining the tenant
    scope: str | None = None
    invited_by: str | None = None


class ApiKeyView(_Model):
    key_id: str
    principal_id: str
    tenant: str
    status: Literal["active", "revoked"]
    created_at: float
    expires_at: float | None = None  # set when a rotation gave it an overlap window
    last_used_at: float | None = None


class ApiKeyCreated(_Model):
    """Shown once: `key` is the whole credential, `cfp_sk_{key_id}_{secret}`."""

    key: str
    api_key: ApiKeyView


class Client(_Model):
    """Where a request came from, for rate limits and the audit record."""

    address: str | None = None
    user_agent: str | None = None


class AuthEvent(_Model):
    """An identity action for the audit record, written in the action's own transaction."""

    action: str  # auth.signin, auth.mfa.verify, auth.password.reset, api_key.create, ...
    outcome: Literal["success", "failure"]
    actor_id: str | None = None
    actor_kind: str | None = None
    target: str | None = None
    target_type: Literal["principal", "session", "api_key", "invite", "signing_key"] = "principal"
    tenant: str | None = None  # None: the `system` chain
    client: Client | None = None
    reason: str | None = None
