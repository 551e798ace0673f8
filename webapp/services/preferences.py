"""Privacy and notification preferences: defaults, strict PATCH schema, merge
and the checks the dispatcher and the public profiles use.

Shape (API.md ``/api/settings``)::

    {"privacy": {"publicProfile": bool, "showOnLeaderboard": bool,
                 "showCountryFlag": bool, "showInCoopRankings": bool,
                 "showPresence": bool},
     "notifications": {"categories": {<category>: {"enabled": bool, "email": bool}},
                       "email": str | None,
                       "timezone": <IANA zone name, default "UTC">,
                       "personalBest": bool, "badgeEarned": bool,
                       "blockFoundAny": bool, "coopActivity": bool,
                       "chatMentions": bool, "chatUnread": bool,
                       "workerStatus": bool, "coopDigest": bool,
                       "quiet_hours": {"start": "HH:MM", "end": "HH:MM"} | None,
                       "digest": "off" | "daily" | "weekly",
                       "max_per_hour": int 1..100 | None,
                       "worker_offline": {"after_minutes": 5..1440, "muted_workers": [str]},
                       "push": {<category>: bool}}}

The engine settings (quiet hours, digest, cap, worker-offline alerts, push
per category) are the "Notification settings" of ``../shared/API.md``; the
rules that read them live in ``services/pacing.py``.

The flat subtype toggles are the frontend's keys; ``SUBTYPE_TOGGLES`` maps
each to the notification subtypes it silences. Categories, toggles and
their defaults come from the catalogue (``services/catalogue.py``).
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import select

from ..extensions import db
from ..models import NOTIFICATION_CATEGORIES, UserSettings
from . import catalogue
from .inputs import TextRuleModel

# Categories that may be e-mailed at all (DESIGN.md).
EMAIL_CATEGORIES = catalogue.EMAIL_CATEGORIES

DEFAULT_PRIVACY: dict[str, bool] = {
    "publicProfile": True,
    "showOnLeaderboard": True,
    "showCountryFlag": True,
    "showInCoopRankings": True,
    # Coop-mates and friends see online/away/dnd and last activity (API.md
    # "Socket additions"); off shows the miner offline to everyone.
    "showPresence": True,
}

DEFAULT_TIMEZONE = "UTC"
DIGEST_MODES = ("off", "daily", "weekly")
DEFAULT_OFFLINE_AFTER_MINUTES = 15
MIN_OFFLINE_AFTER_MINUTES, MAX_OFFLINE_AFTER_MINUTES = 5, 1440
MAX_MUTED_WORKERS = 200
# Web Push per category: on for what a miner wants on a closed browser,
# off for the chatty ones (the subscribe switch is the opt-in itself).
DEFAULT_PUSH: dict[str, bool] = {c: c in ("mining", "competition", "system") for c in NOTIFICATION_CATEGORIES}

# Frontend toggle -> (category, subtypes it governs, the frontend's default).
SUBTYPE_TOGGLES: Mapping[str, tuple[str, tuple[str, ...], bool]] = catalogue.toggle_subtypes()
_TOGGLE_BY_SUBTYPE = {
    subtype: toggle for toggle, (_, subtypes, _) in SUBTYPE_TOGGLES.items() for subtype in subtypes
}


def default_notifications() -> dict[str, Any]:
    """Every category enabled in-app, e-mail off, toggles at their defaults."""
    prefs: dict[str, Any] = {
        "categories": {c: {"enabled": True, "email": False} for c in NOTIFICATION_CATEGORIES},
        "timezone": DEFAULT_TIMEZONE,
        "quiet_hours": None,
        "digest": "off",
        "max_per_hour": None,
        "worker_offline": {"after_minutes": DEFAULT_OFFLINE_AFTER_MINUTES, "muted_workers": []},
        "push": dict(DEFAULT_PUSH),
    }
    for toggle, (_, _, default) in SUBTYPE_TOGGLES.items():
        prefs[toggle] = default
    return prefs


class _Strict(TextRuleModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PrivacyPatch(_Strict):
    publicProfile: bool | None = None
    showOnLeaderboard: bool | None = None
    showCountryFlag: bool | None = None
    showInCoopRankings: bool | None = None
    showPresence: bool | None = None


class CategoryPatch(_Strict):
    enabled: bool | None = None
    email: bool | None = None


class CategoriesPatch(_Strict):
    mining: CategoryPatch | None = None
    gamification: CategoryPatch | None = None
    competition: CategoryPatch | None = None
    social: CategoryPatch | None = None
    system: CategoryPatch | None = None


_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHoursPatch(_Strict):
    """``{"start": "HH:MM", "end": "HH:MM"}`` in the user's zone; start > end
    crosses midnight (22:00–07:00). Equal times are refused (empty or all day
    is ambiguous: use null to turn quiet hours off)."""

    start: str = Field(pattern=_HHMM)
    end: str = Field(pattern=_HHMM)

    @field_validator("end")
    @classmethod
    def _not_empty(cls, value: str, info) -> str:
        if info.data.get("start") == value:
            raise ValueError("must differ from start")
        return value


class WorkerOfflinePatch(_Strict):
    """When a worker-offline notice goes out, and for which workers never."""

    after_minutes: int | None = Field(default=None, ge=MIN_OFFLINE_AFTER_MINUTES, le=MAX_OFFLINE_AFTER_MINUTES)
    # Worker names, either ``user.rig`` or the rig part alone.
    muted_workers: list[str] | None = Field(default=None, max_length=MAX_MUTED_WORKERS)

    @field_validator("muted_workers")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = []
        for name in value:
            name = name.strip()
            if not 1 <= len(name) <= 255 or any(ord(ch) < 32 for ch in name):
                raise ValueError("each worker name must be 1 to 255 printable characters")
            if name not in cleaned:
                cleaned.append(name)
        return cleaned


class PushPatch(_Strict):
    mining: bool | None = None
    gamification: bool | None = None
    competition: bool | None = None
    social: bool | None = None
    system: bool | None = None


class NotificationsPatch(_Strict):
    categories: CategoriesPatch | None = None
    # None clears the address; a string must look like an address.
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    personalBest: bool | None = None
    blockFoundAny: bool | None = None
    workerStatus: bool | None = None
    badgeEarned: bool | None = None
    coopActivity: bool | None = None
    chatMentions: bool | None = None
    chatUnread: bool | None = None
    coopDigest: bool | None = None
    # An IANA zone name (``Europe/Berlin``); pages and e-mails show times in it.
    timezone: str | None = Field(default=None, max_length=64)
    # null turns quiet hours / the cap off (so "given as null" differs from absent).
    quiet_hours: QuietHoursPatch | None = None
    digest: str | None = Field(default=None, pattern="^(off|daily|weekly)$")
    max_per_hour: int | None = Field(default=None, ge=1, le=100)
    worker_offline: WorkerOfflinePatch | None = None
    push: PushPatch | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not is_timezone(value):
            raise ValueError("must be an IANA time zone name such as Europe/Berlin")
        return value


class SettingsPatch(_Strict):
    """Body of ``PATCH /api/settings``: any subset of the settings document."""

    privacy: PrivacyPatch | None = None
    notifications: NotificationsPatch | None = None


# (label, help) of each privacy setting: the settings page and ``setting_label``.
PRIVACY_LABELS = {
    "publicProfile": ("Public profile", "Anyone can see your miner profile and stats. Off: your profile is a plain 404."),
    "showOnLeaderboard": ("Show me on the leaderboard", "Your rank by best difficulty appears on your profile and the leaderboard."),
    "showCountryFlag": ("Show my country flag", "Your country appears on your profile."),
    "showInCoopRankings": ("Show me in cooperative rankings", "Your hashrate is named in your coop's member rankings."),
    "showPresence": ("Show when I am online", "Coop-mates and friends see online, away or do not disturb, and your last activity."),
}
_NOTIFICATION_LABELS = {
    "email": "E-mail address", "timezone": "Time zone", "quiet_hours": "Quiet hours", "digest": "Digest",
    "max_per_hour": "Most notifications per hour", "worker_offline.after_minutes": "Worker offline after (minutes)",
    "worker_offline.muted_workers": "Workers never reported offline",
}
# What a field's rule means for people, where pydantic's own words would show a pattern.
_PLAIN_RULES = {
    "quiet_hours": "use a time such as 22:00",
    "digest": "choose off, daily or weekly",
    "email": "that does not look like an e-mail address (name@example.org)",
}


def setting_label(path: str) -> str:
    """What the settings page calls the setting at ``path`` (a dotted key
    of the settings document: ``privacy.publicProfile``,
    ``notifications.categories.mining.email``, ``notifications.quiet_hours.start``):
    ``"Public profile"``, ``"Mining by e-mail"``, ``"Quiet hours"``; the
    path itself for a key it does not know."""
    parts = path.split(".")
    if parts[0] == "privacy" and len(parts) == 2 and parts[1] in PRIVACY_LABELS:
        return PRIVACY_LABELS[parts[1]][0]
    if parts[0] != "notifications" or len(parts) < 2:
        return path
    rest = parts[1:]
    if rest[0] in ("categories", "push") and len(rest) >= 2 and rest[1] in catalogue.CATEGORY:
        category = catalogue.CATEGORY[rest[1]].label
        if rest[0] == "push":
            return f"{category} as browser push"
        return f"{category} by e-mail" if rest[2:] == ["email"] else f"{category} in the app"
    toggle = next((t.label for t in catalogue.TOGGLES if t.key == rest[0]), None)
    if toggle is not None:
        return toggle
    return _NOTIFICATION_LABELS.get(".".join(rest[:2]), _NOTIFICATION_LABELS.get(rest[0], path))


def plain_problem(field: str, message: str) -> str:
    """A settings validation error (``field`` a dotted path, ``message``
    the schema's) as the settings page says it: ``"Quiet hours: use a time
    such as 22:00."``."""
    rest = field.split(".")[1:] if field.startswith("notifications.") else []
    rule = _PLAIN_RULES.get(rest[0]) if rest else None
    message = message.removeprefix("Value error, ")  # pydantic's prefix for a validator's own words
    text = rule if rule and ("pattern" in message or rest[0] == "email") else message[:1].lower() + message[1:]
    return f"{setting_label(field)}: {text.rstrip('.')}."


def merged_privacy(stored: dict | None) -> dict[str, bool]:
    """Stored privacy over the defaults (new keys get their default)."""
    return {**DEFAULT_PRIVACY, **(stored or {})}


def hidden_from_rankings(user_ids: Iterable[str]) -> set[str]:
    """Those of ``user_ids`` whose ``privacy.showInCoopRankings`` is false
    (default true; a user without stored settings is shown), in one query.

    Every coop view that names members by their mining figures reads it
    here: the coop leaderboard (and the admin's weekly digest built on it),
    the coop hashrate chart and the personal bests and blocks of the coop
    timeline name such a member "a member" to the others (API.md v2
    privacy). Whether the viewer sees their own name is the caller's rule.
    """
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return set()
    stored = db.session.execute(select(UserSettings.user_id, UserSettings.privacy)
                                .where(UserSettings.user_id.in_(ids))).all()
    return {user_id for user_id, privacy in stored if not merged_privacy(privacy)["showInCoopRankings"]}


def merged_notifications(stored: dict | None) -> dict[str, Any]:
    """Stored notification preferences over the defaults."""
    prefs = default_notifications()
    stored = copy.deepcopy(stored or {})
    for category, values in (stored.pop("categories", None) or {}).items():
        if category in prefs["categories"]:
            prefs["categories"][category].update(values)
    prefs.update({k: v for k, v in stored.items() if k in SUBTYPE_TOGGLES})
    if is_timezone(stored.get("timezone")):
        prefs["timezone"] = stored["timezone"]
    quiet = stored.get("quiet_hours")
    if isinstance(quiet, dict) and isinstance(quiet.get("start"), str) and isinstance(quiet.get("end"), str):
        prefs["quiet_hours"] = {"start": quiet["start"], "end": quiet["end"]}
    if stored.get("digest") in DIGEST_MODES:
        prefs["digest"] = stored["digest"]
    if isinstance(stored.get("max_per_hour"), int):
        prefs["max_per_hour"] = stored["max_per_hour"]
    offline = stored.get("worker_offline")
    if isinstance(offline, dict):
        if isinstance(offline.get("after_minutes"), int):
            prefs["worker_offline"]["after_minutes"] = offline["after_minutes"]
        if isinstance(offline.get("muted_workers"), list):
            prefs["worker_offline"]["muted_workers"] = list(offline["muted_workers"])
    for category, value in (stored.get("push") or {}).items():
        if category in prefs["push"] and isinstance(value, bool):
            prefs["push"][category] = value
    return prefs


def user_notifications(user_id: str) -> dict[str, Any]:
    """The user's stored notification preferences merged over the defaults."""
    settings = db.session.get(UserSettings, user_id)
    return merged_notifications(settings.notifications if settings else None)


def apply_patch(privacy: dict, notifications: dict, patch: SettingsPatch) -> tuple[dict, dict, bool, str | None]:
    """Merge ``patch`` into full documents.

    Returns (privacy, notifications, email_given, email): ``email_given`` says
    whether the patch set the address (possibly to None).
    """
    privacy = dict(privacy)
    notifications = copy.deepcopy(notifications)
    if patch.privacy is not None:
        privacy.update(patch.privacy.model_dump(exclude_none=True))
    email_given, email = False, None
    if patch.notifications is not None:
        given = patch.notifications.model_fields_set
        if "email" in given:
            email_given, email = True, patch.notifications.email
        if patch.notifications.categories is not None:
            for category, values in patch.notifications.categories.model_dump(exclude_none=True).items():
                notifications["categories"][category].update(values)
        if patch.notifications.timezone is not None:
            notifications["timezone"] = patch.notifications.timezone
        _apply_engine_patch(notifications, patch.notifications)
        for toggle in SUBTYPE_TOGGLES:
            value = getattr(patch.notifications, toggle)
            if value is not None:
                notifications[toggle] = value
    return privacy, notifications, email_given, email


def _apply_engine_patch(notifications: dict, patch: NotificationsPatch) -> None:
    """The engine settings of API.md "Notification settings": explicit nulls
    clear quiet hours and the cap; nested objects merge key by key."""
    given = patch.model_fields_set
    if "quiet_hours" in given:
        notifications["quiet_hours"] = patch.quiet_hours.model_dump() if patch.quiet_hours else None
    if "max_per_hour" in given:
        notifications["max_per_hour"] = patch.max_per_hour
    if patch.digest is not None:
        notifications["digest"] = patch.digest
    if patch.worker_offline is not None:
        notifications["worker_offline"] = {
            **notifications["worker_offline"], **patch.worker_offline.model_dump(exclude_none=True)}
    if patch.push is not None:
        notifications["push"] = {**notifications["push"], **patch.push.model_dump(exclude_none=True)}


def allows_in_app(notifications: dict, category: str, subtype: str) -> bool:
    """Whether a notification of (category, subtype) is stored at all: the
    category is enabled and the subtype's frontend toggle, if any, is on."""
    if not notifications["categories"].get(category, {}).get("enabled", True):
        return False
    toggle = _TOGGLE_BY_SUBTYPE.get(subtype)
    return True if toggle is None else bool(notifications.get(toggle, SUBTYPE_TOGGLES[toggle][2]))


def allows_email(notifications: dict, category: str) -> bool:
    """Whether the category is e-mailed: an e-mail category, opted in."""
    return category in EMAIL_CATEGORIES and bool(
        notifications["categories"].get(category, {}).get("email", False)
    )


def allows_push(notifications: dict, category: str) -> bool:
    """Whether the category goes to the user's subscribed browsers."""
    return bool(notifications.get("push", DEFAULT_PUSH).get(category, False))


def is_timezone(name: Any) -> bool:
    """Whether ``name`` is an IANA zone name the system's tz database knows
    (``zoneinfo``; ``Europe/Berlin``, ``UTC``), not a file path or offset."""
    return isinstance(name, str) and name in _zone_names()


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


_ZONES: frozenset[str] | None = None


def zone(name: str | None) -> ZoneInfo:
    """The ``ZoneInfo`` for a stored zone name; UTC for None or an unknown name."""
    try:
        return ZoneInfo(name) if name is not None and is_timezone(name) else ZoneInfo(DEFAULT_TIMEZONE)
    except ZoneInfoNotFoundError:
        return ZoneInfo(DEFAULT_TIMEZONE)


def user_timezone(user_id: str) -> ZoneInfo:
    """The user's time zone (``notifications.timezone``), UTC when unset.
    Shared by the pages (local times) and the notification engine (quiet hours)."""
    return zone(user_notifications(user_id)["timezone"])
