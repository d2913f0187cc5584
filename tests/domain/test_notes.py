"""C2SP signed notes and checkpoints: the reference implementations' published vectors (Go's
golang.org/x/mod/sumdb/note, transparency-dev's ECDSA verifier with Sigstore Rekor's key), a
pinned note of our own, round trips with real keys, and strict rejection of anything else."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cfp.domain.notes import (
    Checkpoint,
    NoteError,
    NoteSignature,
    key_id,
    parse_signed_note,
    signature_line,
    signed_note,
    verifier_key,
    verify_checkpoint,
)
from cfp.ports import PublicKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

# golang.org/x/mod/sumdb/note note_test.go (TestSign, TestOpen).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
    "pRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)

# transparency-dev/formats note/note_verifier_test.go: Sigstore Rekor's ECDSA P-256 key (type
# 0x02, key ID = SHA-256(SPKI)[:4]) and one of its checkpoints.
REKOR_VKEY = (
    "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwB"
    "cK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc="
)
REKOR_NOTE = (
    "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n"
    "\u2014 rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVC"
    "lgqq20uDLet7MCoTURUCRdxwWBHHufk=\n"
).encode()

# Ours: Ed25519 from the seed 00 01 … 1f over the RFC 6962 root of transparency-dev's 8 leaves.
GOLDEN_NAME = "cfp.example/audit/system"
GOLDEN_ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
GOLDEN_NOTE = (
    "cfp.example/audit/system\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "\u2014 cfp.example/audit/system e/3iXOGEehk6hRr19SC+P/5emKCn2zj36lRob52RjoIdC4hiIUaRIbT8N+DYy"
    "sorfGPXnx904XmZw372h4+X+r1NqAY=\n"
).encode()
GOLDEN_VKEY = "cfp.example/audit/system+7bfde25c+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"

ORIGIN = "cfp.example/audit/tenant/acme"
ROOT = hashlib.sha256(b"some root").digest()


def _pem(key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def ed25519_key(seed: bytes) -> tuple[ed25519.Ed25519PrivateKey, PublicKey]:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return private, PublicKey("checkpoints", 1, "ed25519", _pem(private.public_key()))


def p256_key() -> tuple[ec.EllipticCurvePrivateKey, PublicKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, PublicKey("checkpoints", 1, "ecdsa-p256-sha256", _pem(private.public_key()))


def public_from_vkey(vkey: str) -> PublicKey:
    """The PublicKey of a verifier key, decoded here without the module under test."""
    raw = base64.b64decode(vkey.split("+", 2)[2])
    if raw[0] == 0x01:
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
        return PublicKey("vkey", 1, "ed25519", _pem(key))
    ec_key = serialization.load_der_public_key(raw[1:])
    assert isinstance(ec_key, ec.EllipticCurvePublicKey)
    return PublicKey("vkey", 1, "ecdsa-p256-sha256", _pem(ec_key))


def sign(private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, body: bytes) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(body)
    return private.sign(body, ec.ECDSA(hashes.SHA256()))  # DER, as KMS returns it


def make_note(
    checkpoint: Checkpoint,
    name: str,
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    public: PublicKey,
) -> bytes:
    body = checkpoint.body()
    kid = key_id(name, public.algorithm, public.pem)
    return signed_note(body, [signature_line(name, kid, sign(private, body))])


# --- published vectors ---------------------------------------------------------------------------


def test_go_reference_note_is_reproduced_byte_for_byte() -> None:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    private, public = ed25519_key(seed)
    assert verifier_key("PeterNeumann", public) == PETER_VKEY
    assert key_id("PeterNeumann", "ed25519", public.pem).hex() == "c74f20a3"
    line = signature_line("PeterNeumann", bytes.fromhex("c74f20a3"), private.sign(GO_TEXT))
    note = signed_note(GO_TEXT, [line])
    assert note == GO_TEXT + b"\n" + PETER_SIG.encode()
    body, signatures = parse_signed_note(note)
    assert body == GO_TEXT
    assert [(s.name, s.key_id.hex(), len(s.signature)) for s in signatures] == [
        ("PeterNeumann", "c74f20a3", 64)
    ]


def test_go_reference_notes_verify_by_the_right_key_only() -> None:
    note = GO_TEXT + b"\n" + (PETER_SIG + ENOCH_SIG).encode()
    enoch = public_from_vkey(ENOCH_VKEY)
    assert verifier_key("EnochRoot", enoch) == ENOCH_VKEY
    # The signature verifies, then the text is found not to be a checkpoint.
    with pytest.raises(NoteError, match="at least 3 lines"):
        verify_checkpoint(note, "EnochRoot", enoch)
    with pytest.raises(NoteError, match=r"^no signature by key PeterNeumann\+[0-9a-f]{8}$"):
        verify_checkpoint(note, "PeterNeumann", enoch)
    peter = public_from_vkey(PETER_VKEY)
    tampered = note.replace(b"cryptography", b"cryptographY")
    with pytest.raises(NoteError, match=r"^signature by PeterNeumann\+c74f20a3 does not verify$"):
        verify_checkpoint(tampered, "PeterNeumann", peter)


def test_rekor_ecdsa_checkpoint_verifies() -> None:
    public = public_from_vkey(REKOR_VKEY)
    assert verifier_key("rekor.sigstore.dev", public) == REKOR_VKEY
    assert key_id("rekor.sigstore.dev", "ecdsa-p256-sha256", public.pem).hex() == "c0d23d6a"
    checkpoint = verify_checkpoint(REKOR_NOTE, "rekor.sigstore.dev", public, origin="Rekor")
    assert checkpoint == Checkpoint(
        "Rekor", 798034, base64.b64decode("f+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=")
    )
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(REKOR_NOTE.replace(b"798034", b"798035"), "rekor.sigstore.dev", public)


def test_golden_checkpoint_note() -> None:
    private, public = ed25519_key(bytes(range(32)))
    checkpoint = Checkpoint(GOLDEN_NAME, 8, GOLDEN_ROOT)
    assert make_note(checkpoint, GOLDEN_NAME, private, public) == GOLDEN_NOTE
    assert verifier_key(GOLDEN_NAME, public) == GOLDEN_VKEY
    assert verify_checkpoint(GOLDEN_NOTE, GOLDEN_NAME, public, origin=GOLDEN_NAME) == checkpoint


# --- round trips and rejections ------------------------------------------------------------------


NAME = "cfp.example/checkpoints"
CHECKPOINT = Checkpoint(ORIGIN, 42, ROOT, ("ts 1767225600",))

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(params=["ed25519", "ecdsa-p256-sha256"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return request.param


def new_key(algorithm: str, seed: int = 0) -> tuple[PrivateKey, PublicKey]:
    return ed25519_key(bytes([seed]) * 32) if algorithm == "ed25519" else p256_key()


def signature_lines(note: bytes) -> list[str]:
    return note.split(b"\n\n")[-1].decode().splitlines()


def test_round_trip(algorithm: str) -> None:
    private, public = new_key(algorithm)
    note = make_note(CHECKPOINT, NAME, private, public)
    assert verify_checkpoint(note, NAME, public, origin=ORIGIN) == CHECKPOINT
    assert verify_checkpoint(note, NAME, public) == CHECKPOINT
    body, signatures = parse_signed_note(note)
    assert body == CHECKPOINT.body()
    kid = key_id(NAME, public.algorithm, public.pem)
    assert signatures == [NoteSignature(NAME, kid, signatures[0].signature)]
    assert public.verify(signatures[0].signature, body)


def test_a_note_resigned_with_another_key_is_rejected(algorithm: str) -> None:
    _, public = new_key(algorithm)
    other_private, other_public = new_key(algorithm, seed=7)
    resigned = make_note(CHECKPOINT, NAME, other_private, other_public)
    with pytest.raises(NoteError, match=r"^no signature by key cfp\.example/checkpoints\+\w{8}$"):
        verify_checkpoint(resigned, NAME, public)


def test_other_keys_signatures_are_ignored_but_a_bad_one_by_the_key_is_not(algorithm: str) -> None:
    private, public = new_key(algorithm)
    other_private, other_public = new_key(algorithm, seed=7)
    ours = signature_lines(make_note(CHECKPOINT, NAME, private, public))
    theirs = signature_lines(make_note(CHECKPOINT, NAME, other_private, other_public))
    body = CHECKPOINT.body()
    assert verify_checkpoint(signed_note(body, theirs + ours), NAME, public) == CHECKPOINT
    kid = key_id(NAME, public.algorithm, public.pem)
    bad = signature_line(NAME, kid, sign(private, body + b"x"))
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(signed_note(body, [*ours, bad]), NAME, public)
    short = signature_line(NAME, kid, b"short")
    with pytest.raises(NoteError, match="does not verify"):
        verify_checkpoint(signed_note(body, [short]), NAME, public)


def test_a_body_changed_after_signing_is_rejected(algorithm: str) -> None:
    private, public = new_key(algorithm)
    changed = make_note(CHECKPOINT, NAME, private, public).replace(b"\n42\n", b"\n43\n")
    with pytest.raises(NoteError, match=r"^signature by cfp\.example/checkpoints\+\w{8} does not"):
        verify_checkpoint(changed, NAME, public)


def test_a_wrong_origin_or_name_is_rejected(algorithm: str) -> None:
    private, public = new_key(algorithm)
    note = make_note(CHECKPOINT, NAME, private, public)
    with pytest.raises(
        NoteError, match=r"^origin is 'cfp\.example/audit/tenant/acme', expected 'x'$"
    ):
        verify_checkpoint(note, NAME, public, origin="x")
    with pytest.raises(NoteError, match="no signature by key"):
        verify_checkpoint(note, "cfp.example/other", public)


def test_key_must_match_its_algorithm() -> None:
    _, ed = ed25519_key(bytes(32))
    _, p256 = p256_key()
    with pytest.raises(NoteError, match="not an ECDSA P-256 key"):
        key_id("k", "ecdsa-p256-sha256", ed.pem)
    with pytest.raises(NoteError, match="not an Ed25519 key"):
        key_id("k", "ed25519", p256.pem)
    p384 = _pem(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(NoteError, match="not an ECDSA P-256 key"):
        key_id("k", "ecdsa-p256-sha256", p384)
    with pytest.raises(NoteError, match="not a PEM"):
        key_id("k", "ed25519", "garbage")
    with pytest.raises(NoteError, match="unknown signing algorithm"):
        key_id("k", "rsa", ed.pem)  # type: ignore[arg-type]
    with pytest.raises(NoteError, match="contains a space"):
        key_id("a b", "ed25519", ed.pem)


# --- malformed notes ------------------------------------------------------------------------------

SIG = PETER_SIG.rstrip("\n")
TEXT = GO_TEXT.decode()


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (TEXT, "no blank line"),
        (TEXT + "\n", "no signature lines"),
        (TEXT + SIG + "\n", "no blank line"),
        (TEXT + "\n" + SIG, "does not end with a newline"),
        (TEXT + "\n" + SIG.replace("\u2014", "\u2013") + "\n", "em dash"),  # en dash
        (TEXT + "\n" + SIG.replace("\u2014", "-") + "\n", "em dash"),
        (TEXT + "\n" + SIG.replace("\u2014 ", "\u2014") + "\n", "em dash"),
        (TEXT + "\n" + SIG.replace("x08go", "x08g!") + "\n", "invalid base64"),
        (TEXT + "\n" + SIG.replace("AM=", "AM") + "\n", "invalid base64"),
        (TEXT + "\n" + SIG.replace("AM=", "AN=") + "\n", "invalid base64"),  # non-canonical
        (TEXT + "\n" + SIG.replace("Peter", "Peter Paul") + "\n", "is not '"),
        (TEXT + "\n" + SIG.replace(" x08go", "  x08go") + "\n", "is not '"),
        (TEXT + "\n" + SIG.replace("PeterNeumann", "Peter+Neumann") + "\n", "a '\\+'"),
        (TEXT + "\n" + SIG.replace("PeterNeumann", "Peter\u00a0Neumann") + "\n", "a space"),
        (TEXT + "\n\u2014 PeterNeumann AAAAAA==\n", "no signature after the key ID"),
        (TEXT + "\n" + SIG + "\nUnexpected line.\n", "signature line 2"),
        ("\x01" + TEXT + "\n" + SIG + "\n", "control character U\\+0001"),
        (TEXT.replace(",", ",\t") + "\n" + SIG + "\n", "control character U\\+0009"),
        (TEXT + "\n" + (SIG + "\n") * 101, "at most 100"),
    ],
)
def test_malformed_notes_are_rejected(note: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        parse_signed_note(note.encode())
    with pytest.raises(NoteError):
        verify_checkpoint(note.encode(), "PeterNeumann", public_from_vkey(PETER_VKEY))


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        parse_signed_note(b"\xff" + GO_TEXT + b"\n" + PETER_SIG.encode())


def test_text_ends_at_the_last_blank_line() -> None:
    note = b"a\n\nb\n\n" + PETER_SIG.encode()
    body, signatures = parse_signed_note(note)
    assert body == b"a\n\nb\n"
    assert len(signatures) == 1
    assert issubclass(NoteError, ValueError)


def test_signed_note_refuses_what_it_could_not_parse_back() -> None:
    with pytest.raises(NoteError, match="end with a newline"):
        signed_note(b"abc", [SIG])
    with pytest.raises(NoteError, match="at least one signature"):
        signed_note(GO_TEXT, [])
    with pytest.raises(NoteError, match="signature line 1 contains a newline"):
        signed_note(GO_TEXT, [SIG + "\n"])
    with pytest.raises(NoteError, match="a key ID is 4 bytes"):
        signature_line("PeterNeumann", b"\x00" * 3, b"sig")
    with pytest.raises(NoteError, match="signature is empty"):
        signature_line("PeterNeumann", b"\x00" * 4, b"")


# --- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_body_format() -> None:
    root = base64.b64encode(ROOT).decode()
    assert Checkpoint(ORIGIN, 0, ROOT).body() == f"{ORIGIN}\n0\n{root}\n".encode()
    assert Checkpoint(ORIGIN, 12, ROOT, ("a", "b c")).body() == (
        f"{ORIGIN}\n12\n{root}\na\nb c\n".encode()
    )
    assert Checkpoint(ORIGIN, 12, ROOT, ["a"]).extensions == ("a",)  # type: ignore[arg-type]


R64 = base64.b64encode(ROOT).decode()
URLSAFE = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()  # "_" and "-"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"{ORIGIN}\n1\n{R64}", "end with a newline"),
        (f"{ORIGIN}\n1\n", "at least 3 lines"),
        (f"\n1\n{R64}\n", "line 1 is empty"),
        (f"{ORIGIN}\n1\n{R64}\n\n", "line 4 is empty"),
        (f"{ORIGIN}\n01\n{R64}\n", "without leading 0"),
        (f"{ORIGIN}\n-1\n{R64}\n", "without leading 0"),
        (f"{ORIGIN}\n+1\n{R64}\n", "without leading 0"),
        (f"{ORIGIN}\n1 \n{R64}\n", "without leading 0"),
        (f"{ORIGIN}\n\uff11\n{R64}\n", "without leading 0"),  # fullwidth digit one
        (f"{ORIGIN}\n{2**64}\n{R64}\n", "outside 0..2\\*\\*64-1"),
        (f"{ORIGIN}\n1\n{R64[:-1]}\n", "not canonical base64"),
        (f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes, 32 expected"),
        (f"{ORIGIN}\n1\n{URLSAFE}\n", "canonical base64"),
        (f"{ORIGIN}\r\n1\n{R64}\n", "control character U\\+000D"),
    ],
)
def test_checkpoint_parse_is_strict(body: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Checkpoint.parse(body.encode())


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("", 1, ROOT), "origin must be a non-empty string"),
        (("a\nb", 1, ROOT), "origin must be one line"),
        ((ORIGIN, True, ROOT), "must be an integer"),
        ((ORIGIN, -1, ROOT), "outside"),
        ((ORIGIN, 1, ROOT[:31]), "32 bytes"),
        ((ORIGIN, 1, ROOT.hex()), "32 bytes"),
        ((ORIGIN, 1, ROOT, ("",)), "extension line 1 must be a non-empty"),
        ((ORIGIN, 1, ROOT, ("a\tb",)), "extension line 1 must be one line"),
    ],
)
def test_checkpoint_fields_are_validated(args: tuple, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(NoteError, match=reason):
        Checkpoint(*args)


line_text = st.text(
    st.characters(blacklist_categories=("Cs",), min_codepoint=0x20), min_size=1, max_size=40
)


@given(
    line_text,
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(line_text, max_size=3),
)
def test_checkpoint_round_trips(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
