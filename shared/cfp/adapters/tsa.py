"""An RFC 3161 Time-Stamp Authority reached over HTTP (RFC 3161 §3.4), for anchoring audit
checkpoints outside the platform when the `CFP_TSA_URL` setting names one.

A request is POSTed as `application/timestamp-query` (a DER TimeStampReq, RFC 3161 §2.4.1, with a
fresh 64-bit nonce and certReq) and the answer must be `application/timestamp-reply` (a DER
TimeStampResp, §2.4.2) that `cfp.domain.timestamps.check_timestamp` accepts for the same data and
nonce. What the TSA cannot answer now (network errors, timeouts, HTTP 429 and 5xx) is
`Unavailable`, to retry later; an answer that is wrong (any other status, another content type, a
refusal, a token that does not check) is `TimestampError`.
"""

from __future__ import annotations

import secrets

import httpx

from cfp.domain.timestamps import TimestampError, check_timestamp, timestamp_request
from cfp.errors import Unavailable

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 1024 * 1024  # a reply is a few KiB, even with a certificate chain


class TimestampAuthority:
    """A TSA at `url`; a shared `client` stays open on `close()`, one made here is closed."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError(f"the TSA URL {url!r} is not http(s)")
        self.url = url
        self._timeout = timeout
        self._client = client
        self._owns_client = client is None

    async def timestamp(self, data: bytes) -> bytes:
        """The checked DER TimeStampResp of the TSA over the SHA-256 of `data`."""
        nonce = secrets.randbits(64)
        reply, status, content_type = await self._post(timestamp_request(data, nonce=nonce))
        if status == 429 or status >= 500:
            raise Unavailable(f"the TSA at {self.url} answered HTTP {status}")
        if status != 200:
            raise TimestampError(f"the TSA at {self.url} answered HTTP {status}")
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type != REPLY_TYPE:
            answered = media_type or "no content type"
            raise TimestampError(f"the TSA at {self.url} answered {answered}, not {REPLY_TYPE}")
        check_timestamp(reply, data, nonce=nonce)
        return reply

    async def close(self) -> None:
        """Close the HTTP client if this authority made it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _post(self, request: bytes) -> tuple[bytes, int, str]:
        headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
        try:
            async with self._http().stream(
                "POST", self.url, content=request, headers=headers, timeout=self._timeout
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_REPLY_BYTES:
                        raise TimestampError(
                            f"the TSA at {self.url} answered more than {MAX_REPLY_BYTES} bytes"
                        )
                return bytes(body), response.status_code, response.headers.get("content-type", "")
        except httpx.TransportError as exc:  # connect/read errors and timeouts
            raise Unavailable(f"the TSA at {self.url} is unreachable: {exc!r}") from exc

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client
