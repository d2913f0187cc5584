"""RFC 6962 Merkle trees: known answers from transparency-dev/merkle, every proof vector of its
`testdata/` (tests/data/merkle), and properties of generated proofs and compact ranges."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cfp.domain.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
)
from hypothesis import given
from hypothesis import strategies as st

VECTORS = Path(__file__).resolve().parents[1] / "data" / "merkle"

# transparency-dev/merkle proof/verify_test.go (and cmd/proofgen/main.go): the entries' data,
# the tree hashes at sizes 1..8, and proofs for (1-based leaf, size) and (size1, size2).
DATA = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

KAT_LEAVES = [hash_leaf(d) for d in DATA]
ROOTS_B = [EMPTY_ROOT, *(bytes.fromhex(r) for r in ROOTS)]  # by size
LEAVES = [hash_leaf(i.to_bytes(4, "big")) for i in range(640)]
PREFIX_ROOTS: list[bytes] = []
_range = CompactRange()
for _leaf in [b"", *LEAVES]:
    if _leaf:
        _range.append(_leaf)
    PREFIX_ROOTS.append(_range.root())


def hexes(values: list[bytes]) -> list[str]:
    return [v.hex() for v in values]


# --- known answers -------------------------------------------------------------------------------


def test_hashes_and_roots_match_transparency_dev() -> None:
    assert EMPTY_ROOT.hex() == SHA256_EMPTY
    assert root([]) == EMPTY_ROOT
    assert hash_leaf(b"").hex() == ROOTS[0]
    assert hash_children(KAT_LEAVES[0], KAT_LEAVES[1]).hex() == ROOTS[1]
    for size in range(1, 9):
        assert root(KAT_LEAVES[:size]).hex() == ROOTS[size - 1], size
        cr = CompactRange()
        cr.extend(KAT_LEAVES[:size])
        assert cr.root().hex() == ROOTS[size - 1], size


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_proof_known_answers(leaf: int, size: int, proof: list[str]) -> None:
    assert hexes(inclusion_proof(KAT_LEAVES, leaf - 1, size)) == proof
    assert hexes(MerkleTree(KAT_LEAVES).inclusion_proof(leaf - 1, size)) == proof
    verify_inclusion(
        KAT_LEAVES[leaf - 1], leaf - 1, size, [bytes.fromhex(p) for p in proof], ROOTS_B[size]
    )


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_consistency_proof_known_answers(size1: int, size2: int, proof: list[str]) -> None:
    assert hexes(consistency_proof(KAT_LEAVES, size1, size2)) == proof
    assert hexes(MerkleTree(KAT_LEAVES).consistency_proof(size1, size2)) == proof
    verify_consistency(
        size1, size2, [bytes.fromhex(p) for p in proof], ROOTS_B[size1], ROOTS_B[size2]
    )


# --- transparency-dev/merkle testdata ------------------------------------------------------------


def _vectors(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [pytest.param(f, id=f.relative_to(VECTORS).as_posix()) for f in files]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def test_every_vector_is_there() -> None:
    assert len(_vectors("inclusion")) == 98
    assert len(_vectors("consistency")) == 98


@pytest.mark.parametrize("path", _vectors("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (
        v["size1"],
        v["size2"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root1"]),
        _b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


# --- verifier messages and edge cases -----------------------------------------------------------


def test_inclusion_errors_say_why() -> None:
    proof = inclusion_proof(LEAVES, 2, 5)
    good = (LEAVES[2], 2, 5, proof, PREFIX_ROOTS[5])
    verify_inclusion(*good)
    with pytest.raises(ProofError, match=r"^index 7 is beyond tree size 5$"):
        verify_inclusion(LEAVES[2], 7, 5, proof, PREFIX_ROOTS[5])
    with pytest.raises(ProofError, match=r"^the proof has 4 hashes, 3 expected$"):
        verify_inclusion(LEAVES[2], 2, 5, [*proof, proof[0]], PREFIX_ROOTS[5])
    with pytest.raises(ProofError, match=r"^the computed root differs from the expected root$"):
        verify_inclusion(LEAVES[3], 2, 5, proof, PREFIX_ROOTS[5])
    with pytest.raises(ProofError, match=r"^the leaf hash has 3 bytes, 32 expected$"):
        verify_inclusion(b"abc", 2, 5, proof, PREFIX_ROOTS[5])
    with pytest.raises(ProofError, match=r"^proof hash 1 has 0 bytes, 32 expected$"):
        verify_inclusion(LEAVES[2], 2, 5, [proof[0], b"", proof[2]], PREFIX_ROOTS[5])
    with pytest.raises(ProofError, match="must not be negative"):
        verify_inclusion(LEAVES[2], -1, 5, proof, PREFIX_ROOTS[5])
    assert issubclass(ProofError, ValueError)


def test_consistency_errors_say_why() -> None:
    proof = consistency_proof(LEAVES, 3, 7)
    r3, r7 = PREFIX_ROOTS[3], PREFIX_ROOTS[7]
    verify_consistency(3, 7, proof, r3, r7)
    with pytest.raises(ProofError, match=r"^size1 7 is beyond size2 3$"):
        verify_consistency(7, 3, proof, r7, r3)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 7, [], EMPTY_ROOT, r7)
    with pytest.raises(ProofError, match=r"^the sizes are equal but the roots differ$"):
        verify_consistency(3, 3, [], r3, r7)
    with pytest.raises(ProofError, match="proof must be empty, not 1 hashes"):
        verify_consistency(3, 3, [r3], r3, r3)
    with pytest.raises(ProofError, match=f"^the proof has 0 hashes, {len(proof)} expected$"):
        verify_consistency(3, 7, [], r3, r7)
    with pytest.raises(ProofError, match=r"^the computed first root differs from root1$"):
        verify_consistency(3, 7, proof, PREFIX_ROOTS[2], r7)
    with pytest.raises(ProofError, match=r"^the computed second root differs from root2$"):
        verify_consistency(3, 7, proof, r3, PREFIX_ROOTS[6])
    with pytest.raises(ProofError, match=r"^root2 has 5 bytes, 32 expected$"):
        verify_consistency(3, 7, proof, r3, b"short")


def test_generation_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError, match="index 5 is outside the tree of size 5"):
        inclusion_proof(LEAVES, 5, 5)
    with pytest.raises(ValueError, match=r"tree size 641 is outside 0\.\.640"):
        inclusion_proof(LEAVES, 0, 641)
    with pytest.raises(ValueError, match=r"size1 6 is outside 0\.\.5"):
        consistency_proof(LEAVES, 6, 5)
    with pytest.raises(ValueError, match=r"tree size 9 is outside 0\.\.8"):
        MerkleTree(KAT_LEAVES).root(9)
    assert consistency_proof(LEAVES, 0, 5) == []  # and the verifier rejects it, as above
    assert consistency_proof(LEAVES, 5, 5) == []
    assert inclusion_proof(LEAVES, 0, 1) == []


def test_size_is_bound_by_the_checkpoint_not_by_the_proof() -> None:
    """Where two sizes give the leaf the same path, the proof alone cannot tell them apart
    (here leaf 0 in trees of 5 and 6 leaves): a verifier takes size and root together from a
    verified checkpoint, never the size from elsewhere."""
    proof = inclusion_proof(LEAVES, 0, 5)
    verify_inclusion(LEAVES[0], 0, 6, proof, PREFIX_ROOTS[5])
    assert _inclusion_shape(0, 5) == _inclusion_shape(0, 6)


# --- properties ---------------------------------------------------------------------------------
#
# The shapes below restate RFC 6962's PATH and SUBPROOF recursions symbolically: how a verifier
# must combine the leaf (or root1) and proof item i to get the root(s). Two claims with the same
# shape are indistinguishable to any verifier; with different shapes, a proof for one never
# verifies for the other.


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _inclusion_shape(index: int, size: int) -> tuple[Any, int]:
    if size == 1:
        return "leaf", 0
    k = _split(size)
    if index < k:
        expr, n = _inclusion_shape(index, k)
        return ("node", expr, n), n + 1
    expr, n = _inclusion_shape(index - k, size - k)
    return ("node", n, expr), n + 1


def _consistency_shape(m: int, n: int, whole: bool = True) -> tuple[Any, Any, int]:
    if m == n:
        return ("root1", "root1", 0) if whole else (0, 0, 1)
    k = _split(n)
    if m <= k:
        old, new, count = _consistency_shape(m, k, whole)
        return old, ("node", new, count), count + 1
    old, new, count = _consistency_shape(m - k, n - k, False)
    return ("node", count, old), ("node", count, new), count + 1


def _accepts(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except ProofError:
        return False
    return True


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 300))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(2, 300))
    return draw(st.integers(1, size2 - 1)), size2


@given(tree_and_index(), st.data())
def test_inclusion_proofs_verify_and_changes_are_rejected(
    case: tuple[int, int], data: st.DataObject
) -> None:
    size, index = case
    proof = inclusion_proof(LEAVES, index, size)
    r = PREFIX_ROOTS[size]
    verify_inclusion(LEAVES[index], index, size, proof, r)
    assert len(proof) == _inclusion_shape(index, size)[1]

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="hash")
        byte = data.draw(st.integers(0, 31), label="byte")
        changed = list(proof)
        changed[i] = proof[i][:byte] + bytes([proof[i][byte] ^ 0x08]) + proof[i][byte + 1 :]
        assert not _accepts(verify_inclusion, LEAVES[index], index, size, changed, r)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda x: x != index), label="index")
        assert not _accepts(verify_inclusion, LEAVES[index], other, size, proof, r)
    other_size = data.draw(st.integers(1, 600).filter(lambda x: x != size), label="size")
    same_shape = index < other_size and _inclusion_shape(index, other_size) == _inclusion_shape(
        index, size
    )
    assert _accepts(verify_inclusion, LEAVES[index], index, other_size, proof, r) == same_shape
    other_root = data.draw(st.sampled_from(PREFIX_ROOTS).filter(lambda x: x != r), label="root")
    assert not _accepts(verify_inclusion, LEAVES[index], index, size, proof, other_root)


@given(two_sizes(), st.data())
def test_consistency_proofs_verify_and_changes_are_rejected(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    size1, size2 = sizes
    proof = consistency_proof(LEAVES, size1, size2)
    r1, r2 = PREFIX_ROOTS[size1], PREFIX_ROOTS[size2]
    verify_consistency(size1, size2, proof, r1, r2)
    assert len(proof) == _consistency_shape(size1, size2)[2]

    i = data.draw(st.integers(0, len(proof) - 1), label="hash")
    changed = list(proof)
    changed[i] = bytes([proof[i][0] ^ 0x10]) + proof[i][1:]
    assert not _accepts(verify_consistency, size1, size2, changed, r1, r2)
    # Every size1 below size2 has its own shape (checked up to 300), so a changed size1 fails.
    other1 = data.draw(st.integers(0, 600).filter(lambda x: x != size1), label="size1")
    assert not _accepts(verify_consistency, other1, size2, proof, r1, r2)
    other2 = data.draw(st.integers(0, 600).filter(lambda x: x != size2), label="size2")
    same_shape = size1 < other2 and _consistency_shape(size1, other2) == _consistency_shape(
        size1, size2
    )
    assert _accepts(verify_consistency, size1, other2, proof, r1, r2) == same_shape
    wrong = data.draw(st.sampled_from(PREFIX_ROOTS).filter(lambda x: x not in (r1, r2)))
    assert not _accepts(verify_consistency, size1, size2, proof, wrong, r2)
    assert not _accepts(verify_consistency, size1, size2, proof, r1, wrong)
    assert not _accepts(verify_consistency, size1, size2, proof, r2, r1)


@given(st.lists(st.binary(max_size=8), max_size=300))
def test_compact_range_tracks_the_root_and_survives_json(entries: list[bytes]) -> None:
    leaves = [hash_leaf(e) for e in entries]
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT == root([])
    for n, leaf in enumerate(leaves, 1):
        cr.append(leaf)
        assert cr.size == n
        assert len(cr.hashes) == n.bit_count()
        assert cr.root() == root(leaves[:n])
        restored = CompactRange.from_json(json.loads(json.dumps(cr.to_json())))
        assert restored == cr
        assert restored.root() == cr.root()
    copy = cr.copy()
    copy.append(LEAVES[0])
    assert copy.size == cr.size + 1 == len(leaves) + 1
    resumed = CompactRange.from_json(CompactRange().to_json())
    resumed.extend(leaves[: len(leaves) // 2])
    resumed = CompactRange.from_json(resumed.to_json())
    resumed.extend(leaves[len(leaves) // 2 :])
    assert resumed == cr


@given(st.integers(0, 300), st.data())
def test_merkle_tree_matches_the_functions(size: int, data: st.DataObject) -> None:
    tree = MerkleTree(LEAVES[:size])
    assert tree.size == size
    assert tree.root() == PREFIX_ROOTS[size]
    at = data.draw(st.integers(0, size), label="at")
    assert tree.root(at) == PREFIX_ROOTS[at]
    if at:
        index = data.draw(st.integers(0, at - 1), label="index")
        assert tree.inclusion_proof(index, at) == inclusion_proof(LEAVES, index, at)
    size1 = data.draw(st.integers(0, at), label="size1")
    assert tree.consistency_proof(size1, at) == consistency_proof(LEAVES, size1, at)


def test_merkle_tree_grows_by_appending() -> None:
    tree = MerkleTree()
    for n, leaf in enumerate(LEAVES, 1):
        tree.append(leaf)
        if n % 37 == 0 or n & (n - 1) == 0:
            assert tree.root() == PREFIX_ROOTS[n]
    assert tree.consistency_proof(100) == consistency_proof(LEAVES, 100, len(LEAVES))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "is {"),
        ({"size": 1}, "is {"),
        ({"size": 1, "hashes": [], "extra": 1}, "is {"),
        ({"size": 1, "hashes": "00"}, "must be a list"),
        ({"size": -1, "hashes": []}, "non-negative"),
        ({"size": True, "hashes": ["00" * 32]}, "non-negative"),
        ({"size": "1", "hashes": ["00" * 32]}, "non-negative"),
        ({"size": 3, "hashes": ["00" * 32]}, "has 2 hashes, not 1"),
        ({"size": 1, "hashes": ["00" * 31]}, "64 lowercase hex"),
        ({"size": 1, "hashes": ["AB" * 32]}, "64 lowercase hex"),
        ({"size": 1, "hashes": [None]}, "64 lowercase hex"),
    ],
)
def test_compact_range_rejects_garbage(data: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        CompactRange.from_json(data)


def test_compact_range_rejects_a_bad_leaf() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree().append("00" * 32)  # type: ignore[arg-type]
