"""The offline-verifiable audit bundle: its layout, and the verifier an outsider runs over it
(`cfp audit verify BUNDLE.zip`). Pure: the caller opens the bundle and hands over its files.

Layout of a bundle (a zip):

    manifest.json          {format, chain, origin, region, exported_at, records, head}
    records.jsonl          one line per record, in seq order, exactly
                           {"seq":N,"hash":"<hex>","prev_hash":"<hex>","record":<canonical>}
                           where <canonical> is the record's RFC 8785 canonical JSON, byte for
                           byte: the bytes its RFC 6962 leaf hashes (SHA-256(0x00 || bytes)).
                           A verifier takes the record's bytes from the line as they are; it
                           never re-serializes them
    checkpoints/N.note     the signed checkpoint at tree size N (C2SP signed note), N zero-padded
    checkpoints/N.json     what the platform stored with it (time, key, anchor locations)
    keys.json              every checkpoint key version: name, algorithm, PEM, vkey
    anchors/N.note         the checkpoint as the anchor sink outside the platform holds it
    anchors/N.tsr          its RFC 3161 timestamp token, when a TSA was configured

What is checked, in order: every checkpoint's signature (by a key of keys.json, or only by the
keys the verifier pins); every anchor's signature, that it equals the checkpoint of its size,
and its timestamp token; then each record: its seq, its link to the previous record's hash, its
hash over its canonical bytes, its chain; the Merkle root of the records at every checkpoint's
size against the signed root (one sequence of leaves under every root makes the checkpoints
consistent with each other); finally that the chain reaches every anchored and signed size
(truncation) and ends at the manifest's head. Records after the last checkpoint are protected
by the chain and the checkpoint schedule alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cfp.domain.audit import ZERO_HASH, block_id
from cfp.domain.merkle import CompactRange
from cfp.domain.notes import NoteError, parse_signed_note, verify_checkpoint
from cfp.domain.timestamps import TimestampError, TimestampInfo, check_timestamp
from cfp.ports import PublicKey

FORMAT = "cfp-audit-bundle/1"
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
KEYS = "keys.json"
PROGRESS_EVERY = 4096


def checkpoint_file(size: int, suffix: str) -> str:
    return f"checkpoints/{block_id(size)}.{suffix}"


def anchor_file(size: int, suffix: str) -> str:
    return f"anchors/{block_id(size)}.{suffix}"


_LINE = re.compile(
    rb'\{"seq":(0|[1-9][0-9]*),"hash":"([0-9a-f]{64})","prev_hash":"([0-9a-f]{64})","record":'
)


def record_line(seq: int, hash_hex: str, prev_hex: str, canonical: bytes) -> bytes:
    """One line of records.jsonl (without its newline): valid JSON whose `record` is the
    canonical bytes themselves."""
    head = f'{{"seq":{seq},"hash":"{hash_hex}","prev_hash":"{prev_hex}","record":'
    return head.encode() + canonical + b"}"


class Bundle(Protocol):
    """The files of a bundle, however it is opened."""

    def names(self) -> Sequence[str]: ...

    def read(self, name: str) -> bytes: ...

    def lines(self, name: str) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A checkpoint key an outsider accepts: its note name, note key id and public key."""

    name: str
    note_key_id: bytes
    public_key: PublicKey


@dataclass
class BundleVerdict:
    ok: bool
    checked: int = 0
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    anchors: int = 0
    timestamps: int = 0
    tree_size: int = 0  # the largest signed tree size the records were checked against
    root: str | None = None  # its root, hex
    timestamp_info: list[TimestampInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Bad(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def keys_from_json(data: bytes) -> list[TrustedKey]:
    """The keys a bundle's keys.json (or a file of the same shape) names."""
    try:
        entries = json.loads(data)
        if not isinstance(entries, list):
            raise ValueError("keys.json is a list of keys")
        return [
            TrustedKey(
                name=str(e["name"]),
                note_key_id=bytes.fromhex(e["note_key_id"]),
                public_key=PublicKey(
                    key_id=str(e["key_id"]),
                    version=int(e["version"]),
                    algorithm=e["algorithm"],
                    pem=str(e["public_key_pem"]),
                ),
            )
            for e in entries
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"keys are not a list of checkpoint keys: {exc}") from exc


def verify_bundle(
    bundle: Bundle,
    *,
    trusted: Sequence[TrustedKey] | None = None,
    pinned: Sequence[bytes] = (),
    tsa_certificates: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> BundleVerdict:
    """Verify a bundle; stops at the first problem. `trusted`: accept only these keys (None:
    the bundle's own keys.json, with a warning). `pinned`: signed checkpoint notes obtained
    apart from the bundle (from the anchor sink): the bundle must reach each one's size and
    hash to its root, so a bundle cut back to an older checkpoint is refused.
    `tsa_certificates`: accept timestamp tokens only from TSA certificates with these SHA-256
    fingerprints (hex). `progress(done, total)` is called as records are checked."""
    verdict = BundleVerdict(ok=False)
    try:
        _verify(bundle, trusted, list(pinned), list(tsa_certificates), progress, verdict)
    except _Bad as bad:
        verdict.first_bad_seq, verdict.reason = bad.seq, bad.reason
        return verdict
    verdict.ok = True
    return verdict


def _verify(
    bundle: Bundle,
    trusted: Sequence[TrustedKey] | None,
    pinned: list[bytes],
    tsa_certificates: list[str],
    progress: Callable[[int, int], None] | None,
    verdict: BundleVerdict,
) -> None:
    names = _names(bundle)
    for required in (MANIFEST, RECORDS, KEYS):
        if required not in names:
            raise _Bad(None, f"the bundle has no {required}")
    manifest = _manifest(bundle.read(MANIFEST))
    chain, origin, total = manifest["chain"], manifest["origin"], manifest["records"]
    if trusted is None:
        try:
            keys = keys_from_json(bundle.read(KEYS))
        except ValueError as exc:
            raise _Bad(None, f"keys.json: {exc}") from exc
        verdict.warnings.append(
            "checkpoint keys were taken from the bundle itself; pin the platform's published "
            "keys with --key to make the signatures mean something to you"
        )
    else:
        keys = list(trusted)

    signed = _checkpoints(bundle, names, "checkpoints", keys, origin)
    verdict.checkpoints = len(signed)
    anchored = _checkpoints(bundle, names, "anchors", keys, origin)
    verdict.anchors = len(anchored)
    if not signed:
        raise _Bad(None, "the bundle has no signed checkpoint: nothing vouches for its records")
    for size in sorted(signed):
        if size not in anchored:
            raise _Bad(_start(signed, size), f"checkpoint {size} has no anchor in the bundle")
        if checkpoint_file(size, "json") not in names:
            raise _Bad(
                _start(signed, size), f"checkpoint {size} has no {checkpoint_file(size, 'json')}"
            )
    for size in sorted(anchored):
        if size not in signed:
            raise _Bad(_start(anchored, size), f"anchor {size} has no checkpoint in the bundle")
    stray = [n for n in names if n.endswith(".json") and n.startswith("checkpoints/")]
    for name in stray:
        if int(name.removeprefix("checkpoints/").partition(".")[0]) not in signed:
            raise _Bad(None, f"{name} describes a checkpoint the bundle does not hold")
    listed = manifest.get("checkpoints")
    if listed is not None and listed != len(signed):
        raise _Bad(None, f"the manifest lists {listed} checkpoints, the bundle holds {len(signed)}")
    for size, (_root, note) in anchored.items():
        if size in signed and signed[size][1] != note:
            raise _Bad(_start(signed, size), f"checkpoint {size} differs from its anchor")
        token_name = anchor_file(size, "tsr")
        if token_name in names:
            try:
                info = check_timestamp(bundle.read(token_name), note)
            except TimestampError as exc:
                raise _Bad(_start(anchored, size), f"anchor {size}'s timestamp: {exc}") from exc
            if tsa_certificates and info.certificate_sha256 not in tsa_certificates:
                raise _Bad(
                    _start(anchored, size),
                    f"anchor {size}'s timestamp is by a TSA certificate not pinned "
                    f"({info.certificate_sha256})",
                )
            verdict.timestamps += 1
            verdict.timestamp_info.append(info)
    roots = {size: root for size, (root, _) in {**signed, **anchored}.items()}
    for index, note in enumerate(pinned):
        checkpoint = _verified(note, keys, origin, f"pinned checkpoint {index + 1}", 0)
        known = roots.get(checkpoint.size)
        if known is not None and known != checkpoint.root_hash:
            raise _Bad(
                _start(roots, checkpoint.size),
                f"the bundle's checkpoint {checkpoint.size} differs from the pinned one",
            )
        roots[checkpoint.size] = checkpoint.root_hash

    compact = CompactRange()
    previous = ZERO_HASH
    seq = 0
    for line in bundle.lines(RECORDS):
        if not line.strip():
            continue
        previous = _record(line, seq, previous, chain, compact)
        seq += 1
        root = roots.get(seq)
        if root is not None and compact.root() != root:
            raise _Bad(
                _start(roots, seq),
                f"records {_start(roots, seq)}…{seq - 1} do not hash to the root that "
                f"checkpoint {seq} signed",
            )
        if progress is not None and seq % PROGRESS_EVERY == 0:
            progress(seq, total)
    verdict.checked = seq
    if progress is not None:
        progress(seq, total)
    covered = [size for size in roots if size <= seq]
    if covered:
        verdict.tree_size = max(covered)
        verdict.root = roots[verdict.tree_size].hex()
    beyond = [size for size in roots if size > seq]
    if beyond:
        largest = max(beyond)
        what = "anchored" if largest in anchored else "signed"
        raise _Bad(
            seq,
            f"record {seq} is missing: the chain ends after {seq} records but checkpoint "
            f"{largest} is {what}",
        )
    if seq != total:
        raise _Bad(seq if seq < total else total, f"the manifest says {total} records, found {seq}")
    if verdict.tree_size < seq:
        raise _Bad(
            verdict.tree_size,
            f"records {verdict.tree_size}…{seq - 1} follow the last signed checkpoint: no "
            "checkpoint vouches for them",
        )
    head = manifest.get("head")
    if seq and (not isinstance(head, dict) or head.get("hash") != previous.hex()):
        raise _Bad(seq - 1, "the last record's hash is not the manifest's head")


_MEMBER = re.compile(r"(checkpoints/[0-9]{20}\.(note|json)|anchors/[0-9]{20}\.(note|tsr))")


def _names(bundle: Bundle) -> set[str]:
    """The bundle's file names: each once, each one the layout has a place for."""
    names = [n for n in bundle.names() if not n.endswith("/")]  # folders a re-zip adds
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _Bad(None, f"the bundle holds {name} twice")
        seen.add(name)
        if name not in (MANIFEST, RECORDS, KEYS) and not _MEMBER.fullmatch(name):
            raise _Bad(None, f"the bundle holds {name!r}, which is no part of a bundle")
    return seen


def _manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise _Bad(None, f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _Bad(None, f"manifest.json is not a {FORMAT} manifest")
    for name, kind in (("chain", str), ("origin", str), ("records", int)):
        if not isinstance(manifest.get(name), kind):
            raise _Bad(None, f"manifest.json: {name} is missing or not a {kind.__name__}")
    return manifest


def _checkpoints(
    bundle: Bundle, names: Iterable[str], folder: str, keys: Sequence[TrustedKey], origin: str
) -> dict[int, tuple[bytes, bytes]]:
    """{size: (root, note bytes)} of the notes in `folder`, each verified by a known key."""
    found: dict[int, tuple[bytes, bytes]] = {}
    for name in sorted(names):
        stem, _, suffix = name.removeprefix(f"{folder}/").partition(".")
        if not name.startswith(f"{folder}/") or suffix != "note":
            continue
        what = "checkpoint" if folder == "checkpoints" else "anchor"
        size = int(stem)  # twenty ASCII digits: _names checked
        note = bundle.read(name)
        checkpoint = _verified(note, keys, origin, f"{what} {size}", size)
        if checkpoint.size != size:
            raise _Bad(None, f"{name} holds the checkpoint of size {checkpoint.size}")
        found[size] = (checkpoint.root_hash, note)
    return found


def _verified(note: bytes, keys: Sequence[TrustedKey], origin: str, what: str, size: int) -> Any:
    try:
        _, signatures = parse_signed_note(note)
    except ValueError as exc:
        raise _Bad(max(size - 1, 0), f"{what} is malformed: {exc}") from exc
    problems: list[str] = []
    for signature in signatures:
        for key in keys:
            if key.name == signature.name and key.note_key_id == signature.key_id:
                try:
                    return verify_checkpoint(note, key.name, key.public_key, origin=origin)
                except NoteError as exc:
                    problems.append(str(exc))
    reason = "; ".join(problems) or "it is signed by no key the verifier accepts"
    raise _Bad(max(size - 1, 0), f"{what}'s signature: {reason}")


def _start(roots: Mapping[int, Any], size: int) -> int:
    """The first record that checkpoint `size` covers and no smaller checkpoint does."""
    smaller = [s for s in roots if s < size]
    return max(smaller) if smaller else 0


def _record(line: bytes, seq: int, previous: bytes, chain: str, compact: CompactRange) -> bytes:
    line = line.rstrip(b"\r\n")
    found = _LINE.match(line)
    if found is None or not line.endswith(b"}"):
        raise _Bad(seq, f"line {seq + 1} of records.jsonl is not in the bundle's line format")
    stored_seq, stored_hash, stored_prev = found.groups()
    record = line[found.end() : -1]
    if int(stored_seq) != seq:
        raise _Bad(
            seq, f"record {seq} is missing or out of order (line holds seq {int(stored_seq)})"
        )
    if stored_prev != previous.hex().encode():
        raise _Bad(seq, "prev_hash is not the previous record's hash")
    leaf = hashlib.sha256(b"\x00" + record).digest()
    digest = hashlib.sha256(previous + leaf).digest()
    if stored_hash != digest.hex().encode():
        raise _Bad(seq, "the record's hash does not match its contents")
    try:
        fields = _decode(record.decode())
    except ValueError as exc:
        raise _Bad(seq, f"the record is not JSON: {exc}") from exc
    if not isinstance(fields, dict) or fields.get("seq") != seq:
        held = fields.get("seq") if isinstance(fields, dict) else None
        raise _Bad(seq, f"the record holds seq {held!r}")
    if fields.get("chain") != chain:
        raise _Bad(seq, f"the record belongs to chain {fields.get('chain')!r}, not {chain!r}")
    compact.append(leaf)
    return digest


_decode = json.JSONDecoder().decode
