"""Delivery tracking per channel and attempt (issue 11 §6): every e-mail and
push attempt is a ``delivery_attempts`` row (channel, status, attempt,
error, time). The miner reads "e-mailed 10:31" / "pushed" on a
notification; platform admins read failures per channel on ``/admin``.

The senders (``email.deliver``, ``summaries.send_due``, ``webpush.deliver``)
call ``record_attempt`` in the transaction that records the outcome.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..models import DeliveryAttempt, NotificationDelivery, utcnow
from ..vocabulary import DeliveryChannel, DeliveryStatus

ERROR_LIMIT = 1000


def record_attempt(delivery_id: int, channel: str, attempt: int, ok: bool, error: str | None = None,
                   *, at: datetime | None = None) -> None:
    """Add one attempt row (not committed: the caller's transaction records
    the delivery's outcome with it)."""
    db.session.add(DeliveryAttempt(delivery_id=delivery_id, channel=channel, attempt=attempt,
                                   status="sent" if ok else "failed",
                                   error=(error or None) and error[:ERROR_LIMIT], created_at=at or utcnow()))


def status_by_notification(notification_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """``{notification id: {channel: {"status", "sent_at"}}}`` for the given
    rows (one query), what the notifications page shows beside each row:
    ``{"email": {"status": "sent", "sent_at": datetime}}``."""
    if not notification_ids:
        return {}
    d = NotificationDelivery
    rows = db.session.execute(
        select(d.notification_id, d.channel, d.status, d.sent_at).where(d.notification_id.in_(notification_ids))
    ).all()
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for notification_id, channel, status, sent_at in rows:
        out.setdefault(notification_id, {})[channel] = {"status": status, "sent_at": sent_at}
    return out


def label(channel: str, info: dict[str, Any], tz) -> str | None:
    """The words beside a notification: "e-mailed 10:31", "pushed 10:31",
    "e-mail held for your summary", "e-mail failed" (times in ``tz``)."""
    verb = {"email": "e-mailed", "push": "pushed"}.get(channel, channel)
    noun = {"email": "e-mail", "push": "push"}.get(channel, channel)
    status = info["status"]
    if status == DeliveryStatus.SENT:
        at = info.get("sent_at")
        return f"{verb} {at.astimezone(tz):%H:%M}" if at else verb
    if status == DeliveryStatus.HELD:
        return f"{noun} held for your summary"
    if status == DeliveryStatus.FAILED:
        return f"{noun} failed"
    return f"{noun} pending"


def failures_by_channel(*, hours: int = 24, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """For ``/admin``: per channel, the failed and successful attempts in the
    last ``hours`` and the latest error: ``{"email": {"failed": 3, "sent":
    120, "last_error": "...", "last_failed_at": datetime}}`` (every channel
    present, zeros included)."""
    since = (now or utcnow()) - timedelta(hours=hours)
    a = DeliveryAttempt
    counts = db.session.execute(
        select(a.channel, a.status, func.count()).where(a.created_at >= since).group_by(a.channel, a.status)
    ).all()
    out: dict[str, dict[str, Any]] = {
        c.value: {"failed": 0, "sent": 0, "last_error": None, "last_failed_at": None} for c in DeliveryChannel
    }
    for channel, status, count in counts:
        out.setdefault(channel, {"failed": 0, "sent": 0, "last_error": None, "last_failed_at": None})[status] = count
    for channel in out:
        last = db.session.execute(
            select(a.error, a.created_at).where(a.channel == channel, a.status == "failed", a.created_at >= since)
            .order_by(a.created_at.desc()).limit(1)
        ).first()
        if last is not None:
            out[channel]["last_error"], out[channel]["last_failed_at"] = last
    return out
