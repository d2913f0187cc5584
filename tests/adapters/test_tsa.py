"""The RFC 3161 HTTP client against the test TSA served on 127.0.0.1 (tests/fakes/tsa.py):
what it sends, what it accepts, and which error each kind of failure is."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asn1crypto import tsp
from cfp.adapters.tsa import TimestampAuthority
from cfp.domain.timestamps import TimestampError, check_timestamp
from cfp.errors import Unavailable

from tests.fakes.tsa import SUBJECT, FakeTsa

NOTE = b"cfp checkpoint\ntenant/acme\n7\n9a1b...\n"


@pytest.fixture(params=["ec", "rsa"])
def tsa(request: pytest.FixtureRequest) -> FakeTsa:
    return FakeTsa(request.param)


@pytest.fixture
def url(tsa: FakeTsa) -> Iterator[str]:
    with tsa.serving() as url:
        yield url


@pytest.fixture
async def authority(url: str) -> AsyncIterator[TimestampAuthority]:
    authority = TimestampAuthority(url, timeout=5.0)
    yield authority
    await authority.close()


async def test_timestamp_returns_a_checked_response_to_a_der_request(
    tsa: FakeTsa, authority: TimestampAuthority
) -> None:
    reply = await authority.timestamp(NOTE)

    [sent] = tsa.requests
    request = tsp.TimeStampReq.load(sent, strict=True)
    assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert request["message_imprint"]["hashed_message"].native == hashlib.sha256(NOTE).digest()
    assert request["cert_req"].native is True
    nonce = request["nonce"].native
    assert nonce is not None and nonce > 0

    info = check_timestamp(reply, NOTE, nonce=nonce)
    assert info.tsa_subject == SUBJECT
    assert info.certificate_sha256 == tsa.identity.certificate_sha256


async def test_each_request_has_a_fresh_nonce(tsa: FakeTsa, authority: TimestampAuthority) -> None:
    await authority.timestamp(NOTE)
    await authority.timestamp(NOTE)
    nonces = {tsp.TimeStampReq.load(sent)["nonce"].native for sent in tsa.requests}
    assert len(nonces) == 2


@pytest.mark.parametrize(
    ("misbehaviour", "message"),
    [
        ("wrong_imprint", "the token's message imprint is not the SHA-256 of the checkpoint"),
        ("wrong_nonce", "the token's nonce is not the request's"),
        ("bad_signature", "the TSA's signature does not verify"),
        ("no_certificate", "the token does not include the TSA's signing certificate"),
        ("reject", "status is rejection: this TSA refuses on purpose; bad_alg"),
        ("garbage", "the timestamp is malformed: "),
        ("wrong_content_type", "answered text/html, not application/timestamp-reply"),
        ("http_404", "answered HTTP 404"),
    ],
)
async def test_bad_replies_are_timestamp_errors(
    tsa: FakeTsa, authority: TimestampAuthority, misbehaviour: str, message: str
) -> None:
    tsa.misbehave = misbehaviour
    with pytest.raises(TimestampError) as caught:
        await authority.timestamp(NOTE)
    assert message in str(caught.value)
    assert not caught.value.retryable


async def test_http_500_is_unavailable(tsa: FakeTsa, authority: TimestampAuthority) -> None:
    tsa.misbehave = "http_500"
    with pytest.raises(Unavailable, match="answered HTTP 500") as caught:
        await authority.timestamp(NOTE)
    assert caught.value.retryable


async def test_timeout_is_unavailable(tsa: FakeTsa, url: str) -> None:
    tsa.misbehave = "slow"
    authority = TimestampAuthority(url, timeout=0.2)
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            await authority.timestamp(NOTE)
    finally:
        await authority.close()


async def test_refused_connection_is_unavailable() -> None:
    with FakeTsa().serving() as url:
        pass  # the port is closed again
    authority = TimestampAuthority(url)
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            await authority.timestamp(NOTE)
    finally:
        await authority.close()


async def test_a_shared_client_is_used_and_left_open(tsa: FakeTsa, url: str) -> None:
    async with httpx.AsyncClient() as client:
        authority = TimestampAuthority(url, client=client)
        await authority.timestamp(NOTE)
        await authority.close()
        assert not client.is_closed
        assert len(tsa.requests) == 1


def test_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="not http"):
        TimestampAuthority("ftp://tsa.example/")
