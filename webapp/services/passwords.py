"""Password rules, hashing and checking.

- A new password has at least ``MIN_PASSWORD`` characters (API.md) and is
  not one of the 30,000 most common passwords of breached-password dumps:
  the list ``zxcvbn`` ships (``FREQUENCY_LISTS["passwords"]``, lower case,
  from Mark Burnett's 10 million password corpus), compared case-insensitively.
  No network is involved.
- ``verify`` runs the same key derivation whether or not the account exists:
  a missing account is checked against a dummy hash made with the configured
  method, so the time a login takes does not tell whether a user id is
  registered (werkzeug's hashes name their method and cost, so the dummy
  costs what a real one does).
"""
from __future__ import annotations

import secrets
from functools import cache, lru_cache

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from . import inputs
from .errors import ValidationError

MIN_PASSWORD = 8
MAX_PASSWORD = 256


def hash_method() -> str:
    """The werkzeug method for new hashes (``PASSWORD_HASH_METHOD``, scrypt by default)."""
    return current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")


def hash_password(password: str) -> str:
    """A salted hash of ``password`` with the configured method."""
    return generate_password_hash(password, method=hash_method())


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """Whether ``password`` (any case) is on the shipped common-password list."""
    return password.lower() in _common_passwords()


def check_new_password(password: str) -> None:
    """The rules for a password being set (register, password change, CLI).
    Raises ValidationError (400) with a message a person can act on."""
    inputs.check_text(password, name="The password")
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"The password must have at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"The password must have at most {MAX_PASSWORD} characters.")
    if is_common(password):
        raise ValidationError(
            "That password is one of the most common ones in breached-password lists; choose another."
        )


@lru_cache(maxsize=8)
def _dummy_hash(method: str) -> str:
    return generate_password_hash(secrets.token_urlsafe(16), method=method)


def verify(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``. With no stored hash (no
    such account) the password is checked against a dummy hash of the same
    method and cost, and the answer is False. The dummy is made once per
    process on the first check of any account, so even that first check
    costs the same whether or not the account exists."""
    dummy = _dummy_hash(hash_method())
    if stored_hash is None:
        check_password_hash(dummy, password)
        return False
    return check_password_hash(stored_hash, password)
