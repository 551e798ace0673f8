"""Pages: the home page. A logged-in miner lands on their own profile (their
stats, workers and personal bests); anyone else on the log-in page."""
from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask_login import current_user

bp = Blueprint("pages_home", __name__)


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("pages_auth.login"))
    return redirect(url_for("pages_miners.profile", user_id=current_user.user_id))
