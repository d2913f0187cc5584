"""KeyService on a local keyring file: AES-256-GCM encryption keys and Ed25519 signing keys per
key id, versioned for rotation.

The keyring is the local stand-in for Cloud KMS. It holds raw key material, so it lives in the
data dir with mode 0600; destroying a key deletes its material from the file, after which every
ciphertext made with it is unreadable (crypto-shredding a tenant).

Ciphertext layout: format byte (1) | key version (4, big-endian) | nonce (12) | AES-GCM output.
The 5-byte header is authenticated together with the caller's `aad`. Signing keys keep each
version's raw Ed25519 private key; signatures are the 64 raw Ed25519 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cfp.errors import BadRequest, CfpError, DecryptFailed, KeyDestroyed, NotFound
from cfp.ports import KEY_SERVICE_MAX_BYTES, PublicKey, Signature

try:
    import fcntl
except ImportError:  # Windows: one process per data dir is all `cfp dev` runs there
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
_HEADER = struct.Struct(">BI")
_NONCE_BYTES = 12
_KEY_BYTES = 32
# Cloud KMS's rule for key ids, applied here too so an id that works locally works in Google Cloud.
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,63}")
# What an entry's "purpose" means; entries written before signing keys existed have none.
ENCRYPT, SIGN = "encrypt", "sign"


class LocalKeyring:
    """KeyService over a JSON keyring file, rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._stamp: tuple[int, int, int] | None = None

    # -- the file ----------------------------------------------------------------------

    def _refresh(self) -> dict[str, Any]:
        """The keyring as on disk, re-read only when another writer changed the file."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return self._keys
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise CfpError(f"keyring {self.path} has an unknown format {raw.get('format')!r}")
            self._keys, self._stamp = raw["keys"], stamp
        return self._keys

    def _save(self, keys: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"format": FORMAT, "keys": keys}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        st = self.path.stat()
        self._keys, self._stamp = keys, (st.st_ino, st.st_mtime_ns, st.st_size)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[dict[str, Any]]:
        """A fresh copy of the keyring to modify, held under this thread's and the file's lock."""
        with self._lock:
            if fcntl is None:
                yield json.loads(json.dumps(self._refresh()))
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield json.loads(json.dumps(self._refresh()))
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    # -- key lifecycle -----------------------------------------------------------------

    async def create_key(self, key_id: str) -> str:
        """Create the key if it does not exist yet; returns its id either way."""
        _check_id(key_id)
        return await asyncio.to_thread(self._create, key_id)

    def _create(self, key_id: str) -> str:
        with self._exclusive() as keys:
            entry = keys.get(key_id)
            if entry is not None:
                _live(key_id, entry, ENCRYPT)
                return key_id
            keys[key_id] = {"created_at": time.time(), "primary": 1, "versions": {"1": _new_key()}}
            self._save(keys)
        return key_id

    async def create_signing_key(self, key_id: str) -> PublicKey:
        """Create an Ed25519 signing key if it does not exist yet; its current public key."""
        _check_id(key_id)
        return await asyncio.to_thread(self._create_signing, key_id)

    def _create_signing(self, key_id: str) -> PublicKey:
        with self._exclusive() as keys:
            entry = keys.get(key_id)
            if entry is None:
                entry = {
                    "created_at": time.time(),
                    "purpose": SIGN,
                    "algorithm": "ed25519",
                    "primary": 1,
                    "versions": {"1": _new_signing_key()},
                }
                keys[key_id] = entry
                self._save(keys)
            _live(key_id, entry, SIGN)
        return _public(key_id, entry, entry["primary"])

    async def rotate_key(self, key_id: str) -> int:
        """Add a new key version and make it primary; older versions still decrypt and verify.
        Returns the new version."""
        _check_id(key_id)
        return await asyncio.to_thread(self._rotate, key_id)

    def _rotate(self, key_id: str) -> int:
        with self._exclusive() as keys:
            entry = _live(key_id, keys.get(key_id))
            version = max(int(v) for v in entry["versions"]) + 1
            fresh = _new_signing_key() if entry.get("purpose") == SIGN else _new_key()
            entry["versions"][str(version)] = fresh
            entry["primary"] = version
            self._save(keys)
        return version

    async def destroy_key(self, key_id: str) -> None:
        """Delete every version's material; the id stays as a tombstone so it is never reused."""
        _check_id(key_id)
        await asyncio.to_thread(self._destroy, key_id)

    def _destroy(self, key_id: str) -> None:
        with self._exclusive() as keys:
            entry = keys.get(key_id)
            if entry is None:
                raise NotFound(f"no key {key_id!r}", details={"key_id": key_id})
            if entry.get("destroyed_at") is not None:
                return
            keys[key_id] = {
                "created_at": entry["created_at"],
                "purpose": entry.get("purpose", ENCRYPT),
                "destroyed_at": time.time(),
            }
            self._save(keys)

    # -- encryption --------------------------------------------------------------------

    async def encrypt(self, key_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        _check_id(key_id)
        _check_size("aad", aad)
        version, key = await asyncio.to_thread(self._material, key_id, None)
        header = _HEADER.pack(FORMAT, version)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return header + nonce + AESGCM(key).encrypt(nonce, bytes(plaintext), header + aad)

    async def decrypt(self, key_id: str, ciphertext: bytes, *, aad: bytes = b"") -> bytes:
        _check_id(key_id)
        _check_size("aad", aad)
        ciphertext = bytes(ciphertext)
        if len(ciphertext) < _HEADER.size + _NONCE_BYTES + 16:
            raise DecryptFailed(f"ciphertext for key {key_id!r} is truncated")
        fmt, version = _HEADER.unpack_from(ciphertext)
        if fmt != FORMAT:
            raise DecryptFailed(f"ciphertext for key {key_id!r} has unknown format {fmt}")
        _, key = await asyncio.to_thread(self._material, key_id, version)
        header, rest = ciphertext[: _HEADER.size], ciphertext[_HEADER.size :]
        nonce, sealed = rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, sealed, header + aad)
        except InvalidTag:
            raise DecryptFailed(
                f"cannot decrypt with key {key_id!r}: the ciphertext was altered or the "
                "associated data (aad) differs from encryption",
                details={"key_id": key_id},
            ) from None

    def _material(self, key_id: str, version: int | None) -> tuple[int, bytes]:
        with self._lock:
            entry = _live(key_id, self._refresh().get(key_id), ENCRYPT)
        version = entry["primary"] if version is None else version
        encoded = entry["versions"].get(str(version))
        if encoded is None:
            raise DecryptFailed(
                f"key {key_id!r} has no version {version}", details={"key_id": key_id}
            )
        return version, base64.b64decode(encoded)

    # -- signing -----------------------------------------------------------------------

    async def sign(self, key_id: str, message: bytes) -> Signature:
        """Sign `message` with the key's current version (Ed25519, 64 raw bytes)."""
        _check_id(key_id)
        _check_size("a signed message", message)
        if not message:
            raise BadRequest("there is nothing to sign: the message is empty")
        version, private = await asyncio.to_thread(self._signing_key, key_id)
        value = private.sign(bytes(message))
        return Signature(key_id=key_id, version=version, algorithm="ed25519", value=value)

    def _signing_key(self, key_id: str) -> tuple[int, Ed25519PrivateKey]:
        with self._lock:
            entry = _live(key_id, self._refresh().get(key_id), SIGN)
        version = entry["primary"]
        raw = base64.b64decode(entry["versions"][str(version)])
        return version, Ed25519PrivateKey.from_private_bytes(raw)

    async def public_key(self, key_id: str, version: int | None = None) -> PublicKey:
        """The public key of `version` (default: the current one) of a signing key."""
        _check_id(key_id)
        return await asyncio.to_thread(self._public_key, key_id, version)

    def _public_key(self, key_id: str, version: int | None) -> PublicKey:
        with self._lock:
            entry = _live(key_id, self._refresh().get(key_id), SIGN)
        return _public(key_id, entry, entry["primary"] if version is None else version)


def _new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=_KEY_BYTES * 8)).decode()


def _new_signing_key() -> str:
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def _public(key_id: str, entry: dict[str, Any], version: int) -> PublicKey:
    encoded = entry["versions"].get(str(version))
    if encoded is None:
        raise NotFound(
            f"signing key {key_id!r} has no version {version}",
            details={"key_id": key_id, "version": version},
        )
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded))
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey(key_id=key_id, version=version, algorithm="ed25519", pem=pem.decode())


def _check_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise BadRequest("a key id is 1-63 letters, digits, '-' or '_'", details={"key_id": key_id})


def _check_size(what: str, data: bytes) -> None:
    if len(data) > KEY_SERVICE_MAX_BYTES:
        raise BadRequest(
            f"{what} is {len(data)} bytes; the key service takes at most {KEY_SERVICE_MAX_BYTES}",
            details={"size": len(data), "limit": KEY_SERVICE_MAX_BYTES},
        )


def _live(key_id: str, entry: dict[str, Any] | None, purpose: str | None = None) -> dict[str, Any]:
    """The entry of a usable key (of `purpose`, if given)."""
    if entry is None:
        raise NotFound(f"no key {key_id!r}", details={"key_id": key_id})
    if entry.get("destroyed_at") is not None:
        raise KeyDestroyed(
            f"key {key_id!r} was destroyed; data encrypted with it cannot be recovered",
            details={"key_id": key_id},
        )
    actual = entry.get("purpose", ENCRYPT)
    if purpose is not None and actual != purpose:
        raise _wrong_purpose(key_id, actual)
    return entry


def _wrong_purpose(key_id: str, actual: str) -> BadRequest:
    """The error for using a key for what it was not made for."""
    kind = "a signing key" if actual == SIGN else "an encryption key"
    return BadRequest(
        f"key {key_id!r} is {kind}; it cannot be used for this",
        details={"key_id": key_id, "purpose": actual},
        code="wrong_key_purpose",
    )
