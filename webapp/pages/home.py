"""Pages: the home page. A logged-in miner lands on their own profile (their
stats, workers and personal bests); anyone else on the log-in page."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from ..services import demo_live

bp = Blueprint("pages_home", __name__)


@bp.app_template_global("demo_progress")
def demo_progress() -> demo_live.Progress:
    """How far the demo day has flowed in (``flask demo --serve``); the
    banner (``_demo_progress.html``) shows while ``loading``."""
    return demo_live.PROGRESS


@bp.get("/demo/progress")
def progress():
    """The demo-day banner alone, polled by itself until the day is in (then empty)."""
    return render_template("_demo_progress.html")


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("pages_auth.login"))
    return redirect(url_for("pages_miners.profile", user_id=current_user.user_id))
