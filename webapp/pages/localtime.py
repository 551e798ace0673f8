"""Local time on the pages: the viewer's zone for the ``localtime`` filter
(``formatting.time_tag``) and what the base template tells static/js/time.js.

A signed-in viewer's zone is their setting (``notifications.timezone``,
shared with the notification engine's quiet hours; UTC until chosen). A
logged-out viewer gets UTC from the server and the browser rewrites each
``<time>`` in its own zone. While a signed-in user's zone is UTC (the
default) and the browser's is another, the pages offer the browser's (a
banner saved through ``PATCH /api/settings``; "Keep UTC" dismisses it in
that browser).
"""
from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

from flask import Flask, g
from flask_login import current_user

from ..services import preferences


def _viewer_id() -> str | None:
    # The socket's user (its pushes render notification partials) or the page's.
    user_id = g.get("ws_user_id")
    if user_id:
        return user_id
    user = g.get("user")
    if user is not None:
        return user.user_id
    return current_user.user_id if current_user and current_user.is_authenticated else None


def viewer_zone() -> tzinfo:
    """The signed-in viewer's zone (UTC until chosen), UTC for anyone else."""
    user_id = _viewer_id()
    return preferences.user_timezone(user_id) if user_id else UTC


def viewer_time() -> dict[str, Any]:
    """For the base template: ``{"zone": IANA name or None (logged out:
    the browser's zone applies), "offer": whether to offer the browser's
    zone (a signed-in user still on UTC)}``."""
    user_id = _viewer_id()
    if not user_id:
        return {"zone": None, "offer": False}
    zone = preferences.user_notifications(user_id)["timezone"]
    return {"zone": zone, "offer": zone == "UTC"}


def init_app(app: Flask) -> None:
    """Register the zone resolver of ``formatting.viewer_zone`` and the
    ``viewer_time`` template global."""
    app.extensions["viewer_zone"] = viewer_zone
    app.jinja_env.globals["viewer_time"] = viewer_time
