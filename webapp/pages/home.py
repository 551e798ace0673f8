"""Pages: the home page — the logged-in miner's own overview."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

bp = Blueprint("pages_home", __name__)


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("pages_auth.login"))
    return redirect(url_for("pages_miners.profile", user_id=current_user.user_id))
