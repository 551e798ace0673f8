"""Request ids, structured logs and /healthz."""
from __future__ import annotations

import json
import logging

from webapp.observability import JsonFormatter, RequestIdFilter


def test_healthz_reports_database_and_redis(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_is_503_when_redis_is_unreachable(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable" and body["database"] == "ok" and body["redis"].startswith("error")


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc12345-req"})
    assert given.headers["X-Request-ID"] == "abc12345-req"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["X-Request-ID"]) == 32


def test_json_log_lines_carry_the_request_id(app):
    record = logging.LogRecord("webapp", logging.INFO, __file__, 1, "hello %s", ("miner",), None)
    with app.test_request_context("/"):
        from flask import g

        g.request_id = "rid-123456"
        RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello miner" and line["request_id"] == "rid-123456" and line["level"] == "INFO"
