"""Local identity: `IdentityService` and the pieces it is built from."""

from cfp.services.identity.passwords import OWASP, TEST, PasswordProfile, Passwords
from cfp.services.identity.ratelimit import Limit, RateLimit, RateLimits, SlidingWindowLimiter
from cfp.services.identity.service import AuditHook, IdentityService, InviteHook
from cfp.services.identity.tokens import AccessTokens, jwk

__all__ = [
    "OWASP",
    "TEST",
    "AccessTokens",
    "AuditHook",
    "IdentityService",
    "InviteHook",
    "Limit",
    "PasswordProfile",
    "Passwords",
    "RateLimit",
    "RateLimits",
    "SlidingWindowLimiter",
    "jwk",
]
