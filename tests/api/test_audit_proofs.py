"""Audit you can prove over HTTP: signed checkpoints made every N records, verification that
names the first bad record, RFC 6962 proofs an outsider checks with nothing but the checkpoint,
and an export bundle that `cfp audit verify` accepts (and refuses once tampered with)."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cfp.domain.audit import chain_paths
from cfp.domain.documents import SetDoc
from cfp.domain.merkle import verify_consistency, verify_inclusion
from cfp.domain.notes import Checkpoint, parse_signed_note
from typer.testing import CliRunner

from tests.api.conftest import error_of, ok_json, wait_for
from tests.api.control import backend, call, platform

pytestmark = pytest.mark.api
__all__ = ["backend"]  # the fixture: every test here runs on local and on the emulators

EVERY = 5
JSON = {"accept": "application/json"}  # an export's artifact record rather than the zip


def make_records(client: Any, count: int, prefix: str = "team") -> None:
    for index in range(count):
        ok_json(client.post("/v1/teams", json={"name": f"{prefix} {index}"}), 201)


@pytest.fixture
def client(serve: Any, backend: dict[str, Any], tmp_path: Path) -> Any:
    return serve(**backend, audit_checkpoint_records=EVERY, audit_anchor_dir=tmp_path / "anchors")


def anchored(client: Any, ref: str) -> bytes:
    """An anchor's bytes, read from where its reference points (a file, a bucket)."""
    sink = platform(client).control.checkpoints.anchors
    assert ref.startswith(sink.location)
    return call(client, sink.blobs.get, ref.removeprefix(sink.location).lstrip("/"))


def checkpoints(client: Any) -> list[dict[str, Any]]:
    return ok_json(client.get("/v1/audit/checkpoints"))["items"]


def test_checkpoints_are_signed_notes_made_every_n_records_and_anchored(
    client: Any, tmp_path: Path
) -> None:
    make_records(client, 2 * EVERY)
    found = wait_for(lambda: [c for c in checkpoints(client) if c["size"] >= 2 * EVERY])
    latest = found[0]
    body, signatures = parse_signed_note(latest["note"].encode())
    parsed = Checkpoint.parse(body)
    region = platform(client).settings.deployment_region
    assert parsed.origin == latest["origin"] == f"coditect.cfp/{region}/{latest['chain']}"
    assert base64.b64encode(parsed.root_hash).decode() in latest["note"]
    assert parsed.root_hash.hex() == latest["root"] and parsed.size == latest["size"]
    assert [s.name for s in signatures] == [latest["key"]["name"]]
    assert latest["key"]["algorithm"] == "ed25519"
    # anchored outside the platform's store, byte for byte
    ref = latest["anchors"]["note"]
    if platform(client).settings.backend == "local":
        assert Path(ref.removeprefix("file://")).is_relative_to(tmp_path / "anchors")
        assert Path(ref.removeprefix("file://")).read_text() == latest["note"]
    else:
        assert ref.startswith("gs://") and ref.split("/")[2].endswith("-audit-anchors")
    assert anchored(client, ref).decode() == latest["note"]


def test_verify_passes_then_names_the_first_bad_record(client: Any) -> None:
    make_records(client, EVERY + 2)
    wait_for(lambda: checkpoints(client))
    verdict = ok_json(client.post("/v1/audit/verify", json={}))
    assert verdict["ok"] is True and verdict["first_bad_seq"] is None
    assert verdict["checked"] >= EVERY + 2
    assert verdict["latest_checkpoint"]["size"] >= EVERY

    ranged = ok_json(client.post("/v1/audit/verify", json={"from_seq": 2, "to_seq": 4}))
    assert ranged["ok"] is True and ranged["checked"] == 3

    p = platform(client)
    block = chain_paths(f"tenant/{p.scope.tenant}").block(3)
    stored = call(client, p.documents.get, block)
    forged = {k: v for k, v in stored.items() if k != "_id"}
    forged["details"] = {**forged.get("details", {}), "name": "forged"}
    call(client, p.documents.apply, [SetDoc(block, forged)])
    verdict = ok_json(client.post("/v1/audit/verify", json={}))
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == 3
    assert "hash" in verdict["reason"]


def test_proofs_verify_against_the_signed_checkpoints(client: Any) -> None:
    make_records(client, 2 * EVERY + 1)
    sizes = wait_for(
        lambda: (
            sorted(c["size"] for c in checkpoints(client))[-2:][1:]
            and sorted(c["size"] for c in checkpoints(client))
        )
    )
    small, large = sizes[0], sizes[-1]
    roots = {c["size"]: bytes.fromhex(c["root"]) for c in checkpoints(client)}

    proof = ok_json(client.get(f"/v1/audit/proofs/inclusion?seq=2&tree_size={large}"))
    assert proof["checkpoint"] is not None
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        2,
        large,
        [bytes.fromhex(h) for h in proof["proof"]],
        roots[large],
    )
    by_seq = {r["seq"]: r for r in ok_json(client.get("/v1/audit/records?limit=100"))["items"]}
    assert proof["leaf_hash"] == by_seq[2]["leaf_hash"]

    consistency = ok_json(client.get(f"/v1/audit/proofs/consistency?first={small}&second={large}"))
    verify_consistency(
        small,
        large,
        [bytes.fromhex(h) for h in consistency["proof"]],
        bytes.fromhex(consistency["first_root"]),
        roots[large],
    )


def test_proof_parameters_are_checked(client: Any) -> None:
    make_records(client, 2)
    error_of(client.get("/v1/audit/proofs/inclusion?seq=x&tree_size=2"), 400, "bad_request")
    error_of(client.get("/v1/audit/proofs/inclusion?seq=5&tree_size=2"), 400, "bad_request")
    error_of(client.get("/v1/audit/proofs/inclusion?seq=0&tree_size=999"), 404, "not_found")
    error_of(client.get("/v1/audit/proofs/consistency?first=3&second=2"), 400, "bad_request")
    error_of(client.post("/v1/audit/verify", json={"from_seq": -1}), 422, "validation_failed")


def test_export_bundle_verifies_offline_and_tampering_is_named(client: Any, tmp_path: Path) -> None:
    from cfp.cli import app as cli

    make_records(client, EVERY + 1)
    wait_for(lambda: checkpoints(client))
    made = ok_json(client.post("/v1/audit/export", headers=JSON), 201)
    data = client.get(made["download"])
    assert data.status_code == 200 and data.headers["content-type"] == "application/zip"
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(data.content)
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"manifest.json", "records.jsonl", "keys.json"} <= names
    assert any(n.startswith("checkpoints/") for n in names)
    assert any(n.startswith("anchors/") for n in names)
    # the export is itself on the record
    actions = [r["action"] for r in ok_json(client.get("/v1/audit/records?limit=5"))["items"]]
    assert "audit.export" in actions

    runner = CliRunner()
    good = runner.invoke(cli, ["audit", "verify", str(bundle)])
    assert good.exit_code == 0, good.output
    assert "ok" in good.output.lower()

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as out:
        for name in src.namelist():
            content = src.read(name)
            if name == "records.jsonl":
                lines = content.decode().splitlines()
                assert '"outcome":"success"' in lines[2]
                lines[2] = lines[2].replace('"outcome":"success"', '"outcome":"failure"', 1)
                content = ("\n".join(lines) + "\n").encode()
            out.writestr(name, content)
    bad = runner.invoke(cli, ["audit", "verify", str(tampered)])
    assert bad.exit_code != 0
    assert "seq 2" in bad.output and "hash" in bad.output


def test_only_auditors_and_admins_reach_the_proofs(client: Any) -> None:
    anonymous = {"authorization": "", "x-tenant-id": "local"}
    error_of(client.post("/v1/audit/verify", json={}, headers=anonymous), 401, "unauthorized")


def test_cfp_audit_verify_pins_keys_and_checkpoints_from_the_anchor_sink(
    client: Any, tmp_path: Path
) -> None:
    from cfp.cli import app as cli

    make_records(client, EVERY + 1)
    made = ok_json(client.post("/v1/audit/export", headers=JSON), 201)
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(client.get(made["download"]).content)
    sink = platform(client).control.checkpoints.anchors
    names = call(client, sink.list, "keys/")
    key = tmp_path / "key.json"
    key.write_bytes(call(client, sink.get, names[0]))
    latest = checkpoints(client)[0]
    note = tmp_path / "latest.note"
    note.write_bytes(anchored(client, latest["anchors"]["note"]))

    runner = CliRunner()
    pinned = runner.invoke(
        cli, ["audit", "verify", str(bundle), "--key", str(key), "--checkpoint", str(note)]
    )
    assert pinned.exit_code == 0, pinned.output
    assert f"tree size {made['records']}" in pinned.output
    assert "warning" not in pinned.output

    # a bundle that is no zip, a damaged member, an unreadable key file: exit 2
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    assert runner.invoke(cli, ["audit", "verify", str(junk)]).exit_code == 2
    damaged = tmp_path / "damaged.zip"
    raw = bytearray(bundle.read_bytes())
    offset = raw.find(b"records.jsonl") + 40  # inside the first member's compressed data
    raw[offset : offset + 8] = b"\x00" * 8
    damaged.write_bytes(bytes(raw))
    result = runner.invoke(cli, ["audit", "verify", str(damaged)])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    missing = runner.invoke(cli, ["audit", "verify", str(bundle), "--key", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "--key" in missing.output


def test_an_export_answers_the_zip_itself_and_keeps_it_as_an_artifact(client: Any) -> None:
    make_records(client, 3)
    response = client.post("/v1/audit/export")
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert {"manifest.json", "records.jsonl", "keys.json"} <= set(names)
    assert any(n.startswith("checkpoints/") for n in names)
    assert any(n.startswith("anchors/") for n in names)
    again = client.get(response.headers["location"])
    assert again.status_code == 200 and again.content == response.content
    assert again.headers["x-content-sha256"] == hashlib.sha256(response.content).hexdigest()
