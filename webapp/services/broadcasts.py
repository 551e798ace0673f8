"""Platform-wide ``system`` notifications sent by a platform admin
(``/admin/broadcast``).

``create_broadcast`` stores the broadcast (status ``queued``, ``total`` = the
number of users then) and writes the audit log; ``fan_out`` (run by an RQ
job) walks the users in ``user_id`` order in batches of
``BROADCAST_BATCH_SIZE``, calling ``notify`` for each inside one transaction
per batch, and stores the progress (``sent`` = users processed so far, even
those whose preferences turn system notifications off) on the row after each
batch, which the page polls.

Resuming: each batch commits, with its notifications, the ``cursor`` (the
last user_id done) and a ``heartbeat_at``; the update is conditional on the
cursor it started from, so two fan-outs of one broadcast never both commit
a batch. A fan-out that died leaves ``running`` with an old heartbeat:
``resume_stalled`` (in the periodic delivery sweep) re-enqueues it and the
new job goes on after the cursor — nobody gets it twice.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from ..extensions import db, execute_dml
from ..models import AuditLog, Broadcast, User, utcnow
from ..vocabulary import NotificationCategory, NotificationSubtype
from . import jobqueue, notifications
from .errors import NotFound

SUBTYPE = NotificationSubtype.BROADCAST
CATEGORY = NotificationCategory.SYSTEM


FAN_OUT_JOB = "jobs.notifications.fan_out_broadcast"


def enqueue_fan_out(broadcast_id: int) -> None:
    """Enqueue the fan-out of a stored (committed) broadcast on ``default``
    (at most an hour). Raises ``redis.RedisError`` when Redis is down."""
    jobqueue.enqueue(FAN_OUT_JOB, broadcast_id, job_timeout=3600, description=f"broadcast {broadcast_id}")


def create_broadcast(actor: User, *, title: str, body: str = "", link: str | None = None) -> Broadcast:
    """Store a queued broadcast and its audit entry; commit. Raises
    ValidationError for bad fields (the rules of ``notify``)."""
    title, body, link = (title or "").strip(), (body or "").strip(), (link or "").strip() or None
    notifications.validate_fields(CATEGORY, SUBTYPE, title, body, link, None)
    row = Broadcast(actor_user_id=actor.user_id, title=title, body=body, link=link, status="queued",
                    total=db.session.scalar(select(func.count()).select_from(User)) or 0)
    db.session.add(row)
    db.session.flush()
    db.session.add(AuditLog(actor_user_id=actor.user_id, action="broadcast", target_type="broadcast",
                            target_id=str(row.id), data={"title": title}))
    db.session.commit()
    return row


def progress_message(broadcast_id: int) -> str:
    """What the broadcast's row says now, in words, for the flash after
    sending: re-read from the database, since under the embedded default the
    fan-out has already run inline ("Broadcast #3 sent to 64 of 64 users.");
    with a worker it is usually still queued. Raises NotFound."""
    row = get_broadcast(broadcast_id)
    db.session.refresh(row)
    if row.status == "done":
        return f"Broadcast #{row.id} sent to {row.sent} of {row.total} users."
    if row.status == "running":
        return f"Broadcast #{row.id} is being sent: {row.sent} of {row.total} users so far."
    if row.status == "failed":
        return f"Broadcast #{row.id} failed after {row.sent} of {row.total} users."
    return f"Broadcast #{row.id} queued for {row.total} users."


MAX_BROADCAST_ID = 2**31 - 1  # the column is a 32-bit integer; a larger id is simply not found


def get_broadcast(broadcast_id: int) -> Broadcast:
    """Raises NotFound."""
    row = db.session.get(Broadcast, broadcast_id) if 1 <= broadcast_id <= MAX_BROADCAST_ID else None
    if row is None:
        raise NotFound("No such broadcast.")
    return row


def recent(limit: int = 10) -> list[Broadcast]:
    """The newest broadcasts first."""
    return list(db.session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)))


def _stale(now: datetime) -> datetime:
    return now - timedelta(seconds=current_app.config["BROADCAST_STALE_AFTER"])


def _take(broadcast_id: int, now: datetime) -> bool:
    """Make this job the broadcast's fan-out: ``queued``, or ``running``
    with a stale heartbeat (its job died). Commits."""
    taken = execute_dml(
        update(Broadcast).where(
            Broadcast.id == broadcast_id,
            or_(Broadcast.status == "queued",
                and_(Broadcast.status == "running",
                     or_(Broadcast.heartbeat_at.is_(None), Broadcast.heartbeat_at < _stale(now)))))
        .values(status="running", heartbeat_at=now).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return bool(taken)


def fan_out(broadcast_id: int, *, batch_size: int | None = None) -> Broadcast:
    """Send the broadcast to every user after its ``cursor``, batch by batch
    (see module doc). Returns at once when another live job is sending it.
    Marks it ``failed`` and re-raises on an error."""
    batch_size = batch_size or current_app.config["BROADCAST_BATCH_SIZE"]
    row = get_broadcast(broadcast_id)
    if row.status not in ("queued", "running") or not _take(broadcast_id, utcnow()):
        return row
    db.session.refresh(row)
    data = {"broadcast_id": row.id}
    after = row.cursor or ""
    try:
        while True:
            user_ids = list(db.session.scalars(
                select(User.user_id).where(User.user_id > after).order_by(User.user_id).limit(batch_size)
            ))
            if not user_ids:
                break
            for user_id in user_ids:
                notifications.notify(user_id, CATEGORY, SUBTYPE, row.title, row.body, row.link, data, commit=False)
            moved = execute_dml(
                update(Broadcast).where(Broadcast.id == row.id,
                                        (Broadcast.cursor == after) if after else Broadcast.cursor.is_(None))
                .values(sent=Broadcast.sent + len(user_ids), cursor=user_ids[-1], heartbeat_at=utcnow())
                .execution_options(synchronize_session=False))
            if not moved:  # another fan-out took over meanwhile: its batches stand, ours does not
                db.session.rollback()
                return row
            db.session.commit()  # pushes and e-mails of this batch go out now
            after = user_ids[-1]
        db.session.refresh(row)
        row.status, row.finished_at = "done", utcnow()
        db.session.commit()
    except Exception:
        db.session.rollback()
        row.status, row.finished_at = "failed", utcnow()
        db.session.commit()
        raise
    return row


def resume_stalled(now: datetime | None = None) -> list[int]:
    """Re-enqueue broadcasts that stopped half-way (``running`` with a
    heartbeat older than ``BROADCAST_STALE_AFTER``) or whose job was never
    run (``queued`` that long). Returns their ids; Redis down is logged."""
    now = now or utcnow()
    stale = _stale(now)
    ids = list(db.session.scalars(select(Broadcast.id).where(or_(
        and_(Broadcast.status == "running", or_(Broadcast.heartbeat_at.is_(None), Broadcast.heartbeat_at < stale)),
        and_(Broadcast.status == "queued", Broadcast.created_at < stale)))))
    db.session.commit()
    for broadcast_id in ids:
        try:
            enqueue_fan_out(broadcast_id)
        except Exception:  # noqa: BLE001 - the next sweep tries again
            current_app.logger.exception("could not re-enqueue broadcast %s", broadcast_id)
    return ids
