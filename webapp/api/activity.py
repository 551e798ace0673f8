"""JSON routes: the caller's activity feed (API.md endpoint 14) and
``POST /api/internal/activity``, through which other services (badges,
games, lotteries, competitions, lessons) report activities."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from flask import Blueprint
from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from ..auth import api_auth_required, api_caller_id, csrf_exempt
from ..services import accounts, activity, notifications
from ..services.errors import ValidationError
from ..services.fields import MAX_LINK
from ..services.inputs import MultilineText
from .openapi import endpoint, service_token_required
from .schemas import ActivityOut, ActivityPageOut, NotificationOut, Out
from .validation import PageQuery, Schema, encode_cursor, parsed_by_name

bp = Blueprint("api_activity", __name__)


def parse_time(raw: str | None, name: str) -> datetime | None:
    """``?before=``/``?after=`` as an aware UTC datetime (ISO 8601; a value
    without a zone is taken as UTC); None or ``""`` is None. Raises
    ValidationError."""
    if raw is None or raw == "":
        return None
    # An unencoded "+00:00" arrives as " 00:00" (a plus in a query is a space).
    raw = re.sub(r"([T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", raw.strip(), flags=re.ASCII)
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError(f"{name} must be an ISO 8601 time, e.g. 2024-05-01T12:00:00Z.") from None


Time = Annotated[datetime | None, parsed_by_name(parse_time), WithJsonSchema({"type": "string", "format": "date-time"})]


class ActivityQuery(PageQuery):
    type: Annotated[
        list[str],
        # Every value (repeat or comma-separate), not only the first.
        BeforeValidator(lambda raw: list(activity.parse_types([raw] if isinstance(raw, str) else raw))),
        WithJsonSchema({"type": "string"}),
    ] = Field(default_factory=list, description="one or several activity types (repeat or comma-separate)")
    before: Time = Field(default=None, description="created_at < before")
    after: Time = Field(default=None, description="created_at >= after")

    @model_validator(mode="after")
    def _ordered(self) -> ActivityQuery:
        if self.before is not None and self.after is not None and self.after >= self.before:
            raise ValidationError("after must be earlier than before.")
        return self


@bp.get("/activity")
@api_auth_required
@endpoint(ok={200: ActivityPageOut}, tags=["activity"], conditional=True)
def list_activity(query: ActivityQuery):
    """The caller's activity feed, newest first (endpoint 14)

    ``?limit&cursor&type&before&after`` → ``{"activities", "next_cursor"}``.
    """
    rows, next_id = activity.list_activities(
        api_caller_id(), limit=query.limit, before_id=query.cursor, types=tuple(query.type),
        before=query.before, after=query.after,
    )
    return {
        "activities": [row.to_dict() for row in rows],
        "next_cursor": encode_cursor(next_id) if next_id is not None else None,
    }


# ---- internal: other services report activities ---------------------------

class NotifyBody(Schema):
    category: str = Field(max_length=32)  # one of the categories (checked by the service)
    subtype: str | None = Field(default=None, min_length=1, max_length=notifications.MAX_SUBTYPE)
    title: str | None = Field(default=None, min_length=1, max_length=notifications.MAX_TITLE)
    body: MultilineText | None = Field(default=None, max_length=notifications.MAX_BODY)
    link: str | None = Field(default=None, max_length=MAX_LINK)


class InternalActivityBody(Schema):
    user_id: str = Field(min_length=1, max_length=accounts.USER_ID_MAX)
    activity_type: str = Field(max_length=64)  # one of ACTIVITY_TYPES (checked by the service)
    title: str = Field(min_length=1, max_length=activity.MAX_TITLE)
    description: MultilineText = Field(default="", max_length=activity.MAX_DESCRIPTION)
    data: dict[str, Any] | None = None
    link: str | None = Field(default=None, max_length=MAX_LINK)
    notify: NotifyBody | None = None


class InternalActivityOut(Out):
    activity: ActivityOut
    notification: NotificationOut | None


@bp.post("/internal/activity")
@csrf_exempt
@service_token_required
@endpoint(ok={201: InternalActivityOut}, errors=[404], auth="service", tags=["internal"])
def internal_activity(json: InternalActivityBody):
    """Record an activity (and optionally a notification) for a user, from another service

    201 ``{"activity": activity, "notification": notification or null}``.
    """
    body = json
    row, notification = activity.record_from_service(
        user_id=body.user_id,
        activity_type=body.activity_type,
        title=body.title,
        description=body.description,
        data=body.data,
        link=body.link,
        notify=body.notify.model_dump(exclude_none=True) if body.notify else None,
    )
    return {"activity": row.to_dict(), "notification": notification.to_dict() if notification else None}, 201
