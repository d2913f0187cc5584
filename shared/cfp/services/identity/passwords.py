"""Password hashing with Argon2id (argon2-cffi), off the event loop."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass(frozen=True, slots=True)
class PasswordProfile:
    """Argon2id cost parameters; memory in KiB."""

    time_cost: int
    memory_cost: int
    parallelism: int


# OWASP Password Storage Cheat Sheet, Argon2id: m=19 MiB, t=2, p=1.
OWASP = PasswordProfile(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# For tests only: the cheapest parameters argon2 accepts.
TEST = PasswordProfile(time_cost=1, memory_cost=8, parallelism=1)


class Passwords:
    """Hash and verify passwords with one profile; hashes made with other parameters still
    verify, and `needs_rehash` says when to store a fresh hash."""

    def __init__(self, profile: PasswordProfile = OWASP, *, max_concurrent: int | None = None):
        self.profile = profile
        self._hasher = PasswordHasher(
            time_cost=profile.time_cost,
            memory_cost=profile.memory_cost,
            parallelism=profile.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Each hash holds memory_cost KiB for its duration: bound how many run at once.
        self._slots = asyncio.Semaphore(max_concurrent or min(8, os.cpu_count() or 1))
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`. With no stored hash (unknown account, account
        without a password) a dummy hash is checked instead, so the answer takes as long."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash(os.urandom(16).hex())
            stored = self._dummy
        async with self._slots:
            return await asyncio.to_thread(self._check, stored, password)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
