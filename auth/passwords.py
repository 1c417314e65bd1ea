"""Password hashing with Argon2id (argon2-cffi) and random secrets."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"密码至少 {MIN_LENGTH} 位")
    return HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when the password matches the stored hash."""
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_hash() -> str:
    """A hash of a random password, verified against for unknown or disabled users so that
    every failed sign-in costs one Argon2 verification (no user-name enumeration by timing)."""
    return HASHER.hash(secrets.token_urlsafe(16))


def verify_nothing(password: str) -> bool:
    """Spend the time of a real verification; always False."""
    verify_password(dummy_hash(), password)
    return False


def new_password() -> str:
    """A random one-time password people can type."""
    return secrets.token_urlsafe(12)


def new_token() -> str:
    """A random API token (shown once, stored only hashed)."""
    return "om_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256 of a token: tokens are long random secrets, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()
