"""IdentityVerifier for Identity Platform / Firebase Auth ID tokens, with firebase-admin.

`verify_id_token(check_revoked=True)` checks the RS256 signature against Google's certificates,
the expiry, and that the audience and issuer are the project's; then it asks the Auth API
whether the user's sessions were revoked or the account disabled or deleted.

firebase-admin learns about the Auth emulator only from the process environment
(FIREBASE_AUTH_EMULATOR_HOST), and while that variable is set it skips the signature and expiry
checks. So emulator mode is declared here (`emulator_host`) and must match the environment, and
a verifier not declared emulated refuses to work while the variable is set, rather than accept
unsigned tokens.

firebase-admin is imported on first use; its calls block, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from typing import Any

from cfp.errors import SettingsError, Unauthorized, Unavailable
from cfp.ports import ExternalIdentity

EMULATOR_HOST_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
ISSUER_PREFIX = "https://securetoken.google.com/"


class FirebaseVerifier:
    """Verifies Firebase ID tokens of `project` (the Google Cloud project of Identity Platform).

    A named firebase-admin App is made on first use with the project id and Application Default
    Credentials (used for the revocation check; the emulator needs none)."""

    def __init__(
        self,
        project: str,
        *,
        emulator_host: str | None = None,
        app_name: str | None = None,
        clock_skew_seconds: int = 0,
    ) -> None:
        self.project = project
        self.emulator_host = emulator_host
        self.app_name = app_name or f"cfp-auth-{project}-{secrets.token_hex(4)}"
        self.clock_skew_seconds = clock_skew_seconds
        self.issuer = ISSUER_PREFIX + project
        self._app: Any = None
        self._lock = threading.Lock()

    async def verify(self, token: str) -> ExternalIdentity:
        claims = await asyncio.to_thread(self._verify, token)
        firebase = claims.get("firebase") if isinstance(claims.get("firebase"), dict) else {}
        tenant = firebase.get("tenant")  # Identity Platform tenants each have their own uids
        provider = f"firebase:{self.project}" + (f"/{tenant}" if tenant else "")
        email = claims.get("email")
        return ExternalIdentity(
            uid=str(claims["uid"]),
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            provider=provider,
            claims=claims,
        )

    async def close(self) -> None:
        """Delete the firebase-admin App (its name can be used again)."""
        with self._lock:
            app, self._app = self._app, None
        if app is not None:
            import firebase_admin

            firebase_admin.delete_app(app)

    def _check_mode(self) -> None:
        current = os.environ.get(EMULATOR_HOST_ENV, "")
        if self.emulator_host is None and current:
            raise SettingsError(
                f"{EMULATOR_HOST_ENV}={current} makes firebase-admin skip ID token signature "
                "checks, but this verifier talks to Google: unset it, or give the verifier "
                "the emulator's address",
                details={"settings": [EMULATOR_HOST_ENV]},
            )
        if self.emulator_host is not None and current != self.emulator_host:
            raise SettingsError(
                f"firebase-admin finds the Auth emulator only through {EMULATOR_HOST_ENV}: set "
                f"it to {self.emulator_host} (it is {current or 'unset'})",
                details={"settings": [EMULATOR_HOST_ENV]},
            )

    def _get_app(self) -> Any:
        with self._lock:
            if self._app is None:
                import firebase_admin

                self._app = firebase_admin.initialize_app(
                    options={"projectId": self.project}, name=self.app_name
                )
            return self._app

    def _verify(self, token: str) -> dict[str, Any]:
        self._check_mode()
        from firebase_admin import auth, exceptions
        from google.auth import exceptions as google_auth

        app = self._get_app()
        try:
            claims = auth.verify_id_token(
                token,
                app=app,
                check_revoked=True,
                clock_skew_seconds=self.clock_skew_seconds,
            )
        # The library's messages are not passed on: some quote the token itself.
        except auth.ExpiredIdTokenError:
            raise Unauthorized("the ID token has expired", code="token_expired") from None
        except auth.RevokedIdTokenError:
            raise Unauthorized(
                "the ID token was revoked; sign in again", code="token_revoked"
            ) from None
        except auth.UserDisabledError:
            raise Unauthorized(
                "the account is disabled at the identity provider", code="token_revoked"
            ) from None
        except auth.UserNotFoundError:
            raise Unauthorized(
                "the account no longer exists at the identity provider", code="token_revoked"
            ) from None
        except auth.CertificateFetchError as exc:
            raise Unavailable(
                f"could not fetch the ID token certificates: {type(exc.cause).__name__}"
            ) from None
        except (auth.InvalidIdTokenError, ValueError):
            raise Unauthorized("the ID token is not valid", code="invalid_token") from None
        except exceptions.FirebaseError as exc:  # the revocation lookup failed
            raise Unavailable(
                f"the identity provider did not answer the revocation check ({exc.code})"
            ) from None
        except google_auth.GoogleAuthError as exc:  # no or unusable credentials
            raise Unavailable(
                f"no usable Google credentials for the revocation check: {type(exc).__name__}"
            ) from None
        if claims.get("iss") != self.issuer:  # firebase-admin checks this too; be sure
            raise Unauthorized("the ID token is not valid", code="invalid_token")
        return claims


__all__ = ["EMULATOR_HOST_ENV", "FirebaseVerifier"]
