"""One place that turns errors into responses: JSON ``{"error": {"code",
"message"}}`` on ``/api`` (API.md), a plain HTML page elsewhere. Never a stack
trace, never an HTML page on ``/api``."""
from __future__ import annotations

import re

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .auth import is_api_request
from .services.errors import DomainError

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
    return render_template(template, status=status, code=code, message=message), status, headers or {}


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(403, "csrf_failed", "The CSRF token is missing or invalid; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code = _CODES.get(status) or _snake(exc.name)
        headers = {k: v for k, v in exc.get_headers() if k.lower() in {"retry-after", "allow"}}
        message = exc.description or exc.name
        if status == 404:
            message = "Not found."
        return error_response(status, code, message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")
