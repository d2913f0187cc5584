"""A real RFC 3161 Time-Stamp Authority for tests, built on `asn1crypto` and `cryptography`.

`FakeTsa` holds a throwaway self-signed certificate (no CA; EC P-256 or RSA-2048) with the
critical extended key usage timeStamping (RFC 3161 §2.3), answers DER TimeStampReqs with
genuinely signed TimeStampResps (RFC 3161 §2.4.2: a CMS SignedData over a TSTInfo with signed
content-type, messageDigest and signingCertificateV2 attributes, RFC 5652 §5, RFC 5816), and
serves them over HTTP on 127.0.0.1 (RFC 3161 §3.4) from a thread with `serving()`.

It RECORDS every request body it is sent (`requests`) and MISBEHAVES on demand (`misbehave`):
a token over another imprint or nonce, a broken signature, no certificate, a rejection status,
HTTP 500/404, a wrong content type, garbage bytes, or an answer slower than any sane timeout.
Keys are made once per process per key type: RSA generation is the slow part of a test.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
Misbehaviour = Literal[
    "wrong_imprint",  # a token over the SHA-256 of something else
    "wrong_nonce",  # a token echoing another nonce
    "bad_signature",  # a token whose signature bytes were flipped
    "no_certificate",  # a token without the TSA's certificate, certReq notwithstanding
    "reject",  # PKIStatus rejection (badAlg), no token
    "http_500",
    "http_404",
    "wrong_content_type",  # a good token sent as text/html
    "garbage",  # 200 application/timestamp-reply with bytes that are not DER
    "slow",  # no answer until the server stops
]
POLICY = "1.3.6.1.4.1.55555.3161.1"  # a test TSA policy (private enterprise arc)
SUBJECT = "O=Coditect Test,CN=CFP Test TSA"  # RFC 4514 order: last RDN first


class _TimeStampResp(tsp.TimeStampResp):
    # RFC 3161 §2.4.2 leaves the token out of a refusal; asn1crypto 1.5 declares it mandatory.
    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class SigningIdentity:
    """A TSA key and its self-signed time-stamping certificate."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.certificate_der).hexdigest()


@functools.cache
def signing_identity(
    key_type: KeyType = "ec",
    *,
    time_stamping: Literal["critical", "not_critical", "absent"] = "critical",
) -> SigningIdentity:
    """A key and certificate for `key_type` (and EKU timeStamping as asked), made once."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "CFP Test TSA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Coditect Test"),
        ]
    )
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
    )
    if time_stamping != "absent":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
            critical=time_stamping == "critical",
        )
    certificate = (
        builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SigningIdentity(key, certificate)


class FakeTsa:
    """A time-stamp authority with a real key, signing whatever SHA-256 imprint it is sent."""

    def __init__(
        self,
        key_type: KeyType = "ec",
        *,
        identity: SigningIdentity | None = None,
        signer_id: Literal["issuer_and_serial", "key_id"] = "issuer_and_serial",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.identity = identity or signing_identity(key_type)
        self.signer_id = signer_id
        self.clock = clock
        self.misbehave: Misbehaviour | None = None
        self.requests: list[bytes] = []
        self._serials = itertools.count(1)
        self._stop = threading.Event()

    # -- the protocol -------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """The DER TimeStampResp to a DER TimeStampReq, as `misbehave` says."""
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            imprint = request["message_imprint"]
            hashed = imprint["hashed_message"].native
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            nonce = request["nonce"].native
            cert_req = request["cert_req"].native
        except (ValueError, TypeError) as exc:
            return self._refusal("rejection", str(exc), {"bad_data_format"})
        if self.misbehave == "reject":
            return self._refusal("rejection", "this TSA refuses on purpose", {"bad_alg"})
        if self.misbehave == "wrong_imprint":
            hashed = hashlib.sha256(b"something else entirely").digest()
        if self.misbehave == "wrong_nonce":
            nonce = (nonce or 0) + 1
        token = self.token_over(
            hashed, algorithm=algorithm, nonce=nonce, include_certificate=cert_req
        )
        return _TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()

    def token_over(
        self,
        hashed: bytes,
        *,
        algorithm: str = "sha256",
        nonce: int | None = None,
        include_certificate: bool = True,
    ) -> cms.ContentInfo:
        """A signed TimeStampToken (ContentInfo) for an imprint."""
        tst_info = {
            "version": "v1",
            "policy": POLICY,
            "message_imprint": {
                "hash_algorithm": {"algorithm": algorithm},
                "hashed_message": hashed,
            },
            "serial_number": next(self._serials),
            "gen_time": self.clock(),
            "accuracy": {"seconds": 1},
        }
        if nonce is not None:
            tst_info["nonce"] = nonce
        tst_der = tsp.TSTInfo(tst_info).dump()
        cert_der = self.identity.certificate_der
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}],
                },
            ]
        )
        signature, signature_algorithm = self._sign(signed_attrs.dump())
        if self.misbehave == "bad_signature":
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
        certificate = asn1_x509.Certificate.load(cert_der)
        if self.signer_id == "key_id":
            version, sid = "v3", {"subject_key_identifier": certificate.key_identifier}
        else:
            version = "v1"
            sid = {
                "issuer_and_serial_number": {
                    "issuer": certificate.issuer,
                    "serial_number": certificate.serial_number,
                }
            }
        signed_data = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_der),
            },
            "signer_infos": [
                {
                    "version": version,
                    "sid": cms.SignerIdentifier(sid),
                    "digest_algorithm": {"algorithm": "sha256"},
                    "signed_attrs": signed_attrs,
                    "signature_algorithm": {"algorithm": signature_algorithm},
                    "signature": signature,
                }
            ],
        }
        if include_certificate and self.misbehave != "no_certificate":
            signed_data["certificates"] = [certificate]
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})

    def _sign(self, message: bytes) -> tuple[bytes, str]:
        key = self.identity.key
        if isinstance(key, rsa.RSAPrivateKey):
            # rsaEncryption with the hash taken from digestAlgorithm, as OpenSSL's `ts` signs.
            return key.sign(message, padding.PKCS1v15(), hashes.SHA256()), "rsassa_pkcs1v15"
        return key.sign(message, ec.ECDSA(hashes.SHA256())), "sha256_ecdsa"

    @staticmethod
    def _refusal(status: str, text: str, fail_info: set[str]) -> bytes:
        return _TimeStampResp(
            {"status": {"status": status, "status_string": [text], "fail_info": fail_info}}
        ).dump()

    # -- HTTP ---------------------------------------------------------------------------------

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve the TSA over HTTP on 127.0.0.1 while the block runs; yields its URL."""
        self._stop.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.handle_error = lambda request, client_address: None  # clients that hung up
        thread = threading.Thread(
            target=server.serve_forever, args=(0.01,), name="fake-tsa", daemon=True
        )
        thread.start()
        try:
            host, port = server.server_address[:2]
            yield f"http://{host}:{port}/tsa"
        finally:
            self._stop.set()
            server.shutdown()
            server.server_close()
            thread.join()


def _handler(tsa: FakeTsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            tsa.requests.append(body)
            mode = tsa.misbehave
            if mode == "slow":
                tsa._stop.wait(10)
                return
            if mode in ("http_500", "http_404"):
                self._send(int(mode[-3:]), "text/plain", b"no timestamps today")
            elif self.headers.get("Content-Type") != "application/timestamp-query":
                self._send(415, "text/plain", b"expected application/timestamp-query")
            elif mode == "garbage":
                self._send(200, "application/timestamp-reply", b"\x30\x82garbage")
            elif mode == "wrong_content_type":
                self._send(200, "text/html", tsa.respond(body))
            else:
                self._send(200, "application/timestamp-reply", tsa.respond(body))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
