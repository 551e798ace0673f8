"""The activity feed: each miner's own timeline.

``record_activity`` accepts exactly the 14 types of seed 000 §7.5.1
(``models.ACTIVITY_TYPES``); the database CHECK enforces the same list.
Writers: ingest (a new personal best is a ``share_submitted`` activity with
``data.personal_best = true``, never one row per ordinary share), coops
(``coop_joined``/``coop_left``), settings changes (``settings_updated``), and
other services (badges, games, lotteries, competitions, lessons) through
``POST /api/internal/activity`` → ``record_from_service``.

Reading is keyset-paginated on ``id`` (newest first), which the indexes
``(user_id, id)`` and ``(user_id, activity_type, id)`` serve. There is no
Redis cache in front of it: docs/ACTIVITY.md has the measurement behind that.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import ACTIVITY_TYPES, Notification, User, UserActivity
from .errors import NotFound, ValidationError

MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_LINK = 512
MAX_DATA_DEPTH = 8


def _check_text(name: str, value: str) -> None:
    # PostgreSQL text and JSONB refuse NUL characters; say so instead of a 500.
    if "\x00" in value:
        raise ValidationError(f"{name} must not contain NUL characters.")


def _check_data(value: Any, path: str = "data", depth: int = 0) -> None:
    """JSON-storable: finite numbers, NUL-free strings, bounded nesting."""
    if depth > MAX_DATA_DEPTH:
        raise ValidationError(f"{path} is nested too deeply (at most {MAX_DATA_DEPTH} levels).")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{path} keys must be strings.")
            _check_text(f"{path} key", key)
            _check_data(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_data(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{path} must be a finite number.")
    elif isinstance(value, str):
        _check_text(path, value)
    elif value is not None and not isinstance(value, (bool, int)):
        raise ValidationError(f"{path} must be JSON.")


def check_link(link: str | None, name: str = "link") -> None:
    """A link is a same-site path (``/coops/3``) or an http(s) URL, at most
    512 characters; anything else (``javascript:``) would be unsafe in an
    ``href``. Raises ValidationError."""
    if link is None:
        return
    if not isinstance(link, str) or not 1 <= len(link) <= MAX_LINK:
        raise ValidationError(f"{name} must be 1 to {MAX_LINK} characters.")
    _check_text(name, link)
    is_path = link.startswith("/") and not link.startswith("//")
    if not (is_path or link.startswith(("https://", "http://"))) or any(c.isspace() for c in link):
        raise ValidationError(f"{name} must be a path starting with '/' or an http(s) URL.")


def record_activity(
    user_id: str,
    activity_type: str,
    title: str,
    description: str = "",
    data: dict[str, Any] | None = None,
    link: str | None = None,
) -> UserActivity:
    """Add an activity to the session (the caller's transaction commits it).

    Raises ValidationError for an unknown ``activity_type``, a title that is
    empty or over 200 characters, a description over 2000, a bad ``link``
    (see ``check_link``) or ``data`` that is not a JSON object of finite
    values.
    """
    if activity_type not in ACTIVITY_TYPES:
        raise ValidationError(f"Unknown activity type {activity_type!r}.")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        raise ValidationError(f"title must be 1 to {MAX_TITLE} characters.")
    description = description or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ValidationError(f"description must be at most {MAX_DESCRIPTION} characters.")
    _check_text("title", title)
    _check_text("description", description)
    if data is not None and not isinstance(data, dict):
        raise ValidationError("data must be a JSON object.")
    _check_data(data)
    check_link(link)
    row = UserActivity(
        user_id=user_id,
        activity_type=activity_type,
        title=title,
        description=description,
        data=data,
        link=link,
    )
    db.session.add(row)
    return row


def record_from_service(
    *,
    user_id: str,
    activity_type: str,
    title: str,
    description: str = "",
    data: dict[str, Any] | None = None,
    link: str | None = None,
    notify: dict[str, Any] | None = None,
) -> tuple[UserActivity, Notification | None]:
    """An activity reported by another service, optionally with a
    notification, stored in one transaction and committed.

    ``notify`` is ``{"category", "subtype"?, "title"?, "body"?, "link"?}``;
    missing fields default to the activity's type, title, description and
    link. The notification goes through the one dispatcher
    (``notifications.notify``), so the user's preferences apply: it is None
    when they silenced that category or subtype. Its ``data`` carries
    ``activity_id``.

    Raises NotFound (unknown user) or ValidationError (bad type, fields or
    notification category).
    """
    from . import notifications

    if db.session.get(User, user_id) is None:
        raise NotFound("No miner with that user_id.")
    row = record_activity(user_id, activity_type, title, description, data, link)
    notification = None
    try:
        db.session.flush()
        if notify is not None:
            n_link = notify.get("link", link)
            check_link(n_link, "notify.link")
            n_title, n_body = notify.get("title") or title, notify.get("body")
            n_body = description if n_body is None else n_body
            _check_text("notify.title", n_title)
            _check_text("notify.body", n_body)
            notification = notifications.notify(
                user_id,
                notify.get("category", ""),
                notify.get("subtype") or activity_type,
                n_title,
                n_body,
                link=n_link,
                data={"activity_id": row.id, "activity_type": activity_type},
                commit=False,
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return row, notification


def parse_types(values: Iterable[str]) -> tuple[str, ...]:
    """Activity types from query values, each one type or a comma-separated
    list (``type=a&type=b,c``); blanks are ignored, duplicates dropped, order
    kept. Raises ValidationError naming any unknown type."""
    types: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in types:
                types.append(part)
    unknown = [t for t in types if t not in ACTIVITY_TYPES]
    if unknown:
        raise ValidationError(
            f"Unknown activity type {unknown[0]!r}; use one of: {', '.join(ACTIVITY_TYPES)}.",
            details=[{"field": "type", "message": f"unknown type {t!r}"} for t in unknown],
        )
    return tuple(types)


def _filtered(user_id: str, types: Iterable[str] | None):
    query = select(UserActivity).where(UserActivity.user_id == user_id)
    types = tuple(types or ())
    if len(types) == 1:
        query = query.where(UserActivity.activity_type == types[0])
    elif types:
        query = query.where(UserActivity.activity_type.in_(types))
    return query


def list_activities(
    user_id: str,
    *,
    limit: int = 20,
    before_id: int | None = None,
    types: Iterable[str] | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
) -> tuple[list[UserActivity], int | None]:
    """One keyset page of a miner's feed, newest first (``id`` descending).

    ``before_id`` is the cursor (the last id of the previous page; ids are
    strictly smaller on the next page, so entries recorded meanwhile never
    shift a page: no gaps, no repeats). ``types`` filters to those activity
    types (already validated, see ``parse_types``). ``after`` (inclusive)
    and ``before`` (exclusive) bound ``created_at`` (aware datetimes).

    Returns (activities, next_before_id), the latter None on the last page.
    """
    query = _filtered(user_id, types)
    if before_id is not None:
        query = query.where(UserActivity.id < before_id)
    if before is not None:
        query = query.where(UserActivity.created_at < before)
    if after is not None:
        query = query.where(UserActivity.created_at >= after)
    rows = list(db.session.scalars(query.order_by(UserActivity.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, rows[-1].id
    return rows, None


def newer_than(
    user_id: str, after_id: int, *, types: Iterable[str] | None = None, limit: int = 100
) -> list[UserActivity]:
    """Activities with ``id > after_id``, newest first, at most ``limit``
    (the live timeline's poll)."""
    query = _filtered(user_id, types).where(UserActivity.id > after_id)
    return list(db.session.scalars(query.order_by(UserActivity.id.desc()).limit(limit)))


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
