"""JSON routes: conversations and messages (API.md "Conversations and
messages"). Thin: parse, call ``services.messages``, serialise. A
non-member is 403 ``not_a_member``; an unknown conversation or message 404.
"""
from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint
from pydantic import Field, WithJsonSchema

from ..auth import api_auth_required, api_caller
from ..models import MAX_MESSAGE_LENGTH
from ..services import conversations, inputs, messages, presence
from ..services.inputs import MultilineText
from .openapi import endpoint
from .schemas import Out, StatusOut
from .validation import MAX_ID, Query, Schema, parsed_by

bp = Blueprint("api_conversations", __name__)


# ---- models ------------------------------------------------------------------------


class SenderOut(Out):
    user_id: str | None
    display_name: str


class ReactionOut(Out):
    emoji: str
    count: int
    me: bool


class MessageOut(Out):
    id: int
    conversation_id: int
    seq: int
    sender: SenderOut
    body: str | None
    reply_to: int | None
    mentions: list[str]
    reactions: list[ReactionOut]
    created_at: str
    edited_at: str | None
    deleted_at: str | None
    # Only on messages of a member the viewer blocked (a group's history): true.
    hidden_for_viewer: bool | None = None


class MemberOut(Out):
    user_id: str
    display_name: str
    role: str


class ConversationOut(Out):
    id: int
    kind: str
    title: str | None
    cooperative_id: int | None
    members: list[MemberOut]
    last_message: MessageOut | None
    last_seq: int
    last_read_seq: int
    unread_count: int
    muted_until: str | None


class ConversationPageOut(Out):
    conversations: list[ConversationOut]
    next_cursor: str | None


class MessagePageOut(Out):
    messages: list[MessageOut]
    next_cursor: str | None


class ReadOut(Out):
    last_read_seq: int
    unread_count: int


class ReactionsOut(Out):
    reactions: list[ReactionOut]


class PresenceOut(Out):
    user_id: str
    status: str
    last_active_at: str | None


class PresenceListOut(Out):
    presence: list[PresenceOut]


def _int_or_none(raw: Any, name: str, minimum: int = 0) -> int | None:
    return inputs.optional_int(raw, name=name, minimum=minimum, maximum=MAX_ID)


Limit = Annotated[int | None, parsed_by(lambda raw: _int_or_none(raw, "limit", 1)),
                  WithJsonSchema({"type": "integer", "minimum": 1, "maximum": messages.PAGE_MAX})]
TextCursor = Annotated[str | None, parsed_by(lambda raw: raw or None), WithJsonSchema({"type": "string"})]


class ConversationsQuery(Query):
    limit: Limit = None
    cursor: TextCursor = None


class MessagesQuery(Query):
    limit: Limit = None
    # next_cursor of the previous page (newest first).
    cursor: TextCursor = None
    # Instead of a page: the messages with seq > after_seq, oldest first (catch-up).
    after_seq: Annotated[int | None, parsed_by(lambda raw: _int_or_none(raw, "after_seq")),
                         WithJsonSchema({"type": "integer", "minimum": 0})] = None


_BODY_DOC: dict[str, Any] = {"minLength": 1, "maxLength": MAX_MESSAGE_LENGTH}


class PostBody(Schema):
    body: MultilineText = Field(json_schema_extra=_BODY_DOC)
    reply_to: int | None = Field(default=None, ge=1, le=MAX_ID)
    client_id: str | None = Field(default=None, max_length=messages.MAX_CLIENT_ID)


class EditBody(Schema):
    body: MultilineText = Field(json_schema_extra=_BODY_DOC)


class ReadBody(Schema):
    seq: int = Field(ge=0, le=MAX_ID)


# ---- routes ------------------------------------------------------------------------


@bp.get("/conversations")
@api_auth_required
@endpoint(ok={200: ConversationPageOut}, tags=["chat"])
def list_conversations(query: ConversationsQuery):
    """The caller's conversations, most recent activity first"""
    items, next_cursor = messages.list_conversations(api_caller().user_id, limit=query.limit, cursor=query.cursor)
    return {"conversations": items, "next_cursor": next_cursor}


@bp.get("/conversations/<int:conversation_id>")
@api_auth_required
@endpoint(ok={200: ConversationOut}, errors=[403, 404], tags=["chat"])
def get_conversation(conversation_id: int):
    """One conversation (members only)"""
    return messages.get_conversation(api_caller().user_id, conversation_id)


@bp.get("/coops/<int:coop_id>/conversation")
@api_auth_required
@endpoint(ok={200: ConversationOut}, errors=[403, 404], tags=["chat"])
def coop_conversation(coop_id: int):
    """The coop's conversation (its members only)"""
    return messages.conversation_for_coop(api_caller().user_id, coop_id)


@bp.get("/conversations/<int:conversation_id>/messages")
@api_auth_required
@endpoint(ok={200: MessagePageOut}, errors=[403, 404], tags=["chat"])
def list_messages(conversation_id: int, query: MessagesQuery):
    """Messages newest first by seq; with after_seq, the ones after it, oldest first"""
    user_id = api_caller().user_id
    if query.after_seq is not None:
        rows = messages.after_seq(user_id, conversation_id, query.after_seq, limit=query.limit)
        return {"messages": rows, "next_cursor": None}
    rows, next_cursor = messages.history(user_id, conversation_id, limit=query.limit, cursor=query.cursor)
    return {"messages": rows, "next_cursor": next_cursor}


@bp.post("/conversations/<int:conversation_id>/messages")
@api_auth_required
@endpoint(ok={201: MessageOut, 200: MessageOut}, errors=[403, 404], tags=["chat"])
def post_message(conversation_id: int, json: PostBody):
    """Post a message (201; 200 with the first message for a repeated client_id)"""
    data, created = messages.post(api_caller().user_id, conversation_id, json.body, reply_to=json.reply_to,
                                  client_id=json.client_id)
    return data, 201 if created else 200


@bp.post("/conversations/<int:conversation_id>/read")
@api_auth_required
@endpoint(ok={200: ReadOut}, errors=[403, 404], tags=["chat"])
def read(conversation_id: int, json: ReadBody):
    """Move the caller's read position (never backwards)"""
    return messages.mark_read(api_caller().user_id, conversation_id, json.seq)


@bp.get("/conversations/<int:conversation_id>/presence")
@api_auth_required
@endpoint(ok={200: PresenceListOut}, errors=[403, 404], tags=["chat"])
def conversation_presence(conversation_id: int):
    """Presence of the members, as the caller may see it"""
    user_id = api_caller().user_id
    conversations.require_member(conversation_id, user_id)
    ids = conversations.member_ids(conversation_id)
    seen = presence.visible(user_id, ids)
    return {"presence": [{"user_id": u, **seen[u]} for u in ids]}


@bp.patch("/messages/<int:message_id>")
@api_auth_required
@endpoint(ok={200: MessageOut}, errors=[403, 404], tags=["chat"])
def edit_message(message_id: int, json: EditBody):
    """Edit a message (author only)"""
    return messages.edit(api_caller().user_id, message_id, json.body)


@bp.delete("/messages/<int:message_id>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[403, 404], tags=["chat"])
def delete_message(message_id: int):
    """Delete a message (author, or the coop's admin or moderators); a tombstone stays"""
    messages.delete(api_caller().user_id, message_id)
    return {"status": "deleted"}




@bp.put("/messages/<int:message_id>/reactions/<emoji>")
@api_auth_required
@endpoint(ok={200: ReactionsOut}, errors=[403, 404], tags=["chat"])
def add_reaction(message_id: int, emoji: str):
    """React to a message with an emoji of the fixed set"""
    return {"reactions": messages.react(api_caller().user_id, message_id, emoji, on=True)}


@bp.delete("/messages/<int:message_id>/reactions/<emoji>")
@api_auth_required
@endpoint(ok={200: ReactionsOut}, errors=[403, 404], tags=["chat"])
def remove_reaction(message_id: int, emoji: str):
    """Take back a reaction"""
    return {"reactions": messages.react(api_caller().user_id, message_id, emoji, on=False)}
