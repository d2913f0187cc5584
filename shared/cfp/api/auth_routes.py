"""`/v1/auth/*` and `/.well-known/jwks.json`: local identity over HTTP. Thin: the identity
service does the work; these parse the body, pass the client's address and user agent (for rate
limits and the audit record) and shape the answer. The refresh token also travels in an HttpOnly
cookie, so the workbench never holds it in script."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cfp.api.callers import caller, control
from cfp.api.operations import Operation
from cfp.api.runtime_routes import read_json
from cfp.domain.identity import Client, MfaRequired, TokenPair, TotpEnrolment
from cfp.errors import Unauthorized

REFRESH_COOKIE = "cfp_refresh"
COOKIE_PATH = "/v1/auth"


class SigninIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=4096)


class MfaVerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=64)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(default=None, max_length=400)


class ForgotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=400)
    password: str = Field(min_length=1, max_length=4096)


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(min_length=1, max_length=4096)


class KeyRotated(BaseModel):
    kid: str
    version: int


class Accepted(BaseModel):
    accepted: bool = True


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class MfaEnabledOut(BaseModel):
    recovery_codes: list[str]
    tokens: TokenPair


def client_of(request: Request) -> Client:
    return Client(
        address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def tokens_response(pair: TokenPair, status: int = 200) -> JSONResponse:
    """The token pair, and the refresh token again as an HttpOnly cookie for the workbench."""
    response = JSONResponse(pair.model_dump(mode="json"), status_code=status)
    set_refresh_cookie(response, pair)
    return response


def set_refresh_cookie(response: Response, pair: TokenPair) -> None:
    # Not `Secure`: local development serves plain http on 127.0.0.1, where browsers would drop
    # it; production sits behind TLS, and the deploy issue sets it from the scheme.
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=pair.refresh_expires_in,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
    )


async def signin(request: Request) -> JSONResponse:
    body = await read_json(request, SigninIn)
    result = await control(request).identity.signin(body.email, body.password, client_of(request))
    if isinstance(result, MfaRequired):
        return JSONResponse(result.model_dump(mode="json"))
    return tokens_response(result)


async def verify_mfa(request: Request) -> JSONResponse:
    body = await read_json(request, MfaVerifyIn)
    pair = await control(request).identity.verify_mfa(
        body.challenge_id, body.code, client_of(request)
    )
    return tokens_response(pair)


async def refresh(request: Request) -> JSONResponse:
    body = await read_json(request, RefreshIn) if await request.body() else RefreshIn()
    token = body.refresh_token or request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise Unauthorized("no refresh token: send `refresh_token` or the refresh cookie")
    pair = await control(request).identity.refresh(token, client_of(request))
    return tokens_response(pair)


async def signout(request: Request) -> Response:
    who = await caller(request)
    await control(request).identity.signout(
        session_id=who.claims.get("session_id"),
        refresh_token=request.cookies.get(REFRESH_COOKIE),
        client=client_of(request),
    )
    response = Response(status_code=204)
    response.delete_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    return response


async def forgot(request: Request) -> JSONResponse:
    """The same answer whether or not the account exists."""
    body = await read_json(request, ForgotIn)
    await control(request).identity.forgot(body.email, client_of(request))
    return JSONResponse(Accepted().model_dump(), status_code=202)


async def reset(request: Request) -> Response:
    body = await read_json(request, ResetIn)
    await control(request).identity.reset(body.token, body.password, client_of(request))
    return Response(status_code=204)


async def start_totp(request: Request) -> JSONResponse:
    who = await caller(request)
    enrolment = await control(request).identity.start_totp(who.principal_id)
    return JSONResponse(enrolment.model_dump(mode="json"))


async def confirm_totp(request: Request) -> JSONResponse:
    who = await caller(request)
    body = await read_json(request, CodeIn)
    enabled = await control(request).identity.confirm_totp(
        who.principal_id, body.code, client_of(request)
    )
    body_out = MfaEnabledOut(recovery_codes=enabled.recovery_codes, tokens=enabled.tokens)
    response = JSONResponse(body_out.model_dump(mode="json"))
    set_refresh_cookie(response, enabled.tokens)
    return response


async def change_password(request: Request) -> JSONResponse:
    """Every session ends; the answer is a fresh one for this client."""
    who = await caller(request)
    body = await read_json(request, PasswordChangeIn)
    pair = await control(request).identity.change_password(
        who.principal_id, body.current_password, body.new_password, client_of(request)
    )
    return tokens_response(pair)


async def rotate_signing_key(request: Request) -> JSONResponse:
    """A new signing key version; tokens signed by the old one stay valid until they expire."""
    from cfp.domain.rbac import AccessScope

    who = await caller(request)
    who.check("tenant.manage", AccessScope.system())
    identity = control(request).identity
    version = await identity.rotate_signing_key(actor=who.principal_id)
    return JSONResponse({"kid": f"{identity.tokens.key_id}:{version}", "version": version})


async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(await control(request).identity.jwks())


def _op(method: str, path: str, handler: Any, op_id: str, summary: str, **kw: Any) -> Operation:
    return Operation(method, path, handler, op_id, summary, "auth", **kw)


AUTH_OPERATIONS: list[Operation] = [
    _op(
        "POST",
        "/v1/auth/signin",
        signin,
        "signin",
        "Sign in with email and password: tokens, or an MFA challenge",
        scope="public",
        body=SigninIn,
        response=TokenPair,
        errors=("400", "401", "422", "429"),
    ),
    _op(
        "POST",
        "/v1/auth/mfa/verify",
        verify_mfa,
        "verifyMfa",
        "Complete a sign-in with a TOTP or recovery code",
        scope="public",
        body=MfaVerifyIn,
        response=TokenPair,
        errors=("400", "401", "422", "429"),
    ),
    _op(
        "POST",
        "/v1/auth/refresh",
        refresh,
        "refresh",
        "Rotate a refresh token (body or cookie): the old one dies; reusing it ends the session",
        scope="public",
        body=RefreshIn,
        response=TokenPair,
        errors=("400", "401", "422"),
    ),
    _op(
        "POST",
        "/v1/auth/signout",
        signout,
        "signout",
        "End this session",
        scope="principal",
        status=204,
        errors=("401",),
    ),
    _op(
        "POST",
        "/v1/auth/forgot",
        forgot,
        "forgotPassword",
        "Mail a one-time reset link (the same answer whether or not the account exists)",
        scope="public",
        body=ForgotIn,
        response=Accepted,
        status=202,
        errors=("400", "422", "429"),
    ),
    _op(
        "POST",
        "/v1/auth/reset",
        reset,
        "resetPassword",
        "Set a new password with a reset token (ends every session)",
        scope="public",
        body=ResetIn,
        status=204,
        errors=("400", "401", "422", "429"),
    ),
    _op(
        "POST",
        "/v1/auth/mfa/totp",
        start_totp,
        "startTotp",
        "Start TOTP enrolment: the seed and otpauth URI, shown once",
        scope="principal",
        response=TotpEnrolment,
        errors=("401", "403", "409"),
    ),
    _op(
        "POST",
        "/v1/auth/mfa/totp/confirm",
        confirm_totp,
        "confirmTotp",
        "Confirm TOTP enrolment with a first code: recovery codes, shown once",
        scope="principal",
        body=CodeIn,
        response=MfaEnabledOut,
        errors=("400", "401", "409", "422", "429"),
    ),
    _op(
        "POST",
        "/v1/auth/password",
        change_password,
        "changePassword",
        "Change the password: every session ends, this client gets a new one",
        scope="principal",
        body=PasswordChangeIn,
        response=TokenPair,
        errors=("400", "401", "403", "422", "429"),
    ),
    _op(
        "POST",
        "/v1/auth/keys/rotate",
        rotate_signing_key,
        "rotateSigningKey",
        "Rotate the token signing key (system admin); no one is signed out",
        scope="principal",
        response=KeyRotated,
        errors=("401", "403"),
    ),
    _op(
        "GET",
        "/.well-known/jwks.json",
        jwks,
        "jwks",
        "The public keys that verify access tokens",
        scope="public",
        response=Jwks,
        errors=(),
    ),
]
