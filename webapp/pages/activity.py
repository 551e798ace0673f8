"""Pages: the miner's activity timeline (``/activity``).

A timeline grouped by the viewer's local day, newest first by when each entry happened,
with an icon per type and filter chips for the types the miner has. More
pages load as the reader scrolls (``/activity/page``, htmx ``revealed``);
new entries arrive by a 10-second poll (``/activity/new``) that prepends
them (204 when there is nothing new). Both fragments use the same service
as ``GET /api/activity``.
"""
from __future__ import annotations

import re
from datetime import date
from itertools import groupby

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..api.validation import int_arg
from ..formatting import day_label, viewer_zone
from ..models import ACTIVITY_TYPES, UserActivity, iso
from ..services import activity
from ..services.errors import ValidationError
from .fragments import is_htmx

bp = Blueprint("pages_activity", __name__)

PAGE_SIZE = 20
POLL_LIMIT = 100

ICONS = {
    "share_submitted": "⛏️",
    "block_found": "🧱",
    "badge_earned": "🏅",
    "level_up": "⬆️",
    "streak_milestone": "🔥",
    "game_played": "🎮",
    "lottery_rank": "🎟️",
    "coop_joined": "🤝",
    "coop_left": "👋",
    "competition_registered": "🏁",
    "match_completed": "⚔️",
    "lesson_completed": "📘",
    "track_completed": "🎓",
    "settings_updated": "⚙️",
}
LABELS = {
    "share_submitted": "Shares",
    "block_found": "Blocks",
    "badge_earned": "Badges",
    "level_up": "Levels",
    "streak_milestone": "Streaks",
    "game_played": "Games",
    "lottery_rank": "Lottery",
    "coop_joined": "Coop joins",
    "coop_left": "Coop leaves",
    "competition_registered": "Competitions",
    "match_completed": "Matches",
    "lesson_completed": "Lessons",
    "track_completed": "Tracks",
    "settings_updated": "Settings",
}


def icon_for(item: UserActivity) -> str:
    """The type's icon; a personal best (``share_submitted`` with
    ``data.personal_best``) gets a trophy."""
    if item.activity_type == "share_submitted" and (item.data or {}).get("personal_best"):
        return "🏆"
    return ICONS.get(item.activity_type, "•")


def group_by_day(items: list[UserActivity]) -> list[tuple[date, list[UserActivity]]]:
    """Consecutive items (newest first) grouped by their day in the viewer's zone."""
    zone = viewer_zone()
    return [(day, list(rows)) for day, rows in groupby(items, key=lambda i: i.created_at.astimezone(zone).date())]


def section_key(day: date, items: list[UserActivity]) -> str:
    """The DOM key of a day section: its day and first item's id. Ids, not
    days alone, because a day can appear twice: the live poll prepends
    entries recorded late, whose time can be older than those shown."""
    return f"{day.isoformat()}-{items[0].id}"


def _types() -> tuple[str, ...]:
    return activity.parse_types(request.args.getlist("type"))


_SECTION_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})-([0-9]{1,18})")  # fullmatch, ASCII digits


def _section_arg(name: str) -> tuple[date, str] | None:
    """A section key from the query (``2024-05-01-123``) as (day, key)."""
    raw = request.args.get(name)
    if not raw:
        return None
    match = _SECTION_RE.fullmatch(raw)
    try:
        if match is None:
            raise ValueError
        return date.fromisoformat(match.group(1)), raw
    except ValueError:
        raise ValidationError(f"{name} is not a timeline section.") from None


def _int_arg(name: str) -> int:
    """An id from the query string (``inputs.parse_int``), 0 when absent."""
    value = int_arg(name)
    return 0 if value is None else value


def _type_param(types: tuple[str, ...]) -> str | None:
    return ",".join(types) or None


def _render(template: str, **context):
    zone = viewer_zone()
    return render_template(template, icon_for=icon_for, day_label=lambda day: day_label(day, zone), iso=iso,
                           **context)


def _more_url(next_id: int | None, last_section: str | None, types: tuple[str, ...]) -> str | None:
    if next_id is None:
        return None
    return url_for("pages_activity.page", before_id=next_id, last_section=last_section, type=_type_param(types))


@bp.get("/activity", endpoint="activity")
@login_required
def activity_page():
    types = _types()
    before_id = _int_arg("before_id") or None  # an older page, when scrolling without JS
    items, next_id = activity.list_activities(
        current_user.user_id, limit=PAGE_SIZE, before_id=before_id, types=types
    )
    groups = group_by_day(items)
    chips = []
    # Only the kinds this miner has (and any selected, so it can be unselected).
    shown = set(activity.types_present(current_user.user_id)) | set(types)
    for t in (t for t in ACTIVITY_TYPES if t in shown):
        toggled = tuple(x for x in types if x != t) if t in types else types + (t,)
        chips.append({"type": t, "icon": ICONS[t], "label": LABELS[t], "active": t in types,
                      "url": url_for("pages_activity.activity", type=_type_param(toggled))})
    return _render(
        "activity/index.html",
        types=types,
        chips=chips,
        groups=groups,
        more_url=_more_url(next_id, section_key(*groups[-1]) if groups else None, types),
        poll_url=None if before_id else url_for(
            "pages_activity.new", after_id=activity.latest_id(current_user.user_id, types=types),
            top_section=section_key(*groups[0]) if groups else None, type=_type_param(types)),
    )


@bp.get("/activity/page")
@login_required
def page():
    """The next page (infinite scroll): items of the last section's day are
    appended to that section, other days become new sections, then a new
    sentinel."""
    types = _types()
    before_id = _int_arg("before_id")
    last = _section_arg("last_section")
    if not is_htmx():
        return redirect(url_for("pages_activity.activity", before_id=before_id or None, type=_type_param(types)))
    items, next_id = activity.list_activities(
        current_user.user_id, limit=PAGE_SIZE, before_id=before_id or None, types=types
    )
    groups = group_by_day(items)
    last_day, last_seen_key = last or (None, None)
    continuing = groups[0][1] if groups and groups[0][0] == last_day else []
    fresh = groups[1:] if continuing else groups
    last_key = section_key(*fresh[-1]) if fresh else last_seen_key
    return _render(
        "activity/_page.html",
        continuing=continuing,
        continue_key=last_seen_key if continuing else None,
        groups=fresh,
        more_url=_more_url(next_id, last_key, types),
    )


@bp.get("/activity/new")
@login_required
def new():
    """Entries newer than ``after_id``: 204 when none, else the items
    (prepended out of band) and a new poller carrying the newest id and the
    top section."""
    types = _types()
    after_id = _int_arg("after_id")
    top = _section_arg("top_section")
    items = activity.newer_than(current_user.user_id, after_id, types=types, limit=POLL_LIMIT)
    if not items:
        return "", 204
    groups = group_by_day(items)
    # Only the oldest run of new items can join the section on top.
    top_day, top_seen_key = top or (None, None)
    on_top = groups[-1][1] if groups[-1][0] == top_day else []
    fresh = groups[:-1] if on_top else groups
    top_key = section_key(*fresh[0]) if fresh else top_seen_key
    return _render(
        "activity/_new.html",
        top_key=top_seen_key if on_top else None,
        on_top=on_top,
        groups=fresh,
        new=True,
        poll_url=url_for("pages_activity.new", after_id=max(item.id for item in items), top_section=top_key,
                         type=_type_param(types)),
    )
