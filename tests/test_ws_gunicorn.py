"""The production server setup (gunicorn.conf.py: gevent workers, monkey-
patched) serves /ws: auth, pushes from this process, cross-tab sync and the
socket limit across two worker processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websocket

from webapp.services import notifications

from .conftest import bearer, free_port
from .wshelpers import Client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gunicorn(migrated):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=migrated["database_url"], REDIS_URL=migrated["redis_url"],
               REDIS_NAMESPACE=migrated["namespace"], SECRET_KEY="test-secret", EMBEDDED_SCHEDULER="0",
               BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2", WS_PING_INTERVAL="1",
               PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"gunicorn did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
    yield f"ws://127.0.0.1:{port}/ws"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


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
