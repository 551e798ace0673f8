"""The activity feed: each miner's own timeline.

``record_activity`` accepts exactly the 14 types of seed 000 §7.5.1
(``models.ACTIVITY_TYPES``); the database CHECK enforces the same list.
"""
from __future__ import annotations

from typing import Any

from ..extensions import db
from ..models import ACTIVITY_TYPES, UserActivity
from .errors import ValidationError

MAX_TITLE = 200


def record_activity(
    user_id: str,
    activity_type: str,
    title: str,
    description: str = "",
    data: dict[str, Any] | None = None,
    link: str | None = None,
) -> UserActivity:
    """Add an activity to the session (the caller's transaction commits it).

    Raises ValidationError for an unknown ``activity_type`` or an empty or
    over-long title.
    """
    if activity_type not in ACTIVITY_TYPES:
        raise ValidationError(f"Unknown activity type {activity_type!r}.")
    if not title or len(title) > MAX_TITLE:
        raise ValidationError(f"title must be 1 to {MAX_TITLE} characters.")
    row = UserActivity(
        user_id=user_id,
        activity_type=activity_type,
        title=title,
        description=description or "",
        data=data,
        link=link,
    )
    db.session.add(row)
    return row


def _changed_keys(before: dict, after: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def record_settings_change(user_id: str, *, before: dict, after: dict) -> UserActivity:
    """A ``settings_updated`` activity naming the changed keys (no values:
    an e-mail address does not belong in the feed)."""
    changed = _changed_keys(before, after)
    return record_activity(
        user_id,
        "settings_updated",
        "Settings updated",
        description=", ".join(changed),
        data={"changed": changed},
        link="/settings",
    )
