"""JSON routes: public miner profiles (API.md endpoints 15 and 16).

No authentication: what is shown is what the miner made public. A private
profile and a missing one answer the same 404 ``not_found`` body.
"""
from __future__ import annotations

from flask import Blueprint

from ..services import profiles

bp = Blueprint("api_public", __name__)


@bp.get("/public/miners/<user_id>")
def miner_profile(user_id: str):
    """Endpoint 15: the public profile (``profiles.public_profile``)."""
    return profiles.public_profile(user_id)


@bp.get("/public/miners/<user_id>/stats")
def miner_stats(user_id: str):
    """Endpoint 16: the public mining stats (``profiles.public_stats``)."""
    return profiles.public_stats(user_id)
