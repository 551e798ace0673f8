"""Split a cProfile of JSON requests by layer (``benchmarks/api.py --profile``).

Each layer is the cumulative time of the functions that enter it, matched
by (file suffix, function name). Indented layers are part of the layer
above them; the others do not nest in one another, except where the
"(part of …)" note says so. Time is per request, in ms of the profiled run
(the profiler itself roughly doubles it) and as a share of the whole
request (``Flask.wsgi_app``).
"""
from __future__ import annotations

import pstats

# (label, [(file suffix, function name)], indent)
LAYERS: list[tuple[str, list[tuple[str, str]], int]] = [
    ("whole request (Flask.wsgi_app)", [("flask/app.py", "wsgi_app")], 0),
    ("request id (before_request)", [("webapp/observability.py", "_start")], 1),
    ("input gate (control characters)", [("webapp/input_gate.py", "refuse_control_characters")], 1),
    ("auth: resolve_caller (bearer token or Flask-Login)", [("webapp/auth.py", "resolve_caller")], 1),
    ("token signature and age (itsdangerous)", [("itsdangerous/timed.py", "loads")], 2),
    ("revocation check: user row (ORM load / Redis epoch)",
     [("webapp/services/accounts.py", "_token_user"), ("webapp/services/accounts.py", "_token_ok")], 2),
    ("Flask-Login current_user", [("flask_login/utils.py", "_get_user")], 2),
    ("CSRF check", [("flask_wtf/csrf.py", "protect")], 2),
    ("Flask-Limiter check (before_request)", [("flask_limiter/_extension.py", "_check_request_limit")], 1),
    ("SpecTree: request/response validation + view", [("spectree/plugins/flask_plugin.py", "validate")], 1),
    ("view function (service calls, SQL)", [
        ("webapp/api/notifications.py", "unread_count"), ("webapp/api/notifications.py", "list_notifications"),
        ("webapp/api/public.py", "miner_profile")], 2),
    ("response model: pydantic validate + dump", [
        ("spectree/plugins/flask_plugin.py", "validate_response")], 2),
    ("after_request: rate-limit headers", [("flask_limiter/_extension.py", "__inject_headers")], 1),
    ("after_request: security headers", [("webapp/security.py", "_headers")], 1),
    ("after_request: access log line (request id, JSON)", [("webapp/observability.py", "_finish")], 1),
    ("JSON log formatting", [("webapp/observability.py", "format")], 2),
    ("teardown: session.remove (ROLLBACK, pool return)", [("flask_sqlalchemy/extension.py", "_teardown_session")], 1),
    ("across layers: pool checkout pre-ping (SELECT 1)", [("sqlalchemy/engine/default.py", "_do_ping_w_event")], 0),
    ("across layers: psycopg execute (waiting on PostgreSQL)", [("psycopg/cursor.py", "execute")], 0),
    ("across layers: ORM Session execute (build, cache key, compile, run, load objects)",
     [("sqlalchemy/orm/session.py", "_execute_internal")], 0),
    ("across layers: Core statement execute (part of the ORM's when it runs one)",
     [("sqlalchemy/engine/base.py", "_execute_context")], 0),
    ("across layers: Redis commands", [("redis/client.py", "execute_command"), ("redis/client.py", "execute")], 0),
    ("across layers: Flask JSON provider", [("flask/json/provider.py", "response"), ("flask/json/provider.py", "dumps"),
                                            ("webapp/jsonprovider.py", "response")], 0),
]


def _cumulative(stats: pstats.Stats, targets: list[tuple[str, str]]) -> float:
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if any(filename.endswith(suffix) and name == func for suffix, func in targets):
            total += ct
    return total


def layer_report(stats: pstats.Stats, requests: int) -> str:
    """A Markdown table: layer, ms per request, share of the whole request."""
    whole = _cumulative(stats, LAYERS[0][1]) or 1e-9
    lines = ["| layer | ms/request (profiled) | share |", "|---|---|---|"]
    for label, targets, indent in LAYERS:
        seconds = _cumulative(stats, targets)
        if seconds == 0 and indent:
            continue
        lines.append(f"| {'&nbsp;' * 4 * indent}{label} | {seconds / requests * 1000:.3f} | {seconds / whole:.0%} |")
    return "\n".join(lines)
