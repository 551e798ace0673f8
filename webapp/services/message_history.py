"""Reading conversations and messages (API.md "Conversations and messages"):
history newest first and catch-up by ``seq``, one conversation, the
caller's conversations with unread counts, the coop's conversation.
``services.messages`` re-exports these, so callers use one module."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..models import Conversation, ConversationMember, Message, iso
from ..vocabulary import ConversationKind
from . import conversations, inputs, moderation, relations
from .coops import MAX_COOP_ID
from .errors import NotFound, ValidationError

PAGE_DEFAULT, PAGE_MAX = 50, 100


def _limit(limit: object) -> int:
    if limit is None:
        return PAGE_DEFAULT
    return inputs.parse_int(limit, name="limit", minimum=1, maximum=PAGE_MAX)


def history(user_id: str, conversation_id: int, *, limit: object = None,
            cursor: object = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset by seq on ``uq_messages_conversation_seq``:
    ``cursor`` is the ``next_cursor`` of the previous page (the lowest seq
    it held). Returns ``(messages, next_cursor or None)``. Raises
    ValidationError (400), NotFound (404), NotAMember (403)."""
    size = _limit(limit)
    before = None
    if cursor not in (None, ""):
        if not inputs.is_ascii_int(cursor):
            raise ValidationError("cursor is not valid; use next_cursor from the previous page.")
        before = inputs.parse_int(cursor, name="cursor", maximum=conversations.MAX_MESSAGE_ID)
    conversation, _ = conversations.require_member(conversation_id, user_id)
    query = select(Message).where(Message.conversation_id == conversation.id)
    if before is not None:
        query = query.where(Message.seq < before)
    rows = list(db.session.scalars(query.order_by(Message.seq.desc()).limit(size)))
    next_cursor = str(rows[-1].seq) if len(rows) == size and rows[-1].seq > 1 else None
    return mark_hidden(conversation, conversations.message_dicts(rows, user_id), user_id), next_cursor


def after_seq(user_id: str, conversation_id: int, after: object, *, limit: object = None,
              up_to: int | None = None) -> list[dict[str, Any]]:
    """Catch-up: the messages with ``after < seq`` (``<= up_to`` when given),
    oldest first, at most ``limit``. Raises ValidationError (400), NotFound
    (404), NotAMember (403)."""
    after = inputs.parse_int(after, name="after_seq", maximum=conversations.MAX_MESSAGE_ID)
    size = _limit(limit)
    conversation, _ = conversations.require_member(conversation_id, user_id)
    query = select(Message).where(Message.conversation_id == conversation.id, Message.seq > after)
    if up_to is not None:
        query = query.where(Message.seq <= up_to)
    rows = list(db.session.scalars(query.order_by(Message.seq).limit(size)))
    return mark_hidden(conversation, conversations.message_dicts(rows, user_id), user_id)


def mark_hidden(conversation: Conversation, items: list[dict[str, Any]], viewer: str) -> list[dict[str, Any]]:
    """In a group, the messages of members ``viewer`` blocked get
    ``"hidden_for_viewer": true`` (API.md "Direct and group conversations"):
    the message keeps its place and shape (sequences stay gap-free), the
    page shows it collapsed; live pushes of them already skip the blocker
    (``messages.post``). Other kinds, and messages of anyone else, are
    returned unchanged. Returns ``items`` (marked in place)."""
    if conversation.kind != ConversationKind.GROUP or not items:
        return items
    blocked = relations.blocked_ids(viewer)
    if blocked:
        for item in items:
            if (item.get("sender") or {}).get("user_id") in blocked:
                item["hidden_for_viewer"] = True
    return items


def get_conversation(user_id: str, conversation_id: int) -> dict[str, Any]:
    """One conversation as the caller sees it. NotFound (404), NotAMember (403)."""
    conversation, row = conversations.require_member(conversation_id, user_id)
    return _conversation_dict(conversation, row)


def _conversation_dict(conversation: Conversation, row: ConversationMember) -> dict[str, Any]:
    muted = None
    if conversation.cooperative_id is not None:
        muted = iso(moderation.muted_until(conversation.cooperative_id, row.user_id))
    return conversations.conversation_dict(conversation, row, muted_until=muted)


def list_conversations(user_id: str, *, limit: object = None,
                       cursor: object = None) -> tuple[list[dict[str, Any]], str | None]:
    """The caller's current conversations, most recent activity first
    (``last_message_at``, else creation, then id); ``cursor`` is the previous
    page's ``next_cursor`` (``<microseconds>.<id>``). Raises ValidationError."""
    size = _limit(limit)
    activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)
    query = (
        select(Conversation, ConversationMember)
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .where(ConversationMember.user_id == user_id, conversations.is_current_member())
    )
    if cursor not in (None, ""):
        micros, _, ident = str(cursor).partition(".")
        if not (inputs.is_ascii_int(micros) and inputs.is_ascii_int(ident)):
            raise ValidationError("cursor is not valid; use next_cursor from the previous page.")
        rows = db.session.execute(query.order_by(activity.desc(), Conversation.id.desc())).all()
        key = (int(micros), int(ident))
        # A member is in few conversations: filtering the key in Python keeps
        # the microsecond cursor exact on SQLite and PostgreSQL alike.
        rows = [r for r in rows if (_micros(r[0]), r[0].id) < key]
    else:
        rows = db.session.execute(query.order_by(activity.desc(), Conversation.id.desc()).limit(size)).all()
    rows = rows[:size]
    items = [_conversation_dict(c, m) for c, m in rows]
    groups = [(c, item) for (c, _), item in zip(rows, items, strict=True)
              if c.kind == ConversationKind.GROUP and item["last_message"] is not None]
    if groups and relations.blocked_ids(user_id):  # a blocked member's last words stay collapsed here too
        for conversation, item in groups:
            mark_hidden(conversation, [item["last_message"]], user_id)
    next_cursor = f"{_micros(rows[-1][0])}.{rows[-1][0].id}" if len(rows) == size else None
    return items, next_cursor


def _micros(conversation: Conversation) -> int:
    when = conversation.last_message_at or conversation.created_at
    return int(when.timestamp() * 1_000_000)


def conversation_for_coop(user_id: str, coop_id: int) -> dict[str, Any]:
    """The coop's conversation as a member sees it (the chat page). Raises
    NotFound (404) or NotAMember (403)."""
    if not 1 <= coop_id <= MAX_COOP_ID:  # beyond the 32-bit column: no such coop, not a database error
        raise NotFound("No such cooperative.")
    conversation_id = conversations.coop_conversation_id(coop_id)
    if conversation_id is None:
        raise NotFound("This cooperative has no chat.")
    return get_conversation(user_id, conversation_id)
