"""KeyService contract: per-tenant keys for envelope encryption, the same for the local keyring
and Cloud KMS — including rotation and crypto-shredding."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cfp.adapters.local.keyring import LocalKeyring
from cfp.errors import CfpError, NotFound
from cfp.ports import KeyService


async def test_encrypt_then_decrypt_round_trips(keys: KeyService) -> None:
    assert await keys.create_key("tenant-a") == "tenant-a"
    for plaintext in (b"", b"secret", bytes(range(256)) * 40):
        sealed = await keys.encrypt("tenant-a", plaintext)
        assert plaintext == b"" or plaintext not in sealed
        assert await keys.decrypt("tenant-a", sealed) == plaintext


async def test_encryption_is_randomised(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    first = await keys.encrypt("tenant-a", b"same")
    second = await keys.encrypt("tenant-a", b"same")
    assert first != second
    assert await keys.decrypt("tenant-a", first) == await keys.decrypt("tenant-a", second)


async def test_create_key_is_idempotent(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    sealed = await keys.encrypt("tenant-a", b"kept")
    assert await keys.create_key("tenant-a") == "tenant-a"
    assert await keys.decrypt("tenant-a", sealed) == b"kept"


async def test_aad_binds_the_ciphertext_to_its_context(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    sealed = await keys.encrypt("tenant-a", b"payload", aad=b"executions/e1")
    assert await keys.decrypt("tenant-a", sealed, aad=b"executions/e1") == b"payload"
    for wrong in (b"executions/e2", b""):
        with pytest.raises(CfpError) as failure:
            await keys.decrypt("tenant-a", sealed, aad=wrong)
        assert not failure.value.retryable


async def test_tampered_or_truncated_ciphertext_is_refused(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    sealed = await keys.encrypt("tenant-a", b"payload")
    tampered = [
        sealed[:-1] + bytes([sealed[-1] ^ 1]),
        sealed[:8] + bytes([sealed[8] ^ 0x80]) + sealed[9:],
        bytes([sealed[0] ^ 1]) + sealed[1:],
        sealed[:-1],
        sealed[:3],
        b"",
    ]
    for bad in tampered:
        with pytest.raises(CfpError):
            await keys.decrypt("tenant-a", bad)


async def test_one_tenants_key_cannot_open_anothers_ciphertext(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    await keys.create_key("tenant-b")
    sealed = await keys.encrypt("tenant-a", b"a's data")
    with pytest.raises(CfpError):
        await keys.decrypt("tenant-b", sealed)


async def test_unknown_keys_are_not_found(keys: KeyService) -> None:
    with pytest.raises(NotFound):
        await keys.encrypt("nobody", b"x")
    await keys.create_key("tenant-a")
    sealed = await keys.encrypt("tenant-a", b"x")
    with pytest.raises(NotFound):
        await keys.decrypt("nobody", sealed)


async def test_rotation_keeps_old_ciphertexts_readable(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    before = await keys.encrypt("tenant-a", b"before", aad=b"ctx")
    await keys.rotate_key("tenant-a")  # type: ignore[attr-defined]
    after = await keys.encrypt("tenant-a", b"after", aad=b"ctx")
    await keys.rotate_key("tenant-a")  # type: ignore[attr-defined]
    assert await keys.decrypt("tenant-a", before, aad=b"ctx") == b"before"
    assert await keys.decrypt("tenant-a", after, aad=b"ctx") == b"after"


async def test_destroying_a_key_shreds_what_it_encrypted(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    await keys.create_key("tenant-b")
    sealed = await keys.encrypt("tenant-a", b"gone")
    kept = await keys.encrypt("tenant-b", b"kept")
    await keys.rotate_key("tenant-a")  # type: ignore[attr-defined]
    await keys.destroy_key("tenant-a")
    with pytest.raises(NotFound, match="destroyed") as failure:
        await keys.decrypt("tenant-a", sealed)
    assert failure.value.code == "key_destroyed"
    with pytest.raises(NotFound, match="destroyed"):
        await keys.encrypt("tenant-a", b"new data")
    # A destroyed id is never silently re-created with fresh material.
    with pytest.raises(NotFound, match="destroyed"):
        await keys.create_key("tenant-a")
    await keys.destroy_key("tenant-a")  # destroying twice is harmless
    assert await keys.decrypt("tenant-b", kept) == b"kept"


# -- the local keyring file ------------------------------------------------------------------


async def test_local_keyring_persists_privately_and_forgets_destroyed_material(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "keyring.json"
    ring = LocalKeyring(path)
    await ring.create_key("tenant-a")
    await ring.create_key("tenant-b")
    sealed = await ring.encrypt("tenant-a", b"persisted")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    reopened = LocalKeyring(path)
    assert await reopened.decrypt("tenant-a", sealed) == b"persisted"
    await reopened.rotate_key("tenant-b")  # the first instance sees another writer's change
    assert (await ring.encrypt("tenant-b", b"x"))[:5] == b"\x01\x00\x00\x00\x02"

    material = path.read_text()
    await reopened.destroy_key("tenant-a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shredded = path.read_text()
    assert '"tenant-a"' in shredded and len(shredded) < len(material)
    with pytest.raises(NotFound, match="destroyed"):
        await ring.decrypt("tenant-a", sealed)
    assert [p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")] == [
        "keyring.json"
    ]
