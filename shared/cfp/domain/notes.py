"""C2SP signed notes and transparency-log checkpoints: build the text a key signs, the signature
lines and verifier keys, parse notes strictly and verify a checkpoint. Pure: no I/O; signing
itself is the KeyService's (it signs exactly `Checkpoint.body()`).

c2sp.org/signed-note (§Format, §Signatures):

    <text, ending in a newline>
    <blank line>
    — <key name> base64(key ID || signature)      (one or more lines; U+2014 em dash, space)

  - A note is UTF-8 with no control character but newline; the text is everything up to the
    LAST blank line. Key names are non-empty, with no Unicode space and no "+".
  - Key ID = SHA-256(key name || 0x0A || signature type || public key)[:4] (RECOMMENDED form).
  - Verifiers ignore signatures by other keys; a signature by the expected key (same name and
    key ID) that fails to verify rejects the whole note.

Signature types (the spec's registry):

  - 0x01 Ed25519 (RFC 8032 over the note text): the public key is its 32 raw bytes, and the
    key ID is the RECOMMENDED form above.
  - 0x02 ECDSA "as implemented by github.com/transparency-dev/witness" (the one ECDSA type the
    spec assigns; Sigstore's Rekor signs its checkpoints with it). Our `ecdsa-p256-sha256`
    signatures are exactly that: ASN.1 DER ECDSA over SHA-256(text), as `PublicKey.verify`
    takes them. The public key is its DER SubjectPublicKeyInfo, and, as that spec entry says
    and transparency-dev's verifier checks, the key ID is SHA-256(DER SPKI)[:4], WITHOUT the
    name and type byte (Rekor's key `rekor.sigstore.dev+c0d23d6a+…` is hashed that way). A
    reserved or private-use byte (0xff…) would sign the same bytes but no other verifier
    would accept it, so 0x02 it is.

Verifier keys use the format of golang.org/x/mod/sumdb/note, which C2SP tools share:
`<name>+<key ID as 8 hex digits>+base64(signature type || public key)`.

c2sp.org/tlog-checkpoint (§Note text): the text is `origin\\nsize\\nbase64(root)\\n` followed by
optional, non-empty extension lines; size is decimal without leading zeros; the root is the
32-byte RFC 6962 tree hash (cfp.domain.merkle).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ports module is only needed for types here
    from cfp.ports import PublicKey, SigningAlgorithm

EM_DASH = "\u2014"
SIGNATURE_PREFIX = EM_DASH + " "
SIGNATURE_TYPES: dict[str, int] = {"ed25519": 0x01, "ecdsa-p256-sha256": 0x02}
KEY_ID_SIZE = 4
MAX_SIGNATURES = 100  # the spec asks verifiers to take at least 16; Go's note package takes 100
ROOT_HASH_SIZE = 32
MAX_TREE_SIZE = 2**64 - 1

_TREE_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # below U+0020, newline excepted


class NoteError(ValueError):
    """A signed note or checkpoint is malformed or does not verify; the message says why."""


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name, its 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency log's tree head: origin, tree size, RFC 6962 root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.extensions, list):
            object.__setattr__(self, "extensions", tuple(self.extensions))
        _check_line("the origin", self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError(f"the tree size must be an integer, not {self.size!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"the tree size {self.size} is outside 0..2**64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise NoteError(f"the root hash must be {ROOT_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("the extension lines must be a tuple of strings")
        for i, line in enumerate(self.extensions):
            _check_line(f"extension line {i + 1}", line)

    def body(self) -> bytes:
        """The note text: what the log's key signs."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines).encode()

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """The checkpoint whose note text is `body`; NoteError naming the problem otherwise."""
        text = _note_text(body, "the checkpoint")
        if not text.endswith("\n"):
            raise NoteError("the checkpoint does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"a checkpoint has at least 3 lines, this one {len(lines)}")
        for i, line in enumerate(lines):
            if not line:
                raise NoteError(f"checkpoint line {i + 1} is empty")
        origin, size, root, *extensions = lines
        if not _TREE_SIZE.fullmatch(size):
            raise NoteError(f"the tree size {size!r} is not a decimal number without leading 0")
        try:
            root_hash = _unb64(root)
        except ValueError:
            raise NoteError(f"the root hash {root!r} is not canonical base64") from None
        if len(root_hash) != ROOT_HASH_SIZE:
            raise NoteError(f"the root hash has {len(root_hash)} bytes, {ROOT_HASH_SIZE} expected")
        return cls(origin, int(size), root_hash, tuple(extensions))


def key_id(name: str, algorithm: SigningAlgorithm, public_key_pem: str | bytes) -> bytes:
    """The 4-byte note key ID of a public key (SPKI PEM) under `name` (see the module doc)."""
    _check_name(name)
    key = _public_key_bytes(algorithm, public_key_pem)
    if algorithm == "ecdsa-p256-sha256":
        return hashlib.sha256(key).digest()[:KEY_ID_SIZE]
    prefix = name.encode() + b"\n" + bytes([SIGNATURE_TYPES[algorithm]])
    return hashlib.sha256(prefix + key).digest()[:KEY_ID_SIZE]


def verifier_key(name: str, public_key: PublicKey) -> str:
    """The verifier key string `<name>+<hex key ID>+base64(type || public key)`."""
    kid = key_id(name, public_key.algorithm, public_key.pem)
    key = _public_key_bytes(public_key.algorithm, public_key.pem)
    return f"{name}+{kid.hex()}+{_b64(bytes([SIGNATURE_TYPES[public_key.algorithm]]) + key)}"


def signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    """The signature line `— <name> base64(key ID || signature)`, without its newline."""
    _check_name(name)
    if not isinstance(key_id, bytes) or len(key_id) != KEY_ID_SIZE:
        raise NoteError(f"a key ID is {KEY_ID_SIZE} bytes")
    if not isinstance(signature, bytes) or not signature:
        raise NoteError("the signature is empty")
    return f"{SIGNATURE_PREFIX}{name} {_b64(key_id + signature)}"


def signed_note(body: bytes, lines: Sequence[str]) -> bytes:
    """The signed note: `body`, a blank line, then each signature line and a newline."""
    text = _note_text(body, "the note text")
    if not text.endswith("\n"):
        raise NoteError("the note text does not end with a newline")
    if not lines:
        raise NoteError("a signed note needs at least one signature line")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note has at most {MAX_SIGNATURES} signatures")
    for i, line in enumerate(lines):
        _parse_signature_line(i + 1, line)
    return body + b"\n" + "".join(line + "\n" for line in lines).encode()


def parse_signed_note(text: bytes) -> tuple[bytes, list[NoteSignature]]:
    """Split a signed note into its text (the signed bytes) and its signatures, strictly."""
    note = _note_text(text, "the note")
    if not note.endswith("\n"):
        raise NoteError("the note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line between its text and its signatures")
    body, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("the note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has {len(lines)} signatures, at most {MAX_SIGNATURES} taken")
    signatures = [_parse_signature_line(i + 1, line) for i, line in enumerate(lines)]
    return body.encode(), signatures


def verify_checkpoint(
    note: bytes, name: str, public_key: PublicKey, *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in `note` once a signature by `name`'s key verifies (and the origin is
    `origin`, if given); NoteError otherwise."""
    body, signatures = parse_signed_note(note)
    kid = key_id(name, public_key.algorithm, public_key.pem)
    key = f"{name}+{kid.hex()}"
    mine = [s for s in signatures if s.name == name and s.key_id == kid]
    if not mine:
        raise NoteError(f"no signature by key {key}")
    for signature in mine:
        if not public_key.verify(signature.signature, body):
            raise NoteError(f"signature by {key} does not verify")
    checkpoint = Checkpoint.parse(body)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"origin is {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    if isinstance(line, str) and "\n" in line:
        raise NoteError(f"signature line {number} contains a newline")
    if not isinstance(line, str) or not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(
            f"signature line {number} does not start with an em dash (U+2014) and a space"
        )
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise NoteError(f"signature line {number} is not '— <key name> <base64 signature>'")
    name, encoded = parts
    try:
        _check_name(name)
    except NoteError as e:
        raise NoteError(f"signature line {number}: {e}") from None
    try:
        raw = _unb64(encoded)
    except ValueError:
        raise NoteError(f"signature line {number} has invalid base64") from None
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError(f"signature line {number} holds no signature after the key ID")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def _public_key_bytes(algorithm: str, pem: str | bytes) -> bytes:
    """Ed25519: the 32 raw bytes; ECDSA P-256: the DER SubjectPublicKeyInfo."""
    # Imported here: building and parsing notes needs no cryptography.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if algorithm not in SIGNATURE_TYPES:
        raise NoteError(f"unknown signing algorithm {algorithm!r}")
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as e:
        raise NoteError(f"the public key is not a PEM SubjectPublicKeyInfo: {e}") from None
    if algorithm == "ed25519":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise NoteError("the public key is not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise NoteError("the public key is not an ECDSA P-256 key")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _note_text(data: bytes, what: str) -> str:
    if not isinstance(data, bytes):
        raise NoteError(f"{what} must be bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None
    control = _CONTROL.search(text)
    if control:
        raise NoteError(f"{what} contains the control character U+{ord(control[0]):04X}")
    return text


def _check_line(what: str, line: object) -> None:
    if not isinstance(line, str) or not line:
        raise NoteError(f"{what} must be a non-empty string")
    if "\n" in line or _CONTROL.search(line):
        raise NoteError(f"{what} must be one line without control characters")


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise NoteError("a key name must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise NoteError(f"key name {name!r} contains a space, a '+' or a control character")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict standard base64: padded, alphabet only, canonical (ValueError otherwise)."""
    raw = base64.b64decode(text, validate=True)  # binascii.Error is a ValueError
    if _b64(raw) != text:
        raise ValueError("non-canonical base64")
    return raw
