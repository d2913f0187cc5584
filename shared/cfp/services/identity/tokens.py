"""Access tokens: JWTs signed through the KeyService (the private key never leaves it), checked
with its public keys, published as a JWKS (RFC 7517; Ed25519 as an OKP key, RFC 8037)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from cfp.domain.identity import (
    ACCESS_TOKEN_TTL,
    JWT_ALGORITHMS,
    b64url,
    jwt_signing_input,
    kid_of,
    parse_kid,
    split_jwt,
)
from cfp.errors import NotFound, Unauthorized, Unavailable
from cfp.ports import KeyService, PublicKey, Signature

_P256_BYTES = 32


def _invalid() -> Unauthorized:
    return Unauthorized("the access token is not valid", code="invalid_token")


class AccessTokens:
    """Issues and checks the platform's access tokens with one signing key of the KeyService.

    Rotating the key (`rotate`) makes new tokens carry the new version's `kid`; tokens of older
    versions keep verifying until they expire, and the JWKS lists the current version and the
    `jwks_versions - 1` before it."""

    def __init__(
        self,
        keys: KeyService,
        *,
        key_id: str = "platform-auth",
        issuer: str = "cfp",
        ttl: int = ACCESS_TOKEN_TTL,
        leeway: int = 5,
        jwks_versions: int = 2,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.key_id = key_id
        self.issuer = issuer
        self.ttl = ttl
        self.leeway = leeway
        self.jwks_versions = jwks_versions
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.monotonic = monotonic
        self._public: dict[int, tuple[PublicKey, float]] = {}
        self._current: tuple[int, float] | None = None

    # -- keys ---------------------------------------------------------------------------

    async def ensure_key(self) -> PublicKey:
        """Create the signing key if it does not exist yet; its current public key."""
        public = await self.keys.create_signing_key(self.key_id)
        self._remember(public, current=True)
        return public

    async def rotate(self) -> int:
        """A new signing key version, used for every token from now on; returns it."""
        version = await self.keys.rotate_key(self.key_id)
        self._current = (version, self.monotonic())
        return version

    def _remember(self, public: PublicKey, *, current: bool = False) -> None:
        now = self.monotonic()
        self._public[public.version] = (public, now)
        if current:
            self._current = (public.version, now)

    async def _current_version(self, *, max_age: float | None = None) -> int:
        max_age = self.cache_seconds if max_age is None else max_age
        if self._current is not None and self.monotonic() - self._current[1] < max_age:
            return self._current[0]
        public = await self.keys.public_key(self.key_id)
        self._remember(public, current=True)
        return public.version

    async def _public_key(self, version: int) -> PublicKey | None:
        """The public key of `version`, cached a while; None if there is no such key (any
        more). A version above the current one makes this process look up the current version
        again, at most once a second, so forged `kid`s cannot make every request call the key
        service."""
        cached = self._public.get(version)
        if cached is not None and self.monotonic() - cached[1] < self.cache_seconds:
            return cached[0]
        current = await self._current_version()
        if version > current:
            current = await self._current_version(max_age=1.0)
            if version > current:
                return None
        try:
            public = await self.keys.public_key(self.key_id, version)
        except NotFound:  # KeyDestroyed too
            self._public.pop(version, None)
            return None
        self._remember(public)
        return public

    # -- tokens -------------------------------------------------------------------------

    async def issue(self, subject: str, claims: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A signed token for `subject` with `claims` added to iss, sub, iat, exp and jti."""
        now = int(self.clock())
        body = {
            **claims,
            "iss": self.issuer,
            "sub": subject,
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(16),
        }
        version = await self._current_version()
        for _ in range(3):
            public = await self._public_key(version)
            if public is None:
                version = await self._current_version(max_age=0)
                continue
            header = {
                "alg": JWT_ALGORITHMS[public.algorithm],
                "kid": kid_of(self.key_id, version),
                "typ": "JWT",
            }
            signing_input = jwt_signing_input(header, body)
            signature = await self.keys.sign(self.key_id, signing_input)
            if signature.version == version:
                return f"{signing_input.decode()}.{b64url(_jws_signature(signature))}", body
            # The key rotated between choosing the kid and signing: sign again under the new one.
            version = signature.version
            self._current = (version, self.monotonic())
        raise Unavailable("the token signing key changed while signing; try again")

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token this issuer signed and that has not expired; Unauthorized
        (code invalid_token or token_expired) otherwise. Says nothing about the session."""
        header, claims, signing_input, signature = split_jwt(token)
        kid = parse_kid(header.get("kid"))
        if header.get("typ") != "JWT" or "crit" in header or kid is None or kid[0] != self.key_id:
            raise _invalid()
        public = await self._public_key(kid[1])
        if public is None or header.get("alg") != JWT_ALGORITHMS[public.algorithm]:
            raise _invalid()
        if public.algorithm == "ecdsa-p256-sha256":
            if len(signature) != 2 * _P256_BYTES:
                raise _invalid()
            r, s = signature[:_P256_BYTES], signature[_P256_BYTES:]
            signature = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        if not public.verify(signature, signing_input):
            raise _invalid()
        if claims.get("iss") != self.issuer or not isinstance(claims.get("sub"), str):
            raise _invalid()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_int(exp) or not _is_int(iat):
            raise _invalid()
        now = self.clock()
        if iat > now + self.leeway:
            raise _invalid()
        if now >= exp + self.leeway:
            raise Unauthorized("the access token has expired", code="token_expired")
        return claims

    # -- JWKS ---------------------------------------------------------------------------

    async def jwks(self) -> dict[str, Any]:
        """`{"keys": [...]}`: the current key version first, then the ones before it."""
        current = await self._current_version()
        keys = []
        for version in range(current, max(0, current - self.jwks_versions), -1):
            public = await self._public_key(version)
            if public is not None:
                keys.append(jwk(public))
        return {"keys": keys}


def jwk(public: PublicKey) -> dict[str, Any]:
    """One public key as a JWK: OKP/Ed25519 (RFC 8037) or EC/P-256 (RFC 7518)."""
    key = serialization.load_pem_public_key(public.pem.encode())
    common = {"kid": kid_of(public.key_id, public.version), "use": "sig"}
    if public.algorithm == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(key.public_bytes_raw()),
            "alg": "EdDSA",
            **common,
        }
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(_P256_BYTES, "big")),
            "y": b64url(numbers.y.to_bytes(_P256_BYTES, "big")),
            "alg": "ES256",
            **common,
        }
    raise ValueError(f"no JWK form for a {public.algorithm} key")


def _jws_signature(signature: Signature) -> bytes:
    """The signature as JWS wants it: Ed25519 as is, ECDSA as r || s (not DER)."""
    if signature.algorithm == "ed25519":
        return signature.value
    r, s = decode_dss_signature(signature.value)
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
