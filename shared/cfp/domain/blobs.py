"""Blob keys: one rule for every BlobStore, so a key valid on the embedded file store is valid
on Cloud Storage and the other way round."""

from __future__ import annotations

from cfp.errors import BadRequest

PARTIAL_SUFFIX = ".cfp-partial"  # the file store's in-progress writes; no key segment ends so
MAX_KEY_BYTES = 1024  # Cloud Storage's limit on an object name


def key_segments(key: str) -> list[str]:
    """The key's `/`-separated segments; BadRequest saying what is wrong with a key that is
    empty, absolute, could climb out of its root (`.`/`..`), or that Cloud Storage refuses."""
    problem = None
    if not key:
        problem = "is empty"
    elif key.startswith("/") or "\\" in key or "\x00" in key:
        problem = "must be a relative path with '/' separators"
    elif "\r" in key or "\n" in key:
        problem = "contains a line break"
    elif not _utf8(key):
        problem = "is not valid UTF-8"
    elif len(key.encode()) > MAX_KEY_BYTES:
        problem = f"is longer than {MAX_KEY_BYTES} bytes of UTF-8"
    else:
        parts = key.split("/")
        if any(part == "" for part in parts):
            problem = "has an empty segment"
        elif any(part in {".", ".."} for part in parts):
            problem = "has a '.' or '..' segment"
        elif any(part.endswith(PARTIAL_SUFFIX) for part in parts):
            problem = f"has a segment ending in the reserved suffix {PARTIAL_SUFFIX!r}"
        else:
            return parts
    raise BadRequest(f"blob key {key!r} {problem}", details={"key": key})


def _utf8(key: str) -> bool:
    try:
        key.encode()
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True
