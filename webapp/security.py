"""Security headers and the Content Security Policy for every response.

The pages run under a strict CSP: scripts and styles only from our own
origin (htmx is vendored and configured not to inject inline styles; no
inline scripts or style attributes), sockets only to our own origin, no
framing. ``Strict-Transport-Security`` is sent when cookies are marked
Secure, i.e. when the deployment is behind HTTPS.
"""
from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


# Sent on every response unless the view set its own (name, value).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
# When cookies are marked Secure (the deployment is behind HTTPS).
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


# Room for the multipart envelope around an upload's file (boundaries, headers, other fields).
UPLOAD_OVERHEAD = 64 * 1024


def allow_large_body(config_key: str, *, back: str | None = None):
    """Decorator for an upload route: its body may be the config value
    ``config_key`` (bytes) plus ``UPLOAD_OVERHEAD`` instead of
    ``MAX_CONTENT_LENGTH``; every other route keeps the small limit. A body
    over it is a 413 that names the file limit (``errors``); ``back``: the
    endpoint of the page whose form uploads, where a page's 413 redirects
    with that reason flashed instead of an error page."""

    def decorator(view):
        view.max_body_config = config_key
        view.too_large_back = back
        return view

    return decorator


def init_app(app: Flask) -> None:
    """Add the headers; trust one proxy hop's X-Forwarded-* when PROXY_FIX is set."""
    if app.config.get("PROXY_FIX"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    @app.before_request
    def _refuse_large_bodies() -> None:
        # Werkzeug only enforces MAX_CONTENT_LENGTH when a view reads the
        # body; refuse early so every route answers 413 alike.
        limit = app.config.get("MAX_CONTENT_LENGTH")
        view = app.view_functions.get(request.endpoint or "")
        larger = getattr(view, "max_body_config", None)
        if larger:  # an upload route (``allow_large_body``): its own limit, for Werkzeug's parser too
            limit = int(app.config[larger]) + UPLOAD_OVERHEAD
            request.max_content_length = limit
        if limit and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge()

    @app.after_request
    def _headers(response: Response) -> Response:
        # One pass over the headers the view set (a view may set its own
        # policy), then add the missing ones: ``Headers.setdefault`` would
        # look each name up in turn, raising and catching a KeyError for each.
        present = {key.lower() for key, _ in response.headers}
        headers = SECURITY_HEADERS + (HSTS,) if app.config.get("SESSION_COOKIE_SECURE") else SECURITY_HEADERS
        for name, value in headers:
            if name.lower() not in present:
                response.headers.add(name, value)
        return response
