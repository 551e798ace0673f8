"""Accounts: registration, passwords, bearer tokens and settings.

Bearer tokens are signed (itsdangerous) and carry the user id and a
fingerprint of the password hash, so changing the password revokes them; they
expire after ``API_TOKEN_TTL`` seconds.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import User, UserSettings, utcnow
from . import inputs, preferences
from .errors import Unauthorized, UserExists, ValidationError

USER_ID_RE = re.compile(r"[A-Za-z0-9._-]{3,128}", re.ASCII)  # fullmatch: "$" would let a final newline through
COUNTRY_RE = re.compile(r"[A-Z]{2}", re.ASCII)
# The shape API.md's settings use; a single line of text (inputs.LINE) on top.
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_EMAIL = 254
MIN_PASSWORD = 8
_TOKEN_SALT = "api-token"


def _hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))


def default_display_name(user_id: str) -> str:
    """A readable name for a miner who gave none: a long address shortened
    the way wallets show it (``bc1qn2pr…n0j``)."""
    return user_id if len(user_id) <= 16 else f"{user_id[:8]}…{user_id[-4:]}"


def is_user_id(value: object) -> bool:
    """Whether ``value`` has the shape of a user id (API.md: 3–128 of
    ``[A-Za-z0-9._-]``). Lookups check it first: anything else cannot exist."""
    return isinstance(value, str) and USER_ID_RE.fullmatch(value) is not None


def check_email(email: str | None) -> str | None:
    """An e-mail address (``name@host.tld``, at most 254 characters, one line
    of text) or None. Raises ValidationError."""
    if email is None:
        return None
    inputs.check_text(email, name="email")
    if len(email) > MAX_EMAIL or not EMAIL_RE.fullmatch(email):
        raise ValidationError("That does not look like an e-mail address (name@example.org).")
    return email


def check_password(password: str) -> str:
    """At least 8 characters of one line of text. Raises ValidationError."""
    inputs.check_text(password, name="The password")
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"The password must have at least {MIN_PASSWORD} characters.")
    return password


def validate_new_user(user_id: str, password: str, display_name: str | None, country_code: str | None,
                      email: str | None = None) -> None:
    """API.md rules: ``user_id`` 3–128 of ``[A-Za-z0-9._-]``, password ≥ 8
    characters, display name 1–64, country an ISO 3166 alpha-2 code, e-mail
    ``check_email``; every text one line (``inputs.LINE``).
    Raises ValidationError."""
    if not is_user_id(user_id):
        raise ValidationError("user_id must be 3 to 128 characters of letters, digits, '.', '_' or '-'.")
    check_password(password)
    if display_name is not None:
        inputs.check_text(display_name, name="display_name")
        if not 1 <= len(display_name.strip()) <= 64:
            raise ValidationError("display_name must be 1 to 64 characters.")
    if country_code is not None and not (isinstance(country_code, str) and COUNTRY_RE.fullmatch(country_code)):
        raise ValidationError("country_code must be two capital letters (ISO 3166-1 alpha-2).")
    check_email(email)


def register(
    *,
    user_id: str,
    password: str,
    display_name: str | None = None,
    email: str | None = None,
    country_code: str | None = None,
    is_admin: bool = False,
) -> User:
    """Create a user with default settings and commit.

    Raises ValidationError (400) or UserExists (409); a concurrent
    registration of the same id loses at the primary key and gets 409 too.
    """
    validate_new_user(user_id, password, display_name, country_code, email)
    if db.session.get(User, user_id) is not None:
        raise UserExists()
    user = User(
        user_id=user_id,
        display_name=(display_name or default_display_name(user_id)).strip(),
        email=email,
        country_code=country_code,
        password_hash=_hash_password(password),
        is_admin=is_admin,
    )
    db.session.add(user)
    db.session.add(
        UserSettings(
            user_id=user_id,
            privacy=dict(preferences.DEFAULT_PRIVACY),
            notifications=preferences.default_notifications(),
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise UserExists() from None
    return user


def authenticate(*, user_id: str, password: str) -> User:
    """The user whose password matches. Raises Unauthorized (401), also for
    a user id that cannot exist or a password that is not one line of text
    (no such password can have been set)."""
    if not is_user_id(user_id) or not isinstance(password, str) or inputs.text_problem(password):
        raise Unauthorized("Wrong user id or password.")
    user = db.session.get(User, user_id)
    if user is None or not check_password_hash(user.password_hash, password):
        raise Unauthorized("Wrong user id or password.")
    return user


def set_password(user: User, password: str) -> None:
    """Change the password (revokes existing tokens) and commit."""
    check_password(password)
    user.password_hash = _hash_password(password)
    db.session.commit()


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_TOKEN_SALT)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def issue_token(user: User) -> tuple[str, datetime]:
    """A bearer token for ``user`` and when it expires (aware UTC)."""
    token = _serializer().dumps({"u": user.user_id, "f": _fingerprint(user)})
    expires_at = utcnow() + timedelta(seconds=current_app.config["API_TOKEN_TTL"])
    return token, expires_at


def user_from_token(token: str) -> User:
    """The user a bearer token belongs to. Raises Unauthorized (401) when it
    is malformed, forged, expired or revoked by a password change."""
    try:
        payload = _serializer().loads(token, max_age=current_app.config["API_TOKEN_TTL"])
    except (BadSignature, SignatureExpired):
        raise Unauthorized("The bearer token is not valid or has expired.") from None
    user = db.session.get(User, payload.get("u")) if isinstance(payload, dict) else None
    if user is None or payload.get("f") != _fingerprint(user):
        raise Unauthorized("The bearer token is not valid or has expired.")
    return user


def get_settings_row(user_id: str) -> UserSettings:
    """The user's settings row, created with defaults if missing (not committed)."""
    row = db.session.get(UserSettings, user_id)
    if row is None:
        row = UserSettings(
            user_id=user_id,
            privacy=dict(preferences.DEFAULT_PRIVACY),
            notifications=preferences.default_notifications(),
        )
        db.session.add(row)
    return row


def get_settings(user: User) -> dict[str, Any]:
    """The full settings document (API.md ``GET /api/settings``)."""
    row = db.session.get(UserSettings, user.user_id)
    privacy = preferences.merged_privacy(row.privacy if row else None)
    notifications = preferences.merged_notifications(row.notifications if row else None)
    notifications["email"] = user.email
    return {"privacy": privacy, "notifications": notifications}


def update_settings(user: User, patch: preferences.SettingsPatch) -> dict[str, Any]:
    """Merge a partial settings document, commit, and return the full one.

    Records a ``settings_updated`` activity when something changed.
    """
    before = get_settings(user)
    row = get_settings_row(user.user_id)
    privacy, notifications, email_given, email = preferences.apply_patch(
        preferences.merged_privacy(row.privacy),
        preferences.merged_notifications(row.notifications),
        patch,
    )
    row.privacy = privacy
    row.notifications = notifications
    if email_given:
        user.email = check_email(email)
    after = get_settings(user) | {"privacy": privacy}
    after["notifications"] = {**notifications, "email": user.email}
    if after != before:
        _on_settings_changed(user, before, after)
    db.session.commit()
    return get_settings(user)


def _on_settings_changed(user: User, before: dict, after: dict) -> None:
    from . import activity

    activity.record_settings_change(user.user_id, before=before, after=after)
