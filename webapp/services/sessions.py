"""Server-side login sessions of the pages (docs/API.md "Sessions").

Every page login opens a ``user_sessions`` row. The browser's session cookie
and its remember cookie carry only a random secret naming that row
(Flask-Login's "alternative tokens": ``User.get_id()`` returns the secret);
the row stores the secret's SHA-256. A request is logged in only while the
row is live:

- not revoked (logout ends one row, "log out everywhere" and a password
  change end all of the user's rows, see ``accounts``),
- seen within ``AUTH_SESSION_IDLE_DAYS`` and
- opened within ``AUTH_SESSION_MAX_DAYS`` (the remember cookie's lifetime).

So a copied session or remember cookie stops working the moment its session
is revoked, on every process, with no shared memory.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select, update

from ..extensions import db, execute_dml
from ..models import RevokedToken, User, UserSession, utcnow

TOUCH_INTERVAL = timedelta(minutes=5)  # last_seen_at is written at most this often per session
MAX_USER_AGENT = 255


def session_id(secret: str) -> str:
    """The stored id of a session secret: its SHA-256, hex (64 characters)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _idle_limit() -> timedelta:
    return timedelta(days=current_app.config["AUTH_SESSION_IDLE_DAYS"])


def _max_age() -> timedelta:
    return timedelta(days=current_app.config["AUTH_SESSION_MAX_DAYS"])


def open_session(user: User, *, user_agent: str | None = None) -> str:
    """Open a session for ``user`` and commit. Returns the secret for the
    cookies (43 URL-safe characters, 256 bits) and binds it to ``user``
    (``user.auth_session_secret``) so that ``login_user`` stores it."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(id=session_id(secret), user_id=user.user_id, created_at=now, last_seen_at=now,
                               user_agent=(user_agent or "")[:MAX_USER_AGENT] or None))
    db.session.commit()
    user.auth_session_secret = secret
    return secret


def load(secret: str) -> User | None:
    """The user of a live session named by ``secret`` (from a cookie), bound
    to it; None for an unknown, revoked, idle or expired one. Refreshes
    ``last_seen_at`` at most every TOUCH_INTERVAL (committed at once, and
    only when the DB session holds no other pending change)."""
    if not isinstance(secret, str) or not 20 <= len(secret) <= 128:
        return None  # e.g. a cookie from before server-side sessions (a bare user id)
    now = utcnow()
    row = db.session.execute(
        select(UserSession, User).join(User, User.user_id == UserSession.user_id)
        .where(UserSession.id == session_id(secret), UserSession.revoked_at.is_(None),
               UserSession.last_seen_at > now - _idle_limit(), UserSession.created_at > now - _max_age())
    ).first()
    if row is None:
        return None
    record, user = row
    if now - record.last_seen_at > TOUCH_INTERVAL and not (db.session.new or db.session.dirty or db.session.deleted):
        db.session.execute(
            update(UserSession).where(UserSession.id == record.id, UserSession.last_seen_at < now - TOUCH_INTERVAL)
            .values(last_seen_at=now).execution_options(synchronize_session=False)
        )
        db.session.commit()
    user.auth_session_secret = secret
    return user


def revoke(secret: str) -> bool:
    """Revoke the session named by ``secret`` and commit. Returns whether a
    live session was revoked (idempotent)."""
    revoked = execute_dml(
        update(UserSession).where(UserSession.id == session_id(secret), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return revoked > 0


def revoke_all(user_id: str, *, keep_id: str | None = None) -> int:
    """Revoke every live session of ``user_id`` except ``keep_id`` (a stored
    id). Does not commit (the caller's transaction also bumps the token
    epoch). Returns how many were revoked."""
    query = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep_id is not None:
        query = query.where(UserSession.id != keep_id)
    return execute_dml(query.values(revoked_at=utcnow()).execution_options(synchronize_session=False))


@dataclass
class SessionInfo:
    """One live session as the settings page lists it."""

    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str | None
    current: bool


def live_sessions(user_id: str, *, current_secret: str | None = None) -> list[SessionInfo]:
    """The user's live sessions, most recently seen first; ``current`` marks
    the one named by ``current_secret``."""
    now = utcnow()
    current = session_id(current_secret) if current_secret else None
    rows = db.session.scalars(
        select(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
                                  UserSession.last_seen_at > now - _idle_limit(),
                                  UserSession.created_at > now - _max_age())
        .order_by(UserSession.last_seen_at.desc()).limit(100)
    )
    return [SessionInfo(r.id, r.created_at, r.last_seen_at, r.user_agent, r.id == current) for r in rows]


def purge_dead(*, revoked_grace: timedelta = timedelta(days=7)) -> int:
    """Delete sessions revoked more than ``revoked_grace`` ago, idle or
    expired ones, and denylisted bearer tokens past their expiry; commit.
    Returns how many rows went."""
    now = utcnow()
    sessions = execute_dml(
        delete(UserSession).where(or_(UserSession.revoked_at < now - revoked_grace,
                                      UserSession.last_seen_at < now - _idle_limit(),
                                      UserSession.created_at < now - _max_age()))
    )
    tokens = execute_dml(delete(RevokedToken).where(RevokedToken.expires_at < now))
    db.session.commit()
    return sessions + tokens
