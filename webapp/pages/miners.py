"""Pages: public miner profiles."""
from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("pages_miners", __name__)


@bp.get("/miners/<user_id>")
def profile(user_id: str):
    abort(404)
