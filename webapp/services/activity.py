"""The activity feed: each miner's own timeline.

``record_activity`` accepts exactly the 14 types of seed 000 §7.5.1
(``models.ACTIVITY_TYPES``); the database CHECK enforces the same list.
Writers: ingest (a new personal best is a ``share_submitted`` activity with
``data.personal_best = true``, never one row per ordinary share), coops
(``coop_joined``/``coop_left``), settings changes (``settings_updated``), and
other services (badges, games, lotteries, competitions, lessons) through
``POST /api/internal/activity`` → ``record_from_service``.

Reading is keyset-paginated on ``(created_at, id)``, newest first by when
it happened (ingest stamps the event's time, so a lagging stream records old
entries late), which the indexes ``(user_id, created_at, id)`` and
``(user_id, activity_type, created_at, id)`` serve; the live poll asks for
ids above the highest seen (``(user_id, id)``). There is no
Redis cache in front of it: docs/ACTIVITY.md has the measurement behind that.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from ..extensions import db
from ..models import ACTIVITY_TYPES, Notification, User, UserActivity
from . import inputs, notifications, preferences
from .errors import NotFound, ValidationError
from .fields import check_data, check_link, check_text

MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_DATA_BYTES = 64 * 1024  # other services may attach more context than a notification


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
    check_text("title", title)
    check_text("description", description, inputs.MULTILINE)
    check_data(data, max_bytes=MAX_DATA_BYTES)
    check_link(link)
    row = UserActivity(user_id=user_id, activity_type=activity_type, title=title, description=description,
                       data=data, link=link)
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
            check_text("notify.title", n_title)
            check_text("notify.body", n_body, inputs.MULTILINE)
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
    """One keyset page of a miner's feed, newest first by when it happened:
    ``created_at`` descending (ingest stamps the event's time there, which
    can be earlier than entries recorded before it), then ``id`` descending.

    ``before_id`` is the cursor: the id of the last entry of the previous
    page; the next page holds the entries after it in that order, i.e. with
    ``(created_at, id)`` strictly smaller than that entry's, so entries
    recorded meanwhile never shift a page (no gaps, no repeats). ``types``
    filters to those activity types (already validated, see
    ``parse_types``). ``after`` (inclusive) and ``before`` (exclusive) bound
    ``created_at`` (aware datetimes).

    Returns (activities, next_before_id), the latter None on the last page.
    Raises ValidationError when ``before_id`` is not one of the miner's entries.
    """
    query = _filtered(user_id, types)
    if before_id is not None:
        at = db.session.scalar(select(UserActivity.created_at).where(
            UserActivity.id == before_id, UserActivity.user_id == user_id))
        if at is None:
            raise ValidationError("cursor is not valid; use next_cursor from the previous page.")
        query = query.where(or_(UserActivity.created_at < at,
                                and_(UserActivity.created_at == at, UserActivity.id < before_id)))
    if before is not None:
        query = query.where(UserActivity.created_at < before)
    if after is not None:
        query = query.where(UserActivity.created_at >= after)
    order = (UserActivity.created_at.desc(), UserActivity.id.desc())
    rows = list(db.session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, rows[-1].id
    return rows, None


def newer_than(
    user_id: str, after_id: int, *, types: Iterable[str] | None = None, limit: int = 100
) -> list[UserActivity]:
    """Activities recorded after ``after_id`` (``id > after_id``), newest
    first by when they happened, at most ``limit`` (the live timeline's poll)."""
    query = _filtered(user_id, types).where(UserActivity.id > after_id)
    return list(db.session.scalars(
        query.order_by(UserActivity.created_at.desc(), UserActivity.id.desc()).limit(limit)))


def latest_id(user_id: str, *, types: Iterable[str] | None = None) -> int:
    """The highest id in the miner's (filtered) feed, 0 if empty: where the
    live poll starts, since the entry on top (newest by time) need not be
    the last recorded."""
    query = _filtered(user_id, types).with_only_columns(func.max(UserActivity.id))
    return db.session.scalar(query) or 0


def types_present(user_id: str) -> tuple[str, ...]:
    """The activity types the miner has at least one entry of, in
    ``ACTIVITY_TYPES`` order (the activity page's filter chips)."""
    found = set(db.session.scalars(
        select(UserActivity.activity_type).where(UserActivity.user_id == user_id).distinct()))
    return tuple(t for t in ACTIVITY_TYPES if t in found)


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
    """A ``settings_updated`` activity naming the changed settings as the
    settings page does (``preferences.setting_label``; ``data.changed``: the
    keys), no values: an e-mail address does not belong in the feed."""
    changed = _changed_keys(before, after)
    return record_activity(
        user_id,
        "settings_updated",
        "Settings updated",
        description=", ".join(dict.fromkeys(preferences.setting_label(key) for key in changed)),
        data={"changed": changed},
        link="/settings",
    )
