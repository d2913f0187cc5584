"""The platform's one exception family, mapped to the error envelope at the edge only."""

from __future__ import annotations

from typing import Any


class CfpError(Exception):
    """Base of every platform error: says which HTTP status, which code and whether to retry."""

    status: int = 500
    code: str = "internal"
    retryable: bool = False

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class BadRequest(CfpError):
    status, code = 400, "bad_request"


class Unauthorized(CfpError):
    status, code = 401, "unauthorized"


class Forbidden(CfpError):
    status, code = 403, "forbidden"


class NotFound(CfpError):
    status, code = 404, "not_found"


class Conflict(CfpError):
    """A precondition on stored data did not hold (compare-and-set, create of an existing doc)."""

    status, code, retryable = 409, "conflict", True


class PayloadTooLarge(CfpError):
    status, code = 413, "payload_too_large"


class ValidationFailed(CfpError):
    """A value broke its schema; `details` lists JSON-pointer locations and messages."""

    status, code = 422, "validation_failed"


class RateLimited(CfpError):
    status, code, retryable = 429, "rate_limited", True


class ProjectInvalid(CfpError):
    """A project failed validation at load time; `details` lists every problem with its file."""

    status, code = 422, "project_invalid"


class EmitRefused(CfpError):
    """A step emitted a topic its config does not declare (strict validation mode)."""

    status, code = 422, "emit_refused"


class StepTimeout(CfpError):
    status, code, retryable = 504, "step_timeout", True


class SettingsError(CfpError):
    """A setting is missing or inconsistent; the message names the setting."""

    status, code = 500, "settings_error"


class Unavailable(CfpError):
    """A backing service failed transiently (unavailable, timed out, corrupted a response)."""

    status, code, retryable = 503, "unavailable", True


class KeyDestroyed(NotFound):
    """The key was destroyed: what it encrypted is gone for good (crypto-shredding)."""

    code = "key_destroyed"


class DecryptFailed(CfpError):
    """The ciphertext is not one this key made with this `aad` (tampered, truncated or misbound)."""

    status, code = 400, "decrypt_failed"
