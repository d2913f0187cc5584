"""Identities proven by an outside identity provider (Identity Platform / Firebase Auth on Google
Cloud) mapped to the platform's own principals, so that a person is one principal with one set of
role bindings however they sign in.

A link document `external_identities/{provider}:{uid}` → principal is made on the first sign-in,
and only from a verified email naming an existing user (`principal_emails/{email}`): an
unverified email could be anyone's, so it never links. From then on the link alone decides, so
changing the email at the provider does not move the identity to another principal. The link is
created with its audit record in one transaction.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from cfp.domain.documents import CreateDoc, doc_id
from cfp.domain.identity import (
    API_KEY_PREFIX,
    Authenticated,
    AuthEvent,
    email_path,
    normalize_email,
    principal_path,
    split_jwt,
)
from cfp.errors import Conflict, Unauthorized, Unavailable
from cfp.ports import DocumentStore, ExternalIdentity, IdentityVerifier
from cfp.services.identity.service import AuditHook

EXTERNAL_IDENTITIES = "external_identities"
ATTEMPTS = 8  # a lost race for the link (or the audit chain's head) reads again
BACKOFF_BASE = 0.005
BACKOFF_MAX = 0.25


def external_identity_path(provider: str, uid: str) -> str:
    """The link document of a provider's user: {principal, provider, uid, linked_at}."""
    return f"{EXTERNAL_IDENTITIES}/{doc_id(f'{provider}:{uid}')}"


def _unknown() -> Unauthorized:
    return Unauthorized(
        "this identity has no account here: sign in with a verified email of an existing "
        "account, or ask for an invitation",
        code="unknown_identity",
    )


class ExternalIdentities:
    """Authenticates bearer tokens of an outside provider as the principals they are linked to."""

    def __init__(
        self,
        documents: DocumentStore,
        verifier: IdentityVerifier,
        *,
        platform_issuer: str,
        audit: AuditHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.verifier = verifier
        self.platform_issuer = platform_issuer
        self.audit = audit
        self.clock = clock

    def handles(self, token: str) -> bool:
        """Whether `token` is for the outside provider: a JWT that is neither an API key nor
        issued by the platform itself. Nothing is verified yet."""
        if token.startswith(API_KEY_PREFIX):
            return False
        try:
            _, claims, _, _ = split_jwt(token)
        except Unauthorized:
            return False
        return claims.get("iss") != self.platform_issuer

    async def authenticate(self, token: str) -> Authenticated:
        """The active user the token's identity is linked to (linking it on first use).
        Unauthorized: the verifier's codes, unknown_identity, or account_disabled."""
        identity = await self.verifier.verify(token)
        principal_id = await self._linked(identity)
        doc = await self.documents.get(principal_path(principal_id))
        if doc is None or doc["kind"] != "user":
            raise _unknown()
        if doc["status"] != "active":
            raise Unauthorized("the account is disabled", code="account_disabled")
        firebase: dict[str, Any] = identity.claims.get("firebase") or {}
        amr = [str(firebase.get("sign_in_provider") or identity.provider)]
        if firebase.get("sign_in_second_factor"):
            amr.append("mfa")
        exp = identity.claims.get("exp")
        return Authenticated(
            principal_id=doc["id"],
            kind="user",
            email=doc["email"],
            method="id_token",
            amr=amr,
            expires_at=float(exp) if isinstance(exp, int | float) else None,
        )

    async def _linked(self, identity: ExternalIdentity) -> str:
        path = external_identity_path(identity.provider, identity.uid)
        for attempt in range(ATTEMPTS):
            link = await self.documents.get(path)
            if link is not None:
                return str(link["principal"])
            principal_id = await self._principal_to_link(identity)
            event = AuthEvent(
                action="auth.external.link",
                outcome="success",
                actor_id=principal_id,
                actor_kind="user",
                target=principal_id,
                reason=f"linked {identity.provider} user {identity.uid} by verified email",
            )
            record = {
                "principal": principal_id,
                "provider": identity.provider,
                "uid": identity.uid,
                "linked_at": self.clock(),
            }
            audit = list(await self.audit(event)) if self.audit is not None else []
            try:
                await self.documents.apply([CreateDoc(path, record), *audit])
                return principal_id
            except Conflict:  # another request linked it, or the audit chain moved on
                await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)))
        raise Unavailable("too many concurrent sign-ins of the same identity; try again")

    async def _principal_to_link(self, identity: ExternalIdentity) -> str:
        if not identity.email or not identity.email_verified:
            raise _unknown()
        index = await self.documents.get(email_path(normalize_email(identity.email)))
        if index is None:
            raise _unknown()
        doc = await self.documents.get(principal_path(index["principal"]))
        if doc is None or doc["kind"] != "user":
            raise _unknown()
        if doc["status"] != "active":
            raise Unauthorized("the account is disabled", code="account_disabled")
        return str(doc["id"])


__all__ = ["EXTERNAL_IDENTITIES", "ExternalIdentities", "external_identity_path"]
