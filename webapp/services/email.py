"""E-mail delivery of notifications, and one-click unsubscribe.

Rules (DESIGN.md, issue 4): only ``mining``, ``competition`` and ``system``
are e-mailed, only when the user opted in for that category and has an
address. ``notify`` adds a ``notification_deliveries`` row (channel
``email``, status ``pending``) in the notification's transaction and, after
the commit, enqueues ``jobs.email.send_notification_email`` by name
(``enqueue_delivery``).

Delivery is at-least-once with a stable ``Message-ID`` (docs/NOTIFICATIONS.md):

- The hourly cap (``max_per_hour``) is decided here, not in ``notify``: the
  first claim counts the user's mails of the last hour under the claim's
  transaction (``services/hourly_cap.py``) and, at the cap, turns the row
  ``held`` for the next summary instead of sending it.
- ``deliver`` claims the row with one conditional UPDATE — ``pending``, or
  ``sending`` whose lease has expired, with attempts left → ``sending``,
  attempts + 1, leased for ``EMAIL_LEASE_SECONDS``. Whoever holds an
  unexpired lease is the only sender; a job that finds nothing to claim
  sends nothing.
- The first claim fixes the row's ``message_id``; every attempt sends it, so
  a resend after an unknown outcome (the sender died after the server may
  have accepted) is recognisable as the same mail.
- A failed attempt puts the row back to ``pending`` with the error and
  re-raises so RQ retries with back-off; the attempt that reaches
  ``EMAIL_MAX_ATTEMPTS`` ends it ``failed`` with the reason.
- ``sweep`` (a periodic job) reclaims expired leases and ``pending`` rows
  that no job has claimed in time, and re-enqueues them.

Each mail carries ``List-Unsubscribe: <https://…/unsubscribe/<token>>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058). The token
is signed (itsdangerous, salt ``unsubscribe``) and names the user and the
category; it does not expire, as mail clients keep such links for years.
With no ``MAIL_SERVER`` (the embedded default) mail is written as ``.eml``
files to ``MAIL_OUTBOX_DIR`` instead of sent.
"""
from __future__ import annotations

import logging
import re
import secrets
import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import flask_mail
from flask import current_app, render_template
from flask_mail import Message
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Template
from redis.client import Pipeline
from rq import Retry
from sqlalchemy import and_, case, func, literal, or_, update

from ..extensions import db, execute_dml
from ..models import Notification, NotificationDelivery, User, utcnow
from ..vocabulary import DeliveryChannel, DeliveryStatus
from . import catalogue, deliveries, hourly_cap, jobqueue, pacing, preferences
from .errors import ValidationError
from .mailformat import PlainHeaderMessage, local_time

log = logging.getLogger(__name__)
QUEUE = "email"
DELIVER_JOB = "jobs.email.send_notification_email"
MAX_RETRIES = 3
# Seconds; RQ stops a job after this. MAIL_TIMEOUT bounds each SMTP step, and
# EMAIL_LEASE_SECONDS must stay well above both (a live sender is never reclaimed).
JOB_TIMEOUT = 60
_UNSUBSCRIBE_SALT = "unsubscribe"
HELD_BY_CAP = "held"  # what deliver() returns for a mail held by the hourly cap
LEASE_EXPIRED = "lease expired: the sender stopped mid-send; whether the server accepted the mail is unknown"


def enqueue_delivery(notification_id: int, pipeline: Pipeline | None = None) -> None:
    """Enqueue the job that delivers one notification's e-mail (queue
    ``email``, ``MAX_RETRIES`` retries after ``EMAIL_RETRY_INTERVALS``
    seconds), after the notification's commit; in ``pipeline`` when given
    (``jobqueue.batch``). Raises ``redis.RedisError`` when Redis is down
    (the delivery row stays pending; the sweep retries)."""
    jobqueue.enqueue(
        DELIVER_JOB, notification_id, queue=QUEUE, pipeline=pipeline,
        retry=Retry(max=MAX_RETRIES, interval=list(current_app.config["EMAIL_RETRY_INTERVALS"])),
        job_timeout=JOB_TIMEOUT, description=f"e-mail notification {notification_id}",
    )


# ---- unsubscribe ---------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_UNSUBSCRIBE_SALT)


def unsubscribe_token(user_id: str, category: str) -> str:
    """A signed token that turns off e-mail for one user and category, or
    for one mail toggle (``catalogue.MAIL_TOGGLES``, e.g. ``coopDigest``)."""
    return _serializer().dumps({"u": user_id, "c": category})


def read_unsubscribe_token(token: str) -> tuple[User, str]:
    """The (user, category or mail toggle) a token names. Raises
    ValidationError (400) when it is forged, malformed or names a user who
    no longer exists."""
    try:
        payload = _serializer().loads(token)
    except BadSignature:
        raise ValidationError("This unsubscribe link is not valid.") from None
    user = db.session.get(User, payload.get("u")) if isinstance(payload, dict) else None
    category = payload.get("c") if isinstance(payload, dict) else None
    if user is None or (category not in preferences.EMAIL_CATEGORIES and category not in catalogue.MAIL_TOGGLES):
        raise ValidationError("This unsubscribe link is not valid.")
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


def unsubscribe_headers(user: User, category: str) -> tuple[str, dict[str, str]]:
    """``(unsubscribe url, headers)``: RFC 8058 one-click headers for the category."""
    url = external_url("pages_notifications.unsubscribe", token=unsubscribe_token(user.user_id, category))
    return url, {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _templates(own: list[str], fallback: str) -> list[str | Template]:
    """The kind's own template first, then the generic one (Jinja picks the first that exists)."""
    suffix = fallback.rsplit(".", 1)[1]
    return [*(f"{name}.{suffix}" for name in own), fallback]


def build_message(notification: Notification, user: User) -> Message:
    """The .txt + .html mail of one notification with the unsubscribe headers.

    The templates are the kind's own (``emails/kinds/<subtype>.*`` for the
    catalogue's kinds), else ``emails/notification.*``; the event's time
    (``data.at``) is shown in the user's zone. Raises ValueError for a user
    without an e-mail address (never claimed)."""
    if not user.email:
        raise ValueError(f"user {user.user_id} has no e-mail address")
    unsubscribe_url, headers = unsubscribe_headers(user, notification.category)
    tz = preferences.user_timezone(user.user_id)
    data = notification.data if isinstance(notification.data, dict) else {}
    context = {
        "n": notification,
        "user": user,
        "link": absolute_link(notification.link),
        "unsubscribe_url": unsubscribe_url,
        "settings_url": absolute_link("/settings"),
        "at_local": local_time(data.get("at"), tz),
    }
    own = [f"emails/kinds/{notification.subtype}"] if notification.subtype in catalogue.KIND else []
    subject = re.sub(r"\s+", " ", notification.title).strip()  # no header injection via newlines
    return PlainHeaderMessage(
        subject=subject,
        recipients=[user.email],
        body=render_template(_templates(own, "emails/notification.txt"), **context),
        html=render_template(_templates(own, "emails/notification.html"), **context),
        extra_headers=headers,
    )


class _Connection(flask_mail.Connection):
    """Flask-Mail's SMTP connection with a socket timeout (``MAIL_TIMEOUT``;
    smtplib waits for ever by default), and a QUIT whose failure after the
    server accepted the message does not turn a sent mail into an error."""

    def configure_host(self) -> smtplib.SMTP:
        smtp_class = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = smtp_class(self.mail.server, self.mail.port, timeout=current_app.config["MAIL_TIMEOUT"])
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host

    def __exit__(self, exc_type, exc_value, tb) -> None:
        if self.host is None:
            return
        try:
            self.host.quit()
        except (smtplib.SMTPException, OSError):
            self.host.close()


def send(message: Message, name: str) -> None:
    """Send through SMTP (``MAIL_SERVER``, with ``MAIL_TIMEOUT``), or write
    ``<name>.eml`` to MAIL_OUTBOX_DIR when no MAIL_SERVER is configured.
    Raises what smtplib raises (``SMTPException``, ``OSError``, timeouts)."""
    if not current_app.config.get("MAIL_SERVER"):
        outbox = Path(current_app.config["MAIL_OUTBOX_DIR"])
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / f"{name}.eml").write_bytes(message.as_bytes())
        return
    with _Connection(current_app.extensions["mail"]) as connection:
        connection.send(message)


# ---- delivery ----------------------------------------------------------------------


def message_id_domain() -> str:
    """The right-hand side of our Message-IDs: the domain of
    MAIL_DEFAULT_SENDER, else (none, or ``localhost``) PUBLIC_BASE_URL's host."""
    sender = current_app.config.get("MAIL_DEFAULT_SENDER") or ""
    if isinstance(sender, tuple):
        sender = sender[1]
    domain = parseaddr(sender)[1].rpartition("@")[2].strip().lower()
    if not domain or domain == "localhost":
        domain = urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "localhost"
    return domain


def new_message_id(notification_id: int, delivery_id: int) -> str:
    """``<notification-N.D.R@domain>`` (RFC 5322 §3.6.4): N and D name the
    notification and delivery for people reading logs; R, 8 random hex
    digits, keeps it unique across deployments whose ids overlap (two
    databases, one sender domain). Stored at the first claim, so it never
    changes between attempts."""
    return f"<notification-{notification_id}.{delivery_id}.{secrets.token_hex(4)}@{message_id_domain()}>"


@dataclass(frozen=True)
class Claim:
    """A delivery leased to this sender: its row id, this attempt's number
    (1-based, counting every claim), and the Message-ID to send."""

    delivery_id: int
    notification_id: int
    attempt: int
    message_id: str


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["EMAIL_LEASE_SECONDS"])


def _max_attempts() -> int:
    return current_app.config["EMAIL_MAX_ATTEMPTS"]


def _requeue_after() -> timedelta:
    return timedelta(seconds=current_app.config["EMAIL_REQUEUE_AFTER"])


def retry_wait(attempt: int) -> timedelta:
    """The back-off RQ waits after failed attempt ``attempt`` (1-based):
    EMAIL_RETRY_INTERVALS, its last value repeated."""
    intervals = current_app.config["EMAIL_RETRY_INTERVALS"] or [0]
    return timedelta(seconds=intervals[min(attempt, len(intervals)) - 1])


def _claim(notification_id: int) -> Claim | str | None:
    """Lease the e-mail delivery to this sender; None when there is nothing
    to claim (sent, failed, leased to a live sender, out of attempts, or
    no row), ``HELD_BY_CAP`` when its first claim finds the user at their
    hourly cap: the row is then ``held`` (``last_error`` "held: hourly_cap")
    and goes out in the next summary (``summaries.send_due``). The count
    and the claim share one transaction under the user's cap lock
    (``hourly_cap.over_cap``). Commits."""
    now = utcnow()
    d = NotificationDelivery
    if hourly_cap.over_cap(notification_id, DeliveryChannel.EMAIL, now):
        # Only a first claim is held: a retry was admitted (and counted) by its first attempt.
        held = db.session.execute(
            update(d)
            .where(d.notification_id == notification_id, d.channel == DeliveryChannel.EMAIL,
                   d.status == DeliveryStatus.PENDING, d.attempts == 0)
            .values(status=DeliveryStatus.HELD, last_error=f"held: {pacing.HOLD_CAP}", lease_expires_at=None,
                    updated_at=now)
            .returning(d.id)
            .execution_options(synchronize_session=False)
        ).first()
        if held is not None:
            db.session.commit()
            return HELD_BY_CAP
    row = db.session.execute(
        update(d)
        .where(
            d.notification_id == notification_id,
            d.channel == DeliveryChannel.EMAIL,
            d.attempts < _max_attempts(),
            or_(d.status == DeliveryStatus.PENDING,
                and_(d.status == DeliveryStatus.SENDING, d.lease_expires_at < now)),
        )
        .values(status=DeliveryStatus.SENDING, attempts=d.attempts + 1, lease_expires_at=now + _lease(),
                updated_at=now)
        .returning(d.id, d.attempts, d.message_id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        db.session.commit()
        return None
    delivery_id, attempt, message_id = row
    if message_id is None:  # first claim: fix the Message-ID (the lease makes us its only writer)
        message_id = new_message_id(notification_id, delivery_id)
        db.session.execute(
            update(d).where(d.id == delivery_id).values(message_id=message_id)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return Claim(delivery_id, notification_id, attempt, message_id)


def _still_ours(claim: Claim):
    d = NotificationDelivery
    return and_(d.id == claim.delivery_id, d.status == DeliveryStatus.SENDING, d.attempts == claim.attempt)


def _record_sent(claim: Claim) -> None:
    """Mark the delivery sent — even if our lease expired and the row was
    reclaimed meanwhile: the mail did go out, and ``sent`` stops any resend
    that has not started yet."""
    now = utcnow()
    d = NotificationDelivery
    current = execute_dml(
        update(d).where(_still_ours(claim))
        .values(status=DeliveryStatus.SENT, last_error=None, lease_expires_at=None, updated_at=now, sent_at=now)
        .execution_options(synchronize_session=False)
    )
    deliveries.record_attempt(claim.delivery_id, DeliveryChannel.EMAIL, claim.attempt, True, at=now)
    if not current:
        log.warning("e-mail of notification %s sent after its lease expired; a resend may follow with the "
                    "same Message-ID %s", claim.notification_id, claim.message_id)
        db.session.execute(
            update(d).where(d.id == claim.delivery_id, d.status != DeliveryStatus.SENT)
            .values(status=DeliveryStatus.SENT, last_error=None, lease_expires_at=None, updated_at=now, sent_at=now)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def _record_failure(claim: Claim, error: str, *, final: bool = False) -> str | None:
    """Record a failed attempt (only while the claim is still ours): back to
    ``pending`` for RQ's retry, or ``failed`` for good when this was the
    last allowed attempt or ``final``. Returns the status written, or None
    when the claim is no longer ours (the row was reclaimed, or sent)."""
    now = utcnow()
    if final:
        status, lease = DeliveryStatus.FAILED, None
    elif claim.attempt >= _max_attempts():
        status, lease = DeliveryStatus.FAILED, None
        error = f"gave up after {claim.attempt} attempts: {error}"
    else:
        # The sweep leaves it to RQ's retry until the back-off has passed (plus EMAIL_REQUEUE_AFTER).
        status, lease = DeliveryStatus.PENDING, now + retry_wait(claim.attempt) + _requeue_after()
    written = execute_dml(
        update(NotificationDelivery).where(_still_ours(claim))
        .values(status=status, last_error=error[:1000], lease_expires_at=lease, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    deliveries.record_attempt(claim.delivery_id, DeliveryChannel.EMAIL, claim.attempt, False, error, at=now)
    db.session.commit()
    return status if written else None


def deliver(notification_id: int) -> str:
    """Send one notification's e-mail: at least once while attempts last,
    every attempt with the delivery's one Message-ID.

    Returns ``"sent"``, ``"nothing to send"`` (already sent, being sent by a
    live sender, given up, or no delivery row), ``"held"`` (the user's
    hourly cap is reached: the mail waits for the next summary, see
    ``_claim``) or ``"skipped"`` (the user turned e-mail off or removed the
    address since; recorded as ``failed`` with the reason, not retried). Raises the send error after recording it
    (``pending`` again, or ``failed`` on the last attempt), so RQ retries.
    """
    claim = _claim(notification_id)
    if claim is None:
        return "nothing to send"
    if isinstance(claim, str):  # HELD_BY_CAP
        return claim
    notification = db.session.get(Notification, notification_id)
    user = db.session.get(User, notification.user_id) if notification else None
    if notification is None or user is None:
        return "nothing to send"  # deleted meanwhile; the delivery row went with it
    if not user.email or not preferences.allows_email(preferences.user_notifications(user.user_id),
                                                      notification.category):
        _record_failure(claim, "skipped: e-mail turned off or no address at send time", final=True)
        return "skipped"
    message = build_message(notification, user)
    message.msgId = claim.message_id
    db.session.commit()  # no DB connection held while talking to SMTP
    try:
        send(message, f"notification-{notification_id}-attempt-{claim.attempt}")
    except Exception as exc:  # noqa: BLE001 - any SMTP or socket error (or the job timeout) is retried
        db.session.rollback()
        _record_failure(claim, f"{type(exc).__name__}: {exc}")
        raise
    _record_sent(claim)
    return "sent"


@dataclass
class SweepResult:
    """What one sweep did: notification ids re-enqueued, and those whose
    delivery it ended ``failed`` (attempts used up)."""

    requeued: list[int] = field(default_factory=list)
    gave_up: list[int] = field(default_factory=list)


def sweep(now: datetime | None = None) -> SweepResult:
    """Reclaim abandoned e-mail deliveries (the periodic job
    ``jobs.email.sweep_email_deliveries``, every EMAIL_SWEEP_INTERVAL s).

    - ``sending`` past its lease (its sender died or hung): back to
      ``pending`` with ``last_error`` saying the outcome is unknown, and
      re-enqueued; the resend carries the same Message-ID.
    - ``pending`` past its lease, or never leased and untouched for
      EMAIL_REQUEUE_AFTER (its job was lost, e.g. Redis was down at enqueue
      time): re-enqueued, with a new lease of EMAIL_REQUEUE_AFTER so the
      next sweeps wait for that job.
    - either one with no attempts left: ``failed`` with the reason.

    A job re-enqueued while another for the same delivery is still queued
    is harmless: the claim lets one of them send. Commits before enqueuing.
    """
    now = now or utcnow()
    d = NotificationDelivery
    # Single e-mails only: push deliveries have their own sweep (webpush.sweep), and
    # summary mails (summary_id set) are reclaimed by summaries.send_due.
    abandoned = and_(d.channel == DeliveryChannel.EMAIL, d.summary_id.is_(None), or_(
        and_(d.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)), d.lease_expires_at < now),
        and_(d.status == DeliveryStatus.PENDING, d.lease_expires_at.is_(None), d.updated_at < now - _requeue_after()),
    ))
    result = SweepResult()
    result.gave_up = list(db.session.scalars(
        update(d).where(abandoned, d.attempts >= _max_attempts())
        .values(status=DeliveryStatus.FAILED, lease_expires_at=None, updated_at=now,
                last_error=case((d.status == DeliveryStatus.SENDING,
                                 literal(f"gave up after {_max_attempts()} attempts: {LEASE_EXPIRED}")),
                                else_=literal(f"gave up after {_max_attempts()} attempts: ")
                                + func.coalesce(d.last_error, "no job claimed it")))
        .returning(d.notification_id)
        .execution_options(synchronize_session=False)
    ))
    result.requeued = list(db.session.scalars(
        update(d).where(abandoned, d.attempts < _max_attempts())
        .values(status=DeliveryStatus.PENDING, lease_expires_at=now + _requeue_after(), updated_at=now,
                last_error=case((d.status == DeliveryStatus.SENDING, literal(LEASE_EXPIRED)), else_=d.last_error))
        .returning(d.notification_id)
        .execution_options(synchronize_session=False)
    ))
    db.session.commit()
    if result.gave_up:
        log.warning("e-mail sweep: gave up on the deliveries of notifications %s", result.gave_up)
    for notification_id in result.requeued:
        try:
            enqueue_delivery(notification_id)
        except Exception:  # noqa: BLE001 - Redis down: the row stays pending, a later sweep retries
            log.exception("e-mail sweep: could not enqueue notification %s", notification_id)
    return result
