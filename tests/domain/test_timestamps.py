"""RFC 3161 requests and the offline check of time-stamp tokens, against genuinely signed tokens
from the test TSA (tests/fakes/tsa.py) and tokens tampered with byte by byte."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import tsp
from cfp.domain.timestamps import TimestampError, TimestampInfo, check_timestamp, timestamp_request
from cfp.errors import CfpError
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.tsa import POLICY, SUBJECT, FakeTsa, SigningIdentity, signing_identity

NOTE = b"cfp checkpoint\nsystem\n41\n3f0c...\n"
NONCE = 0x1234_5678_9ABC_DEF0


def respond(tsa: FakeTsa, data: bytes = NOTE, nonce: int | None = NONCE) -> bytes:
    return tsa.respond(timestamp_request(data, nonce=nonce))


def tst_info_der(response: bytes) -> bytes:
    token = tsp.TimeStampResp.load(response)["time_stamp_token"]
    return bytes(token["content"]["encap_content_info"]["content"])


def rewrite_tst_info(response: bytes, change: dict) -> tuple[bytes, bytes, bytes]:
    """The response with its TSTInfo changed in place (same length), and the old and new DER."""
    old = tst_info_der(response)
    info = tsp.TSTInfo.load(old)
    for field, value in change.items():
        info[field] = value
    new = info.dump()
    assert len(new) == len(old) and response.count(old) == 1
    return response.replace(old, new), old, new


def check_fails(blob: bytes, data: bytes = NOTE, nonce: int | None = NONCE) -> str:
    with pytest.raises(TimestampError) as caught:
        check_timestamp(blob, data, nonce=nonce)
    return str(caught.value)


@pytest.fixture(params=["ec", "rsa"])
def tsa(request: pytest.FixtureRequest) -> FakeTsa:
    return FakeTsa(request.param)


# -- the request -------------------------------------------------------------------------------


def test_request_is_a_der_timestampreq_over_the_sha256_with_cert_req_and_nonce() -> None:
    der = timestamp_request(NOTE, nonce=NONCE)
    request = tsp.TimeStampReq.load(der, strict=True)
    assert request.native == {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256", "parameters": None},
            "hashed_message": hashlib.sha256(NOTE).digest(),
        },
        "req_policy": None,
        "nonce": NONCE,
        "cert_req": True,
        "extensions": None,
    }
    assert tsp.TimeStampReq.load(der).dump(force=True) == der  # already canonical DER


def test_request_without_nonce_leaves_it_out() -> None:
    assert tsp.TimeStampReq.load(timestamp_request(b"x"))["nonce"].native is None


# -- tokens that check -------------------------------------------------------------------------


@pytest.mark.parametrize("signer_id", ["issuer_and_serial", "key_id"])
def test_round_trip_reports_time_serial_policy_and_certificate(
    tsa: FakeTsa, signer_id: str
) -> None:
    tsa.signer_id = signer_id
    before = datetime.now(UTC)
    info = check_timestamp(respond(tsa), NOTE, nonce=NONCE)
    assert isinstance(info, TimestampInfo)
    assert before - timedelta(seconds=1) <= info.gen_time <= datetime.now(UTC)
    assert info.gen_time.tzinfo is not None
    assert info.serial == 1
    assert info.policy == POLICY
    assert info.tsa_subject == SUBJECT
    assert info.certificate_sha256 == tsa.identity.certificate_sha256


def test_nonce_is_optional_for_the_checker(tsa: FakeTsa) -> None:
    assert check_timestamp(respond(tsa), NOTE).serial == 1
    assert check_timestamp(respond(tsa, nonce=None), NOTE).serial == 2


def test_a_bare_token_is_accepted(tsa: FakeTsa) -> None:
    token = tsp.TimeStampResp.load(respond(tsa))["time_stamp_token"].dump()
    assert check_timestamp(token, NOTE, nonce=NONCE).tsa_subject == SUBJECT


def test_granted_with_mods_is_accepted(tsa: FakeTsa) -> None:
    response = tsp.TimeStampResp.load(respond(tsa))
    amended = tsp.TimeStampResp(
        {"status": {"status": "granted_with_mods"}, "time_stamp_token": response[1]}
    ).dump()
    assert check_timestamp(amended, NOTE, nonce=NONCE).serial == 1


# -- tokens that do not ------------------------------------------------------------------------


def test_imprint_of_other_data_is_refused(tsa: FakeTsa) -> None:
    assert check_fails(respond(tsa), data=NOTE + b"x") == (
        "the token's message imprint is not the SHA-256 of the checkpoint"
    )
    tsa.misbehave = "wrong_imprint"
    assert "message imprint is not the SHA-256" in check_fails(respond(tsa))


def test_imprint_with_another_hash_algorithm_is_refused(tsa: FakeTsa) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha512"},
                "hashed_message": hashlib.sha512(NOTE).digest(),
            },
            "cert_req": True,
        }
    )
    assert "message imprint is not the SHA-256" in check_fails(
        tsa.respond(request.dump()), nonce=None
    )


def test_nonce_mismatch_is_refused(tsa: FakeTsa) -> None:
    assert check_fails(respond(tsa), nonce=NONCE + 1) == "the token's nonce is not the request's"
    assert check_fails(respond(tsa, nonce=None)) == "the token's nonce is not the request's"
    tsa.misbehave = "wrong_nonce"
    assert check_fails(respond(tsa)) == "the token's nonce is not the request's"


@pytest.mark.parametrize(
    "change", [{"serial_number": 9}, {"policy": POLICY[:-1] + "2"}, {"nonce": NONCE ^ 1}]
)
def test_tampered_tst_info_breaks_the_message_digest(tsa: FakeTsa, change: dict) -> None:
    tampered, _, _ = rewrite_tst_info(respond(tsa), change)
    assert check_fails(tampered, nonce=None) == (
        "the signed messageDigest is not the digest of the token's TSTInfo"
    )


def test_tampered_tst_info_with_a_matching_digest_breaks_the_signature(tsa: FakeTsa) -> None:
    tampered, old, new = rewrite_tst_info(respond(tsa), {"serial_number": 9})
    old_digest, new_digest = hashlib.sha256(old).digest(), hashlib.sha256(new).digest()
    assert tampered.count(old_digest) == 1
    tampered = tampered.replace(old_digest, new_digest)
    assert check_fails(tampered) == "the TSA's signature does not verify"


def test_bad_signature_is_refused(tsa: FakeTsa) -> None:
    tsa.misbehave = "bad_signature"
    assert check_fails(respond(tsa)) == "the TSA's signature does not verify"


def test_rejection_status_says_why(tsa: FakeTsa) -> None:
    tsa.misbehave = "reject"
    assert check_fails(respond(tsa)) == "status is rejection: this TSA refuses on purpose; bad_alg"


def test_unparsable_request_is_rejected_by_the_tsa_with_its_reason(tsa: FakeTsa) -> None:
    assert check_fails(tsa.respond(b"\x30\x00")).startswith("status is rejection: ")


def test_token_without_the_certificate_is_refused(tsa: FakeTsa) -> None:
    tsa.misbehave = "no_certificate"
    assert check_fails(respond(tsa)) == "the token does not include the TSA's signing certificate"


def test_certificate_not_valid_at_gen_time_is_refused() -> None:
    tsa = FakeTsa(clock=lambda: datetime.now(UTC) + timedelta(days=30))
    assert check_fails(respond(tsa)) == "the TSA's certificate was not valid at the token's genTime"


@pytest.mark.parametrize("time_stamping", ["not_critical", "absent"])
def test_certificate_without_critical_time_stamping_usage_is_refused(time_stamping: str) -> None:
    tsa = FakeTsa(identity=signing_identity("ec", time_stamping=time_stamping))
    assert check_fails(respond(tsa)) == (
        "the TSA's certificate lacks the critical extended key usage timeStamping"
    )


def test_token_signed_by_another_key_than_its_certificate_is_refused() -> None:
    certificate = signing_identity("ec").certificate
    impostor = SigningIdentity(ec.generate_private_key(ec.SECP256R1()), certificate)
    assert check_fails(respond(FakeTsa(identity=impostor))) == "the TSA's signature does not verify"


def test_signature_algorithm_that_does_not_fit_the_key_is_refused() -> None:
    mismatched = SigningIdentity(signing_identity("ec").key, signing_identity("rsa").certificate)
    assert check_fails(respond(FakeTsa(identity=mismatched))) == (
        "the token's signature algorithm ecdsa is not supported with the TSA's RSA key"
    )


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"garbage",
        b"\x30\x00",
        b"\x30\x03\x02\x01\x00",  # a status of granted, then no token
        b"\x30\x05\x30\x03\x02\x01\x00",
        b"\x30\x82\xff\xff",
        b"\x04\x02ab",
        bytes(range(256)),
    ],
)
def test_garbage_is_a_timestamp_error_not_a_crash(blob: bytes) -> None:
    check_fails(blob)


def test_truncated_and_trailing_bytes_are_refused() -> None:
    response = respond(FakeTsa("ec"))
    for end in range(0, len(response), 23):
        check_fails(response[:end])
    check_fails(response + b"\x00")


def test_every_single_byte_flip_is_caught_or_harmless() -> None:
    """Flipping any byte either fails with TimestampError or leaves what the token says as it
    was (bytes outside what is signed: status, digestAlgorithms, versions)."""
    response = respond(FakeTsa("ec"))
    expected = check_timestamp(response, NOTE, nonce=NONCE)
    for at in range(len(response)):
        flipped = bytearray(response)
        flipped[at] ^= 0x01
        try:
            info = check_timestamp(bytes(flipped), NOTE, nonce=NONCE)
        except TimestampError:
            continue
        assert info == expected, at


def test_timestamp_error_is_a_value_error_and_a_platform_error() -> None:
    error = TimestampError("x")
    assert isinstance(error, ValueError) and isinstance(error, CfpError)
    assert (error.status, error.code, error.retryable) == (502, "timestamp_invalid", False)
