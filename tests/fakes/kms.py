"""A recording fake of `google.cloud.kms.KeyManagementServiceClient`, built on `cryptography`.

Cloud KMS has no emulator, so the KMS adapter is tested at the client seam. This fake holds real
keys (AES-256-GCM for ENCRYPT_DECRYPT versions, Ed25519 and P-256 for ASYMMETRIC_SIGN ones),
takes and returns the real request and response messages (`google.cloud.kms` types), RECORDS
every request as sent, and REJECTS what Cloud KMS rejects, raising the exceptions the real client
raises (google.api_core.exceptions):

- resource names that do not match Google's patterns (`projects/P/locations/L`,
  `.../keyRings/R`, `.../cryptoKeys/K`, `.../cryptoKeyVersions/N`, ids `[a-zA-Z0-9_-]{1,63}`),
  or a name of the wrong kind for the method (decrypt takes a key, sign a version);
- plaintext, AAD or signed data over 64 KiB, and empty plaintext;
- any *_crc32c field that does not match its data;
- use of a version that is not ENABLED (destroyed, disabled, still PENDING_GENERATION) —
  FAILED_PRECONDITION, as Google answers;
- a key used for the other purpose (encrypt with a signing key, sign with an encryption key),
  Ed25519 signing of a digest or P-256 signing of raw data, a primary version on a signing key;
- creating what exists (ALREADY_EXISTS), using what does not (NOT_FOUND).

Asymmetric versions start PENDING_GENERATION and turn ENABLED after `generation_reads` looks
(list/get), as Google generates them asynchronously. `corrupt(method, n)` makes the next n
responses of `method` fail their integrity checksum, to test the caller's verification.
"""

from __future__ import annotations

import re
import secrets
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.api_core import exceptions
from google.cloud import kms

MAX_BYTES = 64 * 1024
_ID = r"[a-zA-Z0-9_-]{1,63}"
_LOCATION = r"projects/(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/locations/[a-z0-9-]+"
LOCATION = re.compile(_LOCATION)
KEY_RING = re.compile(rf"({_LOCATION})/keyRings/({_ID})")
CRYPTO_KEY = re.compile(rf"({_LOCATION}/keyRings/{_ID})/cryptoKeys/({_ID})")
VERSION = re.compile(
    rf"({_LOCATION}/keyRings/{_ID}/cryptoKeys/{_ID})/cryptoKeyVersions/([1-9][0-9]*)"
)
ID = re.compile(_ID)

State = kms.CryptoKeyVersion.CryptoKeyVersionState
Purpose = kms.CryptoKey.CryptoKeyPurpose
Algorithm = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm
_SIGNING = {Algorithm.EC_SIGN_ED25519, Algorithm.EC_SIGN_P256_SHA256}
_CIPHERTEXT = struct.Struct(">4sI")
_MAGIC = b"fkms"


def crc32c(data: bytes) -> int:
    return int(google_crc32c.value(bytes(data)))


@dataclass
class Call:
    """One request as the client sent it (a copy: later mutation by the caller cannot alter it)."""

    method: str
    request: Any


@dataclass
class _Version:
    name: str
    algorithm: Any
    material: Any
    state: Any
    reads_until_enabled: int = 0


@dataclass
class _Key:
    name: str
    purpose: Any
    algorithm: Any
    versions: dict[int, _Version] = field(default_factory=dict)
    primary: int | None = None


class FakeKmsClient:
    """Stands in for KeyManagementServiceClient; see the module docstring for what it checks."""

    def __init__(self, *, generation_reads: int = 1) -> None:
        self.calls: list[Call] = []
        self.key_rings: set[str] = set()
        self.keys: dict[str, _Key] = {}
        self.generation_reads = generation_reads
        self._corrupt: dict[str, int] = {}
        self._lock = threading.RLock()

    # -- for tests -----------------------------------------------------------------------

    def requests(self, method: str) -> list[Any]:
        """Every recorded request of `method`, in order."""
        return [call.request for call in self.calls if call.method == method]

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    def corrupt(self, method: str, times: int = 1) -> None:
        """Make the next `times` responses of `method` carry a wrong checksum."""
        self._corrupt[method] = times

    def version_states(self, key_name: str) -> dict[int, str]:
        return {n: v.state.name for n, v in self.keys[key_name].versions.items()}

    # -- plumbing ------------------------------------------------------------------------

    def _begin(self, method: str, kind: type, request: Any, flattened: dict[str, Any]) -> Any:
        """The request as the generated client builds it: a message or dict, or flattened
        fields, never both; unknown fields are an error, as in the real client."""
        given = {k: v for k, v in flattened.items() if v is not None}
        if request is not None and given:
            raise ValueError(
                "If the `request` argument is set, then none of the individual "
                "field arguments should be set."
            )
        message = kind(request) if request is not None else kind(**given)
        self.calls.append(Call(method, kind.deserialize(kind.serialize(message))))
        return message

    def _corrupted(self, method: str) -> bool:
        left = self._corrupt.get(method, 0)
        if left:
            self._corrupt[method] = left - 1
        return bool(left)

    @staticmethod
    def _match(pattern: re.Pattern[str], name: str, field_name: str) -> re.Match[str]:
        found = pattern.fullmatch(name or "")
        if found is None:
            raise exceptions.InvalidArgument(
                f"Resource name [{name}] in field {field_name} does not match any known "
                "resource name pattern."
            )
        return found

    @staticmethod
    def _check_crc(message: Any, data_field: str, crc_field: str, data: bytes) -> bool:
        """Whether the request carried `crc_field`; InvalidArgument if it does not match."""
        if crc_field not in message:
            return False
        if getattr(message, crc_field) != crc32c(data):
            raise exceptions.InvalidArgument(
                f"The checksum in field {crc_field} did not match the data in field {data_field}."
            )
        return True

    @staticmethod
    def _limit(field_name: str, data: bytes) -> None:
        if len(data) > MAX_BYTES:
            raise exceptions.InvalidArgument(
                f"The {field_name} must be no larger than {MAX_BYTES} bytes; got {len(data)}."
            )

    def _key(self, name: str) -> _Key:
        key = self.keys.get(name)
        if key is None:
            raise exceptions.NotFound(f"CryptoKey {name} not found.")
        return key

    def _version(self, name: str) -> tuple[_Key, _Version]:
        found = self._match(VERSION, name, "name")
        key = self._key(found.group(1))
        version = key.versions.get(int(found.group(2)))
        if version is None:
            raise exceptions.NotFound(f"CryptoKeyVersion {name} not found.")
        self._observe(version)
        return key, version

    def _observe(self, version: _Version) -> None:
        if version.state == State.PENDING_GENERATION:
            if version.reads_until_enabled <= 0:
                version.state = State.ENABLED
            else:
                version.reads_until_enabled -= 1

    @staticmethod
    def _usable(version: _Version) -> None:
        if version.state != State.ENABLED:
            raise exceptions.FailedPrecondition(
                f"{version.name} is not enabled, current state is: {version.state.name}."
            )

    @staticmethod
    def _purpose(key: _Key, purpose: Any) -> None:
        if key.purpose != purpose:
            raise exceptions.FailedPrecondition(
                f"{key.name} has purpose {key.purpose.name}; this operation requires "
                f"{purpose.name}."
            )

    def _new_version(self, key: _Key) -> _Version:
        number = max(key.versions, default=0) + 1
        name = f"{key.name}/cryptoKeyVersions/{number}"
        if key.purpose == Purpose.ENCRYPT_DECRYPT:
            material: Any = AESGCM.generate_key(bit_length=256)
            version = _Version(name, key.algorithm, material, State.ENABLED)
        else:
            if key.algorithm == Algorithm.EC_SIGN_ED25519:
                material = Ed25519PrivateKey.generate()
            else:
                material = ec.generate_private_key(ec.SECP256R1())
            version = _Version(
                name, key.algorithm, material, State.PENDING_GENERATION, self.generation_reads
            )
        key.versions[number] = version
        return version

    @staticmethod
    def _version_message(version: _Version) -> kms.CryptoKeyVersion:
        return kms.CryptoKeyVersion(
            name=version.name,
            state=version.state,
            algorithm=version.algorithm,
            protection_level=kms.ProtectionLevel.SOFTWARE,
        )

    def _key_message(self, key: _Key) -> kms.CryptoKey:
        message = kms.CryptoKey(
            name=key.name,
            purpose=key.purpose,
            version_template=kms.CryptoKeyVersionTemplate(
                algorithm=key.algorithm, protection_level=kms.ProtectionLevel.SOFTWARE
            ),
        )
        if key.primary is not None:
            message.primary = self._version_message(key.versions[key.primary])
        return message

    # -- key rings and keys --------------------------------------------------------------

    def create_key_ring(
        self,
        request: Any = None,
        *,
        parent: Any = None,
        key_ring_id: Any = None,
        key_ring: Any = None,
        **_: Any,
    ) -> kms.KeyRing:
        with self._lock:
            req = self._begin(
                "create_key_ring",
                kms.CreateKeyRingRequest,
                request,
                {"parent": parent, "key_ring_id": key_ring_id, "key_ring": key_ring},
            )
            self._match(LOCATION, req.parent, "parent")
            if not ID.fullmatch(req.key_ring_id):
                raise exceptions.InvalidArgument(f"Invalid key_ring_id [{req.key_ring_id}].")
            name = f"{req.parent}/keyRings/{req.key_ring_id}"
            if name in self.key_rings:
                raise exceptions.AlreadyExists(f"KeyRing {name} already exists.")
            self.key_rings.add(name)
            return kms.KeyRing(name=name)

    def get_key_ring(self, request: Any = None, *, name: Any = None, **_: Any) -> kms.KeyRing:
        with self._lock:
            req = self._begin("get_key_ring", kms.GetKeyRingRequest, request, {"name": name})
            self._match(KEY_RING, req.name, "name")
            if req.name not in self.key_rings:
                raise exceptions.NotFound(f"KeyRing {req.name} not found.")
            return kms.KeyRing(name=req.name)

    def create_crypto_key(
        self,
        request: Any = None,
        *,
        parent: Any = None,
        crypto_key_id: Any = None,
        crypto_key: Any = None,
        **_: Any,
    ) -> kms.CryptoKey:
        with self._lock:
            req = self._begin(
                "create_crypto_key",
                kms.CreateCryptoKeyRequest,
                request,
                {"parent": parent, "crypto_key_id": crypto_key_id, "crypto_key": crypto_key},
            )
            self._match(KEY_RING, req.parent, "parent")
            if not ID.fullmatch(req.crypto_key_id):
                raise exceptions.InvalidArgument(f"Invalid crypto_key_id [{req.crypto_key_id}].")
            if req.parent not in self.key_rings:
                raise exceptions.NotFound(f"KeyRing {req.parent} not found.")
            purpose = req.crypto_key.purpose
            algorithm = req.crypto_key.version_template.algorithm
            if purpose == Purpose.ENCRYPT_DECRYPT:
                if algorithm not in (
                    Algorithm.CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED,
                    Algorithm.GOOGLE_SYMMETRIC_ENCRYPTION,
                ):
                    raise exceptions.InvalidArgument(
                        f"Algorithm {algorithm.name} is not valid for purpose ENCRYPT_DECRYPT."
                    )
                algorithm = Algorithm.GOOGLE_SYMMETRIC_ENCRYPTION
            elif purpose == Purpose.ASYMMETRIC_SIGN:
                if algorithm not in _SIGNING:
                    raise exceptions.InvalidArgument(
                        f"Algorithm {algorithm.name} is not valid for purpose ASYMMETRIC_SIGN "
                        "(this fake knows EC_SIGN_ED25519 and EC_SIGN_P256_SHA256)."
                    )
            else:
                raise exceptions.InvalidArgument(f"Unsupported purpose {purpose.name}.")
            name = f"{req.parent}/cryptoKeys/{req.crypto_key_id}"
            if name in self.keys:
                raise exceptions.AlreadyExists(f"CryptoKey {name} already exists.")
            key = _Key(name, purpose, algorithm)
            self.keys[name] = key
            if not req.skip_initial_version_creation:
                self._new_version(key)
                if purpose == Purpose.ENCRYPT_DECRYPT:
                    key.primary = 1
            return self._key_message(key)

    def get_crypto_key(self, request: Any = None, *, name: Any = None, **_: Any) -> kms.CryptoKey:
        with self._lock:
            req = self._begin("get_crypto_key", kms.GetCryptoKeyRequest, request, {"name": name})
            self._match(CRYPTO_KEY, req.name, "name")
            return self._key_message(self._key(req.name))

    def list_crypto_key_versions(
        self, request: Any = None, *, parent: Any = None, **_: Any
    ) -> list[kms.CryptoKeyVersion]:
        with self._lock:
            req = self._begin(
                "list_crypto_key_versions",
                kms.ListCryptoKeyVersionsRequest,
                request,
                {"parent": parent},
            )
            self._match(CRYPTO_KEY, req.parent, "parent")
            if req.filter or req.order_by or req.page_token:
                raise NotImplementedError("the fake lists without filter, order or pages")
            key = self._key(req.parent)
            for version in key.versions.values():
                self._observe(version)
            return [self._version_message(v) for _, v in sorted(key.versions.items())]

    def get_crypto_key_version(
        self, request: Any = None, *, name: Any = None, **_: Any
    ) -> kms.CryptoKeyVersion:
        with self._lock:
            req = self._begin(
                "get_crypto_key_version", kms.GetCryptoKeyVersionRequest, request, {"name": name}
            )
            _, version = self._version(req.name)
            return self._version_message(version)

    def create_crypto_key_version(
        self, request: Any = None, *, parent: Any = None, crypto_key_version: Any = None, **_: Any
    ) -> kms.CryptoKeyVersion:
        with self._lock:
            req = self._begin(
                "create_crypto_key_version",
                kms.CreateCryptoKeyVersionRequest,
                request,
                {"parent": parent, "crypto_key_version": crypto_key_version},
            )
            self._match(CRYPTO_KEY, req.parent, "parent")
            return self._version_message(self._new_version(self._key(req.parent)))

    def update_crypto_key_primary_version(
        self, request: Any = None, *, name: Any = None, crypto_key_version_id: Any = None, **_: Any
    ) -> kms.CryptoKey:
        with self._lock:
            req = self._begin(
                "update_crypto_key_primary_version",
                kms.UpdateCryptoKeyPrimaryVersionRequest,
                request,
                {"name": name, "crypto_key_version_id": crypto_key_version_id},
            )
            self._match(CRYPTO_KEY, req.name, "name")
            key = self._key(req.name)
            self._purpose(key, Purpose.ENCRYPT_DECRYPT)
            if not re.fullmatch(r"[1-9][0-9]*", req.crypto_key_version_id):
                raise exceptions.InvalidArgument(
                    f"Invalid crypto_key_version_id [{req.crypto_key_version_id}]."
                )
            number = int(req.crypto_key_version_id)
            if number not in key.versions:
                raise exceptions.NotFound(f"{req.name}/cryptoKeyVersions/{number} not found.")
            self._usable(key.versions[number])
            key.primary = number
            return self._key_message(key)

    def destroy_crypto_key_version(
        self, request: Any = None, *, name: Any = None, **_: Any
    ) -> kms.CryptoKeyVersion:
        with self._lock:
            req = self._begin(
                "destroy_crypto_key_version",
                kms.DestroyCryptoKeyVersionRequest,
                request,
                {"name": name},
            )
            _, version = self._version(req.name)
            if version.state not in (State.ENABLED, State.DISABLED):
                raise exceptions.FailedPrecondition(
                    f"{version.name} cannot be destroyed in state {version.state.name}."
                )
            version.state = State.DESTROY_SCHEDULED
            return self._version_message(version)

    # -- cryptography --------------------------------------------------------------------

    def encrypt(
        self, request: Any = None, *, name: Any = None, plaintext: Any = None, **_: Any
    ) -> kms.EncryptResponse:
        with self._lock:
            req = self._begin(
                "encrypt", kms.EncryptRequest, request, {"name": name, "plaintext": plaintext}
            )
            if VERSION.fullmatch(req.name or ""):
                key, version = self._version(req.name)
            else:
                self._match(CRYPTO_KEY, req.name, "name")
                key = self._key(req.name)
                self._purpose(key, Purpose.ENCRYPT_DECRYPT)
                if key.primary is None:
                    raise exceptions.FailedPrecondition(f"{key.name} has no primary version.")
                version = key.versions[key.primary]
            self._purpose(key, Purpose.ENCRYPT_DECRYPT)
            self._usable(version)
            if not req.plaintext:
                raise exceptions.InvalidArgument("The plaintext is required.")
            self._limit("plaintext", req.plaintext)
            self._limit("additional_authenticated_data", req.additional_authenticated_data)
            checked = self._check_crc(req, "plaintext", "plaintext_crc32c", req.plaintext)
            aad_checked = self._check_crc(
                req,
                "additional_authenticated_data",
                "additional_authenticated_data_crc32c",
                req.additional_authenticated_data,
            )
            nonce = secrets.token_bytes(12)
            number = int(version.name.rsplit("/", 1)[1])
            head = _CIPHERTEXT.pack(_MAGIC, number)
            sealed = AESGCM(version.material).encrypt(
                nonce, req.plaintext, head + req.additional_authenticated_data
            )
            ciphertext = head + nonce + sealed
            response = kms.EncryptResponse(
                name=version.name,
                ciphertext=ciphertext,
                ciphertext_crc32c=crc32c(ciphertext),
                verified_plaintext_crc32c=checked,
                verified_additional_authenticated_data_crc32c=aad_checked,
                protection_level=kms.ProtectionLevel.SOFTWARE,
            )
            if self._corrupted("encrypt"):
                response.ciphertext_crc32c = response.ciphertext_crc32c ^ 1
            return response

    def decrypt(
        self, request: Any = None, *, name: Any = None, ciphertext: Any = None, **_: Any
    ) -> kms.DecryptResponse:
        with self._lock:
            req = self._begin(
                "decrypt", kms.DecryptRequest, request, {"name": name, "ciphertext": ciphertext}
            )
            self._match(CRYPTO_KEY, req.name, "name")  # a key, never a version: KMS picks it
            key = self._key(req.name)
            self._purpose(key, Purpose.ENCRYPT_DECRYPT)
            self._limit("additional_authenticated_data", req.additional_authenticated_data)
            self._check_crc(req, "ciphertext", "ciphertext_crc32c", req.ciphertext)
            self._check_crc(
                req,
                "additional_authenticated_data",
                "additional_authenticated_data_crc32c",
                req.additional_authenticated_data,
            )
            invalid = exceptions.InvalidArgument("Decryption failed: the ciphertext is invalid.")
            blob = bytes(req.ciphertext)
            if len(blob) < _CIPHERTEXT.size + 12 + 16:
                raise invalid
            magic, number = _CIPHERTEXT.unpack_from(blob)
            version = key.versions.get(number)
            if magic != _MAGIC or version is None:
                raise invalid
            self._usable(version)
            head, nonce = blob[: _CIPHERTEXT.size], blob[_CIPHERTEXT.size : _CIPHERTEXT.size + 12]
            try:
                plaintext = AESGCM(version.material).decrypt(
                    nonce, blob[_CIPHERTEXT.size + 12 :], head + req.additional_authenticated_data
                )
            except InvalidTag:
                raise invalid from None
            response = kms.DecryptResponse(
                plaintext=plaintext,
                plaintext_crc32c=crc32c(plaintext),
                used_primary=number == key.primary,
                protection_level=kms.ProtectionLevel.SOFTWARE,
            )
            if self._corrupted("decrypt"):
                response.plaintext_crc32c = response.plaintext_crc32c ^ 1
            return response

    def asymmetric_sign(
        self, request: Any = None, *, name: Any = None, digest: Any = None, **_: Any
    ) -> kms.AsymmetricSignResponse:
        with self._lock:
            req = self._begin(
                "asymmetric_sign",
                kms.AsymmetricSignRequest,
                request,
                {"name": name, "digest": digest},
            )
            key, version = self._version(req.name)
            self._purpose(key, Purpose.ASYMMETRIC_SIGN)
            self._usable(version)
            has_digest = "digest" in req
            if version.algorithm == Algorithm.EC_SIGN_ED25519:
                if has_digest or not req.data:
                    raise exceptions.InvalidArgument(
                        "EC_SIGN_ED25519 signs the data itself: set data, not digest."
                    )
                self._limit("data", req.data)
                verified = self._check_crc(req, "data", "data_crc32c", req.data)
                signature = version.material.sign(req.data)
                response = kms.AsymmetricSignResponse(verified_data_crc32c=verified)
            else:
                if req.data or len(req.digest.sha256) != 32:
                    raise exceptions.InvalidArgument(
                        "EC_SIGN_P256_SHA256 signs a digest: set digest.sha256 (32 bytes)."
                    )
                verified = self._check_crc(req, "digest", "digest_crc32c", req.digest.sha256)
                signature = version.material.sign(
                    req.digest.sha256, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
                )
                response = kms.AsymmetricSignResponse(verified_digest_crc32c=verified)
            response.name = version.name
            response.signature = signature
            response.signature_crc32c = crc32c(signature)
            response.protection_level = kms.ProtectionLevel.SOFTWARE
            if self._corrupted("asymmetric_sign"):
                response.signature_crc32c = response.signature_crc32c ^ 1
            return response

    def get_public_key(self, request: Any = None, *, name: Any = None, **_: Any) -> kms.PublicKey:
        with self._lock:
            req = self._begin("get_public_key", kms.GetPublicKeyRequest, request, {"name": name})
            key, version = self._version(req.name)
            self._purpose(key, Purpose.ASYMMETRIC_SIGN)
            self._usable(version)
            pem = (
                version.material.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
            response = kms.PublicKey(
                name=version.name,
                pem=pem,
                pem_crc32c=crc32c(pem.encode()),
                algorithm=version.algorithm,
                protection_level=kms.ProtectionLevel.SOFTWARE,
            )
            if self._corrupted("get_public_key"):
                response.pem_crc32c = response.pem_crc32c ^ 1
            return response
