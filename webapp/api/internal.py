"""JSON routes for the platform's other services (badges, games,
competitions): ``POST /api/internal/notifications``.

Authenticated by ``Authorization: Bearer <SERVICE_TOKEN>`` (config), compared
in constant time; with an empty SERVICE_TOKEN every request is refused.
Not CSRF-prone (no ambient credentials), hence ``csrf_exempt``.
"""
from __future__ import annotations

import hmac
from typing import Any, Literal, Optional

from flask import Blueprint, current_app, request
from pydantic import Field

from ..api.validation import Schema, parse_body
from ..auth import csrf_exempt
from ..services import notifications
from ..services.errors import Unauthorized

bp = Blueprint("api_internal", __name__)


def require_service_token() -> None:
    """Raise Unauthorized (401) unless the request carries the service token."""
    expected = current_app.config.get("SERVICE_TOKEN") or ""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise Unauthorized("A valid service token is required.")


class NotificationBody(Schema):
    user_id: str = Field(min_length=1, max_length=128)
    category: Literal["mining", "gamification", "competition", "social", "system"]
    subtype: str = Field(min_length=1, max_length=notifications.MAX_SUBTYPE)
    title: str = Field(min_length=1, max_length=notifications.MAX_TITLE)
    body: str = Field(default="", max_length=notifications.MAX_BODY)
    link: Optional[str] = Field(default=None, max_length=notifications.MAX_LINK)
    data: Optional[dict[str, Any]] = None


@bp.post("/internal/notifications")
@csrf_exempt
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
