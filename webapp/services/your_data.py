"""A miner's own data (API.md "Profiles": ``GET /api/me/export``, ``DELETE
/api/me``; seed 002 §9): everything stored about them as one JSON document,
and deleting the account with its personal data in one transaction.

Deleting, in one transaction after the password is checked:

* the active coop is left by the rules of leaving (``coops.leave_in_transaction``:
  an admin hands over, the last member dissolves it);
* the user row is deleted; the foreign keys do the rest: rows that are the
  miner's own go (sessions, settings, profile, memberships, notifications,
  activity, friendships, requests, blocks, reactions, push subscriptions …)
  and rows others keep lose the id (``ON DELETE SET NULL``: messages they
  sent read "deleted miner", a coop's admin, audit actors);
* the pool's data about the address (mining events, rollups, worker
  states) is deleted: it names the miner;
* where another row names the miner by id in text (another miner's
  notification or activity data and link, a message's mentions, a report
  or audit entry's target, a message that mentions them), the id is replaced by one random
  ``deleted-<hex>`` token, the same within that deletion;
* uploaded images are removed from storage after the commit.
"""
from __future__ import annotations

import functools
import secrets
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, update

from ..extensions import db
from ..models import (
    AuditLog,
    Block,
    CoopAuditEntry,
    CooperativeMember,
    FriendRequest,
    Friendship,
    Message,
    MinerStats,
    MiningEvent,
    Notification,
    Report,
    User,
    UserActivity,
    UserProfile,
    UserSession,
    WorkerStatus,
    iso,
)
from ..vocabulary import MemberStatus
from . import accounts, coops, friends, media, passwords, profile_cache, profile_edit, transactions
from .errors import WrongPassword

EXPORT_FORMAT = 1


def export(user: User) -> dict[str, Any]:
    """Every stored fact about ``user`` as JSON-ready data: ``{"format",
    "account", "settings", "profile", "cooperatives", "notifications",
    "activity", "messages_sent", "friends", "friend_requests", "blocks",
    "uploads", "sessions"}`` (lists oldest first)."""
    me = user.user_id
    memberships = db.session.execute(
        select(CooperativeMember).where(CooperativeMember.user_id == me).order_by(CooperativeMember.id)
    ).scalars()
    requests = db.session.scalars(
        select(FriendRequest).where(or_(FriendRequest.requester_id == me, FriendRequest.recipient_id == me))
        .order_by(FriendRequest.id)
    )
    friend_rows = db.session.scalars(select(Friendship).where(Friendship.user_id == me).order_by(Friendship.created_at))
    sent = db.session.scalars(select(Message).where(Message.sender_id == me).order_by(Message.id))
    profile = profile_edit.own_profile(user)
    return {
        "format": EXPORT_FORMAT,
        "account": user.to_dict(),
        "settings": accounts.get_settings(user),
        "profile": profile,
        "cooperatives": [
            {"cooperative_id": m.cooperative_id, "role": m.role, "status": m.status,
             "joined_at": iso(m.joined_at), "left_at": iso(m.left_at)}
            for m in memberships
        ],
        "notifications": [n.to_dict() for n in db.session.scalars(
            select(Notification).where(Notification.user_id == me).order_by(Notification.id))],
        "activity": [a.to_dict() for a in db.session.scalars(
            select(UserActivity).where(UserActivity.user_id == me).order_by(UserActivity.id))],
        "messages_sent": [
            {"id": m.id, "conversation_id": m.conversation_id, "seq": m.seq, "body": m.body,
             "created_at": iso(m.created_at), "edited_at": iso(m.edited_at), "deleted_at": iso(m.deleted_at)}
            for m in sent
        ],
        "friends": [{"user_id": f.friend_id, "since": iso(f.created_at)} for f in friend_rows],
        "friend_requests": [r.to_dict() for r in requests],
        "blocks": friends.list_blocks(me),
        "uploads": {k: profile[k] for k in ("avatar_url", "avatar_small_url", "banner_url", "banner_small_url")},
        "sessions": [
            {"created_at": iso(s.created_at), "last_seen_at": iso(s.last_seen_at), "user_agent": s.user_agent,
             "revoked_at": iso(s.revoked_at)}
            for s in db.session.scalars(select(UserSession).where(UserSession.user_id == me)
                                        .order_by(UserSession.created_at))
        ],
    }


def _replace_in(column, user_id: str, token: str):
    """SQL: ``column`` (text or JSON) with every ``user_id`` replaced by ``token``."""
    return cast(func.replace(cast(column, Text), user_id, token), column.type)


def _mentions(column, user_id: str):
    return cast(column, Text).like(f"%{user_id}%")


def delete_account(user: User, password: str) -> None:
    """Delete ``user`` and their personal data (module doc) and commit.
    Raises WrongPassword (403) when ``password`` is not theirs."""
    if not isinstance(password, str) or not passwords.verify(user.password_hash, password):
        raise WrongPassword("The password is not right.")
    me = user.user_id
    token = f"deleted-{secrets.token_hex(6)}"
    active = db.session.scalar(select(CooperativeMember.cooperative_id).where(
        CooperativeMember.user_id == me, CooperativeMember.status == MemberStatus.ACTIVE))
    if active is not None:
        coops.leave_in_transaction(user, coop_id=active)
    profile = db.session.get(UserProfile, me)
    images = [("avatar", profile.avatar_key), ("banner", profile.banner_key)] if profile else []

    # Text elsewhere that names the miner by id: one anonymous token instead.
    for model, columns in ((Notification, ("data", "link")), (UserActivity, ("data", "link")),
                           (Message, ("mentions", "body")), (AuditLog, ("data",)), (CoopAuditEntry, ("data",))):
        for name in columns:
            column = getattr(model, name)
            db.session.execute(
                update(model).where(_mentions(column, me)).values({name: _replace_in(column, me, token)})
                .execution_options(synchronize_session=False))
    db.session.execute(update(AuditLog).where(AuditLog.target_id == me).values(target_id=token)
                       .execution_options(synchronize_session=False))
    db.session.execute(update(CoopAuditEntry).where(CoopAuditEntry.target_user_id == me)
                       .values(target_user_id=token).execution_options(synchronize_session=False))
    db.session.execute(update(Report).where(Report.target_user_id == me).values(target_user_id=token)
                       .execution_options(synchronize_session=False))
    db.session.execute(update(Report).where(Report.target_type == "user", Report.target_id == me)
                       .values(target_id=token).execution_options(synchronize_session=False))
    # The pool's records of the address.
    for mining_model in (MiningEvent, MinerStats, WorkerStatus):
        db.session.execute(delete(mining_model).where(mining_model.user_id == me)
                           .execution_options(synchronize_session=False))
    # Blocks and requests cascade with the user row; listed here so the counts of the others refresh.
    others = set(db.session.scalars(select(FriendRequest.requester_id).where(
        FriendRequest.recipient_id == me, FriendRequest.status == friends.PENDING)))
    db.session.execute(delete(Block).where(or_(Block.blocker_id == me, Block.blocked_id == me))
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(User).where(User.user_id == me).execution_options(synchronize_session=False))
    profile_cache.CACHE.changed([me], shared=True)  # Core DELETEs: the rank of everyone below moves
    for kind, base in images:
        if base:
            transactions.after_commit(functools.partial(media.remove, kind, base))
    if others:
        friends.publish_counts_on_commit(*others)
    # The caller's object stays readable (the request still logs out with it); its row is gone.
    if user in db.session:
        db.session.expunge(user)
    db.session.commit()
