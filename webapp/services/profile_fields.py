"""The profile fields a miner edits (API.md "Profiles"; seed 001 §1.1): their
rules, their visibility levels and the name key that search and the
impersonation check use.

* ``display_name``: NFKC-normalised, trimmed, 3–40 characters, one line. A
  name that folds to the same key as another miner's name but is spelt
  differently (``Аlice`` with a Cyrillic А against ``Alice``) is refused:
  a confusable imitation. The key is the name with every non-ASCII
  character the Unicode confusables table (``confusable_homoglyphs``) maps
  to a Latin look-alike replaced by it, casefolded.
* ``bio`` ≤ 280 (several lines; rendered by ``services/markup.py``),
  ``pronouns`` ≤ 30, ``location`` ≤ 60, ``country_code`` ISO 3166-1 alpha-2
  (pycountry, ``addresses.check_country_code``).
* Visibility per field: ``public`` | ``connections`` (friends) |
  ``private``. Defaults: ``display_name``, ``avatar`` and ``country_code``
  public (the country was public under ``showCountryFlag`` before fields
  had levels), the rest ``connections``.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from confusable_homoglyphs import confusables  # type: ignore[import-untyped]
from sqlalchemy import select

from ..extensions import db
from ..models import VISIBILITY_LEVELS, User, UserProfile
from . import addresses, inputs
from .errors import ValidationError

FIELDS = ("display_name", "avatar", "banner", "bio", "pronouns", "location", "country_code")
DEFAULT_VISIBILITY = {
    "display_name": "public", "avatar": "public", "country_code": "public",
    "banner": "connections", "bio": "connections", "pronouns": "connections", "location": "connections",
}
NAME_MIN, NAME_MAX = 3, 40
LIMITS = {"bio": 280, "pronouns": 30, "location": 60}


@lru_cache(maxsize=4096)
def _latin_lookalike(char: str) -> str:
    if char.isascii():
        return char
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=[])
    for entry in found or ():
        for glyph in entry["homoglyphs"]:
            if glyph["c"].isascii():
                return glyph["c"]
    return char


def name_key(name: str) -> str:
    """What ``name`` looks like: NFKC, confusables mapped to their ASCII
    look-alikes, casefolded (the search key, ``user_profiles.name_key``)."""
    text = unicodedata.normalize("NFKC", name)
    return "".join(_latin_lookalike(c) for c in text).casefold()[:160]


def normalise_display_name(name: object) -> str:
    """``name`` NFKC-normalised and trimmed, checked for length and the text
    rule. Raises ValidationError."""
    inputs.check_text(name, name="display_name")
    assert isinstance(name, str)
    text = " ".join(unicodedata.normalize("NFKC", name).split())
    if not NAME_MIN <= len(text) <= NAME_MAX:
        raise ValidationError(f"display_name must be {NAME_MIN} to {NAME_MAX} characters.")
    return text


def check_not_imitating(name: str, user_id: str) -> str:
    """The key of ``name``; raises ValidationError when another miner's name
    has the same key but a different spelling (a confusable imitation)."""
    key = name_key(name)
    others = db.session.execute(
        select(User.display_name)
        .join(UserProfile, UserProfile.user_id == User.user_id)
        .where(UserProfile.name_key == key, User.user_id != user_id)
        .limit(20)
    ).scalars()
    folded = name.casefold()
    for other in others:
        if unicodedata.normalize("NFKC", other).casefold() != folded:
            raise ValidationError(
                "That name imitates another miner's name with look-alike letters; choose another.",
                details=[{"field": "display_name", "message": "confusable with an existing name"}],
            )
    return key


def check_text_field(field: str, value: object) -> str:
    """``bio`` (several lines), ``pronouns`` or ``location`` trimmed and
    within its limit. Raises ValidationError."""
    kind = inputs.MULTILINE if field == "bio" else inputs.LINE
    inputs.check_text(value, name=field, kind=kind)
    assert isinstance(value, str)
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > LIMITS[field]:
        raise ValidationError(f"{field} must be at most {LIMITS[field]} characters.")
    return text


def check_visibility(patch: object) -> dict[str, str]:
    """A ``{"<field>": "public"|"connections"|"private"}`` patch. Raises ValidationError."""
    if not isinstance(patch, dict):
        raise ValidationError("visibility must be an object of field: level.")
    for field, level in patch.items():
        if field not in FIELDS:
            raise ValidationError(f"visibility: unknown field {field!r}; fields are {', '.join(FIELDS)}.")
        if level not in VISIBILITY_LEVELS:
            raise ValidationError(f"visibility.{field} must be public, connections or private.")
    return dict(patch)


def check_country(value: object) -> str | None:
    """An ISO 3166-1 alpha-2 code or None (pycountry). Raises ValidationError."""
    if value is not None and not isinstance(value, str):
        raise ValidationError("country_code must be a two-letter ISO 3166-1 code.")
    addresses.check_country_code(value or None)
    return value or None


def visibility_of(row: Any) -> dict[str, str]:
    """Every field's level: the stored ones over the defaults. ``row``: a
    ``UserProfile``, a row with its ``visibility`` column (None when the
    miner has no profile row), or None."""
    stored = (row.visibility if row else None) or {}
    return {field: stored.get(field, DEFAULT_VISIBILITY[field]) for field in FIELDS}


def visible(level: str, relation: str) -> bool:
    """Whether a field at ``level`` shows to a viewer who is ``relation``
    (``self`` | ``friend`` | ``stranger``)."""
    if relation == "self" or level == "public":
        return True
    return level == "connections" and relation == "friend"


def ensure_row(user_id: str, display_name: str | None = None) -> UserProfile:
    """The user's profile row, created (not committed) when missing."""
    row = db.session.get(UserProfile, user_id)
    if row is None:
        if display_name is None:
            user = db.session.get(User, user_id)
            display_name = user.display_name if user else ""
        row = UserProfile(user_id=user_id, name_key=name_key(display_name), visibility={})
        db.session.add(row)
    return row


def stored_fields(row: UserProfile | None) -> dict[str, Any]:
    """The text fields as stored (empty strings when there is no row)."""
    return {
        "bio": row.bio if row else "",
        "pronouns": row.pronouns if row else "",
        "location": row.location if row else "",
    }
