"""JSON routes: friend requests, friends and blocks (API.md "Friends and
blocks"). Thin: parse, call ``services.friends``, serialise. A miner who
blocked the caller answers 404 with the body of a missing account."""
from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, WithJsonSchema

from ..auth import api_auth_required, api_caller
from ..services import admin, direct_messages, friends
from .conversations import ConversationOut
from .openapi import endpoint
from .schemas import Out, StatusOut
from .validation import Limit, PageQuery, Query, Schema, encode_cursor, parsed_by

bp = Blueprint("api_friends", __name__)


class RequestBody(Schema):
    user_id: str = Field(max_length=128)
    message: str | None = Field(default=None, max_length=friends.MESSAGE_MAX)


class UserBody(Schema):
    user_id: str = Field(max_length=128)


class RequestsQuery(PageQuery):
    direction: Literal["incoming", "outgoing"] = "incoming"


class FriendsQuery(Query):
    limit: Limit = 20
    cursor: Annotated[str | None, parsed_by(admin.parse_key_cursor), WithJsonSchema({"type": "string"})] = None


class OtherOut(Out):
    user_id: str
    display_name: str | None


class FriendRequestOut(Out):
    id: int
    requester: str
    recipient: str
    status: str
    message: str | None
    created_at: str
    responded_at: str | None
    other: OtherOut


class RequestPageOut(Out):
    requests: list[FriendRequestOut]
    next_cursor: str | None
    incoming_count: int
    outgoing_count: int


class FriendOut(Out):
    user_id: str
    display_name: str
    since: str
    mutual_count: int


class FriendPageOut(Out):
    friends: list[FriendOut]
    next_cursor: str | None


class BlockOut(Out):
    user_id: str
    display_name: str
    created_at: str


class BlocksOut(Out):
    blocks: list[BlockOut]


@bp.post("/friends/requests")
@api_auth_required
@endpoint(ok={201: FriendRequestOut, 200: FriendRequestOut}, errors=[404, 409], tags=["friends"])
def send_request(json: RequestBody):
    """Ask a miner to be friends (201); if they had asked you, their request is accepted (200)"""
    user = api_caller()
    row, created = friends.send_request(user, json.user_id, json.message)
    return friends.request_dict(row, user.user_id), 201 if created else 200


@bp.get("/friends/requests")
@api_auth_required
@endpoint(ok={200: RequestPageOut}, tags=["friends"])
def list_requests(query: RequestsQuery):
    """Pending requests to (incoming) or from (outgoing) the caller, newest first"""
    user_id = api_caller().user_id
    rows, next_id = friends.list_requests(user_id, direction=query.direction, limit=query.limit,
                                          before_id=query.cursor)
    counts = friends.pending_counts(user_id)
    return {
        "requests": [friends.request_dict(row, user_id) for row in rows],
        "next_cursor": encode_cursor(next_id) if next_id else None,
        "incoming_count": counts["incoming"],
        "outgoing_count": counts["outgoing"],
    }


@bp.post("/friends/requests/<int:request_id>/accept")
@api_auth_required
@endpoint(ok={200: FriendRequestOut}, errors=[404, 409], tags=["friends"])
def accept(request_id: int):
    """Accept a request sent to the caller"""
    user = api_caller()
    return friends.request_dict(friends.accept(user, request_id), user.user_id)


@bp.post("/friends/requests/<int:request_id>/decline")
@api_auth_required
@endpoint(ok={200: FriendRequestOut}, errors=[404, 409], tags=["friends"])
def decline(request_id: int):
    """Decline a request sent to the caller"""
    user = api_caller()
    return friends.request_dict(friends.decline(user, request_id), user.user_id)


@bp.post("/friends/requests/<int:request_id>/cancel")
@api_auth_required
@endpoint(ok={200: FriendRequestOut}, errors=[404, 409], tags=["friends"])
def cancel(request_id: int):
    """Withdraw a request the caller sent"""
    user = api_caller()
    return friends.request_dict(friends.cancel(user, request_id), user.user_id)


@bp.get("/friends")
@api_auth_required
@endpoint(ok={200: FriendPageOut}, tags=["friends"])
def list_friends(query: FriendsQuery):
    """The caller's friends, by user id"""
    items, next_key = friends.list_friends(api_caller().user_id, limit=query.limit, after=query.cursor)
    return {"friends": items, "next_cursor": admin.encode_key_cursor(next_key) if next_key else None}


@bp.delete("/friends/<user_id>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[404], tags=["friends"])
def unfriend(user_id: str):
    """End a friendship (both sides)"""
    friends.unfriend(api_caller(), user_id)
    return {"status": "removed"}


@bp.get("/blocks")
@api_auth_required
@endpoint(ok={200: BlocksOut}, tags=["friends"])
def list_blocks():
    """The miners the caller blocked, newest first"""
    return {"blocks": friends.list_blocks(api_caller().user_id)}


@bp.post("/blocks")
@api_auth_required
@endpoint(ok={201: StatusOut}, errors=[404], tags=["friends"])
def block(json: UserBody):
    """Block a miner: ends the friendship and pending requests; they can no longer reach or find you"""
    friends.block(api_caller(), json.user_id)
    return {"status": "blocked"}, 201


@bp.delete("/blocks/<user_id>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[404], tags=["friends"])
def unblock(user_id: str):
    """Lift a block"""
    friends.unblock(api_caller(), user_id)
    return {"status": "unblocked"}


class StartBody(Schema):
    kind: Literal["direct", "group"]
    user_ids: list[str] = Field(min_length=1, max_length=20)
    title: str | None = Field(default=None, max_length=direct_messages.TITLE_MAX)


@bp.post("/conversations")
@api_auth_required
@endpoint(ok={201: ConversationOut, 200: ConversationOut}, errors=[404, 409], tags=["conversations"])
def start_conversation(json: StartBody):
    """Start a direct conversation with a friend (200 with the existing one) or a group of 3-10 friends"""
    conversation, created = direct_messages.start(api_caller(), json.kind, json.user_ids, json.title)
    return conversation, 201 if created else 200


class AddMemberBody(Schema):
    user_id: str = Field(min_length=1, max_length=128)


@bp.post("/conversations/<int:conversation_id>/members")
@api_auth_required
@endpoint(ok={200: ConversationOut}, errors=[400, 403, 404, 409], tags=["conversations"])
def add_group_member(conversation_id: int, json: AddMemberBody):
    """The group's creator adds a friend (200 also when already a member)"""
    conversation, _ = direct_messages.add_to_group(api_caller(), conversation_id, json.user_id)
    return conversation
