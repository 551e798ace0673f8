"""Retention of archived conversations (docs/CHAT.md "Retention and
scale"): a conversation archived longer than ``CHAT_ARCHIVE_RETENTION_DAYS``
(default 90) is deleted with everything it holds — its messages, their
reactions, its members and their read positions (``last_read_seq``, the
read receipts) — by the daily job ``jobs.chat.purge_archived_conversations``.

Archived means ``conversations.archived_at`` is set:

- a dissolved coop's conversation, archived by the dissolve
  (``conversations.archive``);
- a direct or group conversation nobody is in any more (every member left
  or was removed, or their accounts are gone): nobody can read or post in
  it, so the purge stamps ``archived_at`` on it first and the retention
  period runs from then. A read-only direct or group conversation whose
  members are still there (no longer friends) is not archived: they can
  still read it.

Deletes run ``batch`` messages per transaction, so locks stay short; the
conversation row goes last, so a run cut short is finished by the next one
(idempotent: a second run finds nothing). Explicit deletes rather than ON
DELETE CASCADE alone: SQLite (the embedded default) does not enforce
foreign keys. Reports keep naming a purged message's id (a report outlives
what it names, ``models.Report``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, exists, select, update

from ..extensions import db, execute_dml
from ..models import Conversation, ConversationMember, DirectPair, Message, MessageReaction, utcnow
from ..vocabulary import ConversationKind

PURGE_BATCH = 1000  # messages per transaction


@dataclass(frozen=True)
class PurgeResult:
    """What one run did: direct/group conversations it archived (nobody in
    them), conversations and messages it deleted."""

    archived: int = 0
    conversations: int = 0
    messages: int = 0


def archive_abandoned(now: datetime | None = None) -> int:
    """Archive (``archived_at`` = ``now``) every direct or group conversation
    with no current member. Commits. Returns how many."""
    current = exists().where(ConversationMember.conversation_id == Conversation.id,
                             ConversationMember.left_at.is_(None))
    count = execute_dml(
        update(Conversation)
        .where(Conversation.kind != ConversationKind.COOP.value, Conversation.archived_at.is_(None), ~current)
        .values(archived_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return count


def purge_archived(now: datetime | None = None, *, days: int | None = None,
                   batch: int = PURGE_BATCH) -> PurgeResult:
    """Archive the abandoned direct and group conversations, then delete
    every conversation archived before ``now`` minus ``days`` (default
    ``CHAT_ARCHIVE_RETENTION_DAYS``) with its messages, reactions and
    members, ``batch`` messages per transaction. Live conversations are
    never touched. Returns a PurgeResult."""
    now = now or utcnow()
    if days is None:
        days = int(current_app.config["CHAT_ARCHIVE_RETENTION_DAYS"])
    cutoff = now - timedelta(days=days)
    archived = archive_abandoned(now)
    ids = list(db.session.scalars(
        select(Conversation.id).where(Conversation.archived_at.is_not(None), Conversation.archived_at < cutoff)
        .order_by(Conversation.id)
    ))
    db.session.rollback()
    deleted_messages = 0
    for conversation_id in ids:
        deleted_messages += _purge_one(conversation_id, batch)
    return PurgeResult(archived=archived, conversations=len(ids), messages=deleted_messages)


def _purge_one(conversation_id: int, batch: int) -> int:
    """Delete one archived conversation, ``batch`` messages per commit, the
    members and the row last. Returns the messages deleted."""
    total = 0
    while True:
        # Newest first: a reply is always newer than what it answers, so no
        # message left behind points at a deleted one (no SET NULL to run).
        message_ids = list(db.session.scalars(
            select(Message.id).where(Message.conversation_id == conversation_id)
            .order_by(Message.seq.desc()).limit(batch)
        ))
        if not message_ids:
            break
        execute_dml(delete(MessageReaction).where(MessageReaction.message_id.in_(message_ids))
                    .execution_options(synchronize_session=False))
        total += execute_dml(delete(Message).where(Message.id.in_(message_ids))
                             .execution_options(synchronize_session=False))
        db.session.commit()
    execute_dml(delete(ConversationMember).where(ConversationMember.conversation_id == conversation_id)
                .execution_options(synchronize_session=False))
    execute_dml(delete(DirectPair).where(DirectPair.conversation_id == conversation_id)
                .execution_options(synchronize_session=False))
    # Only while still archived: a row un-archived meanwhile (none are today) stays.
    execute_dml(delete(Conversation).where(Conversation.id == conversation_id, Conversation.archived_at.is_not(None))
                .execution_options(synchronize_session=False))
    db.session.commit()
    return total
