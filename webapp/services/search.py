"""Miner search (API.md "Profiles": ``GET /api/miners/search?q=``): by
display name or user id prefix, public profiles only.

* ``q`` is trimmed and must be 2 to 100 characters (ValidationError).
* A miner is found only when ``publicProfile`` is on; by name only when
  their name is ``public`` (a hidden name cannot be searched for), by the
  start of their user id (address) always. A miner who blocked the viewer,
  or whom the viewer blocked, is never found.
* Names match on ``user_profiles.name_key`` (NFKC, confusables folded,
  casefolded; ``profile_fields.name_key``), so ``alice`` finds ``Аlice``
  spelt with a Cyrillic А too. PostgreSQL: ``ILIKE '%q%'`` served by the
  pg_trgm GIN index, ordered by ``similarity``; SQLite: ``LIKE`` and
  ordered by name length (a shorter name containing the query is closer).
* At most ``LIMIT`` results; avatar and name as a stranger sees them
  (``profiles.profile_dict``'s rules).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, true

from ..extensions import db
from ..models import User, UserProfile, UserSettings
from . import accounts, inputs, profile_fields, relations
from .errors import ValidationError

LIMIT = 20
Q_MIN, Q_MAX = 2, 100


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(q: str, *, viewer_id: str | None = None) -> list[dict[str, Any]]:
    """``[{"user_id", "display_name", "avatar_url"}]`` best match first
    (see the module doc). Raises ValidationError for a short or long ``q``."""
    inputs.check_text(q, name="q")
    text = q.strip()
    if not Q_MIN <= len(text) <= Q_MAX:
        raise ValidationError(f"q must be {Q_MIN} to {Q_MAX} characters.")
    key = profile_fields.name_key(text)
    public = func.coalesce(UserSettings.privacy["publicProfile"].as_boolean(), true())
    name_level = func.coalesce(UserProfile.visibility["display_name"].as_string(), "public")
    avatar_level = func.coalesce(UserProfile.visibility["avatar"].as_string(), "public")
    by_name = and_(name_level == "public", UserProfile.name_key.like(f"%{_escape_like(key)}%", escape="\\")
                   if db.engine.dialect.name == "sqlite"
                   else UserProfile.name_key.ilike(f"%{_escape_like(key)}%", escape="\\"))
    by_id = User.user_id.like(f"{_escape_like(text)}%", escape="\\")
    query = (
        select(User.user_id, User.display_name, User.avatar_url, name_level, avatar_level)
        .join(UserProfile, UserProfile.user_id == User.user_id)
        .outerjoin(UserSettings, UserSettings.user_id == User.user_id)
        .where(public, or_(by_name, by_id))
    )
    if viewer_id is not None:
        query = query.where(~relations.blocked_either_way_sql(viewer_id, User.user_id))
    if db.engine.dialect.name == "postgresql":
        query = query.order_by(func.similarity(UserProfile.name_key, key).desc(), User.user_id)
    else:
        query = query.order_by(func.length(UserProfile.name_key), User.user_id)
    rows = db.session.execute(query.limit(LIMIT)).all()
    return [
        {
            "user_id": user_id,
            "display_name": name if name_lvl == "public" else accounts.default_display_name(user_id),
            "avatar_url": avatar if avatar_lvl == "public" else None,
        }
        for user_id, name, avatar, name_lvl, avatar_lvl in rows
    ]
