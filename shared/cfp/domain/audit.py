"""Audit records and their hash chain: the record model, its canonical bytes, the hashes, where
a chain is stored, and the verifier of a stored chain. Pure: no I/O.

A chain is `system` or `tenant/{t}`; a record goes to the chain of its scope (`system` for
actions outside any tenant, `tenant/{t}` for anything under `tenant/{t}/…`). Within a chain,
`seq` runs 0, 1, 2… without gaps, and the records are linked by hashes (RFC 6962 leaves):

    canonical  = RFC 8785 JSON of the record's fields, without its hashes; fields that are null,
                 and `details` when empty, are left out, so an optional field added later leaves
                 older records' bytes (and hashes) as they were
    leaf_hash  = SHA-256(0x00 || canonical)
    chain_hash = SHA-256(previous chain_hash || leaf_hash), with 32 zero bytes before seq 0

A record's `time` never goes backwards along its chain (the log clamps it to the previous
record's), so ordering by time is ordering by seq.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cfp.domain.documents import doc_id
from cfp.errors import BadRequest

HASH_BYTES = 32
ZERO_HASH = bytes(HASH_BYTES)  # the "previous" chain hash of seq 0
SYSTEM_CHAIN = "system"
SYSTEM_ROOT = "system/platform"  # the system chain's counterpart of `tenants/{t}`
MAX_DETAILS_BYTES = 16 * 1024  # details say what happened; payloads go by `payload_hash`

ActorKind = Literal["user", "service_account", "system", "anonymous"]
Outcome = Literal["success", "failure"]

HEX_HASH = r"^[0-9a-f]{64}$"
ACTION = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"  # tenant.create, auth.mfa.verify
TARGET_TYPE = r"^[a-z][a-z0-9_]*$"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Words that name a secret in a details key (compared without case, '_' or '-'): a record says
# what happened, never with what credential.
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "credential",
    "totp",
    "otpseed",
    "mfaseed",
    "recoverycode",
)
_API_KEY_PREFIX = "cfp_sk_"


# -- chains and where they live --------------------------------------------------------------


def tenant_chain(tenant: str) -> str:
    """The chain of tenant `tenant`."""
    if not tenant or "/" in tenant:
        raise BadRequest("a tenant id is not empty and has no '/'", details={"tenant": tenant})
    return f"tenant/{tenant}"


def chain_of_scope(scope: str) -> str:
    """The chain a record of `scope` goes to: `system`, or `tenant/{t}` for `tenant/{t}[/…]`."""
    if scope == SYSTEM_CHAIN:
        return SYSTEM_CHAIN
    parts = scope.split("/")
    if len(parts) >= 2 and parts[0] == "tenant" and parts[1] and all(parts):
        return f"tenant/{parts[1]}"
    raise ValueError(f"a scope is 'system' or 'tenant/{{t}}[/…]', not {scope!r}")


@dataclass(frozen=True, slots=True)
class ChainPaths:
    """The documents of one chain: its blocks (one per record, id = zero-padded seq) and head."""

    root: str

    @property
    def blocks(self) -> str:
        return f"{self.root}/audit_blocks"

    def block(self, seq: int) -> str:
        return f"{self.blocks}/{block_id(seq)}"

    @property
    def head(self) -> str:
        return f"{self.root}/audit_head/head"

    @property
    def checkpoints(self) -> str:
        return f"{self.root}/audit_checkpoints"

    def checkpoint(self, size: int) -> str:
        """The checkpoint of tree size `size` (ids sort as sizes do)."""
        return f"{self.checkpoints}/{block_id(size)}"


def chain_paths(chain: str) -> ChainPaths:
    """Where `chain` is stored; BadRequest for a name that is no chain."""
    if chain == SYSTEM_CHAIN:
        return ChainPaths(SYSTEM_ROOT)
    kind, _, tenant = chain.partition("/")
    if kind != "tenant" or not tenant or "/" in tenant:
        raise BadRequest(
            "an audit chain is 'system' or 'tenant/{tenant id}'", details={"chain": chain}
        )
    return ChainPaths(f"tenants/{doc_id(tenant)}")


def block_id(seq: int) -> str:
    """The document id of record `seq`: ids sort as seqs do."""
    return f"{seq:020d}"


CHECKPOINT_KEY = "audit-checkpoints"  # the KeyService signing key of every chain's checkpoints


def checkpoint_origin(region: str, chain: str) -> str:
    """The signed-note origin of `chain`'s checkpoints: one log per chain and region."""
    return f"coditect.cfp/{region}/{chain}"


def checkpoint_key_name(region: str) -> str:
    """The signed-note key name of a region's checkpoint signing key."""
    return f"coditect.cfp/{region}/audit"


def anchor_name(chain: str, size: int, suffix: str) -> str:
    """Where the anchor sink keeps a chain's checkpoint of `size` (`note`, `tsr`)."""
    return f"{chain}/{block_id(size)}.{suffix}"


# -- time ------------------------------------------------------------------------------------


def record_time(value: float | datetime | str) -> str:
    """A time as records hold it: RFC 3339 UTC with microseconds, `2025-01-02T03:04:05.000006Z`
    (one fixed width, so that text order is time order). Takes epoch seconds, an aware datetime
    or an RFC 3339 string with an offset; anything else is a BadRequest."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadRequest(f"not an RFC 3339 time: {value!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BadRequest(f"a time needs its UTC offset: {value.isoformat()!r}")
        return value.astimezone(UTC).strftime(_TIME_FORMAT)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).strftime(_TIME_FORMAT)
    raise BadRequest(f"not a time: {value!r}")


# -- records ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Actor(_Strict):
    id: str = Field(min_length=1)
    kind: ActorKind


class Target(_Strict):
    type: str = Field(pattern=TARGET_TYPE)
    id: str = Field(min_length=1)


class _RecordFields(_Strict):
    """What an entry and the record made of it share."""

    actor: Actor
    action: str = Field(pattern=ACTION)
    target: Target
    scope: str
    outcome: Outcome = "success"
    correlation_id: str | None = None
    trace_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    payload_hash: str | None = Field(default=None, pattern=HEX_HASH)
    payload_ref: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("scope")
    @classmethod
    def _scope_names_a_chain(cls, scope: str) -> str:
        chain_of_scope(scope)
        return scope

    @model_validator(mode="after")
    def _a_reference_has_its_hash(self) -> _RecordFields:
        if self.payload_ref is not None and self.payload_hash is None:
            raise ValueError("payload_ref needs the payload_hash of the bytes it names")
        return self

    @field_validator("details")
    @classmethod
    def _details_are_canonical_json(cls, details: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(rfc8785.dumps(details))
        except (rfc8785.CanonicalizationError, TypeError) as exc:
            raise ValueError(f"details are not canonical JSON: {exc}") from exc
        if size > MAX_DETAILS_BYTES:
            raise ValueError(f"details are {size} bytes, at most {MAX_DETAILS_BYTES}")
        return details


class AuditEntry(_RecordFields):
    """What an action asks to record; the log adds its chain, seq and time."""

    @field_validator("details")
    @classmethod
    def _no_secrets(cls, details: dict[str, Any]) -> dict[str, Any]:
        _refuse_secrets(details, "details")
        return details

    @property
    def chain(self) -> str:
        return chain_of_scope(self.scope)


def _refuse_secrets(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            squashed = re.sub(r"[^a-z0-9]", "", str(key).lower())
            if any(word in squashed for word in _SECRET_WORDS):
                raise ValueError(f"{where}.{key}: an audit record never holds a secret")
            _refuse_secrets(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_secrets(item, f"{where}[{index}]")
    elif isinstance(value, str) and value.startswith(_API_KEY_PREFIX):
        raise ValueError(f"{where}: an audit record never holds an API key")


class AuditRecord(_RecordFields):
    """One record of a chain, as hashed (its hashes are kept beside it, not in it)."""

    seq: int = Field(ge=0)
    chain: str
    time: str

    @field_validator("time")
    @classmethod
    def _time_is_record_time(cls, time: str) -> str:
        if not _TIME.fullmatch(time):
            raise ValueError(f"time is RFC 3339 UTC with microseconds, not {time!r}")
        datetime.strptime(time, _TIME_FORMAT)  # a real date and time
        return time

    @model_validator(mode="after")
    def _chain_is_the_scopes(self) -> AuditRecord:
        if self.chain != chain_of_scope(self.scope):
            raise ValueError(f"chain {self.chain!r} is not the chain of scope {self.scope!r}")
        return self

    @classmethod
    def of(cls, entry: AuditEntry, *, seq: int, time: str) -> AuditRecord:
        """The record `entry` becomes at `seq` of its chain."""
        return cls(**dict(entry), seq=seq, chain=entry.chain, time=time)

    def fields(self) -> dict[str, Any]:
        """The record as JSON, without the fields left unset (null, empty details)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if v is not None and (k != "details" or v)}


def canonical_bytes(record: AuditRecord) -> bytes:
    """The RFC 8785 canonical JSON of the record, the bytes its leaf hash covers."""
    return rfc8785.dumps(record.fields())


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || canonical)."""
    return hashlib.sha256(b"\x00" + canonical).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    """SHA-256(previous chain hash || leaf hash)."""
    return hashlib.sha256(previous + leaf).digest()


def payload_hash(data: bytes) -> str:
    """The `payload_hash` of stored payload bytes (hex SHA-256)."""
    return hashlib.sha256(data).hexdigest()


# -- stored form -----------------------------------------------------------------------------

HASH_FIELDS = ("hash", "prev_hash")
# Copies of nested record fields at the top level, where document queries can filter on them.
INDEX_FIELDS = ("actor_id", "target_type", "target_id")
# The TDD's `audit_blocks` columns that are derived from the record, stored for readers and for
# proofs (`leaf_hash`: the RFC 6962 leaf of Merkle index `seq`). Blocks written before these
# existed lack them; where present they must match.
DERIVED_FIELDS = ("id", "created_at", "leaf_hash")


def _derived(record: AuditRecord, leaf: bytes) -> dict[str, str]:
    return {"id": block_id(record.seq), "created_at": record.time, "leaf_hash": leaf.hex()}


def _index(record: AuditRecord) -> dict[str, str]:
    return {
        "actor_id": record.actor.id,
        "target_type": record.target.type,
        "target_id": record.target.id,
    }


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of a chain: its seq, chain hash (hex) and time."""

    seq: int
    hash: str
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "time": self.time}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChainHead:
        seq, digest, time = data.get("seq"), data.get("hash"), data.get("time")
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or seq < 0
            or not isinstance(digest, str)
            or not re.fullmatch(HEX_HASH, digest)
            or not isinstance(time, str)
            or not _TIME.fullmatch(time)
        ):
            raise ValueError(f"not a chain head: {dict(data)!r}")
        return cls(seq, digest, time)


def block_document(record: AuditRecord, previous: bytes) -> tuple[dict[str, Any], ChainHead]:
    """The stored form of `record` after a record whose chain hash is `previous`: the record's
    fields, `hash`, `prev_hash` (hex) and the index fields; with the chain's new head."""
    leaf = leaf_hash(canonical_bytes(record))
    digest = chain_hash(previous, leaf).hex()
    document = {
        **record.fields(),
        "hash": digest,
        "prev_hash": previous.hex(),
        **_derived(record, leaf),
        **_index(record),
    }
    return document, ChainHead(record.seq, digest, record.time)


def public_record(document: Mapping[str, Any]) -> dict[str, Any]:
    """A stored block as readers see it: the record's fields with `hash`, `prev_hash` and the
    derived `id`, `created_at` and `leaf_hash`."""
    return {k: v for k, v in document.items() if k not in INDEX_FIELDS and k != "_id"}


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a chain: how many records held, the first that did not and why,
    and the last record that held (None if none did)."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head: ChainHead | None = None


class _Bad(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


class ChainVerifier:
    """Checks a chain's stored blocks fed one at a time in seq order, from `start` (the head
    just before the first block fed; None: from seq 0). Stops at the first problem."""

    def __init__(self, chain: str, *, start: ChainHead | None = None) -> None:
        self.chain = chain
        self.last = start
        self.last_leaf: bytes | None = None  # the leaf hash of the last block that held
        self.checked = 0
        self.problem: _Bad | None = None

    @property
    def next_seq(self) -> int:
        return 0 if self.last is None else self.last.seq + 1

    def feed(self, document: Mapping[str, Any]) -> bool:
        """Check the next stored block (a document, with its `_id` when read from a store);
        False once the chain has failed."""
        if self.problem is not None:
            return False
        try:
            self.last = self._check(document)
        except _Bad as bad:
            self.problem = bad
            return False
        self.checked += 1
        return True

    def finish(self, head: ChainHead | Mapping[str, Any] | None) -> Verification:
        """The verdict, given the chain's head (or its stored document; None: there is none)."""
        if self.problem is None:
            try:
                parsed = ChainHead.from_dict(head) if isinstance(head, Mapping) else head
            except ValueError:
                self.problem = _Bad(self.next_seq, "the chain's head is malformed")
            else:
                self._check_head(parsed)
        if self.problem is not None:
            return Verification(
                False, self.checked, self.problem.seq, self.problem.reason, self.last
            )
        return Verification(True, self.checked, head=self.last)

    def _check_head(self, head: ChainHead | None) -> None:
        last = self.last
        if head is None:
            if last is not None:
                self.problem = _Bad(last.seq + 1, "the chain has records but no head")
            return
        if last is None or head.seq > last.seq:
            self.problem = _Bad(self.next_seq, f"record {self.next_seq} is missing")
        elif head.seq < last.seq:
            self.problem = _Bad(head.seq + 1, f"record {head.seq + 1} lies beyond the head")
        elif head.hash != last.hash:
            self.problem = _Bad(last.seq, "the head's hash differs from the record's")

    def _check(self, document: Mapping[str, Any]) -> ChainHead:
        expected = self.next_seq
        stored = dict(document)
        ident = stored.pop("_id", None)
        seq = stored.get("seq")
        if ident is not None and ident != block_id(expected):
            if isinstance(seq, int) and ident == block_id(seq) and seq > expected:
                raise _Bad(expected, f"record {expected} is missing")
            raise _Bad(expected, f"record {expected} is stored as {ident!r}")
        if seq != expected:
            raise _Bad(expected, f"record {expected} holds seq {seq!r}")
        hashes = {name: stored.pop(name, None) for name in HASH_FIELDS}
        index = {name: stored.pop(name, None) for name in INDEX_FIELDS}
        derived = {name: stored.pop(name) for name in DERIVED_FIELDS if name in stored}
        try:
            record = AuditRecord.model_validate(stored)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()
            )
            raise _Bad(expected, f"malformed record: {problems}") from exc
        if record.chain != self.chain:
            raise _Bad(expected, f"the record belongs to chain {record.chain!r}")
        if index != _index(record):
            raise _Bad(expected, "the index fields differ from the record")
        previous = ZERO_HASH if self.last is None else bytes.fromhex(self.last.hash)
        if hashes["prev_hash"] != previous.hex():
            raise _Bad(expected, "prev_hash is not the previous record's hash")
        if self.last is not None and record.time < self.last.time:
            raise _Bad(expected, "the record's time is before the previous record's")
        leaf = leaf_hash(canonical_bytes(record))
        digest = chain_hash(previous, leaf).hex()
        if hashes["hash"] != digest:
            raise _Bad(expected, "the record's hash does not match its contents")
        expected_derived = _derived(record, leaf)
        for name, value in derived.items():
            if value != expected_derived[name]:
                raise _Bad(expected, f"the block's {name} does not match its record")
        self.last_leaf = leaf
        return ChainHead(record.seq, digest, record.time)


def verify_chain(
    chain: str,
    documents: Iterable[Mapping[str, Any]],
    head: ChainHead | Mapping[str, Any] | None,
    *,
    start: ChainHead | None = None,
) -> Verification:
    """Check stored blocks in seq order against each other and against the chain's head."""
    verifier = ChainVerifier(chain, start=start)
    for document in documents:
        if not verifier.feed(document):
            break
    return verifier.finish(head)
