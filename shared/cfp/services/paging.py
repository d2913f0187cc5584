"""Reading a whole collection of the document store, a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from cfp.domain.documents import Filter
from cfp.ports import DocumentStore

PAGE = 500  # documents read per store request


async def every(
    documents: DocumentStore,
    collection: str,
    *,
    where: Sequence[Filter] = (),
    order_by: str | None = None,
    descending: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """Every document of a collection (matching `where`, in `order_by` order), read a page at
    a time."""
    cursor = None
    while True:
        page = await documents.list(
            collection,
            where=where,
            order_by=order_by,
            descending=descending,
            limit=PAGE,
            cursor=cursor,
        )
        for doc in page.items:
            yield doc
        cursor = page.next_cursor
        if cursor is None:
            return
