"""One place that turns errors into responses: JSON ``{"error": {"code",
"message"}}`` on ``/api`` (API.md), a plain HTML page elsewhere. Never a stack
trace, never an HTML page on ``/api``.

Every handler first rolls the database session back: the request failed,
nothing of it may be committed, and a session whose flush failed (e.g. a
value PostgreSQL refused) would make the error page's own queries (the
bell in the layout) raise ``PendingRollbackError`` inside the handler, which
escapes Flask and makes the server answer its raw 500 page. The HTML page
falls back to a bare one if rendering still fails."""
from __future__ import annotations

import logging
import re

from flask import Flask, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .auth import is_api_request
from .extensions import db
from .services.errors import DomainError, Unavailable

log = logging.getLogger(__name__)

_CODES = {400: "validation_error", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 429: "rate_limited"}


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def error_response(status: int, code: str, message: str, details=None, headers=None):
    """A JSON error for API callers, an HTML page (or htmx fragment) otherwise."""
    if is_api_request() or request.accept_mimetypes.best == "application/json":
        body = {"error": {"code": code, "message": message}}
        if details is not None:
            body["error"]["details"] = details
        return body, status, headers or {}
    template = "errors/_inline.html" if request.headers.get("HX-Request") else "errors/error.html"
    try:
        page = render_template(template, status=status, code=code, message=message,
                               retry_after=(headers or {}).get("Retry-After"))
    except Exception:  # noqa: BLE001 - the error page itself failed: answer a bare one, never raise
        log.exception("rendering the %s error page failed", status)
        page = f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{escape(message)}</p>"
    return page, status, headers or {}


def _reset_session() -> None:
    """Roll back what the failed request did (see the module doc)."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - e.g. the connection is gone; the teardown discards the session
        log.warning("rollback after a failed request failed", exc_info=True)


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        _reset_session()
        return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)

    @app.errorhandler(PoolTimeout)
    def _busy(exc: PoolTimeout):
        # Every pooled connection stayed busy for the pool's timeout: an
        # overload, not a fault of this request (which wrote nothing).
        app.logger.warning("no database connection came free on %s %s", request.method, request.path)
        return _domain(Unavailable())

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        _reset_session()
        return error_response(403, "csrf_failed", "The CSRF token is missing or invalid; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        _reset_session()
        status = exc.code or 500
        code = _CODES.get(status) or _snake(exc.name)
        headers = {k: v for k, v in exc.get_headers() if k.lower() in {"retry-after", "allow"}}
        message = exc.description or exc.name
        if status == 404:
            message = "Not found."
        elif status == 413:
            view = app.view_functions.get(request.endpoint or "")
            upload_limit = getattr(view, "max_body_config", None)  # ``security.allow_large_body``
            if upload_limit:
                mib = int(app.config[upload_limit]) // (1024 * 1024)
                message = f"The file is larger than {mib} MiB; choose a smaller one."
                back = getattr(view, "too_large_back", None)
                if back and not is_api_request():  # a page's upload form: back to it, the reason shown there
                    flash(message)
                    return redirect(url_for(back))
            else:
                limit = app.config.get("MAX_CONTENT_LENGTH") or 0
                message = f"The request body is too large (at most {limit // 1024} KiB)."
        return error_response(status, code, message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        _reset_session()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")
