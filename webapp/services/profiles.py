"""Public miner profiles and stats (API.md endpoints 15 and 16, the page
``/miners/<user_id>``), gated by the miner's privacy settings.

* A missing user and a user whose ``publicProfile`` is false raise the same
  ``NotFound()`` (same status, same body): a private profile cannot be told
  apart from a missing one.
* ``country_code`` only when ``showCountryFlag``; ``leaderboard_rank`` only
  when ``showOnLeaderboard``. Absent keys, never null.
* ``leaderboard_rank``: standard competition ranking ("1224") by all-time
  ``best_difficulty`` among registered miners whose ``showOnLeaderboard`` is
  true: 1 + the number of such miners with a strictly higher best. Ties share
  a rank; a miner with no accepted share yet has best 0.
* Stats follow API.md: ``total_shares`` = accepted shares, ``best_difficulty``
  = highest ``sdiff`` of an accepted share, ``hashrate_1h`` (H/s) = sum of the
  latest ``hashrate_1h`` sample of each online worker (connected and sampled
  within ``WORKER_OFFLINE_AFTER``), ``workers_online`` = those workers.
* A stored hashrate or best difficulty outside its physical range
  (``services/bounds.py``; a row from before the bounds, or written by
  hand) reads as 0, so it never reaches a sum, a rank or a JSON answer.
"""
from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, case, func, select, true

from ..extensions import db
from ..formatting import flag_emoji  # noqa: F401 - its old home
from ..models import MinerStats, User, UserSettings, iso, utcnow
from . import accounts, bounds, hashrate, mining, preferences
from .errors import NotFound


def _privacy(user_id: str) -> dict[str, bool]:
    row = db.session.get(UserSettings, user_id)
    return preferences.merged_privacy(row.privacy if row else None)


def visible_user(user_id: str, *, viewer_id: str | None = None) -> tuple[User, dict[str, bool]]:
    """The user and their privacy settings, if ``viewer_id`` may see the
    profile: everyone when it is public, the owner always. Raises NotFound
    (identical for missing and private, and for an id that cannot exist:
    ``accounts.is_user_id`` is checked before any query)."""
    user = db.session.get(User, user_id) if accounts.is_user_id(user_id) else None
    if user is None:
        raise NotFound()
    privacy = _privacy(user_id)
    if not privacy["publicProfile"] and viewer_id != user_id:
        raise NotFound()
    return user, privacy


def _on_leaderboard():
    """SQL: the user's showOnLeaderboard (default true when unset)."""
    return func.coalesce(UserSettings.privacy["showOnLeaderboard"].as_boolean(), true())


def leaderboard_rank(user_id: str) -> int:
    """1 + the number of miners shown on the leaderboard with a strictly
    higher all-time best difficulty (ties share a rank)."""
    best = bounds.usable_sql(MinerStats.best_difficulty, bounds.MAX_DIFFICULTY)  # a bad row ranks as 0
    mine = db.session.scalar(select(best).where(MinerStats.user_id == user_id)) or 0.0
    higher = db.session.scalar(
        select(func.count())
        .select_from(User)
        .join(MinerStats, MinerStats.user_id == User.user_id)
        .outerjoin(UserSettings, UserSettings.user_id == User.user_id)
        .where(best > mine, _on_leaderboard())
    )
    return int(higher or 0) + 1


def profile_dict(user: User, privacy: dict[str, bool]) -> dict[str, Any]:
    """The public profile object (API.md) for a user already checked visible."""
    body: dict[str, Any] = {
        "user_id": user.user_id,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "joined_at": iso(user.created_at),
    }
    if privacy["showCountryFlag"]:
        body["country_code"] = user.country_code
    if privacy["showOnLeaderboard"]:
        body["leaderboard_rank"] = leaderboard_rank(user.user_id)
    return body


def _rank_sql(user_id: Any):
    """SQL for ``leaderboard_rank(user_id)`` as a scalar subquery (Core, on
    aliases so that it can sit in a statement about the user)."""
    users, stats, settings = User.__table__.alias(), MinerStats.__table__.alias(), UserSettings.__table__.alias()
    mine_stats = MinerStats.__table__.alias()
    mine = (select(bounds.usable_sql(mine_stats.c.best_difficulty, bounds.MAX_DIFFICULTY))
            .where(mine_stats.c.user_id == user_id).scalar_subquery())
    best = bounds.usable_sql(stats.c.best_difficulty, bounds.MAX_DIFFICULTY)
    higher = (
        select(func.count())
        .select_from(users.join(stats, stats.c.user_id == users.c.user_id)
                     .outerjoin(settings, settings.c.user_id == users.c.user_id))
        .where(best > func.coalesce(mine, 0.0),
               func.coalesce(settings.c.privacy["showOnLeaderboard"].as_boolean(), true()))
        .scalar_subquery()
    )
    return higher + 1


@functools.cache
def _public_profile_statement() -> Any:
    """The statement of ``public_profile``, built once (building it, aliases
    and all, cost more than running it); the user id is its ``uid`` parameter."""
    uid = bindparam("uid", type_=String)
    users, settings = User.__table__.c, UserSettings.__table__.c
    shown = func.coalesce(settings.privacy["showOnLeaderboard"].as_boolean(), true())
    return (
        select(users.user_id, users.display_name, users.avatar_url, users.created_at, users.country_code,
               settings.privacy, case((shown, _rank_sql(uid)), else_=None))
        .select_from(User.__table__.outerjoin(UserSettings.__table__, settings.user_id == users.user_id))
        .where(users.user_id == uid)
    )


def public_profile(user_id: str) -> dict[str, Any]:
    """Endpoint 15: ``{"user_id", "display_name", "avatar_url", "joined_at"}``
    plus ``country_code`` / ``leaderboard_rank`` when the miner shows them.
    Raises NotFound when the user is missing or private.

    One Core statement (the user, their privacy settings and, when shown,
    their rank: ``visible_user`` + ``profile_dict`` in one round trip)."""
    if not accounts.is_user_id(user_id):
        raise NotFound()
    row = db.session.connection().execute(_public_profile_statement(), {"uid": user_id}).first()
    if row is None:
        raise NotFound()
    privacy = preferences.merged_privacy(row[5])
    if not privacy["publicProfile"]:
        raise NotFound()
    body: dict[str, Any] = {"user_id": row[0], "display_name": row[1], "avatar_url": row[2], "joined_at": iso(row[3])}
    if privacy["showCountryFlag"]:
        body["country_code"] = row[4]
    if privacy["showOnLeaderboard"]:
        body["leaderboard_rank"] = int(row[6]) if row[6] is not None else leaderboard_rank(row[0])
    return body


def stats_dict(user_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The public stats object (API.md) of any miner id, zeros when unknown."""
    row = db.session.get(MinerStats, user_id)
    rate, online = hashrate.hashrate_by_user([user_id], now)[user_id]
    return {
        "user_id": user_id,
        "total_shares": int(row.total_shares) if row else 0,
        "best_difficulty": bounds.usable(row.best_difficulty, bounds.MAX_DIFFICULTY) if row else 0.0,
        "blocks_found": int(row.blocks_found) if row else 0,
        "hashrate_1h": rate,
        "workers_online": online,
        "last_share_at": iso(row.last_share_at) if row else None,
    }


def public_stats(user_id: str) -> dict[str, Any]:
    """Endpoint 16: ``{"user_id", "total_shares", "best_difficulty",
    "blocks_found", "hashrate_1h", "workers_online", "last_share_at"}``.
    Raises NotFound when the user is missing or private."""
    visible_user(user_id)
    return stats_dict(user_id)


def profile_page(user_id: str, *, viewer_id: str | None) -> dict[str, Any]:
    """Everything the profile page shows. The owner sees their own profile
    even when it is private (``is_private`` tells the template to say so);
    anyone else gets NotFound for a private or missing one.

    Returns ``{"user", "profile", "stats", "workers": [{"worker", "name",
    "online", "hashrate_1h", "last_seen_at"}], "personal_bests", "best_history":
    [(at, difficulty)] oldest first, "is_owner", "is_private"}``.
    """
    user, privacy = visible_user(user_id, viewer_id=viewer_id)
    now = utcnow()
    cutoff = hashrate.online_cutoff(now)
    workers = [
        {
            "worker": w.worker,
            "name": mining.worker_label(w.worker),
            "online": bool(w.is_online and w.last_sample_at is not None and w.last_sample_at >= cutoff),
            "hashrate_1h": bounds.usable(w.hashrate_1h, bounds.MAX_HASHRATE),
            "last_seen_at": w.last_seen_at,
            "useragent": w.useragent,
        }
        for w in mining.workers_of(user_id)
    ]
    workers.sort(key=lambda w: (not w["online"], w["name"]))
    return {
        "user": user,
        "profile": profile_dict(user, privacy),
        "stats": stats_dict(user_id, now),
        "workers": workers,
        "personal_bests": mining.recent_personal_bests(user_id),
        "best_history": mining.personal_best_history(user_id),
        "is_owner": viewer_id == user_id,
        "is_private": not privacy["publicProfile"],
    }
