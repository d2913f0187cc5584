"""Google API errors (google.api_core.exceptions, transport failures) as the platform's errors."""

from __future__ import annotations

from typing import Any

from cfp.errors import (
    BadRequest,
    CfpError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    SettingsError,
    Unauthorized,
    Unavailable,
)


class PreconditionFailed(CfpError):
    """The resource is not in a state that allows the call (a disabled or pending key version);
    retrying the same call will not help until someone changes that state."""

    status, code = 409, "failed_precondition"


def from_google(
    exc: BaseException, message: str, *, details: dict[str, Any] | None = None
) -> CfpError:
    """The platform error for a failed Google call; `message` says what was being done."""
    from google.api_core import exceptions as google
    from google.auth import exceptions as auth

    cls: type[CfpError] = CfpError
    if isinstance(exc, google.NotFound):
        cls = NotFound
    elif isinstance(exc, google.AlreadyExists | google.PreconditionFailed):
        cls = Conflict
    elif isinstance(exc, google.FailedPrecondition):
        cls = PreconditionFailed
    elif isinstance(exc, google.PermissionDenied | google.Forbidden):
        cls = Forbidden
    elif isinstance(exc, google.Unauthenticated | google.Unauthorized | auth.RefreshError):
        cls = Unauthorized
    elif isinstance(exc, google.TooManyRequests):
        cls = RateLimited
    elif isinstance(exc, google.MethodNotImplemented):
        cls = CfpError
    elif isinstance(
        exc,
        google.ServerError
        | google.Aborted
        | google.RetryError
        | auth.TransportError
        | OSError,  # requests' and grpc's connection failures
    ):
        cls = Unavailable
    elif isinstance(exc, google.ClientError):
        cls = BadRequest
    reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return cls(
        f"{message}: {reason}",
        details={**(details or {}), "google_error": type(exc).__name__},
    )


def require_credentials() -> None:
    """Fail at start, saying what to do, when no Application Default Credentials are found
    (the Google clients would otherwise fail at first use, deep in a request)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError as exc:
        raise SettingsError(
            "--backend gcp: no Google credentials (Application Default Credentials) found. On "
            "Cloud Run the service account provides them; on a workstation run `gcloud auth "
            "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS (docs/gcp.md). "
            f"Google said: {exc}"
        ) from None
