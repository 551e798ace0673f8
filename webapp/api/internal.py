"""JSON routes for the platform's other services (badges, games,
competitions): ``POST /api/internal/notifications``.

Authenticated by ``Authorization: Bearer <SERVICE_TOKEN>`` (config), compared
in constant time; with an empty SERVICE_TOKEN every request is refused.
Not CSRF-prone (no ambient credentials), hence ``csrf_exempt``.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from flask import Blueprint
from pydantic import Field

from ..api.validation import Schema, parse_body
from ..auth import csrf_exempt, require_service_token
from ..services import notifications
from ..services.fields import MAX_LINK
from ..services.inputs import MultilineText
from .openapi import documented
from .schemas import NotificationOut, Out

bp = Blueprint("api_internal", __name__)


class NotificationBody(Schema):
    user_id: str = Field(min_length=1, max_length=128)
    category: Literal["mining", "gamification", "competition", "social", "system"]
    subtype: str = Field(min_length=1, max_length=notifications.MAX_SUBTYPE)
    title: str = Field(min_length=1, max_length=notifications.MAX_TITLE)
    body: MultilineText = Field(default="", max_length=notifications.MAX_BODY)
    link: Optional[str] = Field(default=None, max_length=MAX_LINK)
    data: Optional[dict[str, Any]] = None


class InternalNotificationOut(Out):
    notification: Optional[NotificationOut]
    status: Literal["created", "suppressed"]


@bp.post("/internal/notifications")
@csrf_exempt
@documented(summary="Send a notification to a user, from another service", body=NotificationBody,
            responses={201: InternalNotificationOut, 200: InternalNotificationOut, 404: None},
            auth="service", tags=["internal"])
def create_notification():
    """201 ``{"notification": {...}, "status": "created"}``, or 200
    ``{"notification": null, "status": "suppressed"}`` when the user's
    preferences turn it off; 404 for an unknown user."""
    require_service_token()
    body = parse_body(NotificationBody)
    row = notifications.notify_known_user(**body.model_dump())
    if row is None:
        return {"notification": None, "status": "suppressed"}, 200
    return {"notification": row.to_dict(), "status": "created"}, 201
