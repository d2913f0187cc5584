"""KeyService on Cloud KMS: a key ring per region, a key per tenant.

Encryption is envelope encryption: each `encrypt` draws a fresh 256-bit data key, seals the
payload with AES-256-GCM here, and sends only the data key to Cloud KMS, which wraps it with the
tenant's key and the caller's `aad` as additional authenticated data. A payload of any size costs
one KMS call of 32 bytes, always far below KMS's 64 KiB limit.

Ciphertext layout: format byte (1) | wrapped-key length (2, big-endian) | wrapped data key |
nonce (12) | AES-GCM output. AES-GCM authenticates the header, the wrapped key and the `aad`.

Every request carries the CRC32C integrity fields Google documents and every response is
checked (the verified_* flags, the checksums of what came back, the resource name that was
used); a response failing its check is discarded and the call retried a few times.

Destroying a key schedules every live version for destruction. Cloud KMS keeps the material for
the key's `destroy_scheduled_duration` (30 days unless configured) during which an administrator
can still restore it; to the platform the key is gone at once — every use raises KeyDestroyed.

Signing keys are ASYMMETRIC_SIGN keys, EC_SIGN_ED25519 by default (Ed25519 signs the message
itself, sent as `data`) or EC_SIGN_P256_SHA256 (the SHA-256 digest is computed here and sent as
`digest`; signatures are DER). Cloud KMS generates asymmetric versions asynchronously, so
creating or rotating one waits until the new version is ENABLED.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cfp.adapters.gcp.errors import PreconditionFailed, from_google
from cfp.errors import (
    BadRequest,
    CfpError,
    Conflict,
    DecryptFailed,
    KeyDestroyed,
    NotFound,
    SettingsError,
    Unavailable,
)
from cfp.ports import KEY_SERVICE_MAX_BYTES, PublicKey, Signature, SigningAlgorithm

FORMAT = 1
_HEADER = struct.Struct(">BH")
_NONCE_BYTES = 12
_TAG_BYTES = 16
_DATA_KEY_BITS = 256
# Cloud KMS's rule for key ring and crypto key ids.
_ID = re.compile(r"[A-Za-z0-9_-]{1,63}")
# A response whose integrity check fails is discarded and the call retried, this many times in all.
INTEGRITY_ATTEMPTS = 3

_ALGORITHMS: dict[SigningAlgorithm, str] = {
    "ed25519": "EC_SIGN_ED25519",
    "ecdsa-p256-sha256": "EC_SIGN_P256_SHA256",
}
_ALIVE = {"ENABLED", "DISABLED", "PENDING_GENERATION", "PENDING_IMPORT"}
_SHREDDED = {
    "DESTROYED",
    "DESTROY_SCHEDULED",
    "PENDING_EXTERNAL_DESTRUCTION",
    "EXTERNAL_DESTRUCTION_FAILED",
}
ENCRYPT, SIGN = "ENCRYPT_DECRYPT", "ASYMMETRIC_SIGN"


def crc32c(data: bytes) -> int:
    """CRC32C as Cloud KMS's integrity fields carry it."""
    import google_crc32c

    return int(google_crc32c.value(bytes(data)))


class CloudKmsKeyService:
    """KeyService over Cloud KMS: key ring `projects/{project}/locations/{region}/keyRings/
    {keyring}` (created when first needed), crypto key `cryptoKeys/{key_id}` per tenant.

    `client` is a `google.cloud.kms.KeyManagementServiceClient` or anything with its methods;
    by default one is built on first use from Application Default Credentials. Its blocking
    calls run in worker threads.
    """

    def __init__(
        self,
        *,
        project: str,
        region: str,
        keyring: str,
        client: Any = None,
        signing_algorithm: SigningAlgorithm = "ed25519",
        timeout: float = 30.0,
        generation_timeout: float = 60.0,
        poll_seconds: float = 0.2,
        version_cache_seconds: float = 300.0,
    ) -> None:
        if not _ID.fullmatch(keyring):
            raise SettingsError(
                f"Cloud KMS key ring id {keyring!r} must be 1-63 letters, digits, '-' or '_'"
            )
        if signing_algorithm not in _ALGORITHMS:
            raise SettingsError(
                f"signing algorithm {signing_algorithm!r} is not one of {sorted(_ALGORITHMS)}"
            )
        self.location = f"projects/{project}/locations/{region}"
        self.keyring = f"{self.location}/keyRings/{keyring}"
        self.signing_algorithm = signing_algorithm
        self.timeout = timeout
        self.generation_timeout = generation_timeout
        self.poll_seconds = poll_seconds
        self.version_cache_seconds = version_cache_seconds
        self._keyring_id = keyring
        self._client = client
        self._client_lock = threading.Lock()
        self._keyring_ready = False
        # key id -> (current signing version, its algorithm, when looked up): saves a listing
        # per signature; another instance's rotation is picked up when the entry ages out.
        self._signing: dict[str, tuple[int, SigningAlgorithm, float]] = {}

    # -- names and calls ---------------------------------------------------------------

    def key_name(self, key_id: str) -> str:
        """The crypto key's resource name; BadRequest for an id Cloud KMS would refuse."""
        if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
            raise BadRequest(
                "a key id is 1-63 letters, digits, '-' or '_'", details={"key_id": key_id}
            )
        return f"{self.keyring}/cryptoKeys/{key_id}"

    def version_name(self, key_id: str, version: int) -> str:
        """The resource name of one version of a crypto key."""
        return f"{self.key_name(key_id)}/cryptoKeyVersions/{version}"

    def _kms(self) -> Any:
        with self._client_lock:
            if self._client is None:
                from google.auth.exceptions import DefaultCredentialsError
                from google.cloud import kms

                try:
                    self._client = kms.KeyManagementServiceClient()
                except DefaultCredentialsError as exc:
                    raise SettingsError(f"no Google credentials for Cloud KMS: {exc}") from exc
            return self._client

    def _invoke(self, method: str, request: Any, many: bool) -> Any:
        result = getattr(self._kms(), method)(request=request, timeout=self.timeout)
        # A list call returns a pager that fetches further pages while iterated: here, in the
        # worker thread.
        return list(result) if many else result

    async def _call(self, method: str, request: Any, key_id: str, *, many: bool = False) -> Any:
        try:
            return await asyncio.to_thread(self._invoke, method, request, many)
        except CfpError:
            raise
        except Exception as exc:
            if not _is_google_error(exc):
                raise
            subject = f" for key {key_id!r}" if key_id else f" on key ring {self.keyring}"
            raise from_google(
                exc, f"Cloud KMS {method}{subject}", details={"key_id": key_id}
            ) from exc

    async def _checked(
        self, method: str, request: Any, key_id: str, problem: Callable[[Any], str | None]
    ) -> Any:
        """Call `method` and check the response's integrity; retry a few times if it fails."""
        for _ in range(INTEGRITY_ATTEMPTS):
            response = await self._call(method, request, key_id)
            found = problem(response)
            if found is None:
                return response
        raise Unavailable(
            f"Cloud KMS {method} for key {key_id!r}: the response failed its integrity check "
            f"{INTEGRITY_ATTEMPTS} times ({found})",
            details={"key_id": key_id},
        )

    async def _ensure_keyring(self) -> None:
        """Create the region's key ring unless it exists (looked up first: a runtime identity
        may be allowed to use keys without being allowed to create key rings)."""
        if self._keyring_ready:
            return
        from google.cloud import kms

        try:
            await self._call("get_key_ring", kms.GetKeyRingRequest(name=self.keyring), "")
        except NotFound:
            request = kms.CreateKeyRingRequest(
                parent=self.location, key_ring_id=self._keyring_id, key_ring=kms.KeyRing()
            )
            try:
                await self._call("create_key_ring", request, "")
            except Conflict:
                pass  # created concurrently
        self._keyring_ready = True

    async def _create(self, key_id: str, purpose: str, algorithm: str) -> bool:
        """Create the crypto key; False if it already existed (then checked to be usable)."""
        from google.cloud import kms

        self.key_name(key_id)
        await self._ensure_keyring()
        request = kms.CreateCryptoKeyRequest(
            parent=self.keyring,
            crypto_key_id=key_id,
            crypto_key=kms.CryptoKey(
                purpose=purpose,
                version_template=kms.CryptoKeyVersionTemplate(
                    algorithm=algorithm, protection_level="SOFTWARE"
                ),
            ),
        )
        try:
            await self._call("create_crypto_key", request, key_id)
        except Conflict:
            await self._diagnose(key_id, purpose)
            return False
        return True

    async def _versions(self, key_id: str) -> list[Any]:
        from google.cloud import kms

        request = kms.ListCryptoKeyVersionsRequest(parent=self.key_name(key_id))
        return await self._call("list_crypto_key_versions", request, key_id, many=True)

    async def _diagnose(self, key_id: str, purpose: str | None = None) -> Any:
        """Raise KeyDestroyed if every version is destroyed, or BadRequest if the key exists for
        another purpose; otherwise return the key (the caller's own error then stands)."""
        from google.cloud import kms

        key = await self._call(
            "get_crypto_key", kms.GetCryptoKeyRequest(name=self.key_name(key_id)), key_id
        )
        states = {v.state.name for v in await self._versions(key_id)}
        if states and not states & _ALIVE and states & _SHREDDED:
            raise KeyDestroyed(
                f"key {key_id!r} was destroyed; data encrypted with it cannot be recovered",
                details={"key_id": key_id},
            )
        if purpose is not None and key.purpose.name != purpose:
            kind = "a signing key" if key.purpose.name == SIGN else "an encryption key"
            raise BadRequest(
                f"key {key_id!r} is {kind}; it cannot be used for this",
                details={"key_id": key_id, "purpose": key.purpose.name},
                code="wrong_key_purpose",
            )
        return key

    # -- key lifecycle -----------------------------------------------------------------

    async def create_key(self, key_id: str) -> str:
        """Create the tenant's encryption key if it does not exist yet; returns its id."""
        await self._create(key_id, ENCRYPT, "GOOGLE_SYMMETRIC_ENCRYPTION")
        return key_id

    async def rotate_key(self, key_id: str) -> int:
        """Add a key version and make it current (primary, for encryption keys); older
        versions still decrypt and verify. Returns the new version."""
        from google.cloud import kms

        name = self.key_name(key_id)
        key = await self._diagnose(key_id)  # a destroyed key must not come back to life
        created = await self._call(
            "create_crypto_key_version",
            kms.CreateCryptoKeyVersionRequest(parent=name, crypto_key_version={}),
            key_id,
        )
        version = _version_number(created.name)
        if key.purpose.name == ENCRYPT:
            await self._call(
                "update_crypto_key_primary_version",
                kms.UpdateCryptoKeyPrimaryVersionRequest(
                    name=name, crypto_key_version_id=str(version)
                ),
                key_id,
            )
        else:
            self._signing.pop(key_id, None)
            await self._signing_version(key_id, at_least=version)
        return version

    async def destroy_key(self, key_id: str) -> None:
        """Schedule every live version for destruction; destroying twice is harmless."""
        from google.cloud import kms

        self._signing.pop(key_id, None)
        for version in await self._versions(key_id):
            if version.state.name not in {"ENABLED", "DISABLED"}:
                continue
            request = kms.DestroyCryptoKeyVersionRequest(name=version.name)
            try:
                await self._call("destroy_crypto_key_version", request, key_id)
            except PreconditionFailed:
                pass  # destroyed concurrently

    # -- encryption --------------------------------------------------------------------

    async def encrypt(self, key_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        from google.cloud import kms

        name = self.key_name(key_id)
        aad = _limited("aad", aad)
        data_key = AESGCM.generate_key(bit_length=_DATA_KEY_BITS)
        request = kms.EncryptRequest(
            name=name, plaintext=data_key, plaintext_crc32c=crc32c(data_key)
        )
        if aad:
            request.additional_authenticated_data = aad
            request.additional_authenticated_data_crc32c = crc32c(aad)

        def problem(response: Any) -> str | None:
            if not response.verified_plaintext_crc32c:
                return "plaintext_crc32c not verified"
            if aad and not response.verified_additional_authenticated_data_crc32c:
                return "additional_authenticated_data_crc32c not verified"
            if response.ciphertext_crc32c != crc32c(response.ciphertext):
                return "ciphertext_crc32c mismatch"
            if not response.name.startswith(f"{name}/cryptoKeyVersions/"):
                return f"encrypted with {response.name!r}, not a version of {name!r}"
            return None

        try:
            response = await self._checked("encrypt", request, key_id, problem)
        except (PreconditionFailed, BadRequest):
            await self._diagnose(key_id, ENCRYPT)
            raise
        wrapped = bytes(response.ciphertext)
        header = _HEADER.pack(FORMAT, len(wrapped))
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, bytes(plaintext), header + wrapped + aad)
        return header + wrapped + nonce + sealed

    async def decrypt(self, key_id: str, ciphertext: bytes, *, aad: bytes = b"") -> bytes:
        from google.cloud import kms

        name = self.key_name(key_id)
        aad = _limited("aad", aad)
        ciphertext = bytes(ciphertext)
        if len(ciphertext) < _HEADER.size:
            raise DecryptFailed(f"ciphertext for key {key_id!r} is truncated")
        fmt, wrapped_len = _HEADER.unpack_from(ciphertext)
        if fmt != FORMAT:
            raise DecryptFailed(f"ciphertext for key {key_id!r} has unknown format {fmt}")
        body = _HEADER.size + wrapped_len
        if wrapped_len == 0 or len(ciphertext) < body + _NONCE_BYTES + _TAG_BYTES:
            raise DecryptFailed(f"ciphertext for key {key_id!r} is truncated")
        header, wrapped = ciphertext[: _HEADER.size], ciphertext[_HEADER.size : body]
        nonce, sealed = ciphertext[body : body + _NONCE_BYTES], ciphertext[body + _NONCE_BYTES :]

        request = kms.DecryptRequest(
            name=name, ciphertext=wrapped, ciphertext_crc32c=crc32c(wrapped)
        )
        if aad:
            request.additional_authenticated_data = aad
            request.additional_authenticated_data_crc32c = crc32c(aad)

        def problem(response: Any) -> str | None:
            if response.plaintext_crc32c != crc32c(response.plaintext):
                return "plaintext_crc32c mismatch"
            return None

        try:
            response = await self._checked("decrypt", request, key_id, problem)
        except PreconditionFailed:
            await self._diagnose(key_id, ENCRYPT)
            raise
        except BadRequest as exc:
            # KMS says INVALID_ARGUMENT for a wrapped key it did not make or a different aad.
            raise DecryptFailed(
                f"cannot decrypt with key {key_id!r}: the ciphertext was altered, belongs to "
                "another key, or the associated data (aad) differs from encryption",
                details={"key_id": key_id},
            ) from exc
        data_key = bytes(response.plaintext)
        try:
            return AESGCM(data_key).decrypt(nonce, sealed, header + wrapped + aad)
        except (InvalidTag, ValueError):
            raise DecryptFailed(
                f"cannot decrypt with key {key_id!r}: the ciphertext was altered or the "
                "associated data (aad) differs from encryption",
                details={"key_id": key_id},
            ) from None

    # -- signing -----------------------------------------------------------------------

    async def create_signing_key(self, key_id: str) -> PublicKey:
        """Create an asymmetric signing key if absent; the current version's public key."""
        created = await self._create(key_id, SIGN, _ALGORITHMS[self.signing_algorithm])
        if created:
            self._signing.pop(key_id, None)
        return await self.public_key(key_id)

    async def sign(self, key_id: str, message: bytes) -> Signature:
        """Sign `message` with the key's current version (`data` for Ed25519, a SHA-256
        `digest` for P-256), checking Cloud KMS's integrity fields."""
        from google.cloud import kms

        self.key_name(key_id)
        message = _limited("a signed message", message)
        if not message:
            raise BadRequest("there is nothing to sign: the message is empty")
        version, algorithm = await self._signing_version(key_id)
        name = self.version_name(key_id, version)
        if algorithm == "ed25519":
            request = kms.AsymmetricSignRequest(
                name=name, data=message, data_crc32c=crc32c(message)
            )
        else:
            digest = hashlib.sha256(message).digest()
            request = kms.AsymmetricSignRequest(
                name=name, digest=kms.Digest(sha256=digest), digest_crc32c=crc32c(digest)
            )

        def problem(response: Any) -> str | None:
            verified = (
                response.verified_data_crc32c
                if algorithm == "ed25519"
                else response.verified_digest_crc32c
            )
            if not verified:
                return "request checksum not verified"
            if response.signature_crc32c != crc32c(response.signature):
                return "signature_crc32c mismatch"
            if response.name != name:
                return f"signed with {response.name!r}, not {name!r}"
            return None

        try:
            response = await self._checked("asymmetric_sign", request, key_id, problem)
        except (PreconditionFailed, BadRequest, NotFound):
            self._signing.pop(key_id, None)
            await self._diagnose(key_id, SIGN)
            raise
        return Signature(
            key_id=key_id, version=version, algorithm=algorithm, value=bytes(response.signature)
        )

    async def public_key(self, key_id: str, version: int | None = None) -> PublicKey:
        """The public key of `version` (default: the newest enabled one), PEM as KMS gives it."""
        from google.cloud import kms

        self.key_name(key_id)
        if version is None:
            self._signing.pop(key_id, None)
            version, _ = await self._signing_version(key_id)
        name = self.version_name(key_id, version)

        def problem(response: Any) -> str | None:
            if response.pem_crc32c != crc32c(response.pem.encode()):
                return "pem_crc32c mismatch"
            if response.name != name:
                return f"public key of {response.name!r}, not {name!r}"
            return None

        try:
            response = await self._checked(
                "get_public_key", kms.GetPublicKeyRequest(name=name), key_id, problem
            )
        except (PreconditionFailed, BadRequest):
            await self._diagnose(key_id, SIGN)
            raise
        return PublicKey(
            key_id=key_id,
            version=version,
            algorithm=_algorithm(key_id, response.algorithm.name),
            pem=response.pem,
        )

    async def _signing_version(
        self, key_id: str, *, at_least: int = 0
    ) -> tuple[int, SigningAlgorithm]:
        """The newest ENABLED version of a signing key and its algorithm, waiting while Cloud
        KMS is still generating one."""
        cached = self._signing.get(key_id)
        if cached and cached[0] >= at_least:
            if time.monotonic() - cached[2] < self.version_cache_seconds:
                return cached[0], cached[1]
        deadline = time.monotonic() + self.generation_timeout
        while True:
            versions = await self._versions(key_id)
            enabled = [v for v in versions if v.state.name == "ENABLED"]
            pending = any(v.state.name == "PENDING_GENERATION" for v in versions)
            newest = max(enabled, key=lambda v: _version_number(v.name), default=None)
            number = _version_number(newest.name) if newest is not None else 0
            if newest is not None and number >= at_least:
                if newest.algorithm.name not in _ALGORITHMS.values():
                    await self._diagnose(key_id, SIGN)  # an encryption key, most likely
                algorithm = _algorithm(key_id, newest.algorithm.name)
                self._signing[key_id] = (number, algorithm, time.monotonic())
                return number, algorithm
            if not pending:
                await self._diagnose(key_id, SIGN)
                raise PreconditionFailed(
                    f"signing key {key_id!r} has no enabled version",
                    details={"key_id": key_id},
                )
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"Cloud KMS did not finish generating a version of signing key {key_id!r} "
                    f"within {self.generation_timeout}s",
                    details={"key_id": key_id},
                )
            await asyncio.sleep(self.poll_seconds)


def _is_google_error(exc: BaseException) -> bool:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return isinstance(exc, GoogleAPIError | GoogleAuthError | OSError)


def _version_number(name: str) -> int:
    return int(name.rsplit("/", 1)[1])


def _algorithm(key_id: str, kms_algorithm: str) -> SigningAlgorithm:
    for ours, theirs in _ALGORITHMS.items():
        if theirs == kms_algorithm:
            return ours
    raise CfpError(
        f"signing key {key_id!r} uses {kms_algorithm}, which the platform does not verify "
        f"(supported: {sorted(_ALGORITHMS.values())})",
        details={"key_id": key_id},
    )


def _limited(what: str, data: bytes) -> bytes:
    data = bytes(data)
    if len(data) > KEY_SERVICE_MAX_BYTES:
        raise BadRequest(
            f"{what} is {len(data)} bytes; the key service takes at most {KEY_SERVICE_MAX_BYTES}",
            details={"size": len(data), "limit": KEY_SERVICE_MAX_BYTES},
        )
    return data
