"""API tokens: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["TOKEN_PREFIX", "hash_token", "new_token"]

TOKEN_PREFIX = "agt_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    # Tokens carry 256 random bits: a fast hash is enough, and lookups are by hash (no string compare).
    return hashlib.sha256(token.encode()).digest()
