"""What a coop's admin and moderators do (API.md "Coop governance"): assign
roles, hand the admin role over, ban and unban, mute and unmute, set slow
mode and keyword filters, and read the audit log.

Every action locks the coop row first (``coops.lock_active_coop``), as every
other coop change does, so a ban and a join, two transfers, or a mute and a
removal are decided one after the other on current data; the invariants
themselves are in the database (one active admin per coop, one ban and one
mute row per coop and user). Each action adds its audit entry in its own
transaction (``moderation.record_action``).

Rules: the admin assigns ``moderator`` / ``member`` and transfers the admin
role (the old admin becomes a moderator); the admin and moderators ban,
mute and remove plain members, the admin also moderators, nobody the admin
(``moderation.check_can_act_on``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import (
    SLOW_MODE_MAX,
    Conversation,
    ConversationMember,
    CoopAuditEntry,
    CoopBan,
    Cooperative,
    CooperativeMember,
    CoopMute,
    User,
    iso,
    utcnow,
)
from ..vocabulary import MemberRole, ModerationAction
from ..vocabulary import NotificationSubtype as S
from . import conversations, coops, inputs, moderation, notifications, transactions
from .errors import CannotModerate, Conflict, NotAdmin, NotFound, ValidationError
from .membership import active_member_ids

ASSIGNABLE_ROLES = (MemberRole.MODERATOR.value, MemberRole.MEMBER.value)
_UNSET: Any = object()


class AlreadyBanned(Conflict):
    code, message = "already_banned", "That miner is already banned from this cooperative."


def _target_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not user_id or len(user_id) > 128 or inputs.text_problem(user_id):
        raise NotFound("No such miner.")
    return user_id


def _require_admin(coop: Cooperative, user: User) -> CooperativeMember:
    membership = moderation.membership_of(coop.id, user.user_id)
    if membership is None or membership.role != MemberRole.ADMIN:
        db.session.rollback()
        raise NotAdmin()
    return membership


def _member_or_404(coop_id: int, user_id: str) -> CooperativeMember:
    membership = moderation.membership_of(coop_id, user_id)
    if membership is None:
        db.session.rollback()
        raise NotFound("That miner is not a member of this cooperative.")
    return membership


# ---- roles ------------------------------------------------------------------------------------


def set_role(user: User, *, coop_id: int, user_id: str, role: str) -> CooperativeMember:
    """The admin makes a member a moderator or a moderator a member
    (``PATCH /api/coops/{id}/members/{user_id}``). The admin role moves
    only by ``transfer``. Raises ValidationError (400), NotFound (404),
    CoopDissolved (409), NotAdmin (403) or CannotModerate (403: the admin's own row)."""
    if role not in ASSIGNABLE_ROLES:
        raise ValidationError('role is "moderator" or "member"; hand the admin role over with /transfer.')
    user_id = _target_id(user_id)
    coop = coops.lock_active_coop(coop_id)
    _require_admin(coop, user)
    target = _member_or_404(coop.id, user_id)
    if target.role == MemberRole.ADMIN:
        db.session.rollback()
        raise CannotModerate("The admin's role changes only by handing the cooperative over.")
    before = target.role
    if before != role:
        target.role = role
        moderation.record_action(coop.id, user.user_id, ModerationAction.ROLE_CHANGED, target_user_id=user_id,
                                 data={"from": before, "to": role})
        coops.announce_on_commit(coop.id, actor=user.user_id)
    db.session.commit()
    return target


def transfer(user: User, *, coop_id: int, user_id: str) -> Cooperative:
    """The admin hands the admin role to another active member
    (``POST /api/coops/{id}/transfer``); the old admin becomes a moderator
    and the new one is told. Decided under the coop's row lock, so of two
    concurrent transfers the second finds its caller no longer admin; the
    partial unique index on ``cooperative_members`` keeps one admin whatever
    happens. Raises NotFound (404), CoopDissolved (409), NotAdmin (403) or
    CannotModerate (403: to oneself)."""
    user_id = _target_id(user_id)
    coop = coops.lock_active_coop(coop_id)
    current = _require_admin(coop, user)
    if user_id == user.user_id:
        db.session.rollback()
        raise CannotModerate("You are already the admin.")
    target = _member_or_404(coop.id, user_id)
    current.role = MemberRole.MODERATOR
    db.session.flush()  # out of the one-admin index before the promotion
    target.role = MemberRole.ADMIN
    coop.admin_user_id = user_id
    db.session.flush()
    moderation.record_action(coop.id, user.user_id, ModerationAction.ADMIN_TRANSFERRED, target_user_id=user_id)
    notifications.notify_kind(user_id, S.COOP_ADMIN_TRANSFERRED, link="/coop/manage",
                              data={"cooperative_id": coop.id}, commit=False,
                              member=user.display_name, coop=coop.name)
    coops.announce_on_commit(coop.id, actor=user.user_id)
    db.session.commit()
    return coop


# ---- bans -------------------------------------------------------------------------------------


def ban(user: User, *, coop_id: int, user_id: str, reason: str | None = None) -> CoopBan:
    """Ban a miner from the coop (``POST /api/coops/{id}/bans``): an active
    member is removed through ``coops.remove_locked`` (the removal's path,
    so everything that follows membership follows the ban too) and no join
    lets them back until an unban. Taken under the coop's row lock, which a
    join also holds while it checks for a ban. ``reason`` at most 500
    characters. Raises ValidationError (400), NotFound (404: no such miner),
    NotModerator / CannotModerate (403), CoopDissolved (409) or
    AlreadyBanned (409)."""
    user_id = _target_id(user_id)
    reason = (reason or "").strip()
    if len(reason) > moderation.REASON_MAX:
        raise ValidationError(f"The reason can have at most {moderation.REASON_MAX} characters.")
    if reason:
        inputs.check_text(reason, name="The reason")
    if db.session.get(User, user_id) is None:
        raise NotFound("No such miner.")
    coop = coops.lock_active_coop(coop_id)
    actor = moderation.require_moderator(coop.id, user.user_id)
    row = ban_locked(coop, actor, user_id, reason)
    db.session.commit()
    return row


def ban_locked(coop: Cooperative, actor: CooperativeMember, user_id: str, reason: str = "") -> CoopBan:
    """``ban``'s work in the caller's transaction (coop locked, ``actor``
    checked as a moderator; the caller commits). Also used by a report's
    resolution. Raises CannotModerate (403) or AlreadyBanned (409)."""
    target = moderation.membership_of(coop.id, user_id)
    moderation.check_can_act_on(actor, target.role if target else None, user_id)
    if moderation.is_banned(coop.id, user_id):
        db.session.rollback()
        raise AlreadyBanned()
    row = CoopBan(cooperative_id=coop.id, user_id=user_id, reason=reason, banned_by=actor.user_id)
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:  # SQLite has no row lock: the unique pair decides
        db.session.rollback()
        raise AlreadyBanned() from None
    if target is not None:
        coops.remove_locked(coop, target, actor_user_id=actor.user_id, banned=True)
    moderation.record_action(coop.id, actor.user_id, ModerationAction.BANNED, target_user_id=user_id,
                             data={"reason": reason, "was_member": target is not None})
    return row


def unban(user: User, *, coop_id: int, user_id: str) -> None:
    """Lift a ban (``DELETE /api/coops/{id}/bans/{user_id}``). Raises
    NotFound (404: not banned), NotModerator (403) or CoopDissolved (409)."""
    user_id = _target_id(user_id)
    coop = coops.lock_active_coop(coop_id)
    moderation.require_moderator(coop.id, user.user_id)
    gone = db.session.execute(
        delete(CoopBan).where(CoopBan.cooperative_id == coop.id, CoopBan.user_id == user_id)
        .returning(CoopBan.id)
    ).first()
    if gone is None:
        db.session.rollback()
        raise NotFound("That miner is not banned from this cooperative.")
    moderation.record_action(coop.id, user.user_id, ModerationAction.UNBANNED, target_user_id=user_id)
    db.session.commit()


@dataclass
class BanInfo:
    """A ban as moderators see it."""

    user_id: str
    display_name: str
    reason: str
    banned_by: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "display_name": self.display_name, "reason": self.reason,
                "banned_by": self.banned_by, "created_at": iso(self.created_at)}


def list_bans(user: User, *, coop_id: int) -> list[BanInfo]:
    """The coop's bans, newest first (at most one per miner). Raises
    NotFound (404) or NotModerator (403)."""
    coop = coops.get_for_member(user, coop_id=coop_id)
    moderation.require_moderator(coop.id, user.user_id)
    rows = db.session.execute(
        select(CoopBan, User.display_name).join(User, User.user_id == CoopBan.user_id)
        .where(CoopBan.cooperative_id == coop.id).order_by(CoopBan.id.desc())
    ).all()
    return [BanInfo(b.user_id, name, b.reason, b.banned_by, b.created_at) for b, name in rows]


# ---- mutes ------------------------------------------------------------------------------------


def mute(user: User, *, coop_id: int, user_id: str, minutes: int) -> CoopMute:
    """Mute an active member in the coop's chat for ``minutes`` (1–10080,
    i.e. up to 7 days) from now (``POST /api/coops/{id}/mutes``); a new mute
    replaces a running one. ``moderation.screen_message`` refuses their
    messages with 403 ``muted`` until it ends. Raises ValidationError (400),
    NotFound (404), NotModerator / CannotModerate (403) or CoopDissolved (409)."""
    low, high = moderation.MUTE_MINUTES
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not low <= minutes <= high:
        raise ValidationError(f"minutes must be a whole number from {low} to {high}.")
    user_id = _target_id(user_id)
    coop = coops.lock_active_coop(coop_id)
    actor = moderation.require_moderator(coop.id, user.user_id)
    row = mute_locked(coop, actor, user_id, minutes)
    db.session.commit()
    return row


def mute_locked(coop: Cooperative, actor: CooperativeMember, user_id: str, minutes: int) -> CoopMute:
    """``mute``'s work in the caller's transaction (coop locked, ``actor``
    checked as a moderator, ``minutes`` checked; the caller commits). Also
    used by a report's resolution. Raises NotFound (404) or CannotModerate (403)."""
    target = _member_or_404(coop.id, user_id)
    moderation.check_can_act_on(actor, target.role, user_id)
    until = utcnow() + timedelta(minutes=minutes)
    row = db.session.scalar(
        select(CoopMute).where(CoopMute.cooperative_id == coop.id, CoopMute.user_id == user_id)
    )
    if row is None:
        row = CoopMute(cooperative_id=coop.id, user_id=user_id, until=until, muted_by=actor.user_id)
        db.session.add(row)
    else:
        row.until, row.muted_by, row.created_at = until, actor.user_id, utcnow()
    moderation.record_action(coop.id, actor.user_id, ModerationAction.MUTED, target_user_id=user_id,
                             data={"minutes": minutes, "until": iso(until)})
    _announce_mute_on_commit(coop.id, user_id, "muted")
    return row


def _announce_mute_on_commit(coop_id: int, user_id: str, event: str) -> None:
    """After the commit, tell the member's sockets ``{"type":
    "conversation", "event": "muted"|"unmuted", "data": conversation}`` with
    the coop chat's ``muted_until`` as it now is, so an open composer
    follows the mute (read at the commit, published after it)."""

    def prepare() -> None:
        conversation_id = conversations.coop_conversation_id(coop_id)
        conversation = db.session.get(Conversation, conversation_id) if conversation_id else None
        if conversation is None:
            return
        member = db.session.get(ConversationMember, (conversation.id, user_id))
        data = conversations.conversation_dict(conversation, member,
                                               muted_until=iso(moderation.muted_until(coop_id, user_id)))
        message = {"type": conversations.CONVERSATION, "event": event, "data": data}
        transactions.after_commit(lambda: conversations.publish_many([user_id], message))

    transactions.before_commit(prepare)


def unmute(user: User, *, coop_id: int, user_id: str) -> None:
    """End a running mute early (``DELETE /api/coops/{id}/mutes/{user_id}``).
    Raises NotFound (404: not muted), NotModerator / CannotModerate (403) or
    CoopDissolved (409)."""
    user_id = _target_id(user_id)
    coop = coops.lock_active_coop(coop_id)
    actor = moderation.require_moderator(coop.id, user.user_id)
    target = moderation.membership_of(coop.id, user_id)
    moderation.check_can_act_on(actor, target.role if target else None, user_id)
    if moderation.muted_until(coop.id, user_id) is None:
        db.session.rollback()
        raise NotFound("That miner is not muted.")
    db.session.execute(delete(CoopMute).where(CoopMute.cooperative_id == coop.id, CoopMute.user_id == user_id))
    moderation.record_action(coop.id, user.user_id, ModerationAction.UNMUTED, target_user_id=user_id)
    _announce_mute_on_commit(coop.id, user_id, "unmuted")
    db.session.commit()


def list_mutes(user: User, *, coop_id: int) -> dict[str, datetime]:
    """The coop's running mutes ``{user_id: until}``. Raises NotFound (404) or NotModerator (403)."""
    coop = coops.get_for_member(user, coop_id=coop_id)
    moderation.require_moderator(coop.id, user.user_id)
    return mutes_of(coop.id)


def display_name(user_id: str) -> str:
    """A miner's display name, or the user id when unknown."""
    return coops.display_name(user_id)


def mutes_of(coop_id: int) -> dict[str, datetime]:
    """``{user_id: until}`` of the coop's running mutes (no access check)."""
    rows = db.session.execute(
        select(CoopMute.user_id, CoopMute.until).where(CoopMute.cooperative_id == coop_id,
                                                       CoopMute.until > utcnow())
    ).all()
    return {r.user_id: r.until for r in rows}


# ---- chat settings ------------------------------------------------------------------------------


def update_settings(user: User, *, coop_id: int, slow_mode_seconds: int | None = _UNSET,
                    keyword_filters: list | None = _UNSET) -> Cooperative:
    """Set slow mode (0–3600 seconds; 0 is off) and/or the keyword filters
    (``moderation.clean_filters``; None or [] clears them), as the admin or
    a moderator; each change is audited. Omitted fields stay. Raises
    ValidationError (400), NotFound (404), NotModerator (403) or CoopDissolved (409)."""
    filters = moderation.clean_filters(keyword_filters) if keyword_filters is not _UNSET else _UNSET
    if slow_mode_seconds is not _UNSET:
        if slow_mode_seconds is None:
            slow_mode_seconds = 0
        if isinstance(slow_mode_seconds, bool) or not isinstance(slow_mode_seconds, int) \
                or not 0 <= slow_mode_seconds <= SLOW_MODE_MAX:
            raise ValidationError(f"slow_mode_seconds is a whole number from 0 to {SLOW_MODE_MAX}.")
    coop = coops.lock_active_coop(coop_id)
    moderation.require_moderator(coop.id, user.user_id)
    if slow_mode_seconds is not _UNSET and slow_mode_seconds != coop.slow_mode_seconds:
        moderation.record_action(coop.id, user.user_id, ModerationAction.SLOW_MODE_CHANGED,
                                 data={"from": coop.slow_mode_seconds, "to": slow_mode_seconds})
        coop.slow_mode_seconds = slow_mode_seconds
        # A running window was set for the old length: start afresh under the new one.
        member_ids = list(db.session.scalars(active_member_ids(coop.id)))
        transactions.after_commit(lambda: moderation.clear_slow_mode(coop_id, member_ids))
    if filters is not _UNSET and filters != (coop.keyword_filters or []):
        moderation.record_action(coop.id, user.user_id, ModerationAction.FILTERS_CHANGED,
                                 data={"filters": filters})
        coop.keyword_filters = filters or None
    db.session.commit()
    return coop


# ---- the audit log ------------------------------------------------------------------------------


def audit_page(user: User, *, coop_id: int, limit: int = 20,
               before_id: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """The coop's audit log, newest first, keyset on ``id`` (``before_id``:
    the last id of the previous page). Returns (entries with
    ``actor_display_name`` and ``target_display_name``, the last id when
    more may follow, else None). Raises NotFound (404) or NotModerator (403)."""
    coop = coops.get_for_member(user, coop_id=coop_id)
    moderation.require_moderator(coop.id, user.user_id)
    query = select(CoopAuditEntry).where(CoopAuditEntry.cooperative_id == coop.id)
    if before_id is not None:
        query = query.where(CoopAuditEntry.id < before_id)
    rows = list(db.session.scalars(query.order_by(CoopAuditEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    ids = {r.actor_user_id for r in rows} | {r.target_user_id for r in rows}
    names = {uid: name for uid, name in db.session.execute(
        select(User.user_id, User.display_name).where(User.user_id.in_([i for i in ids if i])))}
    entries = [{**r.to_dict(), "actor_display_name": names.get(r.actor_user_id or ""),
                "target_display_name": names.get(r.target_user_id or "")} for r in rows]
    return entries, (rows[-1].id if more else None)
