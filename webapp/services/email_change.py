"""Changing the account's e-mail address with a confirmation link (seed 002
§9): the new address receives a signed link (itsdangerous, salt
``email-change``, valid ``EMAIL_CHANGE_TTL`` seconds, 2 days by default);
only opening it changes ``users.email``. The link names the address it was
sent from, so it dies once the account's address changed in any way, and
it can be used once."""
from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..extensions import db
from ..models import User
from . import accounts, email, passwords
from .errors import ValidationError, WrongPassword
from .mailformat import PlainHeaderMessage

_SALT = "email-change"
_BAD_LINK = "This confirmation link is not valid or has expired; ask for a new one from your settings."


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def make_token(user: User, new_email: str) -> str:
    """The signed confirmation token of ``new_email`` for ``user``."""
    return _serializer().dumps({"u": user.user_id, "e": new_email, "o": user.email or ""})


def request_change(user: User, new_email: object, password: object) -> str:
    """Check the password and the address, then mail a confirmation link to
    the new address (sent now; SMTP or the outbox folder). Returns the
    token. Raises WrongPassword (403) or ValidationError (400)."""
    if not isinstance(password, str) or not passwords.verify(user.password_hash, password):
        raise WrongPassword("The password is not right.")
    if not isinstance(new_email, str):
        raise ValidationError("email must be an e-mail address.")
    address = accounts.check_email(new_email.strip())
    assert address is not None
    if address == user.email:
        raise ValidationError("That is already your e-mail address.")
    token = make_token(user, address)
    link = email.external_url("pages_friends.confirm_email", token=token)
    message = PlainHeaderMessage(
        subject="Confirm your new e-mail address",
        recipients=[address],
        body=(f"Hello {user.display_name},\n\nOpen this link to use {address} for your Solo Mining account:\n\n"
              f"{link}\n\nThe link works for two days. If you did not ask for this, ignore this e-mail: "
              "nothing changes.\n"),
    )
    email.send(message, f"email-change-{user.user_id}-{token[-12:]}")
    return token


def confirm(token: object) -> User:
    """Apply a confirmation token and commit; returns the user. Raises
    ValidationError for a bad, expired, used or outdated link."""
    if not isinstance(token, str):
        raise ValidationError(_BAD_LINK)
    ttl = int(current_app.config.get("EMAIL_CHANGE_TTL", 2 * 24 * 3600))
    try:
        payload = _serializer().loads(token, max_age=ttl)
    except (BadSignature, SignatureExpired):
        raise ValidationError(_BAD_LINK) from None
    if not isinstance(payload, dict):
        raise ValidationError(_BAD_LINK)
    user = db.session.get(User, payload.get("u")) if accounts.is_user_id(payload.get("u")) else None
    if user is None or (user.email or "") != payload.get("o") or not isinstance(payload.get("e"), str):
        raise ValidationError(_BAD_LINK)
    previous = user.email
    user.email = accounts.check_email(payload["e"])
    accounts.address_changed(user, previous)
    db.session.commit()
    return user
