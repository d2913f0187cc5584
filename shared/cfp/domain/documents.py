"""Document writes as values: what a step's transaction will apply, computed without I/O.

Adapters (SQLite, Firestore) apply a list of writes atomically. Paths are Firestore-shaped:
`collection/doc/collection/doc…`; ids are escaped with `doc_id()` so any string is a valid id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

ABSENT: Any = object()  # compare-and-set expectation "the document does not exist"


EMPTY_ID = "%"  # the empty string's id: quote() never yields a lone '%', so nothing collides


def doc_id(raw: str) -> str:
    """Escape an arbitrary string into one path segment (no '/', never '.', '..' or '__x')."""
    escaped = quote(str(raw), safe="@:+=")
    if not escaped:
        return EMPTY_ID
    if escaped in {".", ".."} or escaped.startswith("__"):
        escaped = f"%{ord(escaped[0]):02X}{escaped[1:]}"
    return escaped


def raw_id(escaped: str) -> str:
    """Inverse of `doc_id`."""
    return "" if escaped == EMPTY_ID else unquote(escaped)


def parent(path: str) -> tuple[str, str]:
    """Split a document path into its collection path and id."""
    collection, _, ident = path.rpartition("/")
    return collection, ident


@dataclass(frozen=True, slots=True)
class SetDoc:
    path: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CreateDoc:
    """Create only; the whole transaction fails with `Conflict` if the document exists."""

    path: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteDoc:
    path: str


@dataclass(frozen=True, slots=True)
class DeleteCollection:
    """Delete every document directly inside a collection."""

    path: str


@dataclass(frozen=True, slots=True)
class MergeDoc:
    """Shallow-merge `data` into the document's `field` (a dict), creating it if absent."""

    path: str
    data: dict[str, Any]
    field: str = "value"


@dataclass(frozen=True, slots=True)
class Increment:
    """Add `by` to the number at `field` (absent counts as 0)."""

    path: str
    by: float
    field: str = "value"


@dataclass(frozen=True, slots=True)
class CompareAndSet:
    """Set the document to `data` only if its `field` equals `expected` (ABSENT: no document)."""

    path: str
    expected: Any
    data: dict[str, Any]
    field: str = "value"


Write = SetDoc | CreateDoc | DeleteDoc | DeleteCollection | MergeDoc | Increment | CompareAndSet


@dataclass(frozen=True, slots=True)
class Filter:
    """A query condition on a top-level field: op is one of == != < <= > >=."""

    field: str
    op: str
    value: Any


@dataclass(slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None = None
