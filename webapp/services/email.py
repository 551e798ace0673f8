"""E-mail delivery of notifications, and one-click unsubscribe.

Rules (DESIGN.md, issue 4): only ``mining``, ``competition`` and ``system``
are e-mailed, only when the user opted in for that category and has an
address. ``notify`` adds a ``notification_deliveries`` row (channel
``email``, status ``pending``) in the notification's transaction and, after
the commit, enqueues ``jobs.email.send_notification_email``.

``deliver`` claims the row with one conditional UPDATE (``pending`` or
``failed`` → ``sending``, attempts + 1), so a job retried after a successful
send finds nothing to claim and sends nothing; a row stuck in ``sending``
(a worker died mid-send) becomes claimable again after
``SENDING_STALE_AFTER``. A failed send records ``failed`` with the error and
re-raises so RQ retries with back-off (``Retry(max=3, ...)``: four attempts
in all).

Each mail carries ``List-Unsubscribe: <https://…/unsubscribe/<token>>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058). The token
is signed (itsdangerous, salt ``unsubscribe``) and names the user and the
category; it does not expire, as mail clients keep such links for years.
With no ``MAIL_SERVER`` (the embedded default) mail is written as ``.eml``
files to ``MAIL_OUTBOX_DIR`` instead of sent.
"""
from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app, render_template
from flask_mail import Message
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import and_, or_, update

from ..extensions import db, mail
from ..models import Notification, NotificationDelivery, User, utcnow
from . import preferences
from .errors import ValidationError

SENDING_STALE_AFTER = timedelta(minutes=10)
_UNSUBSCRIBE_SALT = "unsubscribe"


# ---- unsubscribe ---------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_UNSUBSCRIBE_SALT)


def unsubscribe_token(user_id: str, category: str) -> str:
    """A signed token that turns off e-mail for one user and category."""
    return _serializer().dumps({"u": user_id, "c": category})


def read_unsubscribe_token(token: str) -> tuple[User, str]:
    """The (user, category) a token names. Raises ValidationError (400) when
    it is forged, malformed or names a user who no longer exists."""
    try:
        payload = _serializer().loads(token)
    except BadSignature:
        raise ValidationError("This unsubscribe link is not valid.") from None
    user = db.session.get(User, payload.get("u")) if isinstance(payload, dict) else None
    category = payload.get("c") if isinstance(payload, dict) else None
    if user is None or category not in preferences.EMAIL_CATEGORIES:
        raise ValidationError("This unsubscribe link is not valid.")
    return user, category


def unsubscribe(token: str) -> tuple[User, str]:
    """Turn off e-mail for the token's user and category (idempotent),
    through the same settings service as ``PATCH /api/settings``."""
    from . import accounts

    user, category = read_unsubscribe_token(token)
    patch = preferences.SettingsPatch.model_validate({"notifications": {"categories": {category: {"email": False}}}})
    accounts.update_settings(user, patch)
    return user, category


# ---- building a mail ---------------------------------------------------------------


def external_url(endpoint: str, **values) -> str:
    """An absolute URL under PUBLIC_BASE_URL, buildable in jobs (no request)."""
    base = urlsplit(current_app.config["PUBLIC_BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)


def absolute_link(link: str | None) -> str | None:
    """A notification's link made absolute for a mail (site paths get PUBLIC_BASE_URL)."""
    if not link:
        return None
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + link if link.startswith("/") else link


def build_message(notification: Notification, user: User) -> Message:
    """The .txt + .html mail of one notification with the unsubscribe headers."""
    unsubscribe_url = external_url(
        "pages_notifications.unsubscribe", token=unsubscribe_token(user.user_id, notification.category)
    )
    context = {
        "n": notification,
        "user": user,
        "link": absolute_link(notification.link),
        "unsubscribe_url": unsubscribe_url,
        "settings_url": absolute_link("/settings"),
    }
    subject = re.sub(r"\s+", " ", notification.title).strip()  # no header injection via newlines
    return Message(
        subject=subject,
        recipients=[user.email],
        body=render_template("emails/notification.txt", **context),
        html=render_template("emails/notification.html", **context),
        extra_headers={
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def send(message: Message, name: str) -> None:
    """Send through Flask-Mail, or write ``<name>.eml`` to MAIL_OUTBOX_DIR
    when no MAIL_SERVER is configured. Raises what SMTP raises."""
    if not current_app.config.get("MAIL_SERVER"):
        outbox = Path(current_app.config["MAIL_OUTBOX_DIR"])
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / f"{name}.eml").write_bytes(message.as_bytes())
        return
    mail.send(message)


# ---- delivery ----------------------------------------------------------------------


def _claim(notification_id: int) -> int | None:
    """Claim the e-mail delivery; the new attempt number, or None."""
    now = utcnow()
    d = NotificationDelivery
    row = db.session.execute(
        update(d)
        .where(
            d.notification_id == notification_id,
            d.channel == "email",
            or_(d.status.in_(("pending", "failed")),
                and_(d.status == "sending", d.updated_at < now - SENDING_STALE_AFTER)),
        )
        .values(status="sending", attempts=d.attempts + 1, updated_at=now)
        .returning(d.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    return None if row is None else row[0]


def _finish(notification_id: int, status: str, error: str | None) -> None:
    now = utcnow()
    d = NotificationDelivery
    db.session.execute(
        update(d)
        .where(d.notification_id == notification_id, d.channel == "email")
        .values(status=status, last_error=error, updated_at=now, sent_at=now if status == "sent" else None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def deliver(notification_id: int) -> str:
    """Send one notification's e-mail at most once.

    Returns ``"sent"``, ``"nothing to send"`` (already sent, being sent, or
    no delivery row) or ``"skipped"`` (the user turned e-mail off or removed
    the address since; recorded as ``failed`` with the reason, not retried).
    Raises the send error after recording it, so RQ retries.
    """
    attempt = _claim(notification_id)
    if attempt is None:
        return "nothing to send"
    notification = db.session.get(Notification, notification_id)
    user = db.session.get(User, notification.user_id) if notification else None
    if notification is None or user is None:
        return "nothing to send"  # deleted meanwhile; the delivery row went with it
    from .notifications import user_preferences

    if not user.email or not preferences.allows_email(user_preferences(user.user_id), notification.category):
        _finish(notification_id, "failed", "skipped: e-mail turned off or no address at send time")
        return "skipped"
    message = build_message(notification, user)
    db.session.commit()  # no DB connection held while talking to SMTP
    try:
        send(message, f"notification-{notification_id}-{int(time.time() * 1000)}")
    except Exception as exc:  # noqa: BLE001 - any SMTP or socket error is retried
        db.session.rollback()
        _finish(notification_id, "failed", f"{type(exc).__name__}: {exc}"[:1000])
        raise
    _finish(notification_id, "sent", None)
    return "sent"
