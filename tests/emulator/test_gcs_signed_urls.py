"""V4 signed URLs from GcsBlobStore, used with plain HTTP against fake-gcs-server.

fake-gcs-server serves signed URLs but does not check their signatures or expiry (its maintainer
says so in fsouza/fake-gcs-server#381 and #859, and the last test here shows it). So besides the
round trips through the emulator, these tests check every URL the way Cloud Storage does: they
rebuild the V4 canonical request and string-to-sign from the URL independently of the client
library, and verify the signature against the signing service account's public key, refusing
tampered and expired URLs.
"""

from __future__ import annotations

import binascii
import datetime
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from cfp.adapters.gcp.emulators import Emulators
from cfp.adapters.gcp.storage import GcsBlobStore
from cfp.errors import BadRequest, SettingsError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.oauth2 import service_account

pytestmark = pytest.mark.emulator

SIGNER = "blob-signer@cfp-local.iam.gserviceaccount.com"


@dataclass
class Signer:
    credentials: service_account.Credentials
    public_key: rsa.RSAPublicKey


@pytest.fixture(scope="module")
def signer() -> Signer:
    """A service account whose key never left this machine (generated here)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "cfp-local",
        "private_key_id": "local-test-key",
        "private_key": pem,
        "client_email": SIGNER,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    credentials = service_account.Credentials.from_service_account_info(info)
    return Signer(credentials=credentials, public_key=private.public_key())


@pytest.fixture
async def store(emulators: Emulators, signer: Signer) -> AsyncIterator[GcsBlobStore]:
    assert emulators.gcs_url is not None
    blobs = GcsBlobStore(
        f"signed-{uuid.uuid4().hex[:16]}",
        project=emulators.project,
        endpoint=emulators.gcs_url,
        signing_credentials=signer.credentials,
    )
    await blobs.ensure_bucket()
    yield blobs


# -- the V4 check Cloud Storage performs, written from Google's documentation -------------------


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def v4_valid(
    url: str,
    *,
    method: str,
    headers: dict[str, str],
    public_key: rsa.RSAPublicKey,
    now: datetime.datetime | None = None,
) -> bool:
    """Whether Cloud Storage would accept `method` on `url` with `headers`: the canonical
    request rebuilt from the URL, its string-to-sign, the RSA-SHA256 signature, and the expiry."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = query.pop("X-Goog-Signature", "")
    if query.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256":
        return False
    signed = query.get("X-Goog-SignedHeaders", "").split(";")
    sent = {
        name.lower(): value.strip() for name, value in {**headers, "host": parts.netloc}.items()
    }
    if any(name not in sent for name in signed):
        return False
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{name}:{sent[name]}\n" for name in sorted(signed))
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            canonical_headers,
            ";".join(sorted(signed)),
            "UNSIGNED-PAYLOAD",
        ]
    )
    email, _, scope = query["X-Goog-Credential"].partition("/")
    string_to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    try:
        public_key.verify(
            binascii.unhexlify(signature),
            string_to_sign.encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    issued = datetime.datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    expires = issued + datetime.timedelta(seconds=int(query["X-Goog-Expires"]))
    return bool(email) and (now or datetime.datetime.now(datetime.UTC)) <= expires


# -- tests -----------------------------------------------------------------------------------


async def test_bytes_go_up_and_come_down_through_signed_urls(
    store: GcsBlobStore, signer: Signer
) -> None:
    key = "uploads/tenant-a/report ü.bin"
    data = bytes(range(256)) * 64
    put_url = await store.signed_url(
        key, method="PUT", expires=300, content_type="application/octet-stream"
    )
    headers = {"Content-Type": "application/octet-stream"}
    assert v4_valid(put_url, method="PUT", headers=headers, public_key=signer.public_key)
    async with httpx.AsyncClient() as http:
        uploaded = await http.put(put_url, content=data, headers=headers)
        assert uploaded.status_code == 200, uploaded.text
        assert await store.get(key) == data
        assert await store.list("uploads/") == [key]

        get_url = await store.signed_url(key, expires=60)
        assert v4_valid(get_url, method="GET", headers={}, public_key=signer.public_key)
        downloaded = await http.get(get_url)
        assert downloaded.status_code == 200
        assert downloaded.content == data


async def test_signed_urls_carry_the_v4_parameters(
    store: GcsBlobStore, emulators: Emulators
) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    url = await store.signed_url("a/b c.txt", method="PUT", expires=600, content_type="text/plain")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == emulators.gcs_url
    assert parts.path == f"/{store.bucket_name}/a/b%20c.txt"
    query = dict(parse_qsl(parts.query))
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    day = before.strftime("%Y%m%d")
    assert query["X-Goog-Credential"] == f"{SIGNER}/{day}/auto/storage/goog4_request"
    issued = datetime.datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    assert before <= issued <= before + datetime.timedelta(seconds=60)
    assert query["X-Goog-Expires"] == "600"
    assert query["X-Goog-SignedHeaders"] == "content-type;host"
    assert len(query["X-Goog-Signature"]) == 512  # hex of a 2048-bit RSA signature

    get_query = dict(parse_qsl(urlsplit(await store.signed_url("a/b c.txt")).query))
    assert get_query["X-Goog-SignedHeaders"] == "host"
    assert get_query["X-Goog-Expires"] == "900"


async def test_tampered_or_expired_urls_do_not_verify(store: GcsBlobStore, signer: Signer) -> None:
    url = await store.signed_url("tenant-a/doc", expires=120)
    key = signer.public_key
    assert v4_valid(url, method="GET", headers={}, public_key=key)
    tampered = [
        url.replace("/tenant-a/doc?", "/tenant-b/doc?"),  # another object
        url.replace("X-Goog-Expires=120", "X-Goog-Expires=604800"),  # a longer life
        url.replace(store.bucket_name, store.bucket_name + "x"),  # another bucket
        url[:-2] + ("00" if not url.endswith("00") else "11"),  # a forged signature
    ]
    for bad in tampered:
        assert not v4_valid(bad, method="GET", headers={}, public_key=key), bad
    assert not v4_valid(url, method="PUT", headers={}, public_key=key)  # another verb
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=121)
    assert not v4_valid(url, method="GET", headers={}, public_key=key, now=later)

    upload = await store.signed_url("tenant-a/doc", method="PUT", content_type="text/plain")
    assert not v4_valid(upload, method="PUT", headers={"Content-Type": "text/html"}, public_key=key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert not v4_valid(url, method="GET", headers={}, public_key=other)


async def test_signed_url_arguments_are_checked(store: GcsBlobStore) -> None:
    for expires in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(BadRequest):
            await store.signed_url("a", expires=expires)
    with pytest.raises(BadRequest):
        await store.signed_url("a", method="DELETE")  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        await store.signed_url("../a")


async def test_anonymous_credentials_cannot_sign(emulators: Emulators) -> None:
    unsigned = GcsBlobStore("any-bucket", project=emulators.project, endpoint=emulators.gcs_url)
    with pytest.raises(SettingsError, match="service account"):
        await unsigned.signed_url("a")


async def test_fake_gcs_server_does_not_check_signatures(store: GcsBlobStore) -> None:
    """Why the tests above verify signatures themselves: the emulator serves a forged URL. If a
    later fake-gcs-server starts refusing it, this test says so and the round trip tests can
    assert the refusal directly."""
    await store.put("open/doc", b"served anyway")
    url = await store.signed_url("open/doc", expires=60)
    forged = url.split("X-Goog-Signature=")[0] + "X-Goog-Signature=" + "00" * 256
    async with httpx.AsyncClient() as http:
        response = await http.get(forged)
    assert response.status_code == 200
    assert response.content == b"served anyway"
