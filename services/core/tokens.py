"""Bearer tokens: random, stored only as hashes, compared in constant time.

A member token reads ``<member>.<secret>``. The member part only says which
stored hash to compare against; it grants nothing by itself, because the whole
token must hash to what was stored when it was issued.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from services.core.names import NAME_PATTERN

SECRET_BYTES = 32


def new_member_token(member: str) -> str:
    return f"{member}.{secrets.token_urlsafe(SECRET_BYTES)}"


def new_admin_token() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def claimed_member(token: str) -> str | None:
    """The member a token claims to belong to, or None if it cannot be one."""
    member, dot, secret = token.partition(".")
    if not dot or not secret or not NAME_PATTERN.fullmatch(member):
        return None
    return member


def matches(token: str, stored_hash: bytes) -> bool:
    return same_hash(hash_token(token), stored_hash)


def same_hash(presented_hash: bytes, stored_hash: bytes) -> bool:
    return hmac.compare_digest(presented_hash, stored_hash)
