"""JSON routes: the caller's activity feed (API.md endpoint 14) and
``POST /api/internal/activity``, through which other services (badges,
games, lotteries, competitions, lessons) report activities."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Optional

from flask import Blueprint, request
from pydantic import Field

from ..auth import api_auth_required, api_caller, csrf_exempt, require_service_token
from ..services import activity
from ..services.errors import ValidationError
from ..services.inputs import MultilineText
from .openapi import documented
from .schemas import ActivityOut, ActivityPageOut, NotificationOut, Out
from .validation import Schema, encode_cursor, parse_body, parse_cursor, parse_limit

bp = Blueprint("api_activity", __name__)

MAX_ID = 2**63 - 1  # ids are BIGINT


def parse_time_arg(name: str) -> datetime | None:
    """``?before=``/``?after=`` as an aware UTC datetime (ISO 8601; a value
    without a zone is taken as UTC). Raises ValidationError."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    # An unencoded "+00:00" arrives as " 00:00" (a plus in a query is a space).
    raw = re.sub(r"([T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$", r"\1+\2", raw.strip(), flags=re.ASCII)
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValidationError(f"{name} must be an ISO 8601 time, e.g. 2024-05-01T12:00:00Z.") from None


_TIME = {"type": "string", "format": "date-time"}


@bp.get("/activity")
@documented(
    summary="The caller's activity feed, newest first (endpoint 14)",
    query={
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "cursor": {"type": "string"},
        "type": {"type": "string", "description": "one or several activity types (repeat or comma-separate)"},
        "before": _TIME | {"description": "created_at < before"},
        "after": _TIME | {"description": "created_at >= after"},
    },
    responses={200: ActivityPageOut},
    tags=["activity"],
)
@api_auth_required
def list_activity():
    """``?limit&cursor&type&before&after`` → ``{"activities", "next_cursor"}``."""
    limit = parse_limit()
    cursor = parse_cursor()
    if cursor is not None and cursor > MAX_ID:  # never one of ours; PostgreSQL would refuse it
        raise ValidationError("cursor is not valid; use next_cursor from the previous page.")
    types = activity.parse_types(request.args.getlist("type"))
    before, after = parse_time_arg("before"), parse_time_arg("after")
    if before is not None and after is not None and after >= before:
        raise ValidationError("after must be earlier than before.")
    rows, next_id = activity.list_activities(
        api_caller().user_id, limit=limit, before_id=cursor, types=types, before=before, after=after
    )
    return {
        "activities": [row.to_dict() for row in rows],
        "next_cursor": encode_cursor(next_id) if next_id is not None else None,
    }


# ---- internal: other services report activities ---------------------------

class NotifyBody(Schema):
    category: str = Field(max_length=32)
    subtype: Optional[str] = Field(default=None, min_length=1, max_length=64)
    title: Optional[str] = Field(default=None, min_length=1, max_length=200)
    body: Optional[MultilineText] = Field(default=None, max_length=2000)
    link: Optional[str] = Field(default=None, max_length=512)


class InternalActivityBody(Schema):
    user_id: str = Field(min_length=1, max_length=128)
    activity_type: str = Field(max_length=64)
    title: str = Field(min_length=1, max_length=200)
    description: MultilineText = Field(default="", max_length=2000)
    data: Optional[dict[str, Any]] = None
    link: Optional[str] = Field(default=None, max_length=512)
    notify: Optional[NotifyBody] = None


class InternalActivityOut(Out):
    activity: ActivityOut
    notification: Optional[NotificationOut]


@bp.post("/internal/activity")
@documented(
    summary="Record an activity (and optionally a notification) for a user, from another service",
    body=InternalActivityBody,
    responses={201: InternalActivityOut, 404: None},
    auth="service",
    tags=["internal"],
)
@csrf_exempt
def internal_activity():
    """Record an activity (and optionally a notification) for a user:
    201 ``{"activity": activity, "notification": notification or null}``."""
    require_service_token()
    body = parse_body(InternalActivityBody)
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
