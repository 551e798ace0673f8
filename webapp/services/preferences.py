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
                       "workerStatus": bool}}

The flat subtype toggles are the frontend's keys; ``SUBTYPE_TOGGLES`` maps
each to the notification subtypes it silences. Categories, toggles and
their defaults come from the catalogue (``services/catalogue.py``).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ConfigDict, Field, field_validator

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
    # An IANA zone name (``Europe/Berlin``); pages and e-mails show times in it.
    timezone: str | None = Field(default=None, max_length=64)

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


def merged_privacy(stored: dict | None) -> dict[str, bool]:
    """Stored privacy over the defaults (new keys get their default)."""
    return {**DEFAULT_PRIVACY, **(stored or {})}


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
        for toggle in SUBTYPE_TOGGLES:
            value = getattr(patch.notifications, toggle)
            if value is not None:
                notifications[toggle] = value
    return privacy, notifications, email_given, email


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
        return ZoneInfo(name) if is_timezone(name) else ZoneInfo(DEFAULT_TIMEZONE)
    except ZoneInfoNotFoundError:
        return ZoneInfo(DEFAULT_TIMEZONE)


def user_timezone(user_id: str) -> ZoneInfo:
    """The user's time zone (``notifications.timezone``), UTC when unset.
    Shared by the pages (local times) and the notification engine (quiet hours)."""
    return zone(user_notifications(user_id)["timezone"])
