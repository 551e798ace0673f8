"""Accounts: registration, passwords, bearer tokens, revocation and settings.

Bearer tokens are signed (itsdangerous) and stateless: they carry the user
id, the user's revocation epoch (``users.auth_epoch``) at issue time and a
random token id, and expire after ``API_TOKEN_TTL`` seconds. "Log out
everywhere" and a password change bump the epoch, which ends every token of
the user at once; ``POST /api/auth/logout`` ends one token by denylisting its
id until it would have expired. Whether a token is still good is decided in
one function, ``_token_ok``. Page logins are server-side sessions
(``services.sessions``), ended by the same calls.

The revocation state is read from Redis, not from the ``users`` row, so a
request with a bearer token loads no user (docs/PERFORMANCE.md): the hash
``{ns}:auth:<user_id>`` holds ``e`` (the user's epoch) and ``r:<token id>``
for each denylisted token, filled from the database on a miss and kept for
``AUTH_CACHE_TTL`` seconds. Writers keep it true: a revocation drops ``e``
before its commit (so a Redis that cannot be written fails the revocation
instead of leaving it half done), then writes the new epoch (never lowering
it) or the token id after the commit, before the caller gets its answer.
A reader filling a miss never overwrites a writer (``HSETNX``). If Redis
cannot be read, the check falls back to the database.

Every revocation is published on the user's channel after the commit
(``realtime.auth_revoked``) so that open sockets of what was revoked close.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from redis.exceptions import RedisError
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from .. import realtime
from ..extensions import db, execute_with, get_redis, redis_key, take_piggyback
from ..models import RevokedToken, User, UserProfile, UserSettings, utcnow
from . import activity, addresses, email, inputs, passwords, preferences, profile_fields, sessions, transactions
from .errors import NotAnAddress, Unauthorized, UserExists, ValidationError, WrongPassword
from .mailformat import PlainHeaderMessage

USER_ID_MIN, USER_ID_MAX, DISPLAY_NAME_MAX = 3, 128, 64
USER_ID_RE = re.compile(rf"[A-Za-z0-9._-]{{{USER_ID_MIN},{USER_ID_MAX}}}", re.ASCII)  # fullmatch: "$" would let a final newline through
# The shape API.md's settings use; a single line of text (inputs.LINE) on top.
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_EMAIL = 254
MIN_PASSWORD = passwords.MIN_PASSWORD
_TOKEN_SALT = "api-token"
_BAD_TOKEN = "The bearer token is not valid or has expired."
_hash_password = passwords.hash_password  # kept for the demo loader and benchmarks


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


def validate_new_user(user_id: str, password: str, display_name: str | None, country_code: str | None,
                      email: str | None = None) -> None:
    """API.md rules: ``user_id`` 3–128 of ``[A-Za-z0-9._-]``, password ≥ 8
    characters and not a common one (``passwords.check_new_password``),
    display name 1–64, country an ISO 3166-1 alpha-2 code in capitals
    (``addresses.check_country_code``: pycountry), e-mail ``check_email``;
    every text one line (``inputs.LINE``).
    Raises ValidationError."""
    if not is_user_id(user_id):
        raise ValidationError("user_id must be 3 to 128 characters of letters, digits, '.', '_' or '-'.")
    passwords.check_new_password(password)
    if display_name is not None:
        inputs.check_text(display_name, name="display_name")
        if not 1 <= len(display_name.strip()) <= DISPLAY_NAME_MAX:
            raise ValidationError("display_name must be 1 to 64 characters.")
    addresses.check_country_code(country_code)
    check_email(email)


def register(
    *,
    user_id: str,
    password: str,
    display_name: str | None = None,
    email: str | None = None,
    country_code: str | None = None,
    is_admin: bool = False,
    require_address: bool = False,
) -> User:
    """Create a user with default settings and commit.

    Raises ValidationError (400) or UserExists (409); a concurrent
    registration of the same id loses at the primary key and gets 409 too.
    The password is hashed before the existence check, so both answers cost
    one hash. With ``require_address`` (the register page until the visitor
    confirms), a valid user id that is not a Bitcoin address
    (``addresses.is_bitcoin_address``) raises NotAnAddress, a
    ValidationError, before anything else is done; the API never sets it.
    """
    validate_new_user(user_id, password, display_name, country_code, email)
    if require_address and not addresses.is_bitcoin_address(user_id):
        raise NotAnAddress()
    password_hash = passwords.hash_password(password)
    if db.session.get(User, user_id) is not None:
        raise UserExists()
    name = (display_name or default_display_name(user_id)).strip()
    # A name spelt with look-alike letters of another miner's name is refused here too.
    key = profile_fields.check_not_imitating(name, user_id)
    user = User(
        user_id=user_id,
        display_name=name,
        email=email,
        country_code=country_code,
        password_hash=password_hash,
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
    db.session.add(UserProfile(user_id=user_id, name_key=key, visibility={}))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise UserExists() from None
    return user


def authenticate(*, user_id: str, password: str) -> User:
    """The user whose password matches. Raises Unauthorized (401). A missing
    user costs the same password check as a wrong password
    (``passwords.verify``), so timing does not reveal who is registered; a
    user id that cannot exist or a password that is not one line of text
    (no such password can have been set) is refused at once, which reveals
    nothing about any account."""
    if not is_user_id(user_id) or not isinstance(password, str) or inputs.text_problem(password):
        raise Unauthorized("Wrong user id or password.")
    user = db.session.get(User, user_id)
    if not passwords.verify(user.password_hash if user is not None else None, password):
        raise Unauthorized("Wrong user id or password.")
    assert user is not None  # verify() is False without a stored hash
    return user


# ---- revocation ---------------------------------------------------------------------


def _revoke_everything(user: User, *, keep_session_secret: str | None) -> int:
    """Bump the token epoch and revoke every session but the kept one, in
    the caller's transaction (the cached epoch follows at its commit).
    Returns how many sessions were revoked."""
    user_id = user.user_id
    epoch = db.session.scalar(
        update(User).where(User.user_id == user_id).values(auth_epoch=User.auth_epoch + 1)
        .returning(User.auth_epoch).execution_options(synchronize_session=False)
    )
    if epoch is not None:
        transactions.before_commit(lambda: _forget_epoch(user_id))
        transactions.after_commit(lambda: _raise_cached_epoch(user_id, epoch))
    keep_id = sessions.session_id(keep_session_secret) if keep_session_secret else None
    return sessions.revoke_all(user.user_id, keep_id=keep_id)


def _publish_revoked(user_id: str, **what: Any) -> None:
    try:
        realtime.auth_revoked(user_id, **what)
    except Exception:  # noqa: BLE001 - Redis down: sockets are refused on their next connect
        current_app.logger.exception("could not publish the revocation for %s", user_id)


def log_out_everywhere(user: User) -> int:
    """End every page session and every bearer token of ``user`` and commit;
    open sockets close (4001). Returns how many sessions were ended."""
    count = _revoke_everything(user, keep_session_secret=None)
    user_id = user.user_id
    transactions.after_commit(lambda: _publish_revoked(user_id, everything=True))
    db.session.commit()
    return count


def set_password(user: User, password: str, *, keep_session_secret: str | None = None) -> None:
    """Set a new password (``passwords.check_new_password`` rules) and end
    every bearer token and every page session except the one named by
    ``keep_session_secret`` (the browser the change was made from); commit.
    Raises ValidationError."""
    passwords.check_new_password(password)
    user.password_hash = passwords.hash_password(password)
    _revoke_everything(user, keep_session_secret=keep_session_secret)
    keep = sessions.session_id(keep_session_secret) if keep_session_secret else None
    user_id = user.user_id
    transactions.after_commit(lambda: _publish_revoked(user_id, everything=True, keep_session=keep))
    db.session.commit()


def change_password(user: User, *, current_password: str, new_password: str,
                    keep_session_secret: str | None = None) -> None:
    """``set_password`` after checking the current password. Raises
    WrongPassword (403) or ValidationError (400)."""
    if not passwords.verify(user.password_hash, current_password):
        raise WrongPassword()
    set_password(user, new_password, keep_session_secret=keep_session_secret)


def end_session(secret: str, user_id: str) -> None:
    """Log out one page session (by its cookie secret) and commit; its
    sockets close."""
    if sessions.revoke(secret):
        _publish_revoked(user_id, session=sessions.session_id(secret))


# ---- bearer tokens ---------------------------------------------------------------


_serializers: dict[str | bytes, URLSafeTimedSerializer] = {}


def _serializer() -> URLSafeTimedSerializer:
    """The token serializer for the app's SECRET_KEY, built once per key
    (it is stateless; every bearer request used to build one)."""
    secret = current_app.config["SECRET_KEY"]
    serializer = _serializers.get(secret)
    if serializer is None:
        if len(_serializers) > 16:  # test apps with many keys: stay small
            _serializers.clear()
        serializer = _serializers[secret] = URLSafeTimedSerializer(secret, salt=_TOKEN_SALT)
    return serializer


@dataclass
class TokenClaims:
    """A verified bearer token: whose it is, its id and when it expires.
    ``user`` loads the user row on first use (most JSON routes need only
    the id)."""

    user_id: str
    token_id: str
    expires_at: datetime

    @property
    def user(self) -> User:
        """The token's user (one primary-key load, then the session's
        identity map). Raises Unauthorized when the user no longer exists."""
        user = db.session.get(User, self.user_id)
        if user is None:
            raise Unauthorized(_BAD_TOKEN)
        return user


def issue_token(user: User) -> tuple[str, datetime]:
    """A bearer token for ``user`` and when it expires (aware UTC)."""
    token = _serializer().dumps({"u": user.user_id, "e": user.auth_epoch or 0, "j": secrets.token_urlsafe(12)})
    expires_at = utcnow() + timedelta(seconds=current_app.config["API_TOKEN_TTL"])
    return token, expires_at


def _auth_key(user_id: str) -> str:
    return redis_key("auth", user_id)


def _revocation_state_in_db(user_id: str) -> tuple[int | None, list[str]]:
    """(the user's epoch or None when there is no such user, the ids of
    their denylisted tokens that have not expired yet)."""
    epoch = db.session.scalar(select(User.auth_epoch).where(User.user_id == user_id))
    if epoch is None:
        return None, []
    revoked = db.session.scalars(
        select(RevokedToken.jti).where(RevokedToken.user_id == user_id, RevokedToken.expires_at > utcnow())
    ).all()
    return epoch, list(revoked)


def _fill_cache(user_id: str, field: str) -> tuple[str | None, str | None]:
    """Cache the user's revocation state from the database (a miss); returns
    what Redis then holds for ``e`` and ``field``. ``HSETNX``: an epoch a
    revocation wrote meanwhile wins over the one read here."""
    epoch, revoked = _revocation_state_in_db(user_id)
    if epoch is None:
        return None, None  # no such user: nothing to cache
    key = _auth_key(user_id)
    pipe = get_redis().pipeline(transaction=True)
    pipe.hsetnx(key, "e", epoch)
    if revoked:
        pipe.hset(key, mapping={f"r:{jti}": 1 for jti in revoked})
    pipe.expire(key, current_app.config["AUTH_CACHE_TTL"])
    pipe.hmget(key, ["e", field])
    cached, denied = pipe.execute()[-1]
    return cached, denied


def _forget_epoch(user_id: str) -> None:
    """Before a revocation commits: drop the cached epoch (raises RedisError,
    which fails the revocation, when Redis cannot be written)."""
    get_redis().hdel(_auth_key(user_id), "e")


def _raise_cached_epoch(user_id: str, epoch: int) -> None:
    """After a revocation committed: cache its epoch unless a higher one is
    there already (concurrent revocations commit in any order)."""
    key = _auth_key(user_id)

    def raise_epoch(pipe: Any) -> None:
        current = pipe.hget(key, "e")
        pipe.multi()
        if current is None or int(current) < epoch:
            pipe.hset(key, "e", epoch)
        pipe.expire(key, current_app.config["AUTH_CACHE_TTL"])

    try:
        get_redis().transaction(raise_epoch, key)
    except RedisError:  # the epoch was dropped before the commit: the next check reads the database
        current_app.logger.exception("could not cache the token epoch of %s", user_id)


def _deny_cached_token(user_id: str, token_id: str) -> None:
    """After a token's revocation committed: add it to the cached denylist."""
    key = _auth_key(user_id)
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.hset(key, f"r:{token_id}", 1)
        pipe.expire(key, current_app.config["AUTH_CACHE_TTL"])
        pipe.execute()
    except RedisError:  # the key was dropped before the commit: the next check reads the database
        current_app.logger.exception("could not cache the revoked token of %s", user_id)


def _token_ok(user_id: str, epoch: int, token_id: str) -> bool:
    """THE revocation check of a bearer token (keep it the only one): the
    user exists, its epoch is the token's and the token's id is not
    denylisted. One Redis round trip (``HMGET``), which also carries the
    reads the view asked for (``extensions.piggyback``); the database on a
    miss, and when Redis cannot be read."""
    field = f"r:{token_id}"
    try:
        reads = take_piggyback()
        if reads:
            pipe = get_redis().pipeline(transaction=False)
            pipe.hmget(_auth_key(user_id), ["e", field])
            cached, denied = execute_with(pipe, reads, user_id)
        else:
            cached, denied = get_redis().hmget(_auth_key(user_id), ["e", field])
        if cached is None:
            cached, denied = _fill_cache(user_id, field)
    except RedisError:
        current_app.logger.warning("token check from the database: Redis cannot be read")
        return db.session.scalar(
            select(User.auth_epoch).where(User.user_id == user_id, ~exists().where(RevokedToken.jti == token_id))
        ) == epoch
    return cached is not None and int(cached) == epoch and not denied


def verify_token(token: str) -> TokenClaims:
    """Check a bearer token. Raises Unauthorized (401) when it is malformed,
    forged, expired, or revoked (logout, log out everywhere, password
    change). Tokens from before revocation existed carry no id and are
    refused. Loads no user row (``TokenClaims.user`` does, when asked)."""
    ttl = current_app.config["API_TOKEN_TTL"]
    try:
        payload, issued = _serializer().loads(token, max_age=ttl, return_timestamp=True)
    except (BadSignature, SignatureExpired):
        raise Unauthorized(_BAD_TOKEN) from None
    if not isinstance(payload, dict):
        raise Unauthorized(_BAD_TOKEN)
    user_id, epoch, token_id = payload.get("u"), payload.get("e"), payload.get("j")
    if not (isinstance(user_id, str) and isinstance(epoch, int) and isinstance(token_id, str)):
        raise Unauthorized(_BAD_TOKEN)
    if not _token_ok(user_id, epoch, token_id):
        raise Unauthorized(_BAD_TOKEN)
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=UTC)
    return TokenClaims(user_id, token_id, issued + timedelta(seconds=ttl))


def user_from_token(token: str) -> User:
    """The user a valid bearer token belongs to (``verify_token``). Raises Unauthorized."""
    return verify_token(token).user


def revoke_token(claims: TokenClaims) -> None:
    """End one bearer token (denylist its id until it expires) and commit;
    sockets opened with it close. Idempotent."""
    user_id, token_id = claims.user_id, claims.token_id
    db.session.add(RevokedToken(jti=token_id, user_id=user_id, expires_at=claims.expires_at))
    transactions.before_commit(lambda: _forget_epoch(user_id))
    transactions.after_commit(lambda: _deny_cached_token(user_id, token_id))
    try:
        db.session.commit()
    except IntegrityError:  # revoked concurrently
        db.session.rollback()
        return
    _publish_revoked(user_id, token=token_id)


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
        previous = user.email
        user.email = check_email(email)
        address_changed(user, previous)
    after = get_settings(user) | {"privacy": privacy}
    after["notifications"] = {**notifications, "email": user.email}
    if after != before:
        _on_settings_changed(user, before, after)
    db.session.commit()
    return get_settings(user)


def address_changed(user: User, previous: str | None) -> None:
    """Once the caller's transaction commits, tell ``previous`` that the
    account's e-mail address changed (the usual account-takeover warning;
    ``PATCH /api/settings`` may set the address without a confirmation link,
    API.md v1). Nothing is sent when there was no previous address or it did
    not change; the new address is not named in full. A failed send is
    logged, never raised: the change is already committed."""
    if not previous or previous == user.email:
        return
    user_id, name, new = user.user_id, user.display_name, user.email

    def send() -> None:
        shown = _masked(new) if new else "no address"
        message = PlainHeaderMessage(
            subject="Your e-mail address was changed",
            recipients=[previous],
            body=(f"Hello {name},\n\nThe e-mail address of your Solo Mining account was changed to {shown}. "
                  "Notifications go there from now on.\n\nIf you did not do this, sign in and change your "
                  "password at once: that ends every other session.\n"),
        )
        try:
            email.send(message, f"email-changed-{user_id}-{secrets.token_hex(4)}")
        except Exception:  # noqa: BLE001 - the change stands; the warning is best effort
            current_app.logger.exception("could not tell %s's previous address of the change", user_id)

    transactions.after_commit(send)


def _masked(address: str) -> str:
    """``m***@example.org``: enough for the owner to recognise it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def _on_settings_changed(user: User, before: dict, after: dict) -> None:
    activity.record_settings_change(user.user_id, before=before, after=after)


def unsubscribe(token: str) -> tuple[User, str]:
    """Turn off e-mail for the token's user and category, or the mail toggle
    it names (``coopDigest``: the weekly coop digest) (idempotent),
    through the same settings service as ``PATCH /api/settings``. Raises
    ValidationError for a token that is not valid (``email.read_unsubscribe_token``)."""
    user, category = email.read_unsubscribe_token(token)
    if category in preferences.EMAIL_CATEGORIES:
        change: dict = {"categories": {category: {"email": False}}}
    else:  # a mail toggle (catalogue.MAIL_TOGGLES): the mail it governs stops
        change = {category: False}
    patch = preferences.SettingsPatch.model_validate({"notifications": change})
    update_settings(user, patch)
    return user, category
