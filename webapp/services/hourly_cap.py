"""The hourly cap (``max_per_hour``, API.md "Notification settings"),
decided where a mail or push is sent, never in ``notify``.

``notify`` writes the e-mail and push deliveries ``pending`` without
counting anything (quiet hours and digests are decided from the preferences
it already read). The senders apply the cap when they first claim a
delivery: ``email.deliver`` holds a mail over the cap for the next summary,
``webpush.deliver`` drops a push over the cap (as before, an over-cap push
leaves no delivery row; the notification is in the app), and
``summaries.send_for_user`` waits while the user is at the cap. A delivery
already claimed once (a retry) was admitted and is not counted against the
cap again.

Race safety: each sender takes ``lock`` (a PostgreSQL transaction-level
advisory lock per user and channel) before ``sent_last_hour`` counts, and
keeps it until the transaction that claims or holds the delivery commits.
Two senders of one user and channel therefore count one after the other, and
the second sees the first one's claim (read committed: each statement reads
what committed before it started). Remaining imprecisions, documented rather
than locked away:

- the hour is the notifications' ``created_at`` (what the index serves), so
  a mail sent late for an older notification (a sweep re-enqueue after Redis
  was down) does not count in the hour it went out;
- the preferences are read before the lock, so a cap turned on while
  another sender of that user is mid-claim can be exceeded by that one
  delivery;
- on SQLite (the embedded default, jobs run inline) there is no advisory
  lock; its single writer serialises the claims but not the counts.
"""
from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select

from ..extensions import db
from ..models import EmailSummary, Notification, NotificationDelivery, UserSettings
from ..vocabulary import DeliveryChannel, DeliveryStatus
from . import pacing, preferences

HOUR = timedelta(hours=1)
# pg_advisory_xact_lock(key1, key2): key1 names the lock's use, key2 is hashtext(user_id)
# (a hash collision only makes two users' senders wait for each other a moment).
_LOCK_SPACE = {DeliveryChannel.EMAIL: 110_001, DeliveryChannel.PUSH: 110_002}


def sent_last_hour(user_id: str, channel: str, now: datetime) -> int:
    """How many mails (or pushes) the user was sent, is being sent or will
    be sent again (a failed attempt waiting for its retry) for the
    notifications of the hour before ``now``: single deliveries of that
    channel that a sender claimed at least once, plus summary mails for
    e-mail. ``pending`` rows never claimed (not yet decided), held and
    failed ones do not count."""
    params = {"user_id": user_id, "since": now - HOUR, "channel": str(channel)}
    statement = _count_email() if channel == DeliveryChannel.EMAIL else _count_singles()
    return db.session.scalar(statement, params) or 0


# Built once with bound parameters: building the statement per call cost
# more than running it.
@functools.cache
def _singles_count() -> Any:
    n, d = Notification, NotificationDelivery
    admitted = or_(d.status.in_((DeliveryStatus.SENDING, DeliveryStatus.SENT)),
                   and_(d.status == DeliveryStatus.PENDING, d.attempts > 0))
    return (select(func.count()).select_from(d).join(n, n.id == d.notification_id)
            .where(n.user_id == bindparam("user_id"), n.created_at >= bindparam("since"),
                   d.channel == bindparam("channel"), admitted, d.summary_id.is_(None))
            .scalar_subquery())


@functools.cache
def _count_singles() -> Any:
    return select(_singles_count())


@functools.cache
def _count_email() -> Any:
    mails = (select(func.count()).select_from(EmailSummary)
             .where(EmailSummary.user_id == bindparam("user_id"), EmailSummary.created_at >= bindparam("since"),
                    EmailSummary.status != "failed")
             .scalar_subquery())
    return select(_singles_count() + mails)


def lock(user_id: str, channel: str) -> None:
    """Wait for, then hold until this transaction ends, the user's cap lock
    for ``channel`` (PostgreSQL ``pg_advisory_xact_lock``; nothing on SQLite).
    Take it before ``sent_last_hour`` and commit the claim under it."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.execute(select(func.pg_advisory_xact_lock(literal(_LOCK_SPACE[DeliveryChannel(channel)]),
                                                         func.hashtext(user_id))))


@functools.cache
def _owner_statement() -> Any:
    return (select(Notification.user_id, UserSettings.notifications)
            .outerjoin(UserSettings, UserSettings.user_id == Notification.user_id)
            .where(Notification.id == bindparam("notification_id")))


def over_cap(notification_id: int, channel: str, now: datetime) -> bool:
    """Whether the user of ``notification_id`` has reached their hourly cap
    for ``channel`` (False without a cap, or for a notification gone).
    With a cap set it takes ``lock`` first, so the caller must claim or hold
    the delivery in this same transaction and commit. One statement without
    a cap (the owner's preferences), three with one."""
    owner = db.session.execute(_owner_statement(), {"notification_id": notification_id}).first()
    if owner is None:
        return False
    user_id, stored = owner
    prefs = preferences.merged_notifications(stored)
    if prefs.get("max_per_hour") is None:
        return False
    lock(user_id, channel)
    return pacing.cap_reached(prefs, sent_last_hour(user_id, channel, now))
