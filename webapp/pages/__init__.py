"""Server-rendered pages (Jinja + htmx). Each area is a blueprint whose views
call the same services as the JSON routes; an htmx request gets the partial
that the full page includes."""
from __future__ import annotations

from flask import Flask

from ..models import MAX_COOP_MEMBERS, REACTION_EMOJI


def register(app: Flask) -> None:
    from . import (
        activity,
        admin,
        auth,
        broadcast,
        charts,
        chat,
        coops,
        discovery,
        friends,
        home,
        localtime,
        media,
        miners,
        moderation,
        notifications,
        settings,
        your_data,
    )

    for module in (home, auth, friends, miners, coops, discovery, chat, moderation, notifications, activity, settings,
                   admin, broadcast, media, your_data):
        app.register_blueprint(module.bp)
    localtime.init_app(app)
    app.jinja_env.globals["chart_range_labels"] = charts.RANGE_LABELS
    app.jinja_env.globals["has_endpoint"] = lambda endpoint: endpoint in app.view_functions
    app.jinja_env.globals["MAX_COOP_MEMBERS"] = MAX_COOP_MEMBERS  # the coop templates' "of 20"
    app.jinja_env.globals["REACTION_EMOJI"] = REACTION_EMOJI  # the chat's reaction picker
    app.jinja_env.globals["nav_items"] = [
        ("pages_home.index", "Home"),
        ("pages_coops.coop", "My coop"),
        ("pages_discovery.directory", "Find coops"),
        ("pages_discovery.leaderboard", "Leaderboard"),
        ("pages_activity.activity", "Activity"),
        ("pages_notifications.notifications", "Notifications"),
    ]
