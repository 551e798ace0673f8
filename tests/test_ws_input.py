"""Hostile input on the /ws socket, over real sockets (a threaded server):
its query parameters and its messages follow the same input rules as every
other door (webapp/services/inputs.py) and never end in a server error,
a 1011 close or an ERROR log line."""
from __future__ import annotations

import json
import logging
import sys
from urllib.parse import urlencode

import pytest
import websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .builders import token_of
from .fuzz_strategies import digits, hostile
from .wshelpers import Client, ConnectionClosedBy

PRODUCTION_RECURSION_LIMIT = sys.getrecursionlimit()  # read at import, before Hypothesis runs
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def token(app, make_user):
    return token_of(make_user())


@pytest.fixture
def errors_logged():
    """Records at ERROR or above, from any thread, while the test runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


def _lines(records) -> str:
    return "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in records)


def test_a_message_nested_2000_deep_is_answered_with_a_validation_error_and_logs_no_error(
        live, token, errors_logged, caplog):
    sock = Client(live.ws_url(f"token={token}"))
    assert sock.recv_json() == {"type": "unread_count", "count": 0}
    for deep in ("[" * 2000 + "]" * 2000, '{"type":"ping","x":' + "[" * 1990 + "]" * 1990 + "}"):
        assert len(deep) < 4096  # under WS_MAX_MESSAGE_SIZE: it reaches the handler
        sock.ws.send(deep)
        reply = sock.recv_json()
        assert reply["type"] == "error" and reply["code"] == "validation_error"
        assert "nested too deeply" in reply["message"]
    sock.send_json({"type": "ping"})  # the socket is still there
    assert sock.recv_json() == {"type": "pong"}
    sock.close()
    assert errors_logged == [], _lines(errors_logged)
    assert "RecursionError" not in caplog.text


@FUZZ
@given(params=st.fixed_dictionaries({}, optional={
    "since": st.one_of(digits, hostile), "format": st.one_of(st.sampled_from(["json", "html"]), hostile),
    "list": hostile, "category": hostile, "coop": hostile, "token": hostile}))
def test_socket_parameters_never_make_a_server_error(live, token, errors_logged, params):
    query = urlencode({**{"token": token}, **params})
    try:
        sock = Client(live.ws_url(query), timeout=5)
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code in (400, 403), (params, refused.status_code)
        return
    try:
        first = sock.recv_text()
        assert first.lstrip().startswith("<") or json.loads(first)["type"] in ("unread_count", "notification")
    except ConnectionClosedBy as closed:
        assert closed.code == 4001, params  # a hostile token: unauthorised, not an error
    finally:
        sock.close()
    assert errors_logged == [], _lines(errors_logged)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(hostile, children, max_size=3)),
    max_leaves=8,
)
# Nesting around the limit and around Python's recursion limit, closed or not.
deep = st.tuples(st.sampled_from([64, 65, 999, 1000, 1500, 2000]), st.booleans()).map(
    lambda p: "[" * p[0] + ("]" * p[0] if p[1] else ""))
messages = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["ping", "mark_read", "resume", "nope", "\x00"])},
                          optional={"id": st.one_of(json_values, digits), "since": st.one_of(json_values, digits)}),
    json_values,
)


@FUZZ
@given(message=st.one_of(deep, messages.map(json.dumps), hostile))
@example(message="[" * 999 + "]" * 999)
@example(message="[" * 2000)
@example(message='{"type": "mark_read", "id": "\u00b2"}')
@example(message='{"type": "resume", "since": 1e400}')
def test_socket_messages_never_make_a_server_error(live, token, errors_logged, message):
    # Hypothesis raises the (process-wide) recursion limit while it runs;
    # the server thread must meet the production one.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(PRODUCTION_RECURSION_LIMIT)
    sock = Client(live.ws_url(f"token={token}"))
    try:
        assert sock.recv_json()["type"] == "unread_count"
        try:
            sock.ws.send(message)
        except websocket.WebSocketException:
            pass  # too large to send as one frame: the server closes 1009
        sock.send_json({"type": "ping"})
        reply = sock.recv_until(lambda m: m["type"] in ("pong", "error"))
        while reply["type"] != "pong":  # errors for the hostile message come first
            assert reply["code"] == "validation_error" or reply["code"] == "not_found", reply
            reply = sock.recv_json()
    except ConnectionClosedBy as closed:
        assert closed.code == 1009, (message[:80], closed.code)  # over WS_MAX_MESSAGE_SIZE only
    finally:
        sock.close()
        sys.setrecursionlimit(limit)
    assert errors_logged == [], _lines(errors_logged)
