"""JSON routes: public miner profiles (API.md endpoints 15 and 16).

No authentication needed: what is shown is what the miner made public; a
logged-in caller (bearer or session) also sees the fields the miner shows to
friends when they are friends, and ``friendship``. A private profile, a
missing one and one whose miner blocked the caller answer the same 404
``not_found`` body. Limited
per client IP (``PUBLIC_RATE_LIMIT``) so the directory can't be scraped fast.
"""
from __future__ import annotations

from flask import Blueprint, g

from ..extensions import public_rate_limit
from ..services import profiles
from .openapi import endpoint
from .schemas import PublicProfileOut, PublicStatsOut

bp = Blueprint("api_public", __name__)


@bp.get("/public/miners/<user_id>")
@public_rate_limit
@endpoint(ok={200: PublicProfileOut}, errors=[404], auth="none", tags=["profiles"])
def miner_profile(user_id: str):
    """A miner's public profile

    Endpoint 15: the public profile (``profiles.public_profile``).
    """
    viewer = g.get("user")
    return profiles.public_profile(user_id, viewer.user_id if viewer else None)


@bp.get("/public/miners/<user_id>/stats")
@public_rate_limit
@endpoint(ok={200: PublicStatsOut}, errors=[404], auth="none", tags=["profiles"])
def miner_stats(user_id: str):
    """A miner's public mining stats

    Endpoint 16: the public mining stats (``profiles.public_stats``).
    """
    viewer = g.get("user")
    return profiles.public_stats(user_id, viewer.user_id if viewer else None)
