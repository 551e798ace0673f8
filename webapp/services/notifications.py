"""The one notification dispatcher.

``notify`` validates, applies the user's preferences (a disabled category or
subtype toggle stores nothing), stores the row, and after the transaction
commits publishes it to Redis for the sockets and enqueues e-mail when the
user opted in. Callable from any process: web, RQ worker, ingest.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import NOTIFICATION_CATEGORIES, Notification, User, UserSettings
from . import preferences
from .errors import ValidationError

MAX_TITLE = 200
_PENDING_KEY = "pending_notifications"


def notify(
    user_id: str,
    category: str,
    subtype: str,
    title: str,
    body: str = "",
    link: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    commit: bool = True,
) -> Notification | None:
    """Store a notification for ``user_id`` unless their preferences say no.

    Returns the row, or None when the category or subtype is disabled or the
    user does not exist. With ``commit=False`` the caller's transaction
    commits it (ingest does, to keep events and notifications atomic); the
    live push and the e-mail job run only after that commit.
    Raises ValidationError for an unknown category or a bad title.
    """
    if category not in NOTIFICATION_CATEGORIES:
        raise ValidationError(f"Unknown notification category {category!r}.")
    if not subtype or len(subtype) > 64:
        raise ValidationError("subtype must be 1 to 64 characters.")
    if not title or len(title) > MAX_TITLE:
        raise ValidationError(f"title must be 1 to {MAX_TITLE} characters.")
    user = db.session.get(User, user_id)
    if user is None:
        return None
    settings = db.session.get(UserSettings, user_id)
    prefs = preferences.merged_notifications(settings.notifications if settings else None)
    if not preferences.allows_in_app(prefs, category, subtype):
        return None
    row = Notification(
        user_id=user_id, category=category, subtype=subtype, title=title, body=body or "", link=link, data=data
    )
    db.session.add(row)
    db.session.flush()  # the id is the socket catch-up cursor
    wants_email = bool(user.email) and preferences.allows_email(prefs, category)
    db.session.info.setdefault(_PENDING_KEY, []).append((row.id, user_id, wants_email))
    if commit:
        db.session.commit()
    return row


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    if pending:
        dispatch_committed(pending)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def dispatch_committed(pending: list[tuple[int, str, bool]]) -> None:
    """Push committed notifications to sockets and enqueue their e-mail.

    Failures here never undo the stored row: the row is the record, a
    missed push is recovered by the socket's ``since`` catch-up.
    """
    from .. import realtime

    for notification_id, user_id, wants_email in pending:
        try:
            realtime.notification_created(user_id, notification_id)
        except Exception:  # noqa: BLE001 - Redis down must not lose the row
            current_app.logger.exception("push of notification %s failed", notification_id)
        if wants_email:
            try:
                from jobs import email as email_jobs

                email_jobs.enqueue_email(notification_id)
            except Exception:  # noqa: BLE001
                current_app.logger.exception("e-mail enqueue of notification %s failed", notification_id)


def init_app(app) -> None:
    """Hook the post-commit dispatch onto the app's session class."""
    if not event.contains(db.session, "after_commit", _after_commit):
        event.listen(db.session, "after_commit", _after_commit)
        event.listen(db.session, "after_soft_rollback", lambda s, t: _after_rollback(s))
