"""The production server setup (gunicorn.conf.py: gevent workers, monkey-
patched) serves /ws: auth, pushes from this process, cross-tab sync and the
socket limit across two worker processes."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import websocket

from webapp.services import notifications

from .builders import bearer
from .wshelpers import Client, Gunicorn

pytestmark = pytest.mark.slow  # the production server, two gevent worker processes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gunicorn(migrated):
    server = Gunicorn(migrated, WS_PING_INTERVAL="1").wait_ready()
    # The master listens before its workers have imported the app: on a busy
    # machine the first requests wait for that, longer than a test's timeout.
    for _ in range(4):
        requests.get(f"http://127.0.0.1:{server.port}/api/openapi.json", timeout=120)
    yield server.ws_url()
    server.stop()


def test_gevent_workers_serve_sockets(gunicorn, app, make_user):
    user = make_user()
    token = bearer(user)["Authorization"].split(" ", 1)[1]
    assert Client(f"{gunicorn}?token=bad", timeout=10).close_code(10) == 4001
    # Several sockets of one user, spread over both worker processes.
    tabs = []
    for _ in range(5):
        tab = Client(f"{gunicorn}?token={token}", timeout=10)
        assert tab.recv_json(10) == {"type": "unread_count", "count": 0}
        tabs.append(tab)
        time.sleep(0.01)
    row = notifications.notify(user.user_id, "mining", "block_found", "Block under gevent")
    for tab in tabs:
        assert tab.recv_json(10)["data"]["id"] == row.id
        assert tab.recv_json(10) == {"type": "unread_count", "count": 1}
    tabs[1].send_json({"type": "mark_read", "id": row.id})
    for tab in tabs:
        assert tab.recv_until(lambda m: m["type"] == "unread_count", 10) == {"type": "unread_count", "count": 0}
    sixth = Client(f"{gunicorn}?token={token}", timeout=10)
    sixth.recv_json(10)
    assert tabs[0].close_code(10) == 4002
    # Protocol-level pings every WS_PING_INTERVAL (1 s here): a client that
    # answers them stays open; one that does not is closed (1008).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            tabs[2].recv_text(0.2)  # answers the server's pings while reading
        except websocket.WebSocketTimeoutException:
            pass
    tabs[2].send_json({"type": "ping"})
    assert tabs[2].recv_json(10) == {"type": "pong"}
    assert tabs[3].close_code(10) == 1008
    for tab in tabs[1:] + [sixth]:
        tab.close()
