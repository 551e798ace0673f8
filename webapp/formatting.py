"""Numbers, hashrates, names and times as the pages, notifications and
e-mails show them, and the Jinja filters that expose them
(``init_template_filters``, called by the app factory).

Filters: ``hashrate`` (H/s → ``"576 GH/s"``), ``difficulty`` (→ ``"46.6M"``),
``thousands`` (12345 → ``"12,345"``), ``flag`` (country code → emoji),
``notification_time`` (→ ``"14:05"`` or ``"3 Nov 14:05"``, UTC) and one
filter per entry of ``TIME_FORMATS`` (``date``, ``datetime``, ``clock``...).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from .models import utcnow
from .services import bounds, markup

if TYPE_CHECKING:
    from flask import Flask

    from .services.mining import MiningEventIn

# ---- numbers and names ---------------------------------------------------------

_SI = ("", "K", "M", "G", "T", "P", "E", "Z")


def _si(value: float) -> tuple[str, str]:
    value = float(value or 0.0)
    index = 0
    while abs(value) >= 999.5 and index < len(_SI) - 1:
        value /= 1000.0
        index += 1
    digits = 2 if abs(value) < 9.995 else 1 if abs(value) < 99.95 else 0
    shown = f"{value:.{digits}f}"
    if "." in shown:
        shown = shown.rstrip("0").rstrip(".")
    return shown, _SI[index]


def format_difficulty(value: float | None) -> str:
    """Share difficulty with an SI suffix and 3 significant digits:
    ``46608917.88`` → ``"46.6M"``, ``950`` → ``"950"``."""
    number, unit = _si(value or 0.0)
    return f"{number}{unit}"


def format_hashrate(value: float | None) -> str:
    """A hashrate in H/s with an SI prefix: ``575899027258.6`` → ``"576 GH/s"``."""
    number, unit = _si(value or 0.0)
    return f"{number} {unit if unit != 'K' else 'k'}H/s"


def format_count(value: int) -> str:
    """An integer with thousands separators: ``12345`` → ``"12,345"``."""
    return f"{value:,}"


def worker_label(worker: str | None) -> str:
    """The rig part of ``user.rig`` (the whole name when there is no dot)."""
    if not worker:
        return "a worker"
    return worker.split(".", 1)[1] if "." in worker else worker


def format_duration(seconds: float) -> str:
    """A session length: ``"45 s"`` below 90 s, ``"12 min"`` below 90 min,
    else hours with one decimal (``"2.5 h"``)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_HEX = frozenset("0123456789abcdefABCDEF")
MAX_SHOWN_HASH = 64  # a block hash is 32 bytes: 64 hex digits


def display_hash(value: Any) -> str | None:
    """A block hash as a notification may show it: up to 64 hex digits as
    sent; a longer or partly non-hex value is cut to its leading hex digits
    (at most 64) followed by an ellipsis; None when it starts with none."""
    if type(value) is not str:
        return None
    count = 0
    for char in value[:MAX_SHOWN_HASH + 1]:
        if char not in _HEX:
            break
        count += 1
    if count == len(value) and count <= MAX_SHOWN_HASH:
        return value or None
    shown = value[:min(count, MAX_SHOWN_HASH)]
    return f"{shown}\u2026" if shown else None


def block_display(ev: MiningEventIn) -> dict[str, Any]:
    """What the ``block_found`` notification and activity show of the event:
    ``{"height", "hash", "worker", "difficulty"}``, each only when usable.
    The stored event keeps every value as the pool sent it; here a height
    or difficulty outside its physical range (services/bounds.py) is left
    out (shown as an unknown block) and the hash is cut by
    ``display_hash``, so the fields stay within the notification's limits
    (title 200, data 8 KiB) whatever the pool sent."""
    data = ev.data
    shown: dict[str, Any] = {}
    height = data.get("height")
    if type(height) is int and 0 <= height <= bounds.MAX_HEIGHT:
        shown["height"] = height
    block_hash = display_hash(data.get("hash"))
    if block_hash is not None:
        shown["hash"] = block_hash
    if "worker" in data:
        shown["worker"] = data["worker"]
    difficulty = data.get("sdiff", data.get("diff"))
    if bounds.within(difficulty, bounds.MAX_DIFFICULTY):
        shown["difficulty"] = difficulty
    return shown


def flag_emoji(country_code: str | None) -> str:
    """The flag emoji of an ISO 3166-1 alpha-2 code (regional indicators), or ""."""
    if not country_code or len(country_code) != 2 or not country_code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in country_code.upper())


# ---- times (UTC) ----------------------------------------------------------------

# The template filters of stored times (UTC, shown as stored): name -> strftime format.
TIME_FORMATS = {
    "date": "%Y-%m-%d",
    "datetime": "%Y-%m-%d %H:%M",
    "datetime_seconds": "%Y-%m-%d %H:%M:%S",
    "clock": "%H:%M",
    "clock_seconds": "%H:%M:%S",
    "month": "%B %Y",
}


def format_time(value: date | datetime, style: str = "datetime") -> str:
    """``value`` in the ``TIME_FORMATS`` style named ``style``:
    ``"2025-11-03 14:05"`` for ``datetime``. Raises KeyError for an unknown style."""
    return value.strftime(TIME_FORMATS[style])


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def group_of(created_at: Any, now: datetime) -> str:
    """``today``, ``yesterday`` or ``earlier`` by UTC calendar day."""
    moment = _parse_time(created_at)
    if moment is None:
        raise ValueError("a notification has a creation time")
    day = moment.astimezone(UTC).date()
    today = now.astimezone(UTC).date()
    if day >= today:
        return "today"
    return "yesterday" if day == today - timedelta(days=1) else "earlier"


def notification_time(value: Any) -> str:
    """``14:05`` for today and yesterday, ``3 Nov 14:05`` before that (UTC)."""
    moment = _parse_time(value)
    if moment is None:
        return ""
    moment = moment.astimezone(UTC)
    if group_of(moment, utcnow()) == "earlier":
        return f"{moment.day} {moment:%b %H:%M}"
    return f"{moment:%H:%M}"


def day_label(day: date) -> str:
    """``Today``, ``Yesterday`` or ``Mon 03 Nov 2025`` for a UTC day."""
    today = utcnow().date()
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return day.strftime("%a %d %b %Y")


def chat_markup(text: str | None) -> Markup:
    """A message body (user Markdown) as sanitised HTML (``markup.render``:
    markdown-it-py, then nh3), safe to insert."""
    return Markup(markup.render(text or ""))


def init_template_filters(app: Flask) -> None:
    """Register every Jinja filter of the app (CTFd's ``init_template_filters``)."""
    filters = app.jinja_env.filters
    filters.update(
        hashrate=format_hashrate,
        difficulty=format_difficulty,
        thousands=format_count,
        flag=flag_emoji,
        notification_time=notification_time,
        chat_markup=chat_markup,
    )
    for style in TIME_FORMATS:
        filters[style] = partial(format_time, style=style)
