"""A miner editing their own profile (API.md "Profiles": ``GET`` / ``PATCH
/api/profile``, ``PUT`` / ``DELETE /api/profile/avatar|banner``). Field
rules live in ``profile_fields``, images in ``media``; what others see of
the result is ``profiles.profile_dict``."""
from __future__ import annotations

from typing import Any

from ..extensions import db
from ..models import User, UserProfile, iso
from . import markup, media, profile_fields, transactions
from .errors import ValidationError

PATCHABLE = ("display_name", "bio", "pronouns", "location", "country_code", "visibility")


def own_profile(user: User) -> dict[str, Any]:
    """Every field, its level and the image URLs:
    ``{"user_id", "display_name", "bio", "bio_html", "pronouns", "location",
    "country_code", "avatar_url", "avatar_small_url", "banner_url",
    "banner_small_url", "visibility": {field: level}, "updated_at"}``."""
    row = db.session.get(UserProfile, user.user_id)
    texts = profile_fields.stored_fields(row)
    avatar, banner = (row.avatar_key, row.banner_key) if row else (None, None)
    return {
        "user_id": user.user_id,
        "display_name": user.display_name,
        **texts,
        "bio_html": markup.render(texts["bio"]) if texts["bio"] else "",
        "country_code": user.country_code,
        "avatar_url": media.url("avatar", avatar),
        "avatar_small_url": media.url("avatar", avatar, 128),
        "banner_url": media.url("banner", banner),
        "banner_small_url": media.url("banner", banner, 600),
        "visibility": profile_fields.visibility_of(row),
        "updated_at": iso(row.updated_at) if row else None,
    }


def update(user: User, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply a partial profile (keys of ``PATCHABLE``; a key present with
    null clears ``country_code``), commit, and return ``own_profile``.
    Raises ValidationError; nothing is stored unless every field is good."""
    unknown = set(changes) - set(PATCHABLE)
    if unknown:
        raise ValidationError(f"Unknown profile fields: {', '.join(sorted(unknown))}.")
    row = profile_fields.ensure_row(user.user_id, user.display_name)
    if changes.get("display_name") is not None:
        name = profile_fields.normalise_display_name(changes["display_name"])
        row.name_key = profile_fields.check_not_imitating(name, user.user_id)
        user.display_name = name
    for field in ("bio", "pronouns", "location"):
        if changes.get(field) is not None:
            setattr(row, field, profile_fields.check_text_field(field, changes[field]))
    if "country_code" in changes:
        user.country_code = profile_fields.check_country(changes["country_code"])
    if changes.get("visibility") is not None:
        row.visibility = {**profile_fields.visibility_of(row), **profile_fields.check_visibility(changes["visibility"])}
    db.session.commit()
    return own_profile(user)


def set_image(user: User, kind: str, data: bytes) -> dict[str, Any]:
    """Store a new avatar or banner (``media.store``), drop the old files
    after the commit, and return ``own_profile``. ``users.avatar_url`` is
    the avatar's main URL (every older page reads it). Raises
    ImageTooLarge, UnsupportedMedia, ImageTooSmall."""
    base = media.store(user.user_id, kind, data)
    row = profile_fields.ensure_row(user.user_id, user.display_name)
    old = row.avatar_key if kind == "avatar" else row.banner_key
    if kind == "avatar":
        row.avatar_key = base
        user.avatar_url = media.url("avatar", base)
    else:
        row.banner_key = base
    if old and old != base:
        transactions.after_commit(lambda: media.remove(kind, old))
    db.session.commit()
    return own_profile(user)


def delete_image(user: User, kind: str) -> dict[str, Any]:
    """Remove the avatar or banner (files after the commit); idempotent."""
    row = profile_fields.ensure_row(user.user_id, user.display_name)
    old = row.avatar_key if kind == "avatar" else row.banner_key
    if kind == "avatar":
        row.avatar_key = None
        user.avatar_url = None
    else:
        row.banner_key = None
    if old:
        transactions.after_commit(lambda: media.remove(kind, old))
    db.session.commit()
    return own_profile(user)
