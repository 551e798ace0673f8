"""Platform administration (users created with ``flask users create ...
--admin``): search coops and users, dissolve or rename an abusive coop with
a reason, the audit log, and RQ job health with retry of failed jobs.

Every action writes an ``audit_log`` row in the same transaction as the
change itself, so the log never misses an action nor records one that was
rolled back. Callers are checked with ``require_platform_admin`` here, not
only by the route decorator.

A platform admin's dissolve shares ``coops.dissolve_locked`` with the coop
admin's: the coop row is locked (``SELECT … FOR UPDATE``), every active
membership ends as ``left``, each member gets a ``coop_left`` activity, the
invite code is freed, the cached hashrate dropped; here members are told by
a ``system`` notification, since no member did it.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.results import Result
from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import AuditLog, Cooperative, CooperativeMember, User
from ..vocabulary import CoopStatus
from ..vocabulary import NotificationSubtype as S
from . import accounts, coops, inputs, notifications, schedule
from .errors import Forbidden, NotFound, ValidationError
from .membership import is_active_member

REASON_MAX = 500
QUERY_MAX = 100
NAME_MIN, NAME_MAX = 3, 100  # API.md endpoint 1
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
FAILED_SHOWN = 50  # failed / scheduled jobs listed per queue
COOP_LINK = "/coop"


def require_platform_admin(actor: User | None) -> User:
    """The actor if a platform admin. Raises Forbidden (403)."""
    if actor is None or not getattr(actor, "is_admin", False):
        raise Forbidden("Only platform admins can do that.")
    return actor


def clean_reason(reason: object) -> str:
    """A required reason, 1–500 characters after trimming. Raises ValidationError."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("A reason is required.")
    reason = inputs.check_text(reason.strip(), name="The reason")
    if len(reason) > REASON_MAX:
        raise ValidationError(f"The reason can have at most {REASON_MAX} characters.")
    return reason


def clean_query(q: object) -> str:
    """A search string, trimmed, at most 100 characters ('' = everything)."""
    if q is None:
        return ""
    text = inputs.check_text(q, name="The search")
    if len(text) > QUERY_MAX:
        raise ValidationError(f"The search can have at most {QUERY_MAX} characters.")
    return text.strip()


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---- cursors for the admin lists -------------------------------------------


def encode_key_cursor(key: str) -> str:
    """An opaque cursor for a string key (users are ordered by ``user_id``)."""
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode().rstrip("=")


def parse_key_cursor(raw: str | None) -> str | None:
    """Decode ``encode_key_cursor``; None for no cursor. Raises ValidationError."""
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.startswith("k:") or not accounts.is_user_id(text[2:]):
        raise ValidationError("cursor is not valid; use the link of the previous page.")
    return text[2:]


# ---- search ----------------------------------------------------------------------


@dataclass
class UserRow:
    user: User
    coop_id: int | None
    coop_name: str | None


def search_users(q: str = "", *, after_user_id: str | None = None, limit: int = 25) -> tuple[list[UserRow], str | None]:
    """Users whose id, display name or e-mail contains ``q`` (case-insensitive),
    ordered by ``user_id``, with their active coop. Keyset pages: returns
    (rows, last user_id for the next page or None)."""
    q = clean_query(q)
    query = (
        select(User, Cooperative.id, Cooperative.name)
        .outerjoin(
            CooperativeMember,
            (CooperativeMember.user_id == User.user_id) & is_active_member(),
        )
        .outerjoin(Cooperative, Cooperative.id == CooperativeMember.cooperative_id)
    )
    if q:
        pattern = _like(q)
        query = query.where(
            or_(User.user_id.ilike(pattern, escape="\\"), User.display_name.ilike(pattern, escape="\\"),
                User.email.ilike(pattern, escape="\\"))
        )
    if after_user_id is not None:
        query = query.where(User.user_id > after_user_id)
    rows = db.session.execute(query.order_by(User.user_id).limit(limit + 1)).all()
    result = [UserRow(user, coop_id, coop_name) for user, coop_id, coop_name in rows[:limit]]
    return result, (result[-1].user.user_id if len(rows) > limit else None)


def search_coops(q: str = "", *, before_id: int | None = None, limit: int = 25) -> tuple[list[Cooperative], int | None]:
    """Coops (active and dissolved) whose name contains ``q``, or whose id or
    invite code is ``q``; newest first. Keyset pages: returns (coops, last id
    for the next page or None)."""
    q = clean_query(q)
    query = select(Cooperative)
    if q:
        conditions = [Cooperative.name.ilike(_like(q), escape="\\"), Cooperative.invite_code == q.upper()]
        if inputs.is_ascii_int(q) and int(q) <= coops.MAX_COOP_ID:
            conditions.append(Cooperative.id == int(q))
        query = query.where(or_(*conditions))
    if before_id is not None:
        query = query.where(Cooperative.id < before_id)
    found = list(db.session.scalars(query.order_by(Cooperative.id.desc()).limit(limit + 1)))
    return found[:limit], (found[limit - 1].id if len(found) > limit else None)


def counts() -> dict[str, int]:
    """Totals for the dashboard: users, active coops, dissolved coops."""
    users = db.session.scalar(select(func.count()).select_from(User)) or 0
    by_status = dict(db.session.execute(select(Cooperative.status, func.count()).group_by(Cooperative.status)).all())
    return {"users": users, "active_coops": by_status.get(CoopStatus.ACTIVE, 0),
            "dissolved_coops": by_status.get(CoopStatus.DISSOLVED, 0)}


# ---- audit log ------------------------------------------------------------------------


def _audit(actor: User, action: str, target_type: str, target_id: object, reason: str = "",
           data: dict[str, Any] | None = None) -> AuditLog:
    row = AuditLog(actor_user_id=actor.user_id, action=action, target_type=target_type,
                   target_id=str(target_id), reason=reason, data=data)
    db.session.add(row)
    return row


def list_audit(*, before_id: int | None = None, limit: int = 20) -> tuple[list[AuditLog], int | None]:
    """Audit entries newest first; returns (entries, last id for the next page or None)."""
    query = select(AuditLog)
    if before_id is not None:
        query = query.where(AuditLog.id < before_id)
    rows = list(db.session.scalars(query.order_by(AuditLog.id.desc()).limit(limit + 1)))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


# ---- coop moderation ------------------------------------------------------------------


def dissolve_coop(actor: User, *, coop_id: int, reason: str) -> Cooperative:
    """Dissolve an abusive coop (see the module docstring for what happens)
    and audit it (``coop.dissolve``, data: name, members). Commits.

    Raises Forbidden (403, not a platform admin), ValidationError (400, no
    reason), NotFound (404) or CoopDissolved (409, already dissolved).
    """
    require_platform_admin(actor)
    reason = clean_reason(reason)
    coop = coops.lock_active_coop(coop_id)
    member_ids = coops.dissolve_locked(
        coop, subtype=S.ADMIN_COOP_DISSOLVED, activity_data={"by_platform_admin": True},
    )
    _audit(actor, "coop.dissolve", "cooperative", coop.id, reason,
           {"name": coop.name, "members": member_ids})
    coops.announce_on_commit(coop.id, also=member_ids, change="dissolved")
    db.session.commit()
    return coop


def rename_coop(actor: User, *, coop_id: int, name: str, reason: str) -> Cooperative:
    """Rename a coop (3–100 characters) and audit it (``coop.rename``, data:
    old and new name); the coop's admin is told by a ``system``
    notification. Commits.

    Raises Forbidden (403), ValidationError (400), NotFound (404) or
    CoopDissolved (409).
    """
    require_platform_admin(actor)
    reason = clean_reason(reason)
    inputs.check_text(name, name="The name")
    if not NAME_MIN <= len(name.strip()) <= NAME_MAX:
        raise ValidationError(f"The name must be {NAME_MIN} to {NAME_MAX} characters.")
    name = name.strip()
    coop = coops.lock_active_coop(coop_id)
    old = coop.name
    coop.name = name
    if coop.admin_user_id:
        notifications.notify_kind(
            coop.admin_user_id, S.ADMIN_COOP_RENAMED, link=COOP_LINK, data={"cooperative_id": coop.id},
            commit=False, old=old, new=name,
        )
    _audit(actor, "coop.rename", "cooperative", coop.id, reason, {"old_name": old, "new_name": name})
    db.session.commit()
    return coop


# ---- job health ---------------------------------------------------------------------------


def queue_names() -> tuple[str, ...]:
    """The queues the workers serve (``schedule.QUEUES``)."""
    return tuple(schedule.QUEUES)


def _error_line(job: Job) -> str:
    result = job.latest_result()
    text = result.exc_string if result is not None and result.type == Result.Type.FAILED else ""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def job_health(connection: Redis) -> dict[str, Any]:
    """RQ health for the admin page.

    Returns ``{"queues": [{"name", "queued", "started", "failed",
    "scheduled"}], "failed": [{"id", "queue", "func", "ended_at", "error"}],
    "scheduled": [{"id", "queue", "func", "at"}], "cron": [{"name", "every",
    "last_enqueued_at", "last_run_at"}], "cron_scheduler_running": bool,
    "workers": int, "embedded": bool, "embedded_scheduler_running": bool}``.
    Under the embedded default (no ``REDIS_URL``) no worker or cron scheduler
    exists: queued jobs run inline and the periodic ones on a thread of the
    web process (``schedule.start_embedded``), so ``embedded`` is True and
    ``last_run_at`` says when each periodic job last ran there (else None).
    ``connection`` is the bytes Redis client RQ uses.
    """
    from flask import current_app
    from rq import cron_scheduler_registry
    from rq.cron_job_registry import get_registry_key
    from rq.worker import Worker

    queues, failed, scheduled = [], [], []
    for name in queue_names():
        queue = Queue(name, connection=connection)
        failed_registry = FailedJobRegistry(queue=queue)
        scheduled_registry = ScheduledJobRegistry(queue=queue)
        queues.append({
            "name": name,
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "failed": failed_registry.count,
            "scheduled": scheduled_registry.count,
        })
        failed_ids = failed_registry.get_job_ids(0, FAILED_SHOWN - 1, desc=True)
        for job in Job.fetch_many(failed_ids, connection=connection):
            if job is not None:
                failed.append({"id": job.id, "queue": name, "func": job.func_name, "ended_at": job.ended_at,
                               "error": _error_line(job)})
        scheduled_ids = scheduled_registry.get_job_ids(0, FAILED_SHOWN - 1)
        for job in Job.fetch_many(scheduled_ids, connection=connection):
            if job is not None:
                scheduled.append({"id": job.id, "queue": name, "func": job.func_name,
                                  "at": scheduled_registry.get_scheduled_time(job)})
    cron = []
    last_runs = schedule.last_embedded_runs()
    for entry in schedule.PERIODIC:
        last = connection.zscore(get_registry_key(), entry.job)
        cron.append({
            "name": entry.job,
            "every": entry.interval(current_app.config),
            "last_enqueued_at": datetime.fromtimestamp(last, UTC) if last else None,
            "last_run_at": last_runs.get(entry.job),
        })
    return {
        "queues": queues,
        "failed": failed,
        "scheduled": scheduled,
        "cron": cron,
        "cron_scheduler_running": bool(cron_scheduler_registry.get_keys(connection)),
        "workers": Worker.count(connection=connection),
        "embedded": bool(current_app.config["EMBEDDED"]),
        "embedded_scheduler_running": schedule.embedded_running(),
    }


def retry_failed_job(actor: User, connection: Redis, *, job_id: str) -> Job:
    """Put a failed job back on its queue and audit it (``job.retry``).

    Raises Forbidden (403), ValidationError (400, malformed id) or NotFound
    (404, no such job or not failed).
    """
    require_platform_admin(actor)
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise ValidationError("That is not a job id.")
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        raise NotFound("No such job.") from None
    if job.origin not in queue_names():
        raise NotFound("No such failed job.")
    registry = FailedJobRegistry(queue=Queue(job.origin, connection=connection))
    _audit(actor, "job.retry", "job", job_id, "", {"queue": job.origin, "func": job.func_name})
    db.session.flush()  # a failing audit insert stops the retry
    try:
        job = registry.requeue(job)
    except InvalidJobOperation:
        db.session.rollback()
        raise NotFound("That job is not in the failed list (any more).") from None
    db.session.commit()
    return job
