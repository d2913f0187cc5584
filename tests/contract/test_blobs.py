"""BlobStore contract: bytes by slash-separated key, the same for local files and GCS."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfp.adapters.gcp.storage import GcsBlobStore
from cfp.adapters.local.blobs import FileBlobStore
from cfp.errors import BadRequest, Conflict, NotFound
from cfp.ports import BlobStore


async def test_put_then_get_round_trips_bytes(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 3
    await blobs.put("payloads/run-1/input.bin", data)
    assert await blobs.get("payloads/run-1/input.bin") == data


async def test_put_replaces_and_empty_blobs_exist(blobs: BlobStore) -> None:
    await blobs.put("a.json", b'{"v": 1}', content_type="application/json")
    await blobs.put("a.json", b"")
    assert await blobs.get("a.json") == b""
    assert await blobs.list() == ["a.json"]


async def test_get_of_a_missing_key_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFound):
        await blobs.get("nothing/here")


async def test_delete_removes_and_tolerates_missing_keys(blobs: BlobStore) -> None:
    await blobs.put("dir/a", b"1")
    await blobs.put("dir/b", b"2")
    await blobs.delete("dir/a")
    await blobs.delete("dir/a")
    await blobs.delete("never/was")
    with pytest.raises(NotFound):
        await blobs.get("dir/a")
    assert await blobs.get("dir/b") == b"2"
    assert await blobs.list() == ["dir/b"]


async def test_a_deleted_prefix_can_become_a_key(blobs: BlobStore) -> None:
    await blobs.put("x/y/z", b"deep")
    await blobs.delete("x/y/z")
    await blobs.put("x", b"flat")
    assert await blobs.list() == ["x"]


async def test_list_is_sorted_and_filters_by_plain_prefix(blobs: BlobStore) -> None:
    keys = ["t1/b", "t1/a/2", "t1/a/1", "t10/x", "t2/y", "top", "t1/a b/ü"]
    await asyncio.gather(*(blobs.put(key, key.encode()) for key in keys))
    assert await blobs.list() == sorted(keys)
    assert await blobs.list("t1/") == ["t1/a b/ü", "t1/a/1", "t1/a/2", "t1/b"]
    assert await blobs.list("t1") == ["t1/a b/ü", "t1/a/1", "t1/a/2", "t1/b", "t10/x"]
    assert await blobs.list("t1/a") == ["t1/a b/ü", "t1/a/1", "t1/a/2"]
    assert await blobs.list("t") == sorted(keys)
    assert await blobs.list("nope/") == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "../up", "a/../../up", "a//b", "a/", "./a", "a/./b", "..", "a\\b"]
)
async def test_keys_that_could_escape_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(BadRequest):
        await blobs.put(key, b"x")
    with pytest.raises(BadRequest):
        await blobs.get(key)
    with pytest.raises(BadRequest):
        await blobs.delete(key)
    assert await blobs.list() == []


async def test_a_list_prefix_cannot_escape(blobs: BlobStore) -> None:
    with pytest.raises(BadRequest):
        await blobs.list("../")


async def test_concurrent_puts_of_one_key_leave_one_whole_value(blobs: BlobStore) -> None:
    values = [bytes([n]) * 100_000 for n in range(8)]
    await asyncio.gather(*(blobs.put("hot", v) for v in values))
    assert await blobs.get("hot") in values
    assert await blobs.list() == ["hot"]


# -- the local file layout -------------------------------------------------------------------


async def test_local_blobs_are_plain_files_and_partial_writes_stay_hidden(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    await store.put("a/b.txt", b"hello")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"hello"
    (tmp_path / "a" / ".b.txt.x1.cfp-partial").write_bytes(b"half")  # a crash mid-put
    assert await store.list() == ["a/b.txt"]
    with pytest.raises(BadRequest):
        await store.put("a/x.cfp-partial", b"x")


async def test_local_blobs_refuse_symlinks_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    store = FileBlobStore(root)
    with pytest.raises(BadRequest):
        await store.get("link/secret")
    with pytest.raises(BadRequest):
        await store.put("link/new", b"x")
    assert not (outside / "new").exists()


async def test_local_blobs_refuse_a_key_that_is_another_keys_folder(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    await store.put("a/b", b"inner")
    with pytest.raises(Conflict):
        await store.put("a", b"outer")
    await store.put("c", b"outer")
    with pytest.raises(Conflict):
        await store.put("c/d", b"inner")
    assert await store.list() == ["a/b", "c"]


# -- Cloud Storage's own key limits (checked before any request) ------------------------------


@pytest.mark.parametrize("key", ["a\nb", "a\rb", "x" * 1025, "é" * 513, "a/\ud800"])
async def test_gcs_refuses_keys_cloud_storage_cannot_hold(key: str) -> None:
    store = GcsBlobStore("bucket", client=object())  # never reached: the key is refused first
    with pytest.raises(BadRequest):
        await store.put(key, b"x")
    with pytest.raises(BadRequest):
        await store.get(key)


def test_gcs_adapter_imports_no_cloud_library_until_used() -> None:
    code = (
        "import sys\n"
        "from cfp.adapters.gcp.storage import GcsBlobStore\n"
        "GcsBlobStore('bucket', project='p-1234')\n"
        "cloud = ('google.cloud.storage', 'google.api_core', 'google.auth', 'requests')\n"
        "assert not [m for m in sys.modules if m.startswith(cloud)], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_create_writes_once_and_never_replaces(blobs: BlobStore) -> None:
    await blobs.create("anchors/1.note", b"first", content_type="text/plain")
    with pytest.raises(Conflict):
        await blobs.create("anchors/1.note", b"second")
    assert await blobs.get("anchors/1.note") == b"first"
    assert await blobs.list("anchors/") == ["anchors/1.note"]


async def test_concurrent_creates_of_one_key_leave_exactly_one_winner(blobs: BlobStore) -> None:
    outcomes = await asyncio.gather(
        *(blobs.create("race/key", str(i).encode()) for i in range(6)), return_exceptions=True
    )
    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if o is not None)
    assert await blobs.get("race/key") == str(winners[0]).encode()
