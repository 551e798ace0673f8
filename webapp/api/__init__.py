"""JSON routes under ``/api`` (API.md). One blueprint per area; each route
parses input, calls a service, and serialises the result."""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import (
        accounts,
        activity,
        conversations,
        coops,
        friends,
        internal,
        me,
        moderation,
        notifications,
        openapi,
        profiles,
        public,
        push,
    )

    for module in (accounts, coops, moderation, conversations, notifications, activity, public, friends, profiles,
                   me, internal, push, openapi):
        app.register_blueprint(module.bp, url_prefix="/api")
