"""JSON routes: notifications (API.md endpoints 10–13 and
``DELETE /api/notifications/{id}``). Every query is scoped by the caller:
someone else's id answers 404 exactly like a missing one."""
from __future__ import annotations

from typing import Optional

from flask import Blueprint, request
from pydantic import Field

from ..api.validation import MAX_ID, Schema, encode_cursor, int_arg, parse_body, parse_bool_arg, parse_cursor, parse_limit
from ..auth import api_auth_required, api_caller
from ..services import notifications
from .openapi import documented
from .schemas import CountOut, NotificationOut, NotificationPageOut, Out, UpdatedOut

bp = Blueprint("api_notifications", __name__)


class ReadAllBody(Schema):
    # The watermark: mark read only ids up to this one (default: the newest at request time).
    up_to_id: Optional[int] = Field(default=None, ge=0, le=MAX_ID)


class DeletedOut(Out):
    status: str
    id: int


_LIST_QUERY = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    "cursor": {"type": "string"},
    "category": {"type": "string", "enum": ["mining", "gamification", "competition", "social", "system"]},
    "unread_only": {"type": "boolean"},
}


@bp.get("/notifications")
@documented(summary="The caller's notifications, newest first (endpoint 10)", query=_LIST_QUERY,
            responses={200: NotificationPageOut}, tags=["notifications"])
@api_auth_required
def list_notifications():
    user_id = api_caller().user_id
    rows, next_id = notifications.list_notifications(
        user_id,
        limit=parse_limit(),
        before_id=parse_cursor(),
        category=notifications.check_category(request.args.get("category") or None),
        unread_only=parse_bool_arg("unread_only"),
    )
    return {
        "notifications": [row.to_dict() for row in rows],
        "next_cursor": encode_cursor(next_id) if next_id else None,
        "unread_count": notifications.unread_count(user_id),
    }


@bp.get("/notifications/unread-count")
@documented(summary="The caller's unread count (endpoint 13)", responses={200: CountOut}, tags=["notifications"])
@api_auth_required
def unread_count():
    return {"count": notifications.unread_count(api_caller().user_id)}


@bp.post("/notifications/<int:notification_id>/read")
@documented(summary="Mark one notification read (endpoint 11)", responses={200: NotificationOut, 404: None},
            tags=["notifications"])
@api_auth_required
def mark_read(notification_id: int):
    return notifications.mark_read(api_caller().user_id, notification_id).to_dict()


@bp.post("/notifications/read-all")
@documented(summary="Mark every notification up to now read (endpoint 12)",
            query={"up_to_id": {"type": "integer", "minimum": 0}}, responses={200: UpdatedOut},
            tags=["notifications"])
@api_auth_required
def read_all():
    body = parse_body(ReadAllBody)
    up_to_id = body.up_to_id
    query = int_arg("up_to_id")
    if query is not None:
        up_to_id = query if up_to_id is None else min(up_to_id, query)
    return {"updated": notifications.mark_all_read(api_caller().user_id, up_to_id=up_to_id)}


@bp.delete("/notifications/<int:notification_id>")
@documented(summary="Delete one notification", responses={200: DeletedOut, 404: None}, tags=["notifications"])
@api_auth_required
def delete(notification_id: int):
    notifications.delete_notification(api_caller().user_id, notification_id)
    return {"status": "deleted", "id": notification_id}
