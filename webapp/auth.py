"""Who is calling: a bearer token or the page session cookie (Flask-Login).

``resolve_caller`` runs before every request and sets ``g.auth_mode``
(``"bearer"``, ``"session"`` or None) and ``g.user`` (for a session; for a
bearer token ``caller_or_none`` / ``api_caller`` load it on first use and
``api_caller_id`` never does), plus what was
presented: ``g.auth_token`` (``accounts.TokenClaims``) or
``g.auth_session_secret`` (the server-side session's secret, see
``services.sessions``). A state-changing
request authenticated by cookie must carry the CSRF token (form field or
``X-CSRFToken`` header); bearer requests and anonymous JSON requests are not
CSRF-prone and skip the check (API.md Authentication).
"""
from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from flask import Flask, Request, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import current_user, login_user, logout_user

from .extensions import csrf, login_manager
from .models import User
from .services import accounts, generation_cache, sessions
from .services.errors import Forbidden, Unauthorized

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@login_manager.user_loader
def _load_user(session_secret: str) -> User | None:
    # The session cookie and the remember cookie carry a server-side
    # session's secret (User.get_id), never a bare user id.
    return sessions.load(session_secret)


def _drop_csrf_token() -> None:
    """Forget the CSRF token (session and this request's cache) so the next
    form gets a new one: a token seen before a login or logout is useless after."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    session.pop(field, None)
    g.pop(field, None)


def log_in(user: User, *, remember: bool = False) -> None:
    """Log ``user`` in to the pages: end the session this browser had,
    start from an empty cookie session (new CSRF token; nothing planted
    before login survives), open a server-side session and hand its secret
    to Flask-Login (session cookie, and the remember cookie if asked)."""
    if current_user.is_authenticated and current_user.auth_session_secret:
        accounts.end_session(current_user.auth_session_secret, current_user.user_id)
    remember_cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
    had_remember_cookie = remember_cookie in request.cookies
    session.clear()
    _drop_csrf_token()
    sessions.open_session(user, user_agent=request.user_agent.string)
    login_user(user, remember=remember)
    if not remember and had_remember_cookie:
        session["_remember"] = "clear"  # an older remember cookie goes too
    g.user, g.auth_mode, g.auth_session_secret = user, "session", user.auth_session_secret


def log_out() -> None:
    """End this browser's server-side session (its cookies stop working
    everywhere at once) and clear the cookie session and the remember cookie."""
    if current_user.is_authenticated and current_user.auth_session_secret:
        accounts.end_session(current_user.auth_session_secret, current_user.user_id)
    logout_user()
    remember = session.get("_remember")
    session.clear()
    _drop_csrf_token()
    if remember:
        session["_remember"] = remember  # Flask-Login deletes the remember cookie after the response
    g.user, g.auth_mode, g.auth_session_secret = None, None, None


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened without building its signer
    when the request carries no session cookie (bearer and anonymous JSON
    requests, most of the traffic): the session is then empty either way."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # No Cookie header at all: nothing to parse (most JSON requests).
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)


def csrf_exempt(view: Callable) -> Callable:
    """Mark a view whose state change is authorised otherwise (a signed
    unsubscribe link, a service token)."""
    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view


def resolve_caller() -> None:
    """before_request: authenticate, then enforce CSRF for cookie requests."""
    # The proxies resolved once: this runs on every request.
    req, ctx = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    view = current_app.view_functions.get(req.endpoint or "")
    # What the view reads from a cache rides on the first round trip to Redis.
    generation_cache.piggyback_view_reads(view, req.view_args)
    ctx.user, ctx.auth_mode, ctx.auth_error = None, None, None
    ctx.auth_token, ctx.auth_session_secret = None, None
    header = req.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Use 'Authorization: Bearer <token>'.")
            # The user row is loaded only when a view asks for it (api_caller);
            # api_caller_id answers from the verified token.
            ctx.auth_token = accounts.verify_token(token.strip())
            ctx.auth_mode = "bearer"
        except Unauthorized as exc:
            ctx.auth_error = exc
    elif req.cookies and current_user.is_authenticated:
        # Without any cookie there is no session and no remember cookie:
        # anonymous, without asking Flask-Login (no loader reads anything else).
        ctx.user, ctx.auth_mode = current_user._get_current_object(), "session"
        ctx.auth_session_secret = ctx.user.auth_session_secret

    if req.method in SAFE_METHODS or ctx.auth_mode == "bearer":
        return
    if view is not None and getattr(view, "csrf_exempt", False):
        return
    if is_api_request() and ctx.auth_mode is None:
        return  # anonymous JSON (register, token): no ambient credentials to abuse
    csrf.protect()


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def caller_or_none() -> User | None:
    """The authenticated caller's user row, or None. For a bearer token it
    is loaded on first use (Unauthorized if the user no longer exists)."""
    user = g.get("user")
    if user is None and g.get("auth_mode") == "bearer":
        user = g.user = g.auth_token.user
    return user


def caller_id_or_none() -> str | None:
    """The authenticated caller's user id, or None for an anonymous caller
    or bad credentials (routes open to everyone that show more to some
    viewers). Never loads the user row for a bearer token."""
    if g.get("auth_error") is not None:
        return None
    if g.get("auth_mode") == "bearer":
        return g.auth_token.user_id
    user = g.get("user")
    return user.user_id if user is not None else None


def _require_caller() -> None:
    ctx = g._get_current_object()
    error = ctx.get("auth_error")
    if error is not None:
        raise error
    mode = ctx.get("auth_mode")
    if mode is None or (mode == "session" and ctx.get("user") is None):
        raise Unauthorized()


def api_caller() -> User:
    """The authenticated caller of a JSON route. Raises Unauthorized (401)."""
    _require_caller()
    user = caller_or_none()
    if user is None:
        raise Unauthorized()
    return user


def api_caller_id() -> str:
    """The authenticated caller's user id, without loading the user row for
    a bearer token (its revocation was checked in ``resolve_caller``).
    Raises Unauthorized (401)."""
    _require_caller()
    ctx = g._get_current_object()
    if ctx.auth_mode == "bearer":
        return ctx.auth_token.user_id
    return ctx.user.user_id


def checked_first(check: Callable[[], object]) -> Callable[[Callable], Callable]:
    """Decorator factory: ``check()`` runs before the view and refuses by
    raising (a DomainError: 401, 403 ...); its return value is ignored."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            check()
            return view(*args, **kwargs)

        return wrapper

    return decorator


def api_auth_required(view: Callable) -> Callable:
    """Decorator for JSON routes: 401 ``unauthorized`` without a caller."""
    return checked_first(_require_caller)(view)


def admin_required(view: Callable) -> Callable:
    """Decorator: the caller must be a platform admin (403 otherwise)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        user = caller_or_none()
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
