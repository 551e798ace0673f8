"""Pages: public miner profiles (``/miners/<user_id>``). The number filters
they use are registered by ``webapp.formatting.init_template_filters``."""
from __future__ import annotations

from flask import Blueprint, render_template, url_for

from ..auth import caller_or_none
from ..extensions import public_rate_limit
from ..services import onboarding, profiles
from .charts import best_view, hashrate_view, page_range

bp = Blueprint("pages_miners", __name__)


@bp.get("/miners/<user_id>")
@public_rate_limit
def profile(user_id: str):
    """The profile page; a private or missing profile is the plain 404 page
    (the owner always sees their own). Limited per client IP with the JSON
    twin's budget (``PUBLIC_RATE_LIMIT``); past it, the friendly 429 page."""
    viewer = caller_or_none()  # the caller as every route reads it (auth.resolve_caller)
    viewer_id = viewer.user_id if viewer else None
    context = profiles.profile_page(user_id, viewer_id=viewer_id, rng=page_range())
    context["hashrate_view"] = hashrate_view(context.pop("hashrate_chart"))
    context["best_view"] = best_view(context.pop("best_chart"))
    context["hashrate_src"] = url_for("api_public.miner_hashrate", user_id=user_id)
    context["best_src"] = url_for("api_public.miner_best_difficulty", user_id=user_id)
    if context["is_owner"] and viewer is not None:
        card = onboarding.onboarding(viewer)
        context["onboarding"] = None if card.complete else card
    return render_template("miners/profile.html", **context)
