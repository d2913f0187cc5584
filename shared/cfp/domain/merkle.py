"""RFC 6962 Merkle trees over SHA-256: tree hashes, inclusion and consistency proofs, their
verification, and the compact range a checkpointer keeps between runs. Pure: no I/O.

Hashing (RFC 6962 §2.1; c2sp.org/merkle-tree):

    leaf hash  = SHA-256(0x00 || data)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n

Every function here takes the LEAF HASHES, not the entries' data: the audit log stores
`leaf_hash` per record, so a tree is its list of leaf hashes.

Proofs are RFC 6962 §2.1.1 PATH (inclusion) and §2.1.2 PROOF (consistency), hashes ordered
from the bottom of the tree up. The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 and check
the proof's length up front so that a wrong proof fails with a reason. They accept exactly the
vectors of transparency-dev/merkle `testdata/` marked `wantErr: false`; in particular, as there,
a consistency proof from size 0 is rejected even with an empty proof (every tree extends the
empty one, so such a proof proves nothing: a client treats a first tree of size 0 as consistent
without asking for a proof), and equal sizes need an empty proof and equal roots.

Cost: `root`, `inclusion_proof` and `consistency_proof` hash each leaf of the tree once (about
`size` SHA-256 calls, iteratively, no recursion: ~1 s for 1,000,000 leaves). A `MerkleTree`
keeps the roots of aligned 64-leaf-and-larger subtrees, so that after building it once its
proofs cost a few hundred hashes. `CompactRange.append` is O(log n).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH of the empty tree

_sha256 = hashlib.sha256
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


class ProofError(ValueError):
    """A Merkle proof does not verify; the message says why."""


def hash_leaf(data: bytes) -> bytes:
    """The RFC 6962 leaf hash of an entry: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a list of leaf hashes."""
    return _range_root(leaves, 0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The RFC 6962 audit path of leaf `index` in the tree of the first `size` leaf hashes."""
    _check_size(len(leaves), size)
    return _inclusion_path(lambda lo, hi: _range_root(leaves, lo, hi), index, size)


def consistency_proof(leaves: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """The RFC 6962 consistency proof from the tree of the first `size1` leaf hashes to the
    tree of the first `size2`; empty when size1 is 0 or equals size2."""
    _check_size(len(leaves), size2)
    return _consistency_path(lambda lo, hi: _range_root(leaves, lo, hi), size1, size2)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` shows leaf `index` hashing to `leaf_hash` in the tree of
    `size` leaves with hash `root` (RFC 9162 §2.1.3.2)."""
    if index < 0 or size < 0:
        raise ProofError(f"index {index} and size {size} must not be negative")
    if index >= size:
        raise ProofError(f"index {index} is beyond tree size {size}")
    _check_hash("the leaf hash", leaf_hash)
    inner = (index ^ (size - 1)).bit_length()
    expected = inner + (index >> inner).bit_count()
    _check_proof(proof, expected)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as RFC 9162's own guard
            raise ProofError("the proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof does not reach the root")
    if r != root:
        raise ProofError("the computed root differs from the expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless `proof` shows the tree of `size1` leaves with hash `root1` to be
    a prefix of the tree of `size2` leaves with hash `root2` (RFC 9162 §2.1.4.2)."""
    if size1 < 0 or size2 < 0:
        raise ProofError(f"sizes {size1} and {size2} must not be negative")
    if size2 < size1:
        raise ProofError(f"size1 {size1} is beyond size2 {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree (size1 0) proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError(
                f"the sizes are equal, so the proof must be empty, not {len(proof)} hashes"
            )
        if root1 != root2:
            raise ProofError("the sizes are equal but the roots differ")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    whole = size1 == 1 << shift  # size1 is a power of two: root1 itself starts the proof
    expected = inner - shift + ((size1 - 1) >> inner).bit_count() + (0 if whole else 1)
    _check_proof(proof, expected)
    path = [root1, *proof] if whole else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as RFC 9162's own guard
            raise ProofError("the proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof does not reach the root of the second tree")
    if fr != root1:
        raise ProofError("the computed first root differs from root1")
    if sr != root2:
        raise ProofError("the computed second root differs from root2")


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size), largest first (a Merkle
    "frontier"): enough to append leaves and compute the tree hash without the older leaves."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        hashes = list(hashes)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative integer, not {size!r}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} hashes, not {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            _check_hash_value(f"hash {i}", h)
        self._size = size
        self._hashes = hashes

    @property
    def size(self) -> int:
        """The number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtrees' roots, left (largest) to right."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash, merging equal-sized subtrees (O(log n))."""
        _check_hash_value("the leaf hash", leaf_hash)
        h, n = leaf_hash, self._size
        while n & 1:
            h = hash_children(self._hashes.pop(), h)
            n >>= 1
        self._hashes.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each leaf hash in order."""
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    def root(self) -> bytes:
        """The tree hash of the leaves covered; equals `root(all leaves)`."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = hash_children(h, r)
        return r

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._hashes)

    def to_json(self) -> dict[str, Any]:
        """`{"size": int, "hashes": [hex, ...]}`, for storing between runs."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_json(cls, data: Any) -> CompactRange:
        """The compact range `to_json` wrote; ValueError on anything else."""
        if not isinstance(data, dict) or set(data) != {"size", "hashes"}:
            raise ValueError('a compact range is {"size": int, "hashes": [hex, ...]}')
        hashes = data["hashes"]
        if not isinstance(hashes, list):
            raise ValueError("compact range hashes must be a list")
        decoded = []
        for i, h in enumerate(hashes):
            if not isinstance(h, str) or not _HEX_HASH.fullmatch(h):
                raise ValueError(f"compact range hash {i} is not 64 lowercase hex digits")
            decoded.append(bytes.fromhex(h))
        return cls(data["size"], decoded)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


class MerkleTree:
    """Leaf hashes with the roots of their aligned perfect subtrees of 2**CACHE_HEIGHT leaves
    and more kept, so that after one O(n) build the root at any size and any proof cost about
    log2(n) * 2**CACHE_HEIGHT hashes instead of n (for a server answering many proofs of one
    log). Appending is amortised O(1). Results equal the module functions'."""

    CACHE_HEIGHT = 6  # subtrees of 64 leaves and up: ~n/32 extra hashes held

    __slots__ = ("_leaves", "_levels")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._leaves: list[bytes] = []
        self._levels: list[list[bytes]] = []  # [j][i]: root of leaves [i << h, (i + 1) << h)
        self.extend(leaves)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._leaves)

    def leaf(self, index: int) -> bytes:
        """The leaf hash at `index`."""
        if not 0 <= index < len(self._leaves):
            raise ProofError(f"index {index} is beyond tree size {len(self._leaves)}")
        return self._leaves[index]

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash."""
        _check_hash_value("the leaf hash", leaf_hash)
        self._leaves.append(leaf_hash)
        block = 1 << self.CACHE_HEIGHT
        n = len(self._leaves)
        if n % block:
            return
        node = _range_root(self._leaves, n - block, n)
        j = 0
        while True:
            if j == len(self._levels):
                self._levels.append([])
            level = self._levels[j]
            level.append(node)
            if len(level) & 1:
                return
            node = hash_children(level[-2], level[-1])
            j += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each leaf hash in order."""
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    def root(self, size: int | None = None) -> bytes:
        """The tree hash of the first `size` leaves (default: all)."""
        size = self.size if size is None else size
        _check_size(self.size, size)
        return self._range_root(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Like `inclusion_proof(leaves, index, size)`."""
        size = self.size if size is None else size
        _check_size(self.size, size)
        return _inclusion_path(self._range_root, index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Like `consistency_proof(leaves, size1, size2)`."""
        size2 = self.size if size2 is None else size2
        _check_size(self.size, size2)
        return _consistency_path(self._range_root, size1, size2)

    def _range_root(self, lo: int, hi: int) -> bytes:
        # Ranges met in PATH and PROOF start at a multiple of the power of two at or above their
        # length, so they split into aligned perfect subtrees of decreasing size, whose roots
        # folded from the right give the range's MTH.
        if hi <= lo:
            return EMPTY_ROOT
        parts: list[bytes] = []
        while lo < hi:
            height = min((lo & -lo).bit_length() - 1 if lo else 64, (hi - lo).bit_length() - 1)
            j = height - self.CACHE_HEIGHT
            if j >= 0:
                parts.append(self._levels[j][lo >> height])
            else:
                parts.append(_range_root(self._leaves, lo, lo + (1 << height)))
            lo += 1 << height
        r = parts[-1]
        for h in reversed(parts[:-1]):
            r = hash_children(h, r)
        return r


_RangeRoot = Callable[[int, int], bytes]  # (lo, hi) -> MTH(leaves[lo:hi])


def _inclusion_path(range_root: _RangeRoot, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, walked from the top: each step keeps the half
    holding the leaf and records the other half's hash; PATH lists them bottom-up."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside the tree of size {size}")
    siblings: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            siblings.append(range_root(lo, lo + k))
            lo += k
    siblings.reverse()
    return siblings


def _consistency_path(range_root: _RangeRoot, size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[0:size2]) = SUBPROOF(size1, D[0:size2], true) of RFC 6962 §2.1.2, unrolled
    from the top; hashes found on the way down follow the inner part, hence the reversal."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"size1 {size1} is outside 0..{size2}")
    if size1 in (0, size2):
        return []
    found: list[bytes] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            found.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            found.append(range_root(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        found.append(range_root(lo, hi))
    found.reverse()
    return found


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi], bottom-up: pairing neighbours level by level and carrying an odd
    last node up unchanged builds exactly RFC 6962's left-balanced tree."""
    if hi <= lo:
        return EMPTY_ROOT
    level = list(leaves[lo:hi])
    sha = _sha256
    while len(level) > 1:
        odd = level.pop() if len(level) & 1 else None
        level = [
            sha(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=True)
        ]
        if odd is not None:
            level.append(odd)
    return level[0]


def _check_size(available: int, size: int) -> None:
    if not 0 <= size <= available:
        raise ValueError(f"tree size {size} is outside 0..{available} (the number of leaves given)")


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} has {len(value)} bytes, {HASH_SIZE} expected")


def _check_hash_value(what: str, value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")


def _check_proof(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise ProofError(f"the proof has {len(proof)} hashes, {expected} expected")
    for i, h in enumerate(proof):
        _check_hash(f"proof hash {i}", h)
