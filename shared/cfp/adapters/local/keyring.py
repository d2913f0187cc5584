"""KeyService on a local keyring file: AES-256-GCM keys per key id, versioned for rotation.

The keyring is the local stand-in for Cloud KMS. It holds raw key material, so it lives in the
data dir with mode 0600; destroying a key deletes its material from the file, after which every
ciphertext made with it is unreadable (crypto-shredding a tenant).

Ciphertext layout: format byte (1) | key version (4, big-endian) | nonce (12) | AES-GCM output.
The 5-byte header is authenticated together with the caller's `aad`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cfp.errors import BadRequest, CfpError, NotFound

try:
    import fcntl
except ImportError:  # Windows: one process per data dir is all `cfp dev` runs there
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
_HEADER = struct.Struct(">BI")
_NONCE_BYTES = 12
_KEY_BYTES = 32


class KeyDestroyed(NotFound):
    """The key was destroyed: what it encrypted is gone for good (crypto-shredding)."""

    code = "key_destroyed"


class DecryptFailed(CfpError):
    """The ciphertext is not one this key made with this `aad` (tampered, truncated or misbound)."""

    status, code = 400, "decrypt_failed"


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
                _live(key_id, entry)
                return key_id
            keys[key_id] = {"created_at": time.time(), "primary": 1, "versions": {"1": _new_key()}}
            self._save(keys)
        return key_id

    async def rotate_key(self, key_id: str) -> int:
        """Add a new key version and make it primary; older versions still decrypt. Returns it."""
        return await asyncio.to_thread(self._rotate, key_id)

    def _rotate(self, key_id: str) -> int:
        with self._exclusive() as keys:
            entry = _live(key_id, keys.get(key_id))
            version = max(int(v) for v in entry["versions"]) + 1
            entry["versions"][str(version)] = _new_key()
            entry["primary"] = version
            self._save(keys)
        return version

    async def destroy_key(self, key_id: str) -> None:
        """Delete every version's material; the id stays as a tombstone so it is never reused."""
        await asyncio.to_thread(self._destroy, key_id)

    def _destroy(self, key_id: str) -> None:
        with self._exclusive() as keys:
            entry = keys.get(key_id)
            if entry is None:
                raise NotFound(f"no key {key_id!r}", details={"key_id": key_id})
            if entry.get("destroyed_at") is not None:
                return
            keys[key_id] = {"created_at": entry["created_at"], "destroyed_at": time.time()}
            self._save(keys)

    # -- encryption --------------------------------------------------------------------

    async def encrypt(self, key_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        version, key = await asyncio.to_thread(self._material, key_id, None)
        header = _HEADER.pack(FORMAT, version)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return header + nonce + AESGCM(key).encrypt(nonce, bytes(plaintext), header + aad)

    async def decrypt(self, key_id: str, ciphertext: bytes, *, aad: bytes = b"") -> bytes:
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
            entry = _live(key_id, self._refresh().get(key_id))
        version = entry["primary"] if version is None else version
        encoded = entry["versions"].get(str(version))
        if encoded is None:
            raise DecryptFailed(
                f"key {key_id!r} has no version {version}", details={"key_id": key_id}
            )
        return version, base64.b64decode(encoded)


def _new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=_KEY_BYTES * 8)).decode()


def _check_id(key_id: str) -> None:
    if not key_id or not isinstance(key_id, str):
        raise BadRequest("a key id is a non-empty string", details={"key_id": key_id})


def _live(key_id: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    if entry is None:
        raise NotFound(f"no key {key_id!r}", details={"key_id": key_id})
    if entry.get("destroyed_at") is not None:
        raise KeyDestroyed(
            f"key {key_id!r} was destroyed; data encrypted with it cannot be recovered",
            details={"key_id": key_id},
        )
    return entry
