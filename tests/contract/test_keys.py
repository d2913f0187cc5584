"""KeyService contract: per-tenant keys for envelope encryption, the same for the local keyring
and Cloud KMS — including rotation and crypto-shredding."""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cfp.adapters.gcp.kms import INTEGRITY_ATTEMPTS, CloudKmsKeyService, crc32c
from cfp.adapters.local.keyring import LocalKeyring
from cfp.errors import (
    BadRequest,
    CfpError,
    Forbidden,
    KeyDestroyed,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from cfp.ports import KEY_SERVICE_MAX_BYTES, KeyService
from google.api_core import exceptions

from tests.fakes.kms import FakeKmsClient


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
    await keys.rotate_key("tenant-a")
    after = await keys.encrypt("tenant-a", b"after", aad=b"ctx")
    await keys.rotate_key("tenant-a")
    assert await keys.decrypt("tenant-a", before, aad=b"ctx") == b"before"
    assert await keys.decrypt("tenant-a", after, aad=b"ctx") == b"after"


async def test_destroying_a_key_shreds_what_it_encrypted(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    await keys.create_key("tenant-b")
    sealed = await keys.encrypt("tenant-a", b"gone")
    kept = await keys.encrypt("tenant-b", b"kept")
    await keys.rotate_key("tenant-a")
    await keys.destroy_key("tenant-a")
    with pytest.raises(NotFound, match="destroyed") as failure:
        await keys.decrypt("tenant-a", sealed)
    assert failure.value.code == "key_destroyed"
    with pytest.raises(NotFound, match="destroyed"):
        await keys.encrypt("tenant-a", b"new data")
    # A destroyed id is never silently re-created with fresh material.
    with pytest.raises(NotFound, match="destroyed"):
        await keys.create_key("tenant-a")
    with pytest.raises(NotFound, match="destroyed"):
        await keys.rotate_key("tenant-a")
    await keys.destroy_key("tenant-a")  # destroying twice is harmless
    assert await keys.decrypt("tenant-b", kept) == b"kept"
    with pytest.raises(NotFound):
        await keys.destroy_key("nobody")


async def test_payloads_of_any_size_round_trip(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    payload = secrets.token_bytes(1024 * 1024 + 7)
    sealed = await keys.encrypt("tenant-a", payload, aad=b"big")
    assert await keys.decrypt("tenant-a", sealed, aad=b"big") == payload


async def test_aad_is_limited_to_64_kib(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    limit = KEY_SERVICE_MAX_BYTES
    sealed = await keys.encrypt("tenant-a", b"x", aad=b"a" * limit)
    assert await keys.decrypt("tenant-a", sealed, aad=b"a" * limit) == b"x"
    with pytest.raises(BadRequest):
        await keys.encrypt("tenant-a", b"x", aad=b"a" * (limit + 1))


@pytest.mark.parametrize("key_id", ["", "a/b", "a b", "x" * 64, "tenant.a", "ü"])
async def test_key_ids_follow_cloud_kms_rules(keys: KeyService, key_id: str) -> None:
    with pytest.raises(BadRequest):
        await keys.create_key(key_id)
    with pytest.raises(BadRequest):
        await keys.create_signing_key(key_id)
    assert await keys.create_key("Tenant_1-" + "x" * 54) == "Tenant_1-" + "x" * 54


# -- signing ---------------------------------------------------------------------------------


async def test_signatures_verify_with_the_public_key(keys: KeyService) -> None:
    public = await keys.create_signing_key("audit-a")
    assert (public.key_id, public.version, public.algorithm) == ("audit-a", 1, "ed25519")
    assert public.pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert await keys.create_signing_key("audit-a") == public  # idempotent
    assert await keys.public_key("audit-a") == public

    message = b"cfp.example/audit/tenant-a\n42\nq2d...=\n"
    signature = await keys.sign("audit-a", message)
    assert (signature.key_id, signature.version, signature.algorithm) == ("audit-a", 1, "ed25519")
    assert public.verify(signature.value, message)
    assert not public.verify(signature.value, message + b"x")
    assert not public.verify(signature.value[:-1] + bytes([signature.value[-1] ^ 1]), message)

    other = await keys.create_signing_key("audit-b")
    assert other.pem != public.pem
    assert not other.verify(signature.value, message)


async def test_signing_key_rotation_keeps_old_signatures_verifiable(keys: KeyService) -> None:
    await keys.create_signing_key("audit-a")
    old = await keys.sign("audit-a", b"before")
    assert await keys.rotate_key("audit-a") == 2
    new = await keys.sign("audit-a", b"after")
    assert (old.version, new.version) == (1, 2)
    current = await keys.public_key("audit-a")
    assert current.version == 2
    assert current.verify(new.value, b"after")
    assert not current.verify(old.value, b"before")
    assert (await keys.public_key("audit-a", 1)).verify(old.value, b"before")
    with pytest.raises(NotFound):
        await keys.public_key("audit-a", 9)


async def test_a_key_serves_only_its_own_purpose(keys: KeyService) -> None:
    await keys.create_key("tenant-a")
    await keys.create_signing_key("audit-a")
    attempts = [
        lambda: keys.encrypt("audit-a", b"x"),
        lambda: keys.create_key("audit-a"),
        lambda: keys.sign("tenant-a", b"x"),
        lambda: keys.public_key("tenant-a"),
        lambda: keys.create_signing_key("tenant-a"),
    ]
    for attempt in attempts:
        with pytest.raises(BadRequest) as failure:
            await attempt()
        assert failure.value.code == "wrong_key_purpose"


async def test_signed_messages_are_non_empty_and_at_most_64_kib(keys: KeyService) -> None:
    public = await keys.create_signing_key("audit-a")
    largest = b"m" * KEY_SERVICE_MAX_BYTES
    assert public.verify((await keys.sign("audit-a", largest)).value, largest)
    for bad in (b"", largest + b"m"):
        with pytest.raises(BadRequest):
            await keys.sign("audit-a", bad)


async def test_unknown_or_destroyed_signing_keys(keys: KeyService) -> None:
    with pytest.raises(NotFound):
        await keys.sign("nobody", b"x")
    with pytest.raises(NotFound):
        await keys.public_key("nobody")
    await keys.create_signing_key("audit-a")
    await keys.rotate_key("audit-a")
    await keys.destroy_key("audit-a")
    attempts = [
        lambda: keys.sign("audit-a", b"x"),
        lambda: keys.public_key("audit-a"),
        lambda: keys.public_key("audit-a", 1),
        lambda: keys.create_signing_key("audit-a"),
        lambda: keys.rotate_key("audit-a"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound, match="destroyed") as failure:
            await attempt()
        assert failure.value.code == "key_destroyed"


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


async def test_local_signing_keys_persist_and_are_shredded_on_destroy(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = LocalKeyring(path)
    public = await ring.create_signing_key("audit-a")
    signature = await ring.sign("audit-a", b"checkpoint")
    reopened = LocalKeyring(path)
    assert await reopened.public_key("audit-a") == public
    assert (await reopened.sign("audit-a", b"checkpoint")).value == signature.value  # Ed25519
    private = json.loads(path.read_text())["keys"]["audit-a"]["versions"]["1"]
    await reopened.destroy_key("audit-a")
    assert private not in path.read_text()
    with pytest.raises(KeyDestroyed):
        await ring.sign("audit-a", b"checkpoint")


# -- Cloud KMS at the client seam: the requests Google would receive -------------------------

PROJECT, REGION, RING = "cfp-test", "europe-west1", "cfp"
LOCATION = f"projects/{PROJECT}/locations/{REGION}"
KEY_RING = f"{LOCATION}/keyRings/{RING}"


def key_name(key_id: str) -> str:
    return f"{KEY_RING}/cryptoKeys/{key_id}"


@pytest.fixture
def fake() -> FakeKmsClient:
    return FakeKmsClient()


@pytest.fixture
def kms_keys(fake: FakeKmsClient) -> CloudKmsKeyService:
    return CloudKmsKeyService(
        project=PROJECT, region=REGION, keyring=RING, client=fake, poll_seconds=0
    )


def has(message: object, field: str) -> bool:
    return field in message  # type: ignore[operator]  # proto-plus presence test


async def test_kms_creates_the_key_ring_once_and_a_symmetric_key_per_tenant(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    await kms_keys.create_key("tenant-a")
    await kms_keys.create_key("tenant-a")
    await kms_keys.create_key("tenant-b")
    assert [r.name for r in fake.requests("get_key_ring")] == [KEY_RING]
    [ring] = fake.requests("create_key_ring")
    assert (ring.parent, ring.key_ring_id) == (LOCATION, RING)
    created = fake.requests("create_crypto_key")
    assert [(r.parent, r.crypto_key_id) for r in created] == [
        (KEY_RING, "tenant-a"),
        (KEY_RING, "tenant-a"),
        (KEY_RING, "tenant-b"),
    ]
    for request in created:
        assert request.crypto_key.purpose.name == "ENCRYPT_DECRYPT"
        assert request.crypto_key.version_template.algorithm.name == "GOOGLE_SYMMETRIC_ENCRYPTION"
    # Another instance (a new process) finds the ring and does not try to create it.
    other = CloudKmsKeyService(project=PROJECT, region=REGION, keyring=RING, client=fake)
    await other.create_key("tenant-c")
    assert len(fake.requests("create_key_ring")) == 1


async def test_kms_wraps_only_a_data_key_with_the_aad_and_checksums(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    await kms_keys.create_key("tenant-a")
    payload = b"PAYLOAD-" + secrets.token_bytes(200_000)
    sealed = await kms_keys.encrypt("tenant-a", payload, aad=b"executions/e1")

    [request] = fake.requests("encrypt")
    assert request.name == key_name("tenant-a")  # the key: KMS encrypts with its primary
    assert len(request.plaintext) == 32  # a fresh AES-256 data key, never the payload
    assert request.plaintext_crc32c == crc32c(request.plaintext)
    assert request.additional_authenticated_data == b"executions/e1"
    assert request.additional_authenticated_data_crc32c == crc32c(b"executions/e1")
    for call in fake.calls:
        assert b"PAYLOAD-" not in type(call.request).serialize(call.request)

    assert await kms_keys.decrypt("tenant-a", sealed, aad=b"executions/e1") == payload
    [unwrap] = fake.requests("decrypt")
    assert unwrap.name == key_name("tenant-a")  # a key, not a version: KMS finds the version
    assert unwrap.ciphertext in sealed and len(unwrap.ciphertext) < 200
    assert unwrap.ciphertext_crc32c == crc32c(unwrap.ciphertext)
    assert unwrap.additional_authenticated_data == b"executions/e1"
    assert unwrap.additional_authenticated_data_crc32c == crc32c(b"executions/e1")

    second = await kms_keys.encrypt("tenant-a", payload, aad=b"executions/e1")
    first_key, second_key = (r.plaintext for r in fake.requests("encrypt"))
    assert first_key != second_key and sealed != second


async def test_kms_sends_no_aad_fields_without_aad(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    await kms_keys.create_key("tenant-a")
    sealed = await kms_keys.encrypt("tenant-a", b"x")
    assert await kms_keys.decrypt("tenant-a", sealed) == b"x"
    for request in [*fake.requests("encrypt"), *fake.requests("decrypt")]:
        assert not has(request, "additional_authenticated_data_crc32c")
        assert request.additional_authenticated_data == b""


async def test_kms_rotation_adds_a_primary_version_and_destroy_destroys_every_version(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    await kms_keys.create_key("tenant-a")
    old = await kms_keys.encrypt("tenant-a", b"old")
    assert await kms_keys.rotate_key("tenant-a") == 2
    [version] = fake.requests("create_crypto_key_version")
    assert version.parent == key_name("tenant-a")
    [primary] = fake.requests("update_crypto_key_primary_version")
    assert (primary.name, primary.crypto_key_version_id) == (key_name("tenant-a"), "2")
    assert fake.keys[key_name("tenant-a")].primary == 2
    assert await kms_keys.decrypt("tenant-a", old) == b"old"

    await kms_keys.destroy_key("tenant-a")
    assert [r.name for r in fake.requests("destroy_crypto_key_version")] == [
        f"{key_name('tenant-a')}/cryptoKeyVersions/1",
        f"{key_name('tenant-a')}/cryptoKeyVersions/2",
    ]
    assert fake.version_states(key_name("tenant-a")) == {
        1: "DESTROY_SCHEDULED",
        2: "DESTROY_SCHEDULED",
    }
    await kms_keys.destroy_key("tenant-a")
    assert len(fake.requests("destroy_crypto_key_version")) == 2


async def test_kms_signs_ed25519_data_with_a_version_once_it_is_generated(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    public = await kms_keys.create_signing_key("audit-a")
    [create] = fake.requests("create_crypto_key")
    assert create.crypto_key.purpose.name == "ASYMMETRIC_SIGN"
    assert create.crypto_key.version_template.algorithm.name == "EC_SIGN_ED25519"
    # Version 1 was PENDING_GENERATION at first: the adapter listed again until it was ENABLED.
    assert len(fake.requests("list_crypto_key_versions")) == 2
    version = f"{key_name('audit-a')}/cryptoKeyVersions/1"
    assert [r.name for r in fake.requests("get_public_key")] == [version]

    signature = await kms_keys.sign("audit-a", b"checkpoint")
    [request] = fake.requests("asymmetric_sign")
    assert request.name == version
    assert request.data == b"checkpoint"
    assert request.data_crc32c == crc32c(b"checkpoint")
    assert not has(request, "digest")
    assert public.algorithm == "ed25519" and public.verify(signature.value, b"checkpoint")


async def test_kms_signs_a_sha256_digest_with_p256_when_configured(fake: FakeKmsClient) -> None:
    keys = CloudKmsKeyService(
        project=PROJECT,
        region=REGION,
        keyring=RING,
        client=fake,
        signing_algorithm="ecdsa-p256-sha256",
        poll_seconds=0,
    )
    public = await keys.create_signing_key("audit-a")
    [create] = fake.requests("create_crypto_key")
    assert create.crypto_key.version_template.algorithm.name == "EC_SIGN_P256_SHA256"
    assert public.algorithm == "ecdsa-p256-sha256"

    message = b"checkpoint " * 5_000
    signature = await keys.sign("audit-a", message)
    [request] = fake.requests("asymmetric_sign")
    digest = hashlib.sha256(message).digest()
    assert request.digest.sha256 == digest
    assert request.digest_crc32c == crc32c(digest)
    assert request.data == b"" and not has(request, "data_crc32c")
    assert signature.algorithm == "ecdsa-p256-sha256"
    assert public.verify(signature.value, message)
    assert not public.verify(signature.value, message + b".")


@pytest.mark.parametrize("method", ["encrypt", "decrypt", "asymmetric_sign", "get_public_key"])
async def test_kms_responses_failing_their_checksum_are_retried_then_refused(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService, method: str
) -> None:
    await kms_keys.create_key("tenant-a")
    await kms_keys.create_signing_key("audit-a")
    sealed = await kms_keys.encrypt("tenant-a", b"x")

    async def call() -> object:
        if method == "encrypt":
            return await kms_keys.encrypt("tenant-a", b"x")
        if method == "decrypt":
            return await kms_keys.decrypt("tenant-a", sealed)
        if method == "asymmetric_sign":
            return await kms_keys.sign("audit-a", b"x")
        return await kms_keys.public_key("audit-a", 1)

    before = len(fake.requests(method))
    fake.corrupt(method, 1)
    await call()  # one bad response, discarded; the retry is good
    assert len(fake.requests(method)) == before + 2
    fake.corrupt(method, INTEGRITY_ATTEMPTS)
    with pytest.raises(Unavailable) as failure:
        await call()
    assert failure.value.retryable


@pytest.mark.parametrize(
    ("google_error", "expected"),
    [
        (exceptions.PermissionDenied("no"), Forbidden),
        (exceptions.Unauthenticated("no"), Unauthorized),
        (exceptions.ServiceUnavailable("later"), Unavailable),
        (exceptions.DeadlineExceeded("slow"), Unavailable),
        (exceptions.ResourceExhausted("quota"), RateLimited),
    ],
)
async def test_kms_errors_become_platform_errors(
    fake: FakeKmsClient,
    kms_keys: CloudKmsKeyService,
    google_error: Exception,
    expected: type[CfpError],
) -> None:
    await kms_keys.create_key("tenant-a")

    def fail(*args: object, **kwargs: object) -> None:
        raise google_error

    fake.encrypt = fail  # type: ignore[method-assign]
    with pytest.raises(expected) as failure:
        await kms_keys.encrypt("tenant-a", b"x")
    assert failure.value.retryable == (expected in (Unavailable, RateLimited))


def test_kms_adapter_imports_no_cloud_library_until_used() -> None:
    code = (
        "import sys\n"
        "from cfp.adapters.gcp.kms import CloudKmsKeyService\n"
        "CloudKmsKeyService(project='p-1234', region='r', keyring='k')\n"
        "cloud = ('google.cloud.kms', 'google.api_core', 'google.auth', 'grpc', 'google_crc32c')\n"
        "assert not [m for m in sys.modules if m.startswith(cloud)], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the fake refuses what Cloud KMS refuses --------------------------------------------------


async def test_the_fake_kms_rejects_malformed_requests(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    await kms_keys.create_key("tenant-a")
    await kms_keys.create_signing_key("audit-a")
    key = key_name("tenant-a")
    good = {"name": key, "plaintext": b"k" * 32}
    assert fake.encrypt(request=good).verified_plaintext_crc32c is False
    rejected: list[tuple[type[Exception], str, dict[str, object]]] = [
        # names that match no resource name pattern, or name the wrong kind of resource
        (exceptions.InvalidArgument, "encrypt", {**good, "name": key.replace("cfp-test", "p")}),
        (exceptions.InvalidArgument, "encrypt", {**good, "name": f"{key}/"}),
        (exceptions.InvalidArgument, "encrypt", {**good, "name": "tenant-a"}),
        (exceptions.InvalidArgument, "decrypt", {"name": f"{key}/cryptoKeyVersions/1"}),
        (exceptions.InvalidArgument, "asymmetric_sign", {"name": key_name("audit-a")}),
        (exceptions.InvalidArgument, "create_key_ring", {"parent": "projects/cfp-test"}),
        (
            exceptions.InvalidArgument,
            "create_crypto_key",
            {"parent": KEY_RING, "crypto_key_id": "a/b"},
        ),
        # sizes and checksums
        (exceptions.InvalidArgument, "encrypt", {**good, "plaintext": b"x" * (64 * 1024 + 1)}),
        (exceptions.InvalidArgument, "encrypt", {**good, "plaintext": b""}),
        (exceptions.InvalidArgument, "encrypt", {**good, "plaintext_crc32c": 1}),
        (
            exceptions.InvalidArgument,
            "encrypt",
            {
                **good,
                "additional_authenticated_data": b"a",
                "additional_authenticated_data_crc32c": 7,
            },
        ),
        # purposes and algorithms
        (exceptions.FailedPrecondition, "encrypt", {**good, "name": key_name("audit-a")}),
        (
            exceptions.FailedPrecondition,
            "asymmetric_sign",
            {"name": f"{key}/cryptoKeyVersions/1", "data": b"x"},
        ),
        (
            exceptions.InvalidArgument,
            "asymmetric_sign",
            {"name": f"{key_name('audit-a')}/cryptoKeyVersions/1", "digest": {"sha256": b"d" * 32}},
        ),
        (exceptions.NotFound, "encrypt", {**good, "name": key_name("nobody")}),
        (exceptions.AlreadyExists, "create_key_ring", {"parent": LOCATION, "key_ring_id": RING}),
        # fields the API does not have
        (ValueError, "encrypt", {**good, "plaintext_crc": 1}),
    ]
    for error, method, request in rejected:
        with pytest.raises(error):
            getattr(fake, method)(request=request)
    with pytest.raises(ValueError):
        fake.encrypt(request=good, name=key)  # a request and flattened fields: never both


async def test_the_fake_kms_refuses_destroyed_versions_and_checks_ciphertext_checksums(
    fake: FakeKmsClient, kms_keys: CloudKmsKeyService
) -> None:
    await kms_keys.create_key("tenant-a")
    key = key_name("tenant-a")
    wrapped = fake.encrypt(request={"name": key, "plaintext": b"k" * 32}).ciphertext
    with pytest.raises(exceptions.InvalidArgument):
        fake.decrypt(request={"name": key, "ciphertext": wrapped, "ciphertext_crc32c": 5})
    with pytest.raises(exceptions.InvalidArgument):
        fake.decrypt(request={"name": key, "ciphertext": wrapped[:-1] + b"\0"})
    assert fake.decrypt(request={"name": key, "ciphertext": wrapped}).plaintext == b"k" * 32
    fake.destroy_crypto_key_version(request={"name": f"{key}/cryptoKeyVersions/1"})
    with pytest.raises(exceptions.FailedPrecondition, match="DESTROY_SCHEDULED"):
        fake.decrypt(request={"name": key, "ciphertext": wrapped})
    with pytest.raises(exceptions.FailedPrecondition):
        fake.destroy_crypto_key_version(request={"name": f"{key}/cryptoKeyVersions/1"})
