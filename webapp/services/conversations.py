"""Conversations and who is in them (API.md "Conversations and messages"):
the membership rows, the coop conversation that follows its coop, the JSON
shapes of conversations and messages, and the pushes to members' sockets.

Kind-agnostic: ``coop`` (one live per coop, its members the coop's active
members), ``direct`` and ``group`` (created by the friends service through
``create`` and ``add_member`` / ``remove_member``).

Serialisation with membership changes: every membership write locks the
conversation row first (``lock``, which also bumps its ``members_version``),
as a post does (its ``UPDATE … last_seq``),
so a message either commits before a removal — the removed member was a
member when it was sent — or after it, and then its transaction (READ
COMMITTED takes a fresh snapshot after the lock wait) reads the member list
without them and never publishes to them.

The coop hooks (``coop_founded``, ``coop_member_joined``, ``coop_member_ended``,
``coop_dissolved``) run inside the coops service's transaction: the chat
follows join, leave, removal (and a ban, which removes through the same
path) and dissolve atomically with them.

This module imports no service that could import the coops package
(moderation may, for bans), so the coops package can import it.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from flask import current_app
from sqlalchemy import Integer, and_, bindparam, func, select, update

from .. import realtime
from ..extensions import db, execute_dml
from ..models import (
    Conversation,
    ConversationMember,
    Cooperative,
    CooperativeMember,
    Message,
    MessageReaction,
    User,
    iso,
    utcnow,
)
from ..vocabulary import ConversationKind, ConversationRole
from . import transactions
from .errors import NotAMember, NotFound
from .membership import is_active_member

MAX_CONVERSATION_ID = 2**31 - 1
MAX_MESSAGE_ID = 2**63 - 1

# Socket message types (API.md "Socket additions").
MESSAGE = "message"
MESSAGE_UPDATED = "message_updated"
CONVERSATION = "conversation"
TYPING = "typing"
READ = "read"

# Why a ``conversation`` event went out (an extra ``event`` key).
JOINED, LEFT, REMOVED, RENAMED, ARCHIVED = "joined", "left", "removed", "renamed", "archived"
READ_ONLY = "read_only"  # a direct conversation after a block or an unfriend: members stay, posting stops
WRITABLE = "writable"  # the same direct conversation once they are friends again: posting resumes


def is_current_member():
    """WHERE clause: participants who have not left."""
    return ConversationMember.left_at.is_(None)


# ---- reads -------------------------------------------------------------------------


def check_id(conversation_id: object) -> int:
    """A conversation id from a path or a message, or NotFound (404)."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool) \
            or not 1 <= conversation_id <= MAX_CONVERSATION_ID:
        raise NotFound("No such conversation.")
    return conversation_id


def get(conversation_id: int) -> Conversation:
    """The conversation, or NotFound (404)."""
    conversation = db.session.get(Conversation, check_id(conversation_id), populate_existing=True)
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


def membership(conversation_id: int, user_id: str) -> ConversationMember | None:
    """The current (not left) membership row, fresh, or None."""
    return db.session.execute(
        select(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id, ConversationMember.user_id == user_id,
               is_current_member())
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def require_member(conversation_id: int, user_id: str) -> tuple[Conversation, ConversationMember]:
    """The conversation and the caller's membership. Raises NotFound (404)
    or NotAMember (403 ``not_a_member``)."""
    conversation = get(conversation_id)
    row = membership(conversation.id, user_id)
    if row is None:
        raise NotAMember("Only members of this conversation can do that.")
    return conversation, row


@functools.cache
def _member_ids_statement() -> Any:
    table = ConversationMember.__table__
    return select(table.c.user_id).where(table.c.conversation_id == bindparam("cid", type_=Integer),
                                         table.c.left_at.is_(None))


def member_ids(conversation_id: int) -> list[str]:
    """The current members' user ids (a statement built once: posts and
    typing call this for every message)."""
    return list(db.session.connection().execute(_member_ids_statement(), {"cid": conversation_id}).scalars())


def last_seqs(user_id: str) -> dict[int, int]:
    """``{conversation id: last_seq}`` of the conversations ``user_id`` is
    a current member of (one query; a socket's starting point)."""
    rows = db.session.execute(
        select(Conversation.id, Conversation.last_seq)
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .where(ConversationMember.user_id == user_id, is_current_member())
    ).all()
    return {cid: seq for cid, seq in rows}


def read_positions(conversation_id: int) -> dict[str, int]:
    """``{user_id: last_read_seq}`` of the current members (read receipts)."""
    return dict(db.session.execute(
        select(ConversationMember.user_id, ConversationMember.last_read_seq)
        .where(ConversationMember.conversation_id == conversation_id, is_current_member())
    ).all())


def coop_conversation_id(coop_id: int) -> int | None:
    """The live conversation of a coop, or None (dissolved, or no such coop)."""
    return db.session.scalar(
        select(Conversation.id).where(Conversation.cooperative_id == coop_id, Conversation.archived_at.is_(None))
    )


def lock(conversation_id: int) -> None:
    """Lock the conversation row to the end of the transaction (see the
    module docstring: membership writes and posts are serialised by it) and
    bump its ``members_version``: a post that read the member list before
    this write commits sees the version moved and reads the list again
    (``messages.post``). Every membership write calls this first."""
    db.session.execute(
        update(Conversation).where(Conversation.id == conversation_id)
        .values(members_version=Conversation.members_version + 1)
        .execution_options(synchronize_session=False)
    )


# ---- shapes ------------------------------------------------------------------------


def title_of(conversation: Conversation) -> str | None:
    """A coop conversation is titled by its coop's (current) name."""
    if conversation.cooperative_id is not None:
        return db.session.scalar(select(Cooperative.name).where(Cooperative.id == conversation.cooperative_id))
    return conversation.title


def members_dicts(conversation: Conversation) -> list[dict[str, Any]]:
    """``[{"user_id", "display_name", "role"}]`` of the current members; a
    coop conversation's roles are the coop's (admin, moderator, member)."""
    if conversation.cooperative_id is not None:
        rows = db.session.execute(
            select(ConversationMember.user_id, User.display_name, CooperativeMember.role)
            .join(User, User.user_id == ConversationMember.user_id)
            .outerjoin(CooperativeMember, and_(CooperativeMember.user_id == ConversationMember.user_id,
                                               is_active_member(conversation.cooperative_id)))
            .where(ConversationMember.conversation_id == conversation.id, is_current_member())
            .order_by(ConversationMember.joined_at, ConversationMember.user_id)
        ).all()
    else:
        rows = db.session.execute(
            select(ConversationMember.user_id, User.display_name, ConversationMember.role)
            .join(User, User.user_id == ConversationMember.user_id)
            .where(ConversationMember.conversation_id == conversation.id, is_current_member())
            .order_by(ConversationMember.joined_at, ConversationMember.user_id)
        ).all()
    return [{"user_id": r[0], "display_name": r[1], "role": r[2] or "member"} for r in rows]


def reactions_of(message_ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
    """``{message id: {emoji: [user ids in reaction order]}}``."""
    ids = list(message_ids)
    found: dict[int, dict[str, list[str]]] = {}
    if not ids:
        return found
    for message_id, emoji, user_id in db.session.execute(
        select(MessageReaction.message_id, MessageReaction.emoji, MessageReaction.user_id)
        .where(MessageReaction.message_id.in_(ids))
        .order_by(MessageReaction.created_at, MessageReaction.user_id)
    ):
        found.setdefault(message_id, {}).setdefault(emoji, []).append(user_id)
    return found


def reaction_list(reactors: dict[str, list[str]] | None, viewer: str | None) -> list[dict[str, Any]]:
    """API shape ``[{"emoji", "count", "me"}]`` for one viewer."""
    return [{"emoji": e, "count": len(users), "me": viewer in users} for e, users in (reactors or {}).items()]


def message_dicts(rows: list[Message], viewer: str | None = None) -> list[dict[str, Any]]:
    """Messages in the API shape (API.md "message"), with sender display
    names and reactions read in two queries. A tombstone keeps its place
    (``seq``) with ``body`` null and no mentions or reactions; a sender whose
    account is gone is "deleted miner"."""
    senders = {s for s in (m.sender_id for m in rows) if s}
    names = dict(db.session.execute(select(User.user_id, User.display_name).where(User.user_id.in_(senders))).all()) \
        if senders else {}
    reactions = reactions_of(m.id for m in rows if m.deleted_at is None)
    return [message_dict(m, names, reactions.get(m.id), viewer) for m in rows]


def message_dict(m: Message, names: dict[str, str], reactors: dict[str, list[str]] | None,
                 viewer: str | None) -> dict[str, Any]:
    """One message in the API shape (see ``message_dicts``). A push carries
    ``reactors`` under ``_reactors`` for the socket to fill ``me`` per user."""
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "sender": {"user_id": m.sender_id, "display_name": names.get(m.sender_id or "", "deleted miner")},
        "body": m.body,
        "reply_to": m.reply_to,
        "mentions": list(m.mentions or []) if m.deleted_at is None else [],
        "reactions": reaction_list(reactors, viewer) if m.deleted_at is None else [],
        "created_at": iso(m.created_at),
        "edited_at": iso(m.edited_at),
        "deleted_at": iso(m.deleted_at),
    }


def conversation_dict(conversation: Conversation, member: ConversationMember | None, *,
                      muted_until: str | None = None) -> dict[str, Any]:
    """A conversation as ``member`` sees it (API.md "conversation")."""
    last = db.session.execute(
        select(Message).where(Message.conversation_id == conversation.id, Message.seq == conversation.last_seq)
    ).scalar_one_or_none()
    last_read = member.last_read_seq if member is not None else 0
    viewer = member.user_id if member is not None else None
    return {
        "id": conversation.id,
        "kind": conversation.kind,
        "title": title_of(conversation),
        "cooperative_id": conversation.cooperative_id,
        "members": members_dicts(conversation),
        "last_message": message_dicts([last], viewer)[0] if last is not None else None,
        "last_seq": conversation.last_seq,
        "last_read_seq": last_read,
        "unread_count": max(0, conversation.last_seq - last_read),
        "muted_until": muted_until,
    }


# ---- membership writes -------------------------------------------------------------


def create(kind: str, *, member_ids: Iterable[str], created_by: str | None = None, title: str | None = None,
           cooperative_id: int | None = None) -> Conversation:
    """Create a conversation with its members (the creator ``owner`` in a
    group), in the caller's transaction; each member hears ``conversation``
    (``event: joined``) after the commit. The caller checks who may be in it
    (friends for direct/group). Raises IntegrityError for a second live
    conversation of one coop."""
    conversation = Conversation(kind=ConversationKind(kind).value, title=title, cooperative_id=cooperative_id,
                                created_by=created_by, last_seq=0, created_at=utcnow())
    db.session.add(conversation)
    db.session.flush()
    for user_id in dict.fromkeys(member_ids):
        role = ConversationRole.OWNER if kind == ConversationKind.GROUP and user_id == created_by \
            else ConversationRole.MEMBER
        db.session.add(ConversationMember(conversation_id=conversation.id, user_id=user_id, role=role.value,
                                          joined_at=utcnow()))
        announce_member_on_commit(conversation.id, user_id, JOINED)
    db.session.flush()
    return conversation


def add_member(conversation_id: int, user_id: str, *, role: str = ConversationRole.MEMBER) -> None:
    """Make ``user_id`` a current member (a new row, or the old one reopened:
    their read position stays), in the caller's transaction; they hear
    ``conversation`` (``event: joined``) after the commit."""
    lock(conversation_id)
    row = db.session.get(ConversationMember, (conversation_id, user_id), populate_existing=True)
    if row is None:
        db.session.add(ConversationMember(conversation_id=conversation_id, user_id=user_id,
                                          role=ConversationRole(role).value, joined_at=utcnow()))
    else:
        row.left_at, row.joined_at, row.role, row.unread_notified = None, utcnow(), ConversationRole(role).value, False
    db.session.flush()
    announce_member_on_commit(conversation_id, user_id, JOINED)


def remove_member(conversation_id: int, user_id: str, *, reason: str = LEFT) -> bool:
    """End ``user_id``'s membership (``reason`` ``left`` or ``removed``) in the
    caller's transaction. From its commit on, no message reaches them
    (module docstring); their sockets hear ``conversation`` with ``event``
    set to ``reason`` and drop the conversation. Returns whether they were
    a member."""
    lock(conversation_id)
    ended = execute_dml(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id, ConversationMember.user_id == user_id,
               is_current_member())
        .values(left_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if ended:
        announce_member_on_commit(conversation_id, user_id, reason)
    return bool(ended)


def archive(conversation_id: int) -> list[str]:
    """End every membership and archive the conversation (a dissolved coop);
    messages stay. Returns the former members."""
    lock(conversation_id)
    former = member_ids(conversation_id)
    for user_id in former:
        remove_member(conversation_id, user_id, reason=ARCHIVED)
    db.session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(archived_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return former


# ---- the coop conversation follows the coop ----------------------------------------


def coop_founded(coop_id: int, founder_id: str) -> Conversation:
    """A new coop's conversation with its founder (coops.create's transaction)."""
    return create(ConversationKind.COOP, member_ids=[founder_id], created_by=founder_id, cooperative_id=coop_id)


def coop_member_joined(coop_id: int, user_id: str) -> None:
    """A join (coops.join's transaction): the member joins the chat. A coop
    without a conversation (cannot happen after migration 0006) gets one."""
    conversation_id = coop_conversation_id(coop_id)
    if conversation_id is None:
        coop_founded(coop_id, user_id)
        return
    add_member(conversation_id, user_id)


def coop_member_ended(coop_id: int, user_id: str, *, removed: bool) -> None:
    """A leave, removal or ban (the coops service's ``_end_membership``, in
    its transaction): the member leaves the chat at the same commit."""
    conversation_id = coop_conversation_id(coop_id)
    if conversation_id is not None:
        remove_member(conversation_id, user_id, reason=REMOVED if removed else LEFT)


def coop_dissolved(coop_id: int) -> None:
    """A dissolve (coops.dissolve_locked's transaction): the chat is archived."""
    conversation_id = coop_conversation_id(coop_id)
    if conversation_id is not None:
        archive(conversation_id)


# ---- pushes ------------------------------------------------------------------------


def announce_member_on_commit(conversation_id: int, user_id: str, event: str) -> None:
    """After the commit, tell ``user_id``'s sockets ``{"type": "conversation",
    "event": <joined|left|removed|archived|read_only|writable>, "data":
    conversation}``; the data is read at the commit (a member's own view for
    ``joined``, ``read_only`` and ``writable``; for the others, the
    conversation without them)."""

    def prepare() -> None:
        conversation = db.session.get(Conversation, conversation_id, populate_existing=True)
        if conversation is None:
            return
        row = db.session.get(ConversationMember, (conversation_id, user_id))
        data = conversation_dict(conversation, row if event in (JOINED, READ_ONLY, WRITABLE) else None)
        message = {"type": CONVERSATION, "event": event, "data": data}
        transactions.after_commit(lambda: publish_many([user_id], message))

    transactions.before_commit(prepare)


def publish_many(user_ids: Iterable[str], message: dict[str, Any]) -> None:
    """Publish one message to every socket of ``user_ids`` (one round trip).
    A Redis failure is logged, never raised: the change is committed and a
    resume or reload shows it."""
    ids = list(user_ids)
    if not ids:
        return
    try:
        realtime.publish_many(ids, message)
    except Exception:  # noqa: BLE001 - stored; clients catch up with resume
        current_app.logger.exception("chat push %s failed", message.get("type"))


def publish_groups(pushes: list[tuple[list[str], dict[str, Any]]]) -> None:
    """``publish_many`` of several messages, each to its own ``user_ids``,
    in one round trip; a Redis failure is logged, never raised."""
    try:
        realtime.publish_groups([(ids, message) for ids, message in pushes if ids])
    except Exception:  # noqa: BLE001 - stored; clients catch up with resume
        current_app.logger.exception("chat push of %d messages failed", len(pushes))


def member_counts(conversation_ids: list[int]) -> dict[int, int]:
    """Current member counts by conversation."""
    if not conversation_ids:
        return {}
    return dict(db.session.execute(
        select(ConversationMember.conversation_id, func.count())
        .where(ConversationMember.conversation_id.in_(conversation_ids), is_current_member())
        .group_by(ConversationMember.conversation_id)
    ).all())

