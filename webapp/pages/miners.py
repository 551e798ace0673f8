"""Pages: public miner profiles (``/miners/<user_id>``). The number filters
they use are registered by ``webapp.formatting.init_template_filters``."""
from __future__ import annotations

from flask import Blueprint, g, render_template

from ..extensions import public_rate_limit
from ..models import utcnow
from ..services import profiles
from .charts import line_chart

bp = Blueprint("pages_miners", __name__)


@bp.get("/miners/<user_id>")
@public_rate_limit
def profile(user_id: str):
    """The profile page; a private or missing profile is the plain 404 page
    (the owner always sees their own). Limited per client IP with the JSON
    twin's budget (``PUBLIC_RATE_LIMIT``); past it, the friendly 429 page."""
    viewer = g.get("user")  # the caller as every route reads it (auth.resolve_caller)
    viewer_id = viewer.user_id if viewer else None
    context = profiles.profile_page(user_id, viewer_id=viewer_id)
    history = context["best_history"]
    # Best difficulty grows by orders of magnitude: a log scale, held as steps.
    context["best_chart"] = history and line_chart(
        history, start=history[0][0], end=utcnow(), log_scale=True, step=True
    )
    return render_template("miners/profile.html", **context)
