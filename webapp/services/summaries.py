"""Summary mails: the mail held during quiet hours or over the hourly cap,
and the daily/weekly digests (API.md "Notification settings"; rules in
``services/pacing.py``).

``notify`` stores a mail held by quiet hours or a digest as an e-mail
delivery with status ``held``; the e-mail job (``email.deliver``) holds the
same way a mail over the hourly cap (``last_error`` "held: hourly_cap").
``send_due`` (the periodic job ``jobs.email.send_email_summaries``, every
``EMAIL_SUMMARY_INTERVAL`` s) finds the users with held mail, asks
``pacing.summary_due`` whether their summary is due, and sends ONE mail
(html + text, grouped by category, each item with its link and local time).

Sent once: the held rows are claimed with one conditional UPDATE (``held``
→ ``sending``, pointing at a new ``email_summaries`` row, leased); a second
job claims nothing. Success marks them ``sent``; a failure puts them back
to ``held`` (and records the attempt), so the next run retries, until
``EMAIL_MAX_ATTEMPTS``. Rows of a sender that died are reclaimed once their
lease expires.
"""
from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from datetime import datetime, timedelta

from flask import current_app, render_template
from sqlalchemy import and_, func, select, update

from ..extensions import db, execute_dml
from ..models import EmailSummary, Notification, NotificationDelivery, User, utcnow
from ..vocabulary import DeliveryChannel, DeliveryStatus
from . import catalogue, deliveries, email, hourly_cap, pacing, preferences
from .mailformat import PlainHeaderMessage, local_time

log = logging.getLogger(__name__)


def _held_rows():
    d = NotificationDelivery
    return and_(d.status == DeliveryStatus.HELD, d.channel == DeliveryChannel.EMAIL)


def reclaim(now: datetime) -> int:
    """Give back to ``held`` the rows of a summary whose sender stopped
    (lease expired), and mark that summary failed. Returns rows reclaimed."""
    d = NotificationDelivery
    stale = list(db.session.scalars(
        update(d).where(d.channel == DeliveryChannel.EMAIL, d.summary_id.is_not(None),
                        d.status == DeliveryStatus.SENDING, d.lease_expires_at < now)
        .values(status=DeliveryStatus.HELD, lease_expires_at=None, updated_at=now,
                last_error=email.LEASE_EXPIRED)
        .returning(d.summary_id).execution_options(synchronize_session=False)
    ))
    if stale:
        execute_dml(update(EmailSummary).where(EmailSummary.id.in_(set(stale)), EmailSummary.status == "sending")
                    .values(status="failed", error=email.LEASE_EXPIRED).execution_options(synchronize_session=False))
        execute_dml(update(d).where(d.summary_id.in_(set(stale)), d.status == DeliveryStatus.HELD)
                    .values(summary_id=None).execution_options(synchronize_session=False))
    db.session.commit()
    return len(stale)


def send_due(now: datetime | None = None) -> list[int]:
    """Send every summary that is due (see module doc). Returns the ids of
    the summaries sent; a user whose send failed is logged and retried by
    the next run. Commits."""
    now = now or utcnow()
    reclaim(now)
    n, d = Notification, NotificationDelivery
    waiting = db.session.execute(
        select(n.user_id, func.min(n.created_at)).join(d, d.notification_id == n.id)
        .where(_held_rows()).group_by(n.user_id).order_by(n.user_id)
    ).all()
    db.session.commit()
    sent = []
    for user_id, oldest in waiting:
        try:
            summary_id = send_for_user(user_id, oldest, now)
        except Exception:  # noqa: BLE001 - one user's SMTP failure must not stop the others
            log.exception("summary mail for %s failed", user_id)
            db.session.rollback()
            continue
        if summary_id is not None:
            sent.append(summary_id)
    return sent


def send_for_user(user_id: str, oldest_held_at: datetime, now: datetime) -> int | None:
    """Send the user's summary if ``pacing.summary_due`` says so; returns its
    id, or None (not due, or nothing left to claim). Raises the send error
    after putting the rows back to ``held``."""
    user = db.session.get(User, user_id)
    if user is None:
        return None
    prefs = preferences.user_notifications(user_id)
    if prefs.get("max_per_hour") is not None:
        # Counted under the user's e-mail cap lock, held until the claim below commits:
        # a single mail's job counting at the same time sees this summary (hourly_cap).
        hourly_cap.lock(user_id, DeliveryChannel.EMAIL)
    kind = pacing.summary_due(prefs, now, oldest_held_at=oldest_held_at,
                              mails_last_hour=hourly_cap.sent_last_hour(user_id, DeliveryChannel.EMAIL, now))
    if kind is None:
        db.session.commit()
        return None
    summary = EmailSummary(user_id=user_id, kind=kind, status="sending", created_at=now)
    db.session.add(summary)
    db.session.flush()
    d, n = NotificationDelivery, Notification
    lease = now + timedelta(seconds=current_app.config["EMAIL_LEASE_SECONDS"])
    claimed = db.session.execute(
        update(d).where(_held_rows(), d.notification_id.in_(select(n.id).where(n.user_id == user_id)))
        .values(status=DeliveryStatus.SENDING, summary_id=summary.id, lease_expires_at=lease,
                attempts=d.attempts + 1, updated_at=now)
        .returning(d.id, d.notification_id, d.attempts).execution_options(synchronize_session=False)
    ).all()
    if not claimed:  # another run took them
        db.session.delete(summary)
        db.session.commit()
        return None
    rows = list(db.session.scalars(select(n).where(n.id.in_([c[1] for c in claimed])).order_by(n.id)))
    keep = [r for r in rows if user.email and preferences.allows_email(prefs, r.category)]
    dropped = {r.id for r in rows} - {r.id for r in keep}
    if dropped:  # e-mail turned off (or the address removed) since: never sent, like a single mail
        execute_dml(update(d).where(d.summary_id == summary.id, d.notification_id.in_(dropped))
                    .values(status=DeliveryStatus.FAILED, summary_id=None, lease_expires_at=None,
                            last_error="skipped: e-mail turned off or no address at send time")
                    .execution_options(synchronize_session=False))
    if not keep:
        db.session.delete(summary)
        db.session.commit()
        return None
    summary.item_count = len(keep)
    summary.message_id = f"<summary-{summary.id}.{secrets.token_hex(4)}@{email.message_id_domain()}>"
    message = build_summary(user, keep, kind, prefs)
    message.msgId = summary.message_id
    summary_id = summary.id
    attempts = {c[0]: c[2] for c in claimed if c[1] not in dropped}
    db.session.commit()  # no connection held while talking to SMTP
    try:
        email.send(message, f"summary-{summary_id}")
    except Exception as exc:  # noqa: BLE001 - recorded, then re-raised for the log
        db.session.rollback()
        _record(summary_id, attempts, now, error=f"{type(exc).__name__}: {exc}")
        raise
    _record(summary_id, attempts, utcnow())
    return summary_id


def _record(summary_id: int, attempts: dict[int, int], now: datetime, error: str | None = None) -> None:
    """The outcome of one summary send: its rows ``sent``, or back to
    ``held`` (``failed`` once out of attempts); one attempt row each."""
    d = NotificationDelivery
    mine = and_(d.summary_id == summary_id, d.status == DeliveryStatus.SENDING)
    if error is None:
        execute_dml(update(d).where(mine).values(status=DeliveryStatus.SENT, sent_at=now, lease_expires_at=None,
                                                 last_error=None, updated_at=now)
                    .execution_options(synchronize_session=False))
        execute_dml(update(EmailSummary).where(EmailSummary.id == summary_id)
                    .values(status="sent", sent_at=now).execution_options(synchronize_session=False))
    else:
        limit = current_app.config["EMAIL_MAX_ATTEMPTS"]
        execute_dml(update(d).where(mine, d.attempts >= limit)
                    .values(status=DeliveryStatus.FAILED, lease_expires_at=None, updated_at=now,
                            last_error=f"gave up after {limit} attempts: {error}"[:1000])
                    .execution_options(synchronize_session=False))
        execute_dml(update(d).where(mine).values(status=DeliveryStatus.HELD, summary_id=None, lease_expires_at=None,
                                                 updated_at=now, last_error=error[:1000])
                    .execution_options(synchronize_session=False))
        execute_dml(update(EmailSummary).where(EmailSummary.id == summary_id)
                    .values(status="failed", error=error[:1000]).execution_options(synchronize_session=False))
    for delivery_id, attempt in attempts.items():
        deliveries.record_attempt(delivery_id, DeliveryChannel.EMAIL, attempt, error is None, error, at=now)
    db.session.commit()


def build_summary(user: User, rows: list[Notification], kind: str, prefs: dict) -> PlainHeaderMessage:
    """One html + text mail listing ``rows`` grouped by category (in the
    catalogue's order), each with its link and its time in the user's zone."""
    tz = preferences.zone(prefs.get("timezone"))
    groups: OrderedDict[str, list[dict]] = OrderedDict()
    for category in catalogue.CATEGORIES:
        items = [r for r in rows if r.category == category.name]
        if items:
            groups[category.label] = [{
                "title": r.title, "body": r.body, "link": email.absolute_link(r.link),
                "at": local_time((r.data or {}).get("at") if isinstance(r.data, dict) else None, tz)
                or local_time(r.created_at.isoformat(), tz),
            } for r in items]
    first_category = rows[0].category
    unsubscribe_url, headers = email.unsubscribe_headers(user, first_category)
    digest = prefs.get("digest", "off")
    if kind == "digest":
        subject = f"Your {digest} digest: {len(rows)} notification{'s' if len(rows) != 1 else ''}"
    else:
        subject = f"While notifications were paused: {len(rows)} notification{'s' if len(rows) != 1 else ''}"
    context = {"subject": subject, "groups": groups, "user": user, "kind": kind, "digest": digest,
               "unsubscribe_url": unsubscribe_url, "settings_url": email.absolute_link("/settings"),
               "notifications_url": email.absolute_link("/notifications"), "category": first_category}
    return PlainHeaderMessage(
        subject=subject, recipients=[user.email or ""],
        body=render_template("emails/summary.txt", **context),
        html=render_template("emails/summary.html", **context),
        extra_headers=headers,
    )
