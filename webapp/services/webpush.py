"""Web Push, the third channel (RFC 8030 delivery, RFC 8291 payload
encryption, RFC 8292 VAPID), through pywebpush.

- **Keys**: the VAPID private key is a PEM file (``VAPID_PRIVATE_KEY_FILE``),
  generated into ``instance/`` on first use when absent; ``public_key()``
  is the application server key the browser subscribes with.
- **Subscriptions**: one row per browser endpoint (``push_subscriptions``);
  subscribing again from the same browser updates it, also when another
  user logs in on that browser (the endpoint moves to them).
- **Delivery**: ``notify`` adds a ``pending`` push delivery (per-category
  toggle on, outside quiet hours) and enqueues ``jobs.webpush.send_push``
  after the commit. ``deliver`` claims it with a conditional update (as
  e-mail does) — at the user's hourly cap its first claim drops it instead
  (``services/hourly_cap.py``) — sends to every subscription of the user,
  deletes a subscription the push service answers 404/410 for, and records
  the attempt. A failure is retried by RQ and the sweep.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from redis.client import Pipeline
from rq import Retry
from sqlalchemy import and_, delete, or_, select, update

from ..extensions import db, execute_dml
from ..models import Notification, NotificationDelivery, PushSubscription, User, utcnow
from ..vocabulary import DeliveryChannel, DeliveryStatus
from . import deliveries, hourly_cap, jobqueue
from .errors import NotFound, ValidationError

log = logging.getLogger(__name__)
QUEUE = "push"
DELIVER_JOB = "jobs.webpush.send_push"
JOB_TIMEOUT = 60
MAX_RETRIES = 3
DROPPED_BY_CAP = "skipped: hourly cap"  # what deliver() returns for a push over the hourly cap
MAX_PAYLOAD_BODY = 600  # characters of the body in the payload (push services take ~4 KB)
_key_lock = threading.Lock()


class PushFailed(Exception):
    """No push service accepted a notification this attempt (RQ retries)."""


# ---- keys ---------------------------------------------------------------------------


def _key_path() -> Path:
    return Path(current_app.config["VAPID_PRIVATE_KEY_FILE"])


def vapid() -> Any:
    """The VAPID key pair, generated into ``VAPID_PRIVATE_KEY_FILE`` (mode
    0600) the first time it is needed. Two processes racing to create it
    both write a whole file (write to a temporary name, then rename) and the
    loser re-reads the winner's, so every process signs with one key.
    Returns a ``py_vapid.Vapid`` (imported here: web processes that never
    push do not load it)."""
    from py_vapid import Vapid

    path = _key_path()
    with _key_lock:
        if not path.exists():
            key = Vapid()
            key.generate_keys()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(key.private_pem())
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # fails if another process won; then use theirs
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return Vapid.from_file(str(path))


def public_key() -> str:
    """The application server key (base64url of the uncompressed P-256
    point, 65 bytes) for ``PushManager.subscribe``."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid import b64urlencode

    raw = vapid().public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64urlencode(raw)


# ---- subscriptions -------------------------------------------------------------------


def _check_endpoint(endpoint: Any) -> str:
    if not isinstance(endpoint, str) or not 1 <= len(endpoint) <= 1024:
        raise ValidationError("endpoint must be a URL of at most 1024 characters.")
    parts = urlsplit(endpoint)
    insecure_ok = current_app.config.get("PUSH_ALLOW_HTTP_LOOPBACK") and parts.hostname in ("127.0.0.1", "localhost")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and insecure_ok)):
        raise ValidationError("endpoint must be an https URL of a push service.")
    return endpoint


def _check_key(name: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len or not all(
            c.isalnum() or c in "-_=" for c in value):
        raise ValidationError(f"keys.{name} must be base64url text of at most {max_len} characters.")
    return value


def subscribe(user: User, endpoint: str, p256dh: str, auth: str, user_agent: str | None = None) -> PushSubscription:
    """Store (or refresh) this browser's subscription for ``user``. Raises
    ValidationError for a non-https endpoint or malformed keys. Commits."""
    endpoint = _check_endpoint(endpoint)
    p256dh, auth = _check_key("p256dh", p256dh, 128), _check_key("auth", auth, 64)
    row = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        row = PushSubscription(endpoint=endpoint, user_id=user.user_id)
        db.session.add(row)
    row.user_id, row.p256dh, row.auth = user.user_id, p256dh, auth
    row.user_agent = (user_agent or "")[:255] or None
    db.session.commit()
    return row


def unsubscribe(user: User, endpoint: str) -> None:
    """Delete the caller's subscription for ``endpoint``. Raises NotFound
    (also for someone else's endpoint). Commits."""
    deleted = execute_dml(delete(PushSubscription).where(PushSubscription.endpoint == endpoint,
                                                          PushSubscription.user_id == user.user_id))
    db.session.commit()
    if not deleted:
        raise NotFound("No such push subscription.")


def subscriptions(user_id: str) -> list[PushSubscription]:
    """The user's subscriptions, oldest first."""
    return list(db.session.scalars(select(PushSubscription).where(PushSubscription.user_id == user_id)
                                   .order_by(PushSubscription.id)))


# ---- delivery -------------------------------------------------------------------------


def enqueue_delivery(notification_id: int, pipeline: Pipeline | None = None) -> None:
    """Enqueue ``jobs.webpush.send_push`` (queue ``push``, RQ retries with the
    e-mail back-off); in ``pipeline`` when given (``jobqueue.batch``).
    Raises ``redis.RedisError`` when Redis is down (the delivery stays
    pending; ``sweep`` re-enqueues it)."""
    jobqueue.enqueue(DELIVER_JOB, notification_id, queue=QUEUE, pipeline=pipeline,
                     retry=Retry(max=MAX_RETRIES, interval=list(current_app.config["EMAIL_RETRY_INTERVALS"])),
                     job_timeout=JOB_TIMEOUT, description=f"push notification {notification_id}")


def payload(notification: Notification) -> dict[str, Any]:
    """What the service worker shows (``static/sw.js``): title, body, the
    absolute link, a tag (the group key, so a group replaces its previous
    notice on the device) and the ids."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    link = notification.link or "/notifications"
    return {"id": notification.id, "title": notification.title, "body": (notification.body or "")[:MAX_PAYLOAD_BODY],
            "url": base + link if link.startswith("/") else link, "category": notification.category,
            "tag": notification.group_key or f"n{notification.id}"}


def _claim(notification_id: int, now: datetime) -> tuple[int, int] | str | None:
    """Lease the push delivery to this sender: ``(delivery id, attempt)``,
    None when there is nothing to claim, or ``DROPPED_BY_CAP`` when its first
    claim finds the user at their hourly cap: the pending row is deleted,
    as an over-cap push has always left no delivery row (the notification
    is in the app, nothing shows "pushed"). The count and the claim share
    one transaction under the user's cap lock (``hourly_cap.over_cap``).
    Commits."""
    d = NotificationDelivery
    if hourly_cap.over_cap(notification_id, DeliveryChannel.PUSH, now):
        # Only a first claim is dropped: a retry was admitted (and counted) by its first attempt.
        dropped = db.session.execute(
            delete(d).where(d.notification_id == notification_id, d.channel == DeliveryChannel.PUSH,
                            d.status == DeliveryStatus.PENDING, d.attempts == 0)
            .returning(d.id).execution_options(synchronize_session=False)
        ).first()
        if dropped is not None:
            db.session.commit()
            return DROPPED_BY_CAP
    lease = timedelta(seconds=current_app.config["EMAIL_LEASE_SECONDS"])
    row = db.session.execute(
        update(d).where(d.notification_id == notification_id, d.channel == DeliveryChannel.PUSH,
                        d.attempts < current_app.config["EMAIL_MAX_ATTEMPTS"],
                        or_(d.status == DeliveryStatus.PENDING,
                            and_(d.status == DeliveryStatus.SENDING, d.lease_expires_at < now)))
        .values(status=DeliveryStatus.SENDING, attempts=d.attempts + 1, lease_expires_at=now + lease, updated_at=now)
        .returning(d.id, d.attempts).execution_options(synchronize_session=False)
    ).first()
    db.session.commit()
    return (row[0], row[1]) if row else None


def deliver(notification_id: int) -> str:
    """Push one notification to every browser its user subscribed.

    Returns ``"sent"`` (at least one push service accepted it, or every
    subscription was gone), ``"nothing to send"`` (no pending delivery),
    ``"skipped: hourly cap"`` (the user's hourly cap is reached: not sent,
    see ``_claim``).
    Raises ``PushFailed`` after recording the failure when no subscription
    took it (RQ retries; the last attempt ends ``failed``)."""
    # pywebpush pulls in requests and aiohttp (~22 MiB): imported where pushes
    # are sent (the RQ worker), not in every web process.
    from pywebpush import WebPushException, webpush

    now = utcnow()
    claim = _claim(notification_id, now)
    if claim is None:
        return "nothing to send"
    if isinstance(claim, str):  # DROPPED_BY_CAP
        return claim
    delivery_id, attempt = claim
    notification = db.session.get(Notification, notification_id)
    if notification is None:
        return "nothing to send"
    data = json.dumps(payload(notification))
    targets = [(s.id, {"endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}})
               for s in subscriptions(notification.user_id)]
    key = vapid()
    claims = {"sub": current_app.config["VAPID_SUBJECT"]}
    db.session.commit()  # no connection held while talking to push services
    ok, gone, errors = [], [], []
    for sub_id, info in targets:
        try:
            webpush(info, data, vapid_private_key=key, vapid_claims=dict(claims),
                    ttl=current_app.config["PUSH_TTL"], timeout=current_app.config["PUSH_TIMEOUT"])
            ok.append(sub_id)
        except WebPushException as exc:
            status = getattr(exc.response, "status_code", None)
            if status in (404, 410):
                gone.append(sub_id)
            else:
                errors.append(f"{status or 'no response'}: {exc.message}"[:300])
        except Exception as exc:  # noqa: BLE001 - network errors: retried
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
    return _record(delivery_id, attempt, ok, gone, errors)


def _record(delivery_id: int, attempt: int, ok: list[int], gone: list[int], errors: list[str]) -> str:
    now = utcnow()
    d = NotificationDelivery
    if gone:
        execute_dml(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
    if ok:
        execute_dml(update(PushSubscription).where(PushSubscription.id.in_(ok)).values(last_success_at=now))
    success = bool(ok) or not errors
    error = "; ".join(errors) or None
    if success:
        values: dict[str, Any] = {"status": DeliveryStatus.SENT, "sent_at": now, "last_error": error}
    elif attempt >= current_app.config["EMAIL_MAX_ATTEMPTS"]:
        values = {"status": DeliveryStatus.FAILED, "last_error": f"gave up after {attempt} attempts: {error}"}
    else:
        values = {"status": DeliveryStatus.PENDING, "last_error": error}
    execute_dml(update(d).where(d.id == delivery_id).values(updated_at=now, lease_expires_at=None, **values))
    deliveries.record_attempt(delivery_id, DeliveryChannel.PUSH, attempt, success, error, at=now)
    db.session.commit()
    if not success:
        raise PushFailed(f"push failed: {error}")
    return "sent"


def sweep(now: datetime | None = None) -> list[int]:
    """Re-enqueue push deliveries left ``pending`` (Redis down at enqueue
    time, or a retry lost) or ``sending`` past their lease, after
    ``EMAIL_REQUEUE_AFTER``; the claim keeps it to one send. Returns the
    notification ids re-enqueued."""
    now = now or utcnow()
    d = NotificationDelivery
    stale = now - timedelta(seconds=current_app.config["EMAIL_REQUEUE_AFTER"])
    ids = list(db.session.scalars(select(d.notification_id).where(
        d.channel == DeliveryChannel.PUSH, d.attempts < current_app.config["EMAIL_MAX_ATTEMPTS"],
        or_(and_(d.status == DeliveryStatus.PENDING, d.updated_at < stale),
            and_(d.status == DeliveryStatus.SENDING, d.lease_expires_at < now)))))
    db.session.commit()
    for notification_id in ids:
        try:
            enqueue_delivery(notification_id)
        except Exception:  # noqa: BLE001 - a later sweep retries
            log.exception("push sweep: could not enqueue notification %s", notification_id)
    return ids
