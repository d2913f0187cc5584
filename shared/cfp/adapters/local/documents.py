"""DocumentStore on the data dir's SQLite database."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from cfp.adapters.local.sqlite import Database, dumps
from cfp.domain.documents import (
    ABSENT,
    CompareAndSet,
    CreateDoc,
    DeleteCollection,
    DeleteDoc,
    Filter,
    Increment,
    MergeDoc,
    Page,
    SetDoc,
    Write,
    parent,
)
from cfp.errors import BadRequest, Conflict

_OPS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _load(conn: sqlite3.Connection, path: str) -> dict[str, Any] | None:
    collection, ident = parent(path)
    row = conn.execute(
        "SELECT data FROM docs WHERE collection = ? AND id = ?", (collection, ident)
    ).fetchone()
    return None if row is None else json.loads(row[0])


def _store(conn: sqlite3.Connection, path: str, data: dict[str, Any], now: float) -> None:
    collection, ident = parent(path)
    conn.execute(
        "INSERT INTO docs (collection, id, data, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data, "
        "updated_at = excluded.updated_at",
        (collection, ident, dumps(data), now),
    )


def apply_writes(conn: sqlite3.Connection, writes: Sequence[Write], now: float) -> list[Any]:
    """Apply writes on `conn` inside the caller's transaction; raise Conflict on a failed
    precondition (the caller's savepoint undoes what was applied)."""
    results: list[Any] = []
    for write in writes:
        result: Any = None
        match write:
            case SetDoc(path, data):
                _store(conn, path, data, now)
            case CreateDoc(path, data):
                if _load(conn, path) is not None:
                    raise Conflict(f"document {path} already exists", details={"path": path})
                _store(conn, path, data, now)
            case DeleteDoc(path):
                collection, ident = parent(path)
                conn.execute(
                    "DELETE FROM docs WHERE collection = ? AND id = ?", (collection, ident)
                )
            case DeleteCollection(path):
                conn.execute("DELETE FROM docs WHERE collection = ?", (path,))
            case MergeDoc(path, data, field):
                doc = _load(conn, path) or {}
                current = doc.get(field)
                merged = {**(current if isinstance(current, dict) else {}), **data}
                _store(conn, path, {**doc, field: merged}, now)
                result = merged
            case Increment(path, by, field):
                doc = _load(conn, path) or {}
                current = doc.get(field) or 0
                if not isinstance(current, int | float) or isinstance(current, bool):
                    raise Conflict(
                        f"cannot increment {path}: its value is not a number",
                        details={"path": path},
                    )
                total = current + by
                if isinstance(total, float) and total.is_integer() and isinstance(by, int):
                    total = int(total)
                _store(conn, path, {**doc, field: total}, now)
                result = total
            case CompareAndSet(path, expected, data, field):
                doc = _load(conn, path)
                holds = (
                    doc is None
                    if expected is ABSENT
                    else (doc is not None and doc.get(field) == expected)
                )
                if not holds:
                    raise Conflict(f"compare-and-set on {path} failed", details={"path": path})
                _store(conn, path, data, now)
            case _:
                raise TypeError(f"unknown write {write!r}")
        results.append(result)
    return results


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(dumps(values).encode()).decode()


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError as exc:
        raise BadRequest(
            "cursor is not one this server issued", details={"cursor": cursor}
        ) from exc
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not isinstance(values[1], str)
        or isinstance(values[0], list | dict)
    ):
        raise BadRequest("cursor is not one this server issued", details={"cursor": cursor})
    return values


def _field_expr(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise BadRequest(f"cannot filter or order on field {name!r}")
    return f"json_extract(data, '$.{name}')"


def list_docs(
    conn: sqlite3.Connection,
    collection: str,
    *,
    where: Sequence[Filter] = (),
    order_by: str | None = None,
    descending: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """One ordered page of a collection; the cursor is (order value, id) of the last item."""
    order = _field_expr(order_by) if order_by else "NULL"
    clauses = ["collection = ?"]
    params: list[Any] = [collection]
    if order_by:  # as in Firestore, ordering on a field skips documents without it
        clauses.append(f"json_type(data, '$.{order_by}') IS NOT NULL")
    for cond in where:
        if cond.op not in _OPS:
            raise BadRequest(f"unknown filter operator {cond.op!r}")
        clauses.append(f"{_field_expr(cond.field)} {_OPS[cond.op]} ?")
        params.append(cond.value)
    if cursor:
        last_value, last_id = _decode_cursor(cursor)
        cmp = "<" if descending else ">"
        if order_by:
            # JSON null sorts first ascending (last descending) and never compares with < or >.
            beyond_params: list[Any] = []
            if last_value is None:
                beyond = "0" if descending else f"{order} IS NOT NULL"
            else:
                beyond = f"{order} {cmp} ?" + (f" OR {order} IS NULL" if descending else "")
                beyond_params.append(last_value)
            clauses.append(f"({beyond} OR ({order} IS ? AND id {cmp} ?))")
            params += [*beyond_params, last_value, last_id]
        else:
            clauses.append(f"id {cmp} ?")
            params.append(last_id)
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT id, data, {order} FROM docs WHERE {' AND '.join(clauses)} "
        f"ORDER BY {order} {direction}, id {direction} LIMIT ?"
    )
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    items = [{**json.loads(data), "_id": ident} for ident, data, _ in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        ident, _, value = rows[limit - 1]
        next_cursor = _encode_cursor([value, ident])
    return Page(items=items, next_cursor=next_cursor)


class SqliteDocumentStore:
    """DocumentStore over `Database`: reads on the caller's thread, writes through the writer."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, path: str) -> dict[str, Any] | None:
        return _load(self.db.read(), path)

    async def list(
        self,
        collection: str,
        *,
        where: Sequence[Filter] = (),
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        return list_docs(
            self.db.read(),
            collection,
            where=where,
            order_by=order_by,
            descending=descending,
            limit=limit,
            cursor=cursor,
        )

    async def apply(self, writes: Sequence[Write]) -> list[Any]:
        writes = list(writes)
        return await self.db.write(lambda conn: apply_writes(conn, writes, time.time()))

    async def close(self) -> None:
        self.db.close()
