"""Numbers, hashrates, names and times as the pages, notifications and
e-mails show them, and the Jinja filters that expose them
(``init_template_filters``, called by the app factory).

Filters: ``hashrate`` (H/s → ``"576 GH/s"``), ``difficulty`` (→ ``"46.6M"``),
``thousands`` (12345 → ``"12,345"``), ``flag`` (country code → emoji),
``notification_time`` (→ ``"14:05"`` or ``"3 Nov 14:05"``), ``notification_when``
(a notification's ``<time>``: with its day when that is not the day it
arrived, the day its list heading gives), ``localtime``
(→ ``<time datetime title>`` in the viewer's zone: ``{{ at | localtime("clock") }}``)
and one filter per entry of ``TIME_FORMATS`` (``date``, ``datetime``,
``clock``...: plain text as stored, UTC).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import current_app, g, has_app_context, has_request_context
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


# ---- times (stored in UTC, shown in the viewer's zone) ------------------------------

# The template filters of stored times: name -> strftime format.
TIME_FORMATS = {
    "date": "%Y-%m-%d",
    "datetime": "%Y-%m-%d %H:%M",
    "datetime_seconds": "%Y-%m-%d %H:%M:%S",
    "clock": "%H:%M",
    "clock_seconds": "%H:%M:%S",
    "month": "%B %Y",
}
# The styles of ``localtime`` beyond TIME_FORMATS (static/js/time.js knows them all).
EXTRA_STYLES = ("notification", "day_clock", "relative")
FULL_FORMAT = "%A %d %B %Y, %H:%M:%S %Z"  # a <time>'s title: "Friday 20 November 2026, 13:00:30 CET"


def format_time(value: date | datetime, style: str = "datetime", tz: tzinfo | None = None) -> str:
    """``value`` in the ``TIME_FORMATS`` style named ``style``:
    ``"2025-11-03 14:05"`` for ``datetime``; an aware datetime is first
    converted to ``tz`` (default: as stored, UTC). Raises KeyError for an
    unknown style."""
    if tz is not None and isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(tz)
    return value.strftime(TIME_FORMATS[style])


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def happened_at(notification: dict[str, Any]) -> Any:
    """When what a notification tells of happened: its ``data.at`` (the
    mining event's time, set by ingest) when that is a readable time, else
    when it was created. A late ingest thus shows 17:34, not 19:32."""
    at = (notification.get("data") or {}).get("at") if isinstance(notification.get("data"), dict) else None
    if isinstance(at, str) and len(at) <= 40:
        try:
            if _parse_time(at) is not None:
                return at
        except ValueError:
            pass
    return notification.get("created_at")


def group_of(created_at: Any, now: datetime, tz: tzinfo = UTC) -> str:
    """``today``, ``yesterday`` or ``earlier`` by calendar day in ``tz`` (the
    viewer's zone: 23:30 UTC is already "tomorrow" in Berlin)."""
    moment = _parse_time(created_at)
    if moment is None:
        raise ValueError("a notification has a creation time")
    day = moment.astimezone(tz).date()
    today = now.astimezone(tz).date()
    if day >= today:
        return "today"
    return "yesterday" if day == today - timedelta(days=1) else "earlier"


def notification_time(value: Any, tz: tzinfo = UTC, now: datetime | None = None) -> str:
    """``14:05`` for today and yesterday, ``3 Nov 14:05`` before that, in ``tz``."""
    moment = _parse_time(value)
    if moment is None:
        return ""
    moment = moment.astimezone(tz)
    if group_of(moment, now or utcnow(), tz) == "earlier":
        return f"{moment.day} {moment:%b %H:%M}"
    return f"{moment:%H:%M}"


def day_clock(value: Any, tz: tzinfo = UTC) -> str:
    """``3 Nov 14:05`` in ``tz``."""
    moment = _parse_time(value)
    if moment is None:
        return ""
    moment = moment.astimezone(tz)
    return f"{moment.day} {moment:%b %H:%M}"


def relative_time(value: Any, now: datetime | None = None) -> str:
    """How long ago (or ahead) ``value`` is: ``just now`` (under a minute),
    ``5 min ago``, ``3 h ago``, ``2 days ago``, ``in 5 min``. Whole units,
    rounded down, as static/js/time.js writes them while the page stays open."""
    moment = _parse_time(value)
    if moment is None:
        return ""
    seconds = ((now or utcnow()) - moment).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        days = int(seconds // 86400)
        text = f"{days} day{'s' if days != 1 else ''}"
    return f"in {text}" if ahead else f"{text} ago"


def time_tag(value: Any, style: str = "datetime", tz: tzinfo = UTC, now: datetime | None = None,
             cls: str = "") -> Markup:
    """``<time datetime="ISO UTC" title="full local time" data-style=...>text</time>``:
    ``text`` in ``style`` (a TIME_FORMATS name, ``notification`` or
    ``relative``) in the zone ``tz``; "" for no value. static/js/time.js
    keeps ``relative`` text fresh and, for a viewer whose zone the server
    does not know, rewrites the text in the browser's zone. Raises KeyError
    for an unknown style. ``cls``: the element's class attribute."""
    moment = _parse_time(value)
    if moment is None:
        return Markup("")
    if style == "relative":
        text = relative_time(moment, now)
    elif style == "notification":
        text = notification_time(moment, tz, now)
    elif style == "day_clock":
        text = day_clock(moment, tz)
    else:
        text = format_time(moment, style, tz)
    stamp = moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    full = moment.astimezone(tz).strftime(FULL_FORMAT)
    attrs = Markup(' class="{}"').format(cls) if cls else Markup("")
    return Markup('<time{} datetime="{}" title="{}" data-style="{}">{}</time>').format(attrs, stamp, full, style, text)


def day_label(day: date, tz: tzinfo = UTC) -> str:
    """``Today``, ``Yesterday`` or ``Mon 03 Nov 2025`` for a day in ``tz``."""
    today = utcnow().astimezone(tz).date()
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return day.strftime("%a %d %b %Y")


def viewer_zone() -> tzinfo:
    """The zone pages show times in: ``g.viewer_zone`` when set, else what
    the app's ``viewer_zone`` resolver says (``webapp/localtime.py``: the
    signed-in user's setting), else UTC (outside a request, and for
    logged-out viewers, whose browser then rewrites the times)."""
    if not has_app_context():
        return UTC
    zone = g.get("viewer_zone")
    if zone is None:
        resolver = current_app.extensions.get("viewer_zone")
        zone = resolver() if resolver and has_request_context() else UTC
        g.viewer_zone = zone
    return zone


def _local_tag(value: Any, style: str = "datetime", cls: str = "") -> Markup:
    return time_tag(value, style, viewer_zone(), cls=cls)


def _local_notification_time(value: Any) -> str:
    return notification_time(value, viewer_zone())


def notification_when(notification: dict[str, Any], cls: str = "muted") -> Markup:
    """The ``<time>`` of a notification in a list grouped by the day it
    arrived (``created_at``: Today, Yesterday, Earlier): when what it tells
    of happened (``happened_at``), with the day (``"30 Nov 07:49"``) when
    that is another day than its arrival's, so a late event under "Today"
    does not read as a time later today."""
    zone = viewer_zone()
    at = happened_at(notification)
    moment, arrived = _parse_time(at), _parse_time(notification.get("created_at"))
    # "Earlier" times carry their day already (``notification_time``).
    other_day = (moment is not None and arrived is not None and group_of(moment, utcnow(), zone) != "earlier"
                 and moment.astimezone(zone).date() != arrived.astimezone(zone).date())
    return time_tag(at, "day_clock" if other_day else "notification", zone, cls=cls)


def chat_markup(text: str | None) -> Markup:
    """A message body (user Markdown) as sanitised HTML (``markup.render``:
    markdown-it-py, then nh3), safe to insert."""
    return Markup(markup.render(text or ""))


def minutes_words(minutes: int) -> str:
    """A whole number of minutes as the mute menu says it: 10 → "10
    minutes", 60 → "1 hour", 1440 → "1 day", 10080 → "7 days", 90 → "90
    minutes" (the largest unit that divides it)."""
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes >= size and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def init_template_filters(app: Flask) -> None:
    """Register every Jinja filter of the app (CTFd's ``init_template_filters``)."""
    filters = app.jinja_env.filters
    filters.update(
        hashrate=format_hashrate,
        difficulty=format_difficulty,
        thousands=format_count,
        flag=flag_emoji,
        notification_time=_local_notification_time,
        localtime=_local_tag,
        happened_at=happened_at,
        notification_when=notification_when,
        chat_markup=chat_markup,
        minutes_words=minutes_words,
    )
    for style in TIME_FORMATS:
        filters[style] = partial(format_time, style=style)
