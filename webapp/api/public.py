"""JSON routes: public miner profiles (API.md endpoints 15 and 16).

No authentication needed: what is shown is what the miner made public; a
logged-in caller (bearer or session) also sees the fields the miner shows to
friends when they are friends, and ``friendship``. A private profile, a
missing one and one whose miner blocked the caller answer the same 404
``not_found`` body. Limited
per client IP (``PUBLIC_RATE_LIMIT``) so the directory can't be scraped fast.
"""
from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import Field

from ..auth import caller_id_or_none
from ..extensions import public_rate_limit
from ..services import hashrate, profile_cache, profiles, rankings
from ..services.generation_cache import prefetch
from .openapi import endpoint
from .schemas import ChartOut, LeaderboardOut, PublicProfileOut, PublicStatsOut
from .validation import ChartQuery, Limit, Query

bp = Blueprint("api_public", __name__)


@bp.get("/public/miners/<user_id>")
@prefetch(profile_cache.CACHE, profile_cache.ANONYMOUS, owner="user_id")
@public_rate_limit
@endpoint(ok={200: PublicProfileOut}, errors=[404], auth="none", tags=["profiles"], conditional=True)
def miner_profile(user_id: str):
    """A miner's public profile

    Endpoint 15: the public profile (``profiles.public_profile``).
    """
    return profiles.public_profile(user_id, caller_id_or_none())


@bp.get("/public/miners/<user_id>/stats")
@public_rate_limit
@endpoint(ok={200: PublicStatsOut}, errors=[404], auth="none", tags=["profiles"], conditional=True)
def miner_stats(user_id: str):
    """A miner's public mining stats

    Endpoint 16: the public mining stats (``profiles.public_stats``).
    """
    return profiles.public_stats(user_id, caller_id_or_none())


def _viewer_id() -> str | None:
    # The owner (session or bearer) sees their own charts while the profile
    # is private, as on the page; bad credentials count as anonymous here.
    return caller_id_or_none()


@bp.get("/public/miners/<user_id>/hashrate")
@public_rate_limit
@endpoint(ok={200: ChartOut}, errors=[404], auth="none", tags=["profiles", "charts"])
def miner_hashrate(user_id: str, query: ChartQuery):
    """A miner's hashrate over time, total and per worker

    ``?range=1h|24h|7d|30d`` (default 24h): series ``total`` and
    ``worker:<name>`` in H/s every ``step`` seconds (docs/API.md "Charts").
    404 as the public profile (private or missing).
    """
    rng = hashrate.chart_range(query.range)
    return profiles.hashrate_chart(user_id, rng, viewer_id=_viewer_id()).to_dict()


@bp.get("/public/miners/<user_id>/best-difficulty")
@public_rate_limit
@endpoint(ok={200: ChartOut}, errors=[404], auth="none", tags=["profiles", "charts"])
def miner_best_difficulty(user_id: str, query: ChartQuery):
    """A miner's all-time best difficulty over time (log scale)

    One point per new record in the range, the standing record at its start
    and the current one at its end (docs/API.md "Charts"). 404 as the public
    profile.
    """
    rng = hashrate.chart_range(query.range)
    return profiles.best_difficulty_chart(user_id, rng, viewer_id=_viewer_id()).to_dict()


class LeaderboardQuery(Query):
    metric: Literal["best_difficulty"] = "best_difficulty"
    period: Literal["all", "week"] = "all"
    cursor: str | None = Field(default=None, max_length=400)
    limit: Limit = 50


@bp.get("/leaderboard")
@public_rate_limit
@endpoint(ok={200: LeaderboardOut}, auth="none", tags=["profiles"])
def leaderboard(query: LeaderboardQuery):
    """Miners shown on the leaderboard by best share difficulty, all time or this week"""
    entries, next_cursor, total = rankings.public_leaderboard(
        metric=query.metric, period=query.period, cursor=query.cursor, limit=query.limit,
        viewer_id=caller_id_or_none())
    return {"metric": query.metric, "period": query.period, "total": total,
            "entries": [e.to_dict() for e in entries], "next_cursor": next_cursor}
