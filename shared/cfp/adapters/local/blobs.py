"""BlobStore on local files: a key `a/b/c` is the file `root/a/b/c`, written atomically."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from cfp.domain.blobs import PARTIAL_SUFFIX, key_segments
from cfp.errors import BadRequest, Conflict, NotFound

# Partially written files carry this suffix until os.replace publishes them; no key may end in it.
_PARTIAL = PARTIAL_SUFFIX


def _segments(key: str) -> list[str]:
    """The key's path segments, or BadRequest if it is not a valid key (cfp.domain.blobs) or,
    on Windows, names a drive."""
    parts = key_segments(key)
    if os.name == "nt" and ":" in key:
        raise BadRequest(f"blob key {key!r} must not name a drive", details={"key": key})
    return parts


class FileBlobStore:
    """BlobStore over a directory. Readers never see a half-written blob: each put writes a
    temporary file next to its target and renames it into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_segments(key))

    def _check_inside(self, key: str, path: Path) -> None:
        # Defence in depth against symlinks planted under the root; runs in the I/O thread.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise BadRequest(f"blob key {key!r} leaves the store", details={"key": key})

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key`, replacing any previous blob atomically.

        Local files keep no metadata, so `content_type` is accepted and not stored."""
        path = self._path(key)
        await asyncio.to_thread(self._put, key, path, bytes(data))

    def _put(self, key: str, path: Path, data: bytes) -> None:
        tmp = self._staged(key, path, data)
        try:
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _staged(self, key: str, path: Path, data: bytes) -> str:
        """`data` written and synced to a temporary file beside `path`, ready to publish."""
        self._check_inside(key, path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise Conflict(
                f"blob key {key!r} is inside another blob's key", details={"key": key}
            ) from exc
        if path.is_dir():
            raise Conflict(f"blob key {key!r} is a prefix of other blobs", details={"key": key})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_PARTIAL)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    async def create(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key` only if nothing is there: the complete file is linked into
        place, which fails if the name exists (atomic across processes)."""
        path = self._path(key)
        await asyncio.to_thread(self._create, key, path, bytes(data))

    def _create(self, key: str, path: Path, data: bytes) -> None:
        tmp = self._staged(key, path, data)
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise Conflict(f"blob {key!r} exists", details={"key": key}) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._get, key, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"no blob {key!r}", details={"key": key}) from exc

    def _get(self, key: str, path: Path) -> bytes:
        self._check_inside(key, path)
        return path.read_bytes()

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing key is not an error (retries stay harmless)."""
        path = self._path(key)
        await asyncio.to_thread(self._delete, key, path)

    def _delete(self, key: str, path: Path) -> None:
        self._check_inside(key, path)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        # Drop directories the delete left empty so the key can later be used as a blob again.
        root = self.root.resolve()
        folder = path.parent
        while folder.resolve() != root:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    async def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (a plain string prefix, as in GCS), sorted."""
        folder, _, _ = prefix.rpartition("/")
        start = self._path(folder) if folder else self.root
        return await asyncio.to_thread(self._list, folder, start, prefix)

    def _list(self, folder: str, start: Path, prefix: str) -> list[str]:
        if folder:
            self._check_inside(folder, start)
        keys: list[str] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            base = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.endswith(_PARTIAL):
                    continue
                key = name if base == "." else f"{base}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)
