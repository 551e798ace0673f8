"""JSON routes under ``/api`` (API.md). One blueprint per area; each route
parses input, calls a service, and serialises the result."""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import accounts, activity, conversations, coops, internal, moderation, notifications, openapi, public

    for module in (accounts, coops, conversations, moderation, notifications, activity, public, internal, openapi):
        app.register_blueprint(module.bp, url_prefix="/api")
