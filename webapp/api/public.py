"""JSON routes: public miner profiles (API.md endpoints 15 and 16).

No authentication: what is shown is what the miner made public. A private
profile and a missing one answer the same 404 ``not_found`` body. Limited
per client IP (``PUBLIC_RATE_LIMIT``) so the directory can't be scraped fast.
"""
from __future__ import annotations

from flask import Blueprint

from ..extensions import public_rate_limit
from ..services import profiles
from .openapi import endpoint
from .schemas import PublicProfileOut, PublicStatsOut

bp = Blueprint("api_public", __name__)


@bp.get("/public/miners/<user_id>")
@public_rate_limit
@endpoint(ok={200: PublicProfileOut}, errors=[404], auth="none", tags=["profiles"], conditional=True)
def miner_profile(user_id: str):
    """A miner's public profile

    Endpoint 15: the public profile (``profiles.public_profile``).
    """
    return profiles.public_profile(user_id)


@bp.get("/public/miners/<user_id>/stats")
@public_rate_limit
@endpoint(ok={200: PublicStatsOut}, errors=[404], auth="none", tags=["profiles"], conditional=True)
def miner_stats(user_id: str):
    """A miner's public mining stats

    Endpoint 16: the public mining stats (``profiles.public_stats``).
    """
    return profiles.public_stats(user_id)
