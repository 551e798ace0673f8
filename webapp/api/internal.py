"""JSON routes for the platform's other services (badges, games,
competitions): ``POST /api/internal/notifications``.

Authenticated by ``Authorization: Bearer <SERVICE_TOKEN>`` (config), compared
in constant time; with an empty SERVICE_TOKEN every request is refused.
Not CSRF-prone (no ambient credentials), hence ``csrf_exempt``.

``POST /api/internal/notifications`` takes an optional ``Idempotency-Key``
header (``services/idempotency.py``): a retry with the same key and body
answers the first response (with ``Idempotent-Replayed: true``) and
creates nothing; the same key with another body is 409.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..auth import csrf_exempt
from ..services import accounts, idempotency, notifications, sequences
from ..services.fields import MAX_LINK
from ..services.inputs import MultilineText
from .openapi import endpoint, service_token_required
from .schemas import NotificationOut, Out
from .validation import Schema, parsed_by

bp = Blueprint("api_internal", __name__)


class NotificationBody(Schema):
    user_id: str = Field(min_length=1, max_length=accounts.USER_ID_MAX)
    category: Literal["mining", "gamification", "competition", "social", "system"]
    subtype: str = Field(min_length=1, max_length=notifications.MAX_SUBTYPE)
    title: str = Field(min_length=1, max_length=notifications.MAX_TITLE)
    body: MultilineText = Field(default="", max_length=notifications.MAX_BODY)
    link: str | None = Field(default=None, max_length=MAX_LINK)
    data: dict[str, Any] | None = None


class InternalNotificationOut(Out):
    notification: NotificationOut | None
    status: Literal["created", "suppressed"]


class IdempotencyHeaders(BaseModel):
    """``Idempotency-Key``, read by ``idempotency.read_key`` (None when absent)."""

    model_config = ConfigDict(extra="ignore")

    key: Annotated[
        str | None,
        parsed_by(idempotency.read_key),
        WithJsonSchema({"type": "string", "pattern": f"^[!-~]{{1,{idempotency.MAX_KEY}}}$"}),
    ] = Field(default=None, alias="Idempotency-Key")


# Idempotency keys of this route, from the one service caller SERVICE_TOKEN authenticates.
IDEMPOTENCY_SCOPE = "service:internal-notifications"


@bp.post("/internal/notifications")
@csrf_exempt
@service_token_required
@endpoint(ok={201: InternalNotificationOut, 200: InternalNotificationOut}, errors=[404, 409], auth="service",
          tags=["internal"])
def create_notification(headers: IdempotencyHeaders, json: NotificationBody):
    """Send a notification to a user, from another service

    201 ``{"notification": {...}, "status": "created"}``, or 200
    ``{"notification": null, "status": "suppressed"}`` when the user's
    preferences turn it off; 404 for an unknown user; with an
    ``Idempotency-Key`` seen before, the first answer again, or 409
    ``idempotency_key_reused`` for a different body."""
    key = headers.key
    fields = json.model_dump()

    def create():
        row = notifications.notify_known_user(**fields, commit=False)
        if row is None:
            return 200, {"notification": None, "status": "suppressed"}, None
        sequences.assign_pending()  # the remembered answer carries the seq, taken now rather than at commit
        return 201, {"notification": row.to_dict(), "status": "created"}, row.id

    outcome = idempotency.run_once(IDEMPOTENCY_SCOPE, key, fields, create)
    replayed = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return outcome.body, outcome.status, replayed
