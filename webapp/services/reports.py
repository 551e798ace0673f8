"""Reports (API.md "Coop governance"): miners report a message, a user or a
coop; the coop's admin and moderators triage the reports about their coop's
chat and members, platform admins see every report; a resolution
(dismiss, delete the message, mute, ban) is audited and tells the reporter;
a report left open for 24 hours is escalated to the platform admins by a
periodic job (``escalate_overdue``; ``services/schedule.py``).

Which coop triages a report (``reports.cooperative_id``):

- a message: the coop whose chat holds it (reports filed by a ``flag``
  keyword filter come from ``moderation.file_flag_report``);
- a user: the coop the reporter and the reported user are both active
  members of, else none;
- a coop: none (platform admins only; its own moderators do not judge it).

Nobody judges a report about themself: a coop's admin or moderator does
not see (nor resolve: 404) the reports whose ``target_user_id`` is theirs,
which the coop's other moderators and, after 24 hours, the platform admins
handle; a platform admin named by one is refused (403). The screens offer
only the outcomes the viewer can carry out (``outcomes``).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import (
    AuditLog,
    Conversation,
    ConversationMember,
    Cooperative,
    CooperativeMember,
    Message,
    Report,
    User,
    utcnow,
)
from ..vocabulary import MemberRole, ModerationAction, ReportResolution, ReportStatus, ReportTarget
from ..vocabulary import NotificationSubtype as S
from . import coop_moderation, coops, inputs, messages, moderation, notifications
from .errors import AlreadyReported, CannotModerate, Conflict, NotFound, NotModerator, ValidationError
from .membership import is_active_coop, is_active_member, is_moderating_member

DETAILS_MAX = 1000
NOTE_MAX = 500
ESCALATE_AFTER = timedelta(hours=24)
DEFAULT_MUTE_MINUTES = 60
REASONS = ("spam", "abuse", "other")


class ReportClosed(Conflict):
    code, message = "report_resolved", "This report has already been resolved."


def _text(value: str | None, limit: int, name: str) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise ValidationError(f"{name} can have at most {limit} characters.")
    return inputs.check_text(value, name=name, kind=inputs.MULTILINE) if value else ""


def _message_context(message_id: str, reporter_id: str) -> tuple[int | None, str | None, str | None]:
    """(coop whose chat holds the message or None for a direct or group
    conversation, its author, its body now) for a message report. Only a
    participant of the conversation may report it: anyone else gets the
    same 404 as for a missing message."""
    if not inputs.is_ascii_int(message_id) or len(message_id) > 18:
        raise NotFound("No such message.")
    row = db.session.execute(
        select(Conversation.cooperative_id, Message.sender_id, Message.body)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ConversationMember, (ConversationMember.conversation_id == Message.conversation_id)
              & (ConversationMember.user_id == reporter_id) & ConversationMember.left_at.is_(None))
        .where(Message.id == int(message_id), Message.deleted_at.is_(None))
    ).first()
    if row is None:
        raise NotFound("No such message.")
    return row.cooperative_id, row.sender_id, row.body


def _shared_coop(reporter_id: str, target_id: str) -> int | None:
    """The coop both miners are active members of, or None."""
    mine = db.session.scalar(
        select(CooperativeMember.cooperative_id).where(is_active_member(), CooperativeMember.user_id == reporter_id)
    )
    if mine is None:
        return None
    return mine if moderation.membership_of(mine, target_id) is not None else None


def create(user: User, *, target_type: str, target_id: str, reason: str, details: str | None = None) -> Report:
    """File a report (``POST /api/reports``). ``target_type`` message | user
    | cooperative, ``reason`` spam | abuse | other, ``details`` at most 1000
    characters. Raises ValidationError (400: also reporting oneself),
    NotFound (404: no such target) or AlreadyReported (409: the caller's
    report on it is still open)."""
    if target_type not in {t.value for t in ReportTarget}:
        raise ValidationError('target_type is "message", "user" or "cooperative".')
    if reason not in REASONS:
        raise ValidationError('reason is "spam", "abuse" or "other".')
    if not isinstance(target_id, str) or not 1 <= len(target_id) <= 128 or inputs.text_problem(target_id):
        raise NotFound("Nothing to report there.")
    details = _text(details, DETAILS_MAX, "The details")
    coop_id: int | None = None
    target_user_id: str | None = None
    body: str | None = None
    if target_type == ReportTarget.USER:
        if target_id == user.user_id:
            raise ValidationError("You cannot report yourself.")
        if db.session.get(User, target_id) is None:
            raise NotFound("No such miner.")
        coop_id, target_user_id = _shared_coop(user.user_id, target_id), target_id
    elif target_type == ReportTarget.COOPERATIVE:
        if not inputs.is_ascii_int(target_id) or not 1 <= int(target_id) <= coops.MAX_COOP_ID or db.session.scalar(
                select(Cooperative.id).where(Cooperative.id == int(target_id), is_active_coop())) is None:
            raise NotFound("No such cooperative.")
    else:
        coop_id, target_user_id, body = _message_context(target_id, user.user_id)
        if target_user_id == user.user_id:
            raise ValidationError("You cannot report your own message.")
    report = Report(reporter_user_id=user.user_id, cooperative_id=coop_id, target_type=target_type,
                    target_id=target_id, target_user_id=target_user_id, reason=reason, details=details,
                    reported_body=body)
    db.session.add(report)
    if coop_id is not None:
        moderation.moderators_changed(coop_id, user.user_id)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AlreadyReported() from None
    return report


# ---- triage -------------------------------------------------------------------------------------


def moderated_coop_id(user: User) -> int | None:
    """The coop ``user`` is the admin or a moderator of, or None."""
    return db.session.scalar(
        select(CooperativeMember.cooperative_id).where(
            is_moderating_member(), CooperativeMember.user_id == user.user_id)
    )


def triage(user: User, *, status: str = "open", escalated: bool = False, limit: int = 20,
           before_id: int | None = None) -> tuple[list[Report], int | None]:
    """Reports the caller may handle, newest first, keyset on ``id``:
    every report for a platform admin; for a coop's admin and moderators
    those about their coop; nothing for anyone else. ``status`` open |
    resolved | all; ``escalated`` keeps escalated ones only. Returns (rows,
    last id when more may follow)."""
    if status not in ("open", "resolved", "all"):
        raise ValidationError('status is "open", "resolved" or "all".')
    query = select(Report)
    if not user.is_admin:
        coop_id = moderated_coop_id(user)
        if coop_id is None:
            return [], None
        query = query.where(Report.cooperative_id == coop_id, _not_about(user.user_id))
    if status != "all":
        query = query.where(Report.status == status)
    if escalated:
        query = query.where(Report.escalated_at.is_not(None))
    if before_id is not None:
        query = query.where(Report.id < before_id)
    rows = list(db.session.scalars(query.order_by(Report.id.desc()).limit(limit + 1)))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


def _not_about(user_id: str) -> Any:
    """WHERE clause: reports that do not name ``user_id`` as their subject."""
    return or_(Report.target_user_id.is_(None), Report.target_user_id != user_id)


def triage_for_coop(coop_id: int, *, viewer_id: str, limit: int = 50) -> tuple[list[Report], int | None]:
    """The coop's open reports but those about ``viewer_id``, newest first
    (no access check: the moderation screen has done it)."""
    rows = list(db.session.scalars(
        select(Report).where(Report.cooperative_id == coop_id, Report.status == ReportStatus.OPEN.value,
                             _not_about(viewer_id))
        .order_by(Report.id.desc()).limit(limit + 1)))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


def outcomes(user: User, reports: list[Report], bodies: dict[str, str | None]) -> dict[int, list[str]]:
    """``{report id: the outcomes user can carry out}`` for a triage
    screen, in the order the form offers them: ``dismiss`` always;
    ``delete_message`` while the reported message stands (``bodies``:
    ``message_bodies``); ``mute`` (an active member) and ``ban`` (a member
    or an outsider) when ``user`` may act on the reported miner in the
    report's coop (``moderation.may_act_on``; a platform admin with the
    admin's reach)."""
    coop_ids = {r.cooperative_id for r in reports if r.cooperative_id is not None and r.target_user_id}
    people = {r.target_user_id for r in reports if r.cooperative_id in coop_ids} | {user.user_id}
    roles = {(c, u): role for c, u, role in db.session.execute(
        select(CooperativeMember.cooperative_id, CooperativeMember.user_id, CooperativeMember.role)
        .where(is_active_member(), CooperativeMember.cooperative_id.in_(coop_ids),
               CooperativeMember.user_id.in_(people)))} if coop_ids else {}
    found: dict[int, list[str]] = {}
    for report in reports:
        can = [ReportResolution.DISMISS.value]
        if report.target_type == ReportTarget.MESSAGE and bodies.get(report.target_id) is not None:
            can.append(ReportResolution.DELETE_MESSAGE.value)
        coop_id, target = report.cooperative_id, report.target_user_id
        if coop_id is not None and target:
            mine = roles.get((coop_id, user.user_id))
            actor = mine if mine in (MemberRole.ADMIN, MemberRole.MODERATOR) else (
                MemberRole.ADMIN.value if user.is_admin else None)
            theirs = roles.get((coop_id, target))
            if actor is not None and moderation.may_act_on(actor, user.user_id, theirs, target):
                if theirs is not None:
                    can.append(ReportResolution.MUTE.value)
                can.append(ReportResolution.BAN.value)
        found[report.id] = can
    return found


def message_bodies(reports: list[Report]) -> dict[str, str | None]:
    """``{target_id: body now}`` of the messages ``reports`` name (None for
    a deleted one; a message purged with its conversation is absent): beside
    ``Report.reported_body``, what was reported, the moderators see whether
    it was edited or deleted since."""
    ids = [int(r.target_id) for r in reports
           if r.target_type == ReportTarget.MESSAGE and inputs.is_ascii_int(r.target_id) and len(r.target_id) < 19]
    if not ids:
        return {}
    return {str(mid): body for mid, body in db.session.execute(
        select(Message.id, Message.body).where(Message.id.in_(ids)))}


def display_names(reports: list[Report]) -> dict[str, str]:
    """``{user_id: display_name}`` of the reporters and targets of ``reports``."""
    ids = {r.reporter_user_id for r in reports} | {r.target_user_id for r in reports}
    return {uid: name for uid, name in db.session.execute(
        select(User.user_id, User.display_name).where(User.user_id.in_([i for i in ids if i])))}


def _acting_moderator(report: Report, user: User) -> tuple[CooperativeMember | None, bool]:
    """Who resolves, and whether as a platform admin: the admin or a
    moderator of the report's coop (False); a platform admin acts with the
    admin's reach, never on the coop's admin (True; no membership for a
    report without a coop). Raises NotModerator."""
    if report.cooperative_id is not None:
        membership = moderation.membership_of(report.cooperative_id, user.user_id)
        if membership is not None and membership.role in (MemberRole.ADMIN, MemberRole.MODERATOR):
            return membership, False
        if user.is_admin:
            return CooperativeMember(cooperative_id=report.cooperative_id, user_id=user.user_id,
                                     role=MemberRole.ADMIN.value), True
    elif user.is_admin:
        return None, True
    db.session.rollback()
    raise NotModerator("Only the moderators of the reported cooperative and platform admins handle this report.")


_OUTCOMES = {
    ReportResolution.DISMISS: "The moderators looked at your report and took no action.",
    ReportResolution.DELETE_MESSAGE: "The moderators deleted the message you reported.",
    ReportResolution.MUTE: "The moderators muted the miner you reported.",
    ReportResolution.BAN: "The moderators banned the miner you reported from the cooperative.",
}


def resolve(user: User, *, report_id: int, action: str, note: str | None = None,
            minutes: int | None = None) -> Report:
    """Resolve an open report (``POST /api/reports/{id}/resolve``) with
    ``action``: ``dismiss``; ``delete_message`` (message reports);
    ``mute`` (``minutes``, default 60) or ``ban`` of the reported miner in
    the report's coop. The action, the audit entry (the coop's; a platform
    admin's resolution also in the platform's log, and marked as theirs in
    the coop's) and the reporter's ``report_resolved`` notification commit
    together. Raises
    ValidationError (400), NotFound (404), NotModerator / CannotModerate
    (403), ReportClosed (409) or the action's own errors."""
    if action not in {a.value for a in ReportResolution}:
        raise ValidationError('action is "dismiss", "delete_message", "mute" or "ban".')
    note = _text(note, NOTE_MAX, "The note")
    if minutes is None:
        minutes = DEFAULT_MUTE_MINUTES
    low, high = moderation.MUTE_MINUTES
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not low <= minutes <= high:
        raise ValidationError(f"minutes must be a whole number from {low} to {high}.")
    report = db.session.execute(
        select(Report).where(Report.id == report_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if report is None or (not user.is_admin and (report.cooperative_id is None
                                                 or report.cooperative_id != moderated_coop_id(user)
                                                 or report.target_user_id == user.user_id)):
        db.session.rollback()
        raise NotFound("No such report.")
    if report.target_user_id == user.user_id:  # a platform admin named by the report
        db.session.rollback()
        raise CannotModerate("You cannot resolve a report about yourself.")
    if report.status != ReportStatus.OPEN:
        db.session.rollback()
        raise ReportClosed()
    actor, as_platform_admin = _acting_moderator(report, user)
    if action == ReportResolution.DELETE_MESSAGE:
        if report.target_type != ReportTarget.MESSAGE:
            db.session.rollback()
            raise ValidationError("Only a message report can delete a message.")
        message = messages.message_for_update(int(report.target_id))
        if message is not None:  # already gone entirely: nothing left to delete
            if report.cooperative_id is not None and message.deleted_at is None:
                moderation.record_message_deleted(report.cooperative_id, user.user_id, message.id, message.sender_id)
            messages.tombstone(message)
    if action in (ReportResolution.MUTE, ReportResolution.BAN):
        if actor is None or report.cooperative_id is None or not report.target_user_id:
            db.session.rollback()
            raise ValidationError("This report names no member of a cooperative to mute or ban.")
        coop = coops.lock_active_coop(report.cooperative_id)
        if action == ReportResolution.MUTE:
            coop_moderation.mute_locked(coop, actor, report.target_user_id, minutes)
        else:
            coop_moderation.ban_locked(coop, actor, report.target_user_id, note)
    report.status, report.resolution, report.note = ReportStatus.RESOLVED.value, action, note
    report.resolved_by, report.resolved_at = user.user_id, utcnow()
    if report.cooperative_id is not None:
        moderation.record_action(report.cooperative_id, user.user_id, ModerationAction.REPORT_RESOLVED,
                                 target_user_id=report.target_user_id, target_id=str(report.id),
                                 data={"action": action, "note": note,
                                       **({"platform_admin": True} if as_platform_admin else {})})
    if as_platform_admin:  # the platform's own log too (/admin), as its other actions
        db.session.add(AuditLog(actor_user_id=user.user_id, action=ModerationAction.REPORT_RESOLVED.value,
                                target_type="report", target_id=str(report.id), reason=note,
                                data={"action": action, "cooperative_id": report.cooperative_id,
                                      "target_user_id": report.target_user_id}))
    if report.reporter_user_id:
        notifications.notify_kind(report.reporter_user_id, S.REPORT_RESOLVED, data={"report_id": report.id},
                                  commit=False, outcome=_OUTCOMES[ReportResolution(action)])
    db.session.commit()
    return report


# ---- escalation -----------------------------------------------------------------------------------


def escalate_overdue(now: Any = None) -> int:
    """Mark every report open for 24 hours or more as escalated (the
    platform admins' list on ``/admin``) and tell each platform admin once,
    with the count. Run by the periodic job ``jobs.moderation.escalate_reports``.
    Returns how many reports it escalated."""
    now = now or utcnow()
    ids = list(db.session.scalars(
        update(Report)
        .where(Report.status == ReportStatus.OPEN.value, Report.escalated_at.is_(None),
               Report.created_at <= now - ESCALATE_AFTER)
        .values(escalated_at=now)
        .returning(Report.id)
        .execution_options(synchronize_session=False)
    ))
    if ids:
        for admin_id in db.session.scalars(select(User.user_id).where(User.is_admin.is_(True))):
            notifications.notify_kind(admin_id, S.REPORTS_ESCALATED, link="/admin#reports",
                                      data={"report_ids": ids[:100]}, commit=False, count=len(ids))
    db.session.commit()
    return len(ids)


def open_count_for(user: User) -> int:
    """How many open reports ``user`` may triage (the manage page's badge)."""
    rows, _ = triage(user, status="open", limit=100)
    return len(rows)

