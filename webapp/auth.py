"""Who is calling: a bearer token or the page session cookie (Flask-Login).

``resolve_caller`` runs before every request and sets ``g.user`` and
``g.auth_mode`` (``"bearer"``, ``"session"`` or None). A state-changing
request authenticated by cookie must carry the CSRF token (form field or
``X-CSRFToken`` header); bearer requests and anonymous JSON requests are not
CSRF-prone and skip the check (API.md Authentication).
"""
from __future__ import annotations

import hmac
from functools import wraps
from typing import Callable

from flask import current_app, g, request
from flask_login import current_user

from .extensions import csrf, db, login_manager
from .models import User
from .services import accounts
from .services.errors import Forbidden, Unauthorized

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, user_id)


def csrf_exempt(view: Callable) -> Callable:
    """Mark a view whose state change is authorised otherwise (a signed
    unsubscribe link, a service token)."""
    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view


def resolve_caller() -> None:
    """before_request: authenticate, then enforce CSRF for cookie requests."""
    g.user, g.auth_mode, g.auth_error = None, None, None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Use 'Authorization: Bearer <token>'.")
            g.user, g.auth_mode = accounts.user_from_token(token.strip()), "bearer"
        except Unauthorized as exc:
            g.auth_error = exc
    elif current_user.is_authenticated:
        g.user, g.auth_mode = current_user._get_current_object(), "session"

    if request.method in SAFE_METHODS or g.auth_mode == "bearer":
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "csrf_exempt", False):
        return
    if is_api_request() and g.auth_mode is None:
        return  # anonymous JSON (register, token): no ambient credentials to abuse
    csrf.protect()


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def api_caller() -> User:
    """The authenticated caller of a JSON route. Raises Unauthorized (401)."""
    if g.get("auth_error") is not None:
        raise g.auth_error
    if g.get("user") is None:
        raise Unauthorized()
    return g.user


def api_auth_required(view: Callable) -> Callable:
    """Decorator for JSON routes: 401 ``unauthorized`` without a caller."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        api_caller()
        return view(*args, **kwargs)

    return wrapper


def admin_required(view: Callable) -> Callable:
    """Decorator: the caller must be a platform admin (403 otherwise)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        user = g.get("user")
        if user is None:
            if is_api_request():
                raise Unauthorized()
            return login_manager.unauthorized()
        if not user.is_admin:
            raise Forbidden("Only platform admins can do that.")
        return view(*args, **kwargs)

    return wrapper


def require_service_token() -> None:
    """The platform's other services authenticate with ``Authorization:
    Bearer <SERVICE_TOKEN>``, compared in constant time; an empty
    SERVICE_TOKEN refuses everything. Raises Unauthorized (401)."""
    expected = current_app.config.get("SERVICE_TOKEN") or ""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("A valid service token is required.")
