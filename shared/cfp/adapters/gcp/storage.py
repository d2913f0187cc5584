"""BlobStore on Cloud Storage: the key `a/b/c` is the object `a/b/c` in the configured bucket.

Keys follow the local store's rule (relative, '/'-separated; no empty, '.' or '..' segment; no
backslash or NUL; no segment ending in `.cfp-partial`), so a key that works in development works
in Google Cloud and back; Cloud Storage adds its own limits (at most 1024 bytes of UTF-8, no CR
or LF). Writes replace an object atomically: readers see the old bytes or the new, never a mix.

Signed URLs let a browser or a step upload or download bytes directly, without the API in the
path. They are a capability of this store only, outside the BlobStore port: the local store has
no HTTP surface that could honour one, so services that need them must take a GcsBlobStore (or
fall back to streaming the bytes through the API locally).
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from cfp.adapters.gcp.errors import from_google
from cfp.domain.blobs import key_segments
from cfp.errors import BadRequest, CfpError, NotFound, SettingsError

T = TypeVar("T")

# Cloud Storage's limit for a V4 signature's lifetime: seven days.
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600


def check_key(key: str) -> str:
    """`key` if it is a valid blob key (cfp.domain.blobs: the same rule as the file store)."""
    key_segments(key)
    return key


class GcsBlobStore:
    """BlobStore over one Cloud Storage bucket.

    `client` is a `google.cloud.storage.Client`; by default one is built on first use: from
    Application Default Credentials, or anonymous against `endpoint` (fake-gcs-server's URL).
    `signing_credentials` sign URLs (a service account's credentials with a private key);
    without them the client's own credentials sign, through IAM signBlob when they hold no key
    (Cloud Run's service account). Blocking calls run in worker threads.
    """

    def __init__(
        self,
        bucket: str,
        *,
        project: str | None = None,
        client: Any = None,
        endpoint: str | None = None,
        signing_credentials: Any = None,
        timeout: float = 60.0,
    ) -> None:
        if not bucket:
            raise SettingsError("a Cloud Storage bucket name is required (CFP_BUCKET)")
        self.bucket_name = bucket
        self.project = project
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout = timeout
        self._client = client
        self._signing_credentials = signing_credentials
        self._lock = threading.Lock()

    def _storage(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.auth.exceptions import DefaultCredentialsError
                from google.cloud import storage

                try:
                    if self.endpoint:
                        from google.auth.credentials import AnonymousCredentials

                        self._client = storage.Client(
                            project=self.project or "cfp-local",
                            credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": self.endpoint},
                        )
                    else:
                        self._client = storage.Client(project=self.project)
                except DefaultCredentialsError as exc:
                    raise SettingsError(f"no Google credentials for Cloud Storage: {exc}") from exc
            return self._client

    def _blob(self, key: str) -> Any:
        return self._storage().bucket(self.bucket_name).blob(key)

    async def _run(self, what: str, key: str, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except CfpError:
            raise
        except Exception as exc:
            if not _is_google_error(exc):
                raise
            raise from_google(
                exc,
                f"Cloud Storage {what} of {key!r} in bucket {self.bucket_name!r}",
                details={"key": key, "bucket": self.bucket_name},
            ) from exc

    # -- the BlobStore port ----------------------------------------------------------

    async def put(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key` with its content type, replacing any previous object."""
        check_key(key)
        data = bytes(data)
        await self._run(
            "put",
            key,
            lambda: self._blob(key).upload_from_string(
                data, content_type=content_type, timeout=self.timeout
            ),
        )

    async def create(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key` only if no object is there (`ifGenerationMatch=0`)."""
        check_key(key)
        data = bytes(data)
        await self._run(
            "create",
            key,
            lambda: self._blob(key).upload_from_string(
                data, content_type=content_type, timeout=self.timeout, if_generation_match=0
            ),
        )

    async def get(self, key: str) -> bytes:
        check_key(key)
        try:
            return await self._run(
                "get", key, lambda: self._blob(key).download_as_bytes(timeout=self.timeout)
            )
        except NotFound as exc:
            raise NotFound(f"no blob {key!r}", details={"key": key}) from exc

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (retries stay harmless)."""
        check_key(key)
        try:
            await self._run("delete", key, lambda: self._blob(key).delete(timeout=self.timeout))
        except NotFound:
            return

    async def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (a plain string prefix), sorted."""
        folder, _, _ = prefix.rpartition("/")
        if folder:
            check_key(folder)

        def names() -> list[str]:
            blobs = self._storage().list_blobs(
                self.bucket_name,
                prefix=prefix or None,
                fields="items(name),nextPageToken",
                timeout=self.timeout,
            )
            return [blob.name for blob in blobs]

        return sorted(await self._run("list", prefix, names))

    # -- beyond the port -------------------------------------------------------------

    async def ensure_bucket(self, *, location: str | None = None) -> None:
        """Create the bucket unless it exists (emulators and first runs; in production the
        bucket comes from Terraform, with its retention and access settings)."""

        def create() -> None:
            from google.api_core.exceptions import Conflict

            client = self._storage()
            if client.lookup_bucket(self.bucket_name, timeout=self.timeout) is not None:
                return
            try:
                client.create_bucket(self.bucket_name, location=location, timeout=self.timeout)
            except Conflict:
                pass  # created concurrently

        await self._run("create", self.bucket_name, create)

    async def retention(self) -> tuple[int | None, bool]:
        """The bucket's retention period in seconds (None: no policy) and whether the policy is
        locked: what makes a bucket a write-once anchor sink."""

        def read() -> tuple[int | None, bool]:
            bucket = self._storage().get_bucket(self.bucket_name, timeout=self.timeout)
            period = bucket.retention_period
            return (int(period) if period else None), bool(bucket.retention_policy_locked)

        return await self._run("read the retention policy of", self.bucket_name, read)

    async def signed_url(
        self,
        key: str,
        *,
        method: Literal["GET", "PUT"] = "GET",
        expires: int = 900,
        content_type: str | None = None,
    ) -> str:
        """A V4 signed URL through which anyone holding it may GET or PUT this one object for
        `expires` seconds (at most seven days). A PUT must send `content_type` as its
        Content-Type header when one was given, since it is part of the signature."""
        check_key(key)
        if method not in ("GET", "PUT"):
            raise BadRequest(f"signed URLs are for GET or PUT, not {method!r}")
        if not 1 <= expires <= MAX_SIGNED_URL_SECONDS:
            raise BadRequest(
                f"a signed URL lives 1 to {MAX_SIGNED_URL_SECONDS} seconds, not {expires}",
                details={"expires": expires},
            )
        return await self._run(
            "signed URL", key, lambda: self._sign(key, method, expires, content_type)
        )

    def _sign(self, key: str, method: str, expires: int, content_type: str | None) -> str:
        from google.auth import credentials as auth_credentials

        options: dict[str, Any] = {
            "version": "v4",
            "expiration": datetime.timedelta(seconds=expires),
            "method": method,
            "content_type": content_type,
        }
        if self.endpoint:
            options["api_access_endpoint"] = self.endpoint
        credentials = self._signing_credentials or self._storage()._credentials
        if not isinstance(credentials, auth_credentials.Signing):
            # No private key here (Cloud Run's metadata credentials): sign through IAM signBlob,
            # which needs the account's email (known once refreshed) and a current token.
            if isinstance(credentials, auth_credentials.AnonymousCredentials):
                raise SettingsError(
                    "signing URLs needs a service account: anonymous credentials cannot sign; "
                    "pass signing credentials with a private key"
                )
            if not credentials.valid or getattr(credentials, "service_account_email", None) in (
                None,
                "default",
            ):
                _refresh(credentials)
            email = getattr(credentials, "service_account_email", None)
            if not email or email == "default":
                raise SettingsError(
                    "signing URLs needs a service account: these credentials have no private key "
                    "and no service account email for IAM signBlob"
                )
            options["service_account_email"] = email
            options["access_token"] = credentials.token
        options["credentials"] = credentials
        return str(self._blob(key).generate_signed_url(**options))


def _refresh(credentials: Any) -> None:
    from google.auth.transport.requests import Request

    credentials.refresh(Request())


def _is_google_error(exc: BaseException) -> bool:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return isinstance(exc, GoogleAPIError | GoogleAuthError | OSError)
