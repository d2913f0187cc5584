"""RFC 3161 time-stamp requests and the offline check of the tokens a Time-Stamp Authority returns.
Pure: no I/O.

An audit checkpoint note is anchored outside the platform by asking a TSA (the `CFP_TSA_URL`
setting) to sign the SHA-256 of the note with its own clock. This module builds the request and
checks the answer:

- `timestamp_request` is a DER TimeStampReq (RFC 3161 §2.4.1): version 1, a SHA-256
  messageImprint of the data, an optional nonce, certReq TRUE so the TSA includes its
  certificate in the token.
- `check_timestamp` takes a DER TimeStampResp (RFC 3161 §2.4.2; status granted or
  grantedWithMods) or a bare TimeStampToken (a CMS ContentInfo holding SignedData, RFC 5652 §3
  and §5) and checks, in order:
    1. the encapsulated content is a TSTInfo (RFC 3161 §2.4.2), its messageImprint is the
       SHA-256 of the data and, when asked, its nonce is the request's;
    2. the signer's certificate is in the token (RFC 5652 §5.3 sid, RFC 3161 §2.4.1 certReq),
       carries the critical extended key usage timeStamping (RFC 3161 §2.3) and was valid at
       genTime, and the signingCertificate(V2) attribute names it (RFC 3161 §2.4.1, RFC 5816);
    3. the signed attributes hold content-type id-ct-TSTInfo and the messageDigest of the
       encapsulated TSTInfo (RFC 5652 §5.4, §11.1, §11.2);
    4. the signature over the DER of the signed attributes SET (RFC 5652 §5.4) verifies with the
       certificate's key: RSA PKCS#1 v1.5 or ECDSA, with SHA-256, SHA-384 or SHA-512.

Whether the TSA's certificate chains to a trusted root is NOT checked: the result reports the
certificate's subject and SHA-256 fingerprint, and a verifier compares those with the TSA
certificate it pins. Every failure is a `TimestampError` saying what did not hold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from cfp.errors import CfpError

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_GRANTED = ("granted", "granted_with_mods")


class TimestampError(CfpError, ValueError):
    """A time-stamp request could not be answered or a token does not prove what it should."""

    status, code = 502, "timestamp_invalid"


@dataclass(frozen=True, slots=True)
class TimestampInfo:
    """What a checked token says: when, by which TSA certificate (to compare with a pinned one)."""

    gen_time: datetime
    serial: int
    policy: str
    tsa_subject: str
    certificate_sha256: str


class _TimeStampResp(tsp.TimeStampResp):
    # RFC 3161 §2.4.2: timeStampToken is OPTIONAL (absent when the status is a refusal);
    # asn1crypto 1.5 declares it mandatory.
    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def timestamp_request(data: bytes, *, nonce: int | None = None) -> bytes:
    """The DER TimeStampReq for the SHA-256 of `data`, asking for the TSA's certificate."""
    request = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": hashlib.sha256(data).digest(),
        },
        "cert_req": True,
    }
    if nonce is not None:
        request["nonce"] = nonce
    return tsp.TimeStampReq(request).dump()


def check_timestamp(
    response_or_token: bytes, data: bytes, *, nonce: int | None = None
) -> TimestampInfo:
    """Check a DER TimeStampResp or bare token over the SHA-256 of `data`; say what it proves."""
    try:
        return _check(response_or_token, data, nonce)
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # asn1crypto parses lazily: a malformed inner value only fails when it is read.
        raise TimestampError(f"the timestamp is malformed: {exc}") from exc


def _check(blob: bytes, data: bytes, nonce: int | None) -> TimestampInfo:
    token = _token(blob)
    if token["content_type"].native != "signed_data":
        raise TimestampError(
            f"the token is {token['content_type'].native} content, not CMS SignedData"
        )
    signed = token["content"]
    encap = signed["encap_content_info"]
    if not isinstance(encap, cms.EncapsulatedContentInfo) or encap["content_type"].native != (
        "tst_info"
    ):
        raise TimestampError("the token does not encapsulate a TSTInfo")
    if isinstance(encap["content"], core.Void):
        raise TimestampError("the token's TSTInfo is detached (eContent is absent)")
    tst_der = bytes(encap["content"])
    tst_info = tsp.TSTInfo.load(tst_der, strict=True)

    imprint = tst_info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != "sha256" or (
        imprint["hashed_message"].native != hashlib.sha256(data).digest()
    ):
        raise TimestampError("the token's message imprint is not the SHA-256 of the checkpoint")
    if nonce is not None and tst_info["nonce"].native != nonce:
        raise TimestampError("the token's nonce is not the request's")

    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise TimestampError(f"the token has {len(signer_infos)} signers, not one")
    signer = signer_infos[0]
    certificate = _signer_certificate(signed, signer)
    gen_time = tst_info["gen_time"].native
    _check_certificate(certificate, gen_time)
    _check_signed_attributes(signer, tst_der, certificate)
    _check_signature(signer, certificate)

    return TimestampInfo(
        gen_time=gen_time,
        serial=tst_info["serial_number"].native,
        policy=tst_info["policy"].dotted,
        tsa_subject=certificate.subject.rfc4514_string(),
        certificate_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
    )


def _token(blob: bytes) -> cms.ContentInfo:
    """The TimeStampToken in `blob`, a TimeStampResp (first child a SEQUENCE) or a bare token."""
    outer = core.load(blob, strict=True)
    if not isinstance(outer, core.Sequence) or not outer.contents:
        raise TimestampError("not a DER TimeStampResp or TimeStampToken")
    if outer.contents[0] == 0x06:  # OBJECT IDENTIFIER: a ContentInfo's contentType
        return cms.ContentInfo.load(blob, strict=True)
    response = _TimeStampResp.load(blob, strict=True)
    status_info = response["status"]
    status = status_info["status"].native
    if status not in _GRANTED:
        reasons = list(status_info["status_string"].native or [])
        reasons += sorted(str(bit) for bit in status_info["fail_info"].native or [])
        raise TimestampError(f"status is {status}: {'; '.join(reasons) or 'no reason given'}")
    token = response["time_stamp_token"]
    if isinstance(token, core.Void):
        raise TimestampError(f"status is {status} but the response carries no token")
    return token


def _signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    """The certificate in the token that the signer's sid names (RFC 5652 §5.3)."""
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            found = (
                sid.chosen["issuer"] == cert.issuer
                and sid.chosen["serial_number"].native == cert.serial_number
            )
        else:
            found = sid.chosen.native == cert.key_identifier
        if found:
            return _load_certificate(cert.dump())
    raise TimestampError("the token does not include the TSA's signing certificate")


def _load_certificate(der: bytes) -> x509.Certificate:
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.extensions  # noqa: B018 -- parsed lazily; fail here, not mid-check
    except (ValueError, x509.InvalidVersion, x509.DuplicateExtension) as exc:
        raise TimestampError(f"the TSA's certificate is malformed: {exc}") from exc
    return certificate


def _check_certificate(certificate: x509.Certificate, gen_time: datetime) -> None:
    """The signer's certificate is a time-stamping one, valid at genTime (RFC 3161 §2.3)."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.critical or ExtendedKeyUsageOID.TIME_STAMPING not in usage.value:
        raise TimestampError(
            "the TSA's certificate lacks the critical extended key usage timeStamping"
        )
    if not certificate.not_valid_before_utc <= gen_time <= certificate.not_valid_after_utc:
        raise TimestampError("the TSA's certificate was not valid at the token's genTime")


def _check_signed_attributes(
    signer: cms.SignerInfo, tst_der: bytes, certificate: x509.Certificate
) -> None:
    """Signed attributes bind the TSTInfo and the signer's certificate (RFC 5652 §5.4, 5816)."""
    if isinstance(signer["signed_attrs"], core.Void):
        raise TimestampError("the token's signer has no signed attributes")
    attrs: dict[str, list] = {}
    for attr in signer["signed_attrs"]:
        attrs.setdefault(attr["type"].native, []).extend(attr["values"])

    if [value.native for value in attrs.get("content_type", [])] != ["tst_info"]:
        raise TimestampError("the signed content-type attribute is not id-ct-TSTInfo")
    digests = [value.native for value in attrs.get("message_digest", [])]
    if digests != [_digest(signer["digest_algorithm"]["algorithm"].native, tst_der)]:
        raise TimestampError("the signed messageDigest is not the digest of the token's TSTInfo")

    cert_der = certificate.public_bytes(Encoding.DER)
    if attrs.get("signing_certificate_v2"):
        cert_id = attrs["signing_certificate_v2"][0]["certs"][0]
        expected = _digest(cert_id["hash_algorithm"]["algorithm"].native, cert_der)
    elif attrs.get("signing_certificate"):
        cert_id = attrs["signing_certificate"][0]["certs"][0]
        expected = hashlib.sha1(cert_der).digest()
    else:
        raise TimestampError("the token has no signingCertificate attribute")
    if cert_id["cert_hash"].native != expected:
        raise TimestampError(
            "the signingCertificate attribute names another certificate than the signer's"
        )


def _check_signature(signer: cms.SignerInfo, certificate: x509.Certificate) -> None:
    """The signature over the DER SET of signed attributes verifies (RFC 5652 §5.4)."""
    algorithm = signer["signature_algorithm"]
    kind = algorithm.signature_algo
    try:
        hash_name = algorithm.hash_algo  # ecdsa-with-SHA384, sha256WithRSAEncryption, …
    except ValueError:
        hash_name = signer["digest_algorithm"]["algorithm"].native  # plain rsaEncryption
    if hash_name not in _HASHES:
        raise TimestampError(f"the token is signed with {hash_name}, not SHA-256/384/512")
    digest = _HASHES[hash_name]()
    # The signature covers the attributes re-tagged as a SET OF, not as the [0] IMPLICIT field.
    signed_bytes = signer["signed_attrs"].untag().dump()
    signature = signer["signature"].native
    key = certificate.public_key()
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), digest)
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(digest))
        else:
            raise TimestampError(
                f"the token's signature algorithm {kind} is not supported with the TSA's "
                f"{_key_kind(key)} key"
            )
    except InvalidSignature:
        raise TimestampError("the TSA's signature does not verify") from None


def _key_kind(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def _digest(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise TimestampError(f"the token uses digest {name}, not SHA-256/384/512")
    return hashlib.new(name, data).digest()
