"""DocumentStore on Cloud Firestore (one named database per region), through the async client.

Semantics mirror the SQLite adapter (`cfp.adapters.local.documents`) write for write:

- `apply` runs every write of a batch in one Firestore transaction. Firestore wants all reads
  before any write, so the documents the batch reads (and the collections it deletes) are read
  first, the writes are worked out in memory in order, and the final state of each touched
  document is written once. A failed precondition raises `Conflict` and rolls everything back;
  contention (`Aborted`) is retried a bounded number of times with backoff, then reported as
  `Unavailable`.
- `list` orders by `order_by` then document id. Firestore orders a range or `!=` filter's field
  before the document id, so such a filter is checked here, on the page being read, unless it is
  on the `order_by` field; equality filters always run in Firestore.
- Any JSON value round-trips. Firestore holds no array directly inside an array, no integer
  outside int64, no map deeper than 20 levels and no empty, over-long or `__reserved__` field
  name; a top-level field holding any of these is kept, with the others like it, as JSON text in
  the one field `~json`. Every other top-level field stays native, so filters and ordering work
  on it (a field kept as JSON is invisible to them, like a missing field).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import operator
import random
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

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
from cfp.errors import BadRequest, CfpError, Conflict, Unavailable

if TYPE_CHECKING:
    from google.cloud.firestore_v1.async_batch import AsyncWriteBatch
    from google.cloud.firestore_v1.async_client import AsyncClient
    from google.cloud.firestore_v1.async_document import AsyncDocumentReference
    from google.cloud.firestore_v1.async_query import AsyncQuery
    from google.cloud.firestore_v1.async_transaction import AsyncTransaction

DEFAULT_DATABASE = "(default)"
ENCODED_FIELD = "~json"  # the top-level fields Firestore cannot hold natively, as JSON text
ID_FIELD = "~id"  # a copy of the document id, to list by id descending
_OWN_FIELDS = frozenset({ENCODED_FIELD, ID_FIELD})
MAX_DEPTH = 20  # Firestore's limit on maps and arrays nested in a field
MAX_FIELD_NAME_BYTES = 1500
INT64 = range(-(2**63), 2**63)
ATTEMPTS = 12  # commits tried before contention becomes `Unavailable` (never Conflict: a
# caller may read Conflict as "already done", as the Pub/Sub queue does for CreateDoc)
BACKOFF_BASE = 0.01  # full-jitter exponential backoff between them, so that two clients whose
BACKOFF_MAX = 0.5  # transactions deadlocked (both aborted) do not collide again at once
SCAN_BATCH = 200  # documents read per round trip while filtering a page here

_RESERVED_NAME = re.compile(r"__.*__", re.DOTALL)
_RANGE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPS = {"==", "!=", *_RANGE}


# -- values ----------------------------------------------------------------------------------


def _valid_name(key: Any) -> bool:
    if not isinstance(key, str) or not key or _RESERVED_NAME.fullmatch(key):
        return False
    try:
        return len(key.encode()) <= MAX_FIELD_NAME_BYTES
    except UnicodeEncodeError:
        return False


def _native(value: Any, depth: int = 0) -> bool:
    """Whether Firestore stores `value` as it is and gives back an equal value."""
    if value is None or isinstance(value, bool | str | float):
        return True
    if isinstance(value, int):
        return value in INT64
    if depth >= MAX_DEPTH:
        return False
    if type(value) is list:
        return all(type(item) is not list and _native(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(_valid_name(k) and _native(v, depth + 1) for k, v in value.items())
    return False


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode(data: dict[str, Any], ident: str) -> dict[str, Any]:
    """Document `ident` as Firestore stores it: native fields, `~json` for the rest, `~id`."""
    stored: dict[str, Any] = {ID_FIELD: ident}
    coded: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _OWN_FIELDS and _valid_name(key) and _native(value):
            stored[key] = value
        else:
            coded[key] = value
    if coded:
        stored[ENCODED_FIELD] = _dumps(coded)
    return stored


def decode(stored: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `encode`."""
    data = _native_fields(stored)
    coded = stored.get(ENCODED_FIELD)
    if coded is not None:
        data.update(json.loads(coded))
    return data


def _native_fields(stored: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stored.items() if k not in _OWN_FIELDS}


# Firestore's order of values across types: null, bool, number, (timestamp), string, bytes, ...,
# array, map. Range filters only match values of the type they compare with.
def _order_key(value: Any) -> tuple[Any, ...]:
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, -1) if isinstance(value, float) and math.isnan(value) else (2, 0, value)
    if isinstance(value, str):
        return (4, value)  # code point order is UTF-8 byte order
    if isinstance(value, bytes):
        return (5, value)
    if isinstance(value, list | tuple):
        return (8, tuple(_order_key(item) for item in value))
    if isinstance(value, dict):
        return (10, tuple((k, _order_key(v)) for k, v in sorted(value.items())))
    return (3, value)


def _matches(fields: dict[str, Any], cond: Filter) -> bool:
    """Firestore's own meaning of one filter, for the filters checked here."""
    if cond.field not in fields:
        return False
    value = fields[cond.field]
    if cond.op == "==":
        return _order_key(value) == _order_key(cond.value)
    if cond.op == "!=":
        return value is not None and _order_key(value) != _order_key(cond.value)
    have, want = _order_key(value), _order_key(cond.value)
    return have[0] == want[0] and _RANGE[cond.op](have, want)


# -- cursors ---------------------------------------------------------------------------------


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(_dumps(values).encode()).decode()


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError as exc:
        raise BadRequest(
            "cursor is not one this server issued", details={"cursor": cursor}
        ) from exc
    if not isinstance(values, list) or len(values) != 2 or not isinstance(values[1], str):
        raise BadRequest("cursor is not one this server issued", details={"cursor": cursor})
    return values


def _field_path(name: str) -> str:
    if not name.replace("_", "").isalnum() or _RESERVED_NAME.fullmatch(name):
        raise BadRequest(f"cannot filter or order on field {name!r}")
    from google.cloud.firestore_v1.field_path import FieldPath

    return FieldPath(name).to_api_repr()


def _id_path() -> str:
    from google.cloud.firestore_v1.field_path import FieldPath

    return FieldPath(ID_FIELD).to_api_repr()


# -- writes ----------------------------------------------------------------------------------


def _needs_read(write: Write) -> bool:
    return isinstance(write, CreateDoc | MergeDoc | Increment | CompareAndSet)


def plan_writes(
    writes: Sequence[Write],
    stored: dict[str, dict[str, Any] | None],
    collections: dict[str, list[str]],
) -> tuple[list[Any], dict[str, dict[str, Any] | None]]:
    """Work out a batch in memory, in order, as the SQLite adapter applies it.

    `stored` holds the current data of every document a write reads (None: absent) and
    `collections` the document paths in every collection the batch deletes. Returns the results
    and the final data of each document written (None: delete). Raises Conflict.
    """
    state = dict(stored)
    touched: dict[str, dict[str, Any] | None] = {}

    def put(path: str, data: dict[str, Any] | None) -> None:
        state[path] = touched[path] = data

    results: list[Any] = []
    for write in writes:
        result: Any = None
        match write:
            case SetDoc(path, data):
                put(path, data)
            case CreateDoc(path, data):
                if state[path] is not None:
                    raise Conflict(f"document {path} already exists", details={"path": path})
                put(path, data)
            case DeleteDoc(path):
                put(path, None)
            case DeleteCollection(collection):
                for path in [*collections[collection], *state]:
                    if parent(path)[0] == collection:
                        put(path, None)
            case MergeDoc(path, data, field):
                doc = state[path] or {}
                current = doc.get(field)
                merged = {**(current if isinstance(current, dict) else {}), **data}
                put(path, {**doc, field: merged})
                result = merged
            case Increment(path, by, field):
                doc = state[path] or {}
                current = doc.get(field) or 0
                if not isinstance(current, int | float) or isinstance(current, bool):
                    raise Conflict(
                        f"cannot increment {path}: its value is not a number",
                        details={"path": path},
                    )
                total = current + by
                if isinstance(total, float) and total.is_integer() and isinstance(by, int):
                    total = int(total)
                put(path, {**doc, field: total})
                result = total
            case CompareAndSet(path, expected, data, field):
                doc = state[path]
                holds = (
                    doc is None
                    if expected is ABSENT
                    else (doc is not None and doc.get(field) == expected)
                )
                if not holds:
                    raise Conflict(f"compare-and-set on {path} failed", details={"path": path})
                put(path, data)
            case _:
                raise TypeError(f"unknown write {write!r}")
        results.append(result)
    return results, touched


class _KeyedLocks:
    """In-process locks by name, taken in sorted order (no deadlock) and dropped when unused."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        joined: list[str] = []
        held: list[asyncio.Lock] = []
        try:
            for key in sorted(set(keys)):
                lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
                users[0] += 1
                joined.append(key)
                await lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in held:
                lock.release()
            for key in joined:
                _, users = self._locks[key]
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]


def _is_contention(exc: BaseException) -> bool:
    from google.api_core.exceptions import Aborted

    # The client wraps an Aborted commit it did not retry in a ValueError.
    return isinstance(exc, Aborted) or (
        isinstance(exc, ValueError) and isinstance(exc.__cause__, Aborted)
    )


class FirestoreDocumentStore:
    """DocumentStore on one Firestore database through `google.cloud.firestore.AsyncClient`."""

    def __init__(
        self,
        project: str,
        database: str = DEFAULT_DATABASE,
        *,
        emulator_host: str | None = None,
    ) -> None:
        from google.cloud import firestore

        credentials = None
        if emulator_host:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        self.project = project
        self.database = database
        # Transactions of this process that touch the same documents take turns here rather
        # than in Firestore's lock manager (the emulator resolves such deadlocks by timeout).
        self._turns = _KeyedLocks()
        self._client: AsyncClient = firestore.AsyncClient(
            project=project, database=database, credentials=credentials
        )
        if emulator_host:
            # The client reads FIRESTORE_EMULATOR_HOST once, here; setting it on this client
            # (an insecure channel, the emulator's owner token) leaves the process's env alone.
            self._client._emulator_host = emulator_host

    @classmethod
    def connect(
        cls, project: str, database: str = DEFAULT_DATABASE, *, emulator_host: str | None = None
    ) -> FirestoreDocumentStore:
        """A store on `database` of `project`; the emulator at `emulator_host` (or at
        FIRESTORE_EMULATOR_HOST when that is set), else Google's endpoint with ADC."""
        return cls(project, database, emulator_host=emulator_host)

    def _doc(self, path: str) -> AsyncDocumentReference:
        try:
            return self._client.document(path)
        except ValueError as exc:
            raise BadRequest(f"not a document path: {path!r}", details={"path": path}) from exc

    async def get(self, path: str) -> dict[str, Any] | None:
        with _platform_errors():
            snapshot = await self._doc(path).get()
        return decode(snapshot.to_dict()) if snapshot.exists else None

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
        from google.cloud.firestore_v1.base_query import FieldFilter

        for cond in where:
            if cond.op not in _OPS:
                raise BadRequest(f"unknown filter operator {cond.op!r}")
            if cond.op in _RANGE and cond.value is None:
                raise BadRequest(f"cannot compare {cond.field!r} {cond.op} null")
            if not _native(cond.value):
                raise BadRequest(f"cannot filter {cond.field!r} on value {cond.value!r}")
        after = _decode_cursor(cursor) if cursor else None
        direction = "DESCENDING" if descending else "ASCENDING"
        try:
            query: AsyncQuery = self._client.collection(collection)  # type: ignore[assignment]
        except ValueError as exc:
            raise BadRequest(f"not a collection path: {collection!r}") from exc
        here: list[Filter] = []
        for cond in where:
            if cond.op == "==" or cond.field == order_by:
                path = _field_path(cond.field)
                query = query.where(filter=FieldFilter(path, cond.op, cond.value))
            else:
                _field_path(cond.field)
                here.append(cond)
        if order_by:
            query = query.order_by(_field_path(order_by), direction=direction)
        elif descending:
            # Firestore scans keys backwards only given a `__name__` descending index (the
            # emulator never does); the id's copy sorts the same way.
            query = query.order_by(_id_path(), direction=direction)
        query = query.order_by("__name__", direction=direction)

        def position(fields: dict[str, Any], ident: str) -> list[Any]:
            return [fields.get(order_by) if order_by else None, ident]

        def resume(query: AsyncQuery, last: list[Any]) -> AsyncQuery:
            if order_by:
                return query.start_after(last)
            return query.start_after([last[1], last[1]] if descending else [last[1]])

        items: list[dict[str, Any]] = []
        positions: list[list[Any]] = []
        batch = limit + 1 if not here else max(limit + 1, SCAN_BATCH)
        while len(items) <= limit:
            page = resume(query, after) if after else query
            with _platform_errors():
                snapshots = [s async for s in page.limit(batch).stream()]
            for snapshot in snapshots:
                stored = snapshot.to_dict()
                fields = _native_fields(stored)
                after = position(fields, snapshot.id)
                if all(_matches(fields, cond) for cond in here):
                    items.append({**decode(stored), "_id": snapshot.id})
                    positions.append(after)
                    if len(items) > limit:
                        break
            if len(snapshots) < batch:
                break
        next_cursor = _encode_cursor(positions[limit - 1]) if len(items) > limit else None
        return Page(items=items[:limit], next_cursor=next_cursor)

    async def apply(self, writes: Sequence[Write]) -> list[Any]:
        writes = list(writes)
        if not writes:
            return []
        contention: Exception | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._turns.hold(w.path for w in writes):
                    return await self._apply_once(writes)
            except Exception as exc:
                if not _is_contention(exc):
                    _reraise(exc)
                contention = exc
            await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)))
        raise Unavailable(
            "the transaction kept meeting concurrent writes; try again",
            details={"attempts": ATTEMPTS},
        ) from contention

    async def _apply_once(self, writes: list[Write]) -> list[Any]:
        from google.cloud.firestore_v1.async_transaction import async_transactional

        reads = list(dict.fromkeys(w.path for w in writes if _needs_read(w)))
        deleted = list(dict.fromkeys(w.path for w in writes if isinstance(w, DeleteCollection)))
        if not reads and not deleted:
            # Blind sets and deletes: one atomic commit, no transaction to begin.
            results, touched = plan_writes(writes, {}, {})
            batch = self._client.batch()
            self._stage(batch, touched)
            await batch.commit()
            return results

        async def run(transaction: AsyncTransaction) -> list[Any]:
            stored: dict[str, dict[str, Any] | None] = dict.fromkeys(reads)
            if reads:
                # (AsyncTransaction.get_all awaits an async generator; the client's does not.)
                refs = [self._doc(path) for path in reads]
                async for snapshot in self._client.get_all(refs, transaction=transaction):
                    if snapshot.exists:
                        stored[snapshot.reference.path] = decode(snapshot.to_dict())
            collections: dict[str, list[str]] = {}
            for collection in deleted:
                query = self._client.collection(collection).select([])
                collections[collection] = [
                    snapshot.reference.path
                    async for snapshot in query.stream(transaction=transaction)
                ]
            results, touched = plan_writes(writes, stored, collections)
            self._stage(transaction, touched)
            return results

        transactional: Callable[[AsyncTransaction], Any] = async_transactional(run)
        return await transactional(self._client.transaction(max_attempts=1))

    def _stage(self, batch: AsyncWriteBatch, touched: dict[str, dict[str, Any] | None]) -> None:
        for path, data in touched.items():
            if data is None:
                batch.delete(self._doc(path))
            else:
                batch.set(self._doc(path), encode(data, parent(path)[1]))

    async def close(self) -> None:
        await self._client._firestore_api.transport.close()


def _reraise(exc: Exception) -> NoReturn:
    """Raise a Google error as the platform's: the caller's mistake, or a transient failure."""
    from google.api_core import exceptions as google

    if isinstance(exc, CfpError):
        raise exc
    if isinstance(exc, google.InvalidArgument):  # a document over 1 MiB, say
        raise BadRequest(f"Firestore refused the request: {exc.message}") from exc
    if isinstance(
        exc, google.ServiceUnavailable | google.DeadlineExceeded | google.InternalServerError
    ):
        raise Unavailable(f"Firestore failed transiently: {exc.message}") from exc
    raise exc


@contextlib.contextmanager
def _platform_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        _reraise(exc)
