"""JSON routes: notifications (API.md endpoints 10–13 and
``DELETE /api/notifications/{id}``). Every query is scoped by the caller:
someone else's id answers 404 exactly like a missing one."""
from __future__ import annotations

from typing import Annotated

from flask import Blueprint
from pydantic import Field, WithJsonSchema

from ..auth import api_auth_required, api_caller_id
from ..models import NOTIFICATION_CATEGORIES
from ..services import inputs, notification_cache, notification_groups, notifications
from ..services.generation_cache import prefetch
from .openapi import endpoint
from .schemas import CountOut, NotificationListOut, NotificationOut, Out, UpdatedOut
from .validation import MAX_ID, Flag, PageQuery, Query, Schema, encode_cursor, parsed_by

bp = Blueprint("api_notifications", __name__)


class ReadAllBody(Schema):
    # The watermark: mark read only ids up to this one (default: the newest at request time).
    up_to_id: int | None = Field(default=None, ge=0, le=MAX_ID)


class DeletedOut(Out):
    status: str
    id: int


class ListQuery(PageQuery):
    category: Annotated[
        str | None,
        parsed_by(lambda raw: notifications.check_category(raw or None)),
        WithJsonSchema({"type": "string", "enum": list(NOTIFICATION_CATEGORIES)}),
    ] = None
    unread_only: Flag = False
    # API.md "Notification settings": groups by group_key instead of rows.
    grouped: Flag = False


class ReadAllQuery(Query):
    # The watermark as a query parameter (the body's up_to_id, for clients that send no body).
    up_to_id: Annotated[
        int | None,
        parsed_by(lambda raw: inputs.optional_int(raw, name="up_to_id", minimum=0, maximum=MAX_ID)),
        WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_ID}),
    ] = None


@bp.get("/notifications")
@api_auth_required
@endpoint(ok={200: NotificationListOut}, tags=["notifications"], conditional=True)
def list_notifications(query: ListQuery):
    """The caller's notifications, newest first (endpoint 10); with
    ``grouped=true`` one entry per group_key: {group_key, count, latest, unread_count}"""
    user_id = api_caller_id()
    if query.grouped:
        groups, next_id = notification_groups.list_groups(
            user_id, limit=query.limit, before_id=query.cursor, category=query.category,
            unread_only=query.unread_only)
        return {
            "groups": [group.to_dict() for group in groups],
            "next_cursor": encode_cursor(next_id) if next_id else None,
            "unread_count": notifications.unread_count(user_id),
        }
    items, next_id, unread = notifications.notification_page(
        user_id,
        limit=query.limit,
        before_id=query.cursor,
        category=query.category,
        unread_only=query.unread_only,
    )
    return {
        "notifications": items,
        "next_cursor": encode_cursor(next_id) if next_id else None,
        "unread_count": unread,
    }


@bp.get("/notifications/unread-count")
@prefetch(notification_cache.CACHE, notification_cache.COUNT)
@api_auth_required
@endpoint(ok={200: CountOut}, tags=["notifications"], conditional=True)
def unread_count():
    """The caller's unread count (endpoint 13)"""
    return {"count": notifications.cached_unread_count(api_caller_id())}


@bp.post("/notifications/<int:notification_id>/read")
@api_auth_required
@endpoint(ok={200: NotificationOut}, errors=[404], tags=["notifications"])
def mark_read(notification_id: int):
    """Mark one notification read (endpoint 11)"""
    return notifications.mark_read(api_caller_id(), notification_id).to_dict()


@bp.post("/notifications/read-all")
@api_auth_required
@endpoint(ok={200: UpdatedOut}, tags=["notifications"])
def read_all(query: ReadAllQuery, json: ReadAllBody):
    """Mark every notification up to now read (endpoint 12)"""
    up_to_id = json.up_to_id
    if query.up_to_id is not None:
        up_to_id = query.up_to_id if up_to_id is None else min(up_to_id, query.up_to_id)
    return {"updated": notifications.mark_all_read(api_caller_id(), up_to_id=up_to_id)}


@bp.delete("/notifications/<int:notification_id>")
@api_auth_required
@endpoint(ok={200: DeletedOut}, errors=[404], tags=["notifications"])
def delete(notification_id: int):
    """Delete one notification"""
    notifications.delete_notification(api_caller_id(), notification_id)
    return {"status": "deleted", "id": notification_id}
