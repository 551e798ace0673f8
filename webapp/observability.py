"""Request ids, structured logs and the health check.

Every request gets an id (the caller's ``X-Request-ID`` when it is a sane
token, else a new one), echoed in the response and attached to every log
record written while serving it. ``LOG_FORMAT=json`` writes one JSON object
per line (production); ``text`` is for people (the embedded default).
"""
from __future__ import annotations

import logging
import re
import time
import uuid

import orjson
from flask import Blueprint, Flask, g, has_request_context, request
from sqlalchemy import text

from .extensions import db, get_redis, limiter

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
bp = Blueprint("health", __name__)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id (+ exc).

    Encoded by orjson (values it cannot encode are written as ``str``); the
    timestamp, second-resolution, is formatted once per second."""

    _second: tuple[int, str] = (-1, "")

    def _ts(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(second)))
        return self._second[1]

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self._ts(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key in ("method", "path", "status", "duration_ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(fmt: str) -> None:
    """Root logging: JSON lines or text, both carrying the request id."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """200 when PostgreSQL and Redis answer, else 503 naming the failing part."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't raise
        checks["database"] = f"error: {exc.__class__.__name__}"
    finally:
        db.session.remove()
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return {"status": "ok" if healthy else "unavailable", **checks}, 200 if healthy else 503


def init_app(app: Flask) -> None:
    """Request ids, access log lines, and /healthz."""
    access_log = logging.getLogger("webapp.access")

    @app.before_request
    def _start() -> None:
        ctx = g._get_current_object()
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        ctx.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        ctx.request_started = time.perf_counter()

    @app.after_request
    def _finish(response):
        ctx = g._get_current_object()
        response.headers["X-Request-ID"] = ctx.get("request_id", "")
        # isEnabledFor first: a disabled access log builds no record at all.
        if app.config.get("ACCESS_LOG") and access_log.isEnabledFor(logging.INFO):
            req, status = request._get_current_object(), response.status_code  # type: ignore[attr-defined]
            method, path = req.method, req.path
            started = ctx.get("request_started")
            duration = round((time.perf_counter() - started) * 1000, 2) if started is not None else 0.0
            access_log.info("%s %s %s", method, path, status,
                            extra={"method": method, "path": path, "status": status, "duration_ms": duration})
        return response

    app.register_blueprint(bp)
