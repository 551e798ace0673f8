"""Writer processes for the notification-order tests (spawned with
``multiprocessing``'s ``spawn`` context, so each is a fresh interpreter that
builds its own app, engine and Redis clients, like a real web, CLI or worker
process).

Each writer loops until ``stop`` is set and reports the number of
notifications it created through ``done`` (a ``multiprocessing.Value``).
``state`` (a ``Value``) lets a test pause every writer: an odd value means
"pause"; a writer acknowledges it by copying it into its ``ack`` (after its
write in flight, push included, has finished) and writes nothing until the
value is even again.
"""
from __future__ import annotations

import http.client
import json
import random
import time


def _paused(state, ack) -> bool:
    if state is None:
        return False
    value = state.value
    if value % 2:
        ack.value = value
        time.sleep(0.005)
        return True
    return False


def api_writer(port: int, service_token: str, user_id: str, stop, done, state=None, ack=None) -> None:
    """POST /api/internal/notifications to a running server (gunicorn): the
    web processes are the writers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {service_token}", "Content-Type": "application/json"}
    n = 0
    while not stop.is_set():
        if _paused(state, ack):
            continue
        body = json.dumps({"user_id": user_id, "category": "social", "subtype": "badge_earned",
                           "title": f"api {n}"})
        try:
            conn.request("POST", "/api/internal/notifications", body=body, headers=headers)
            response = conn.getresponse()
            text = response.read()
        except (http.client.HTTPException, OSError):  # the server closed an idle keep-alive connection
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        if response.status != 201:
            raise RuntimeError(f"internal API answered {response.status}: {text[:500]!r}")
        n += 1
        done.value = n
    conn.close()


def cli_writer(config: dict, user_id: str, stop, done, state=None, ack=None) -> None:
    """``flask notify USER_ID ...`` through click, in this process."""
    from webapp import create_app

    app = create_app(config)
    runner = app.test_cli_runner()
    n = 0
    while not stop.is_set():
        if _paused(state, ack):
            continue
        with app.app_context():  # what ``flask`` does for each run of the command
            result = runner.invoke(args=["notify", user_id, "--category", "system", "--subtype", "announcement",
                                         "--title", f"cli {n}"])
        if result.exit_code != 0 or "sent to" not in result.output:
            raise RuntimeError(f"flask notify failed: {result.output} {result.exception!r}")
        n += 1
        done.value = n


def broadcast_writer(config: dict, admin_id: str, stop, done, state=None, ack=None) -> None:
    """Platform broadcasts fanned out to every user in one transaction (the
    batch holds its first rows uncommitted while it notifies the others)."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import User
    from webapp.services import broadcasts

    app = create_app(config)
    n = 0
    with app.app_context():
        while not stop.is_set():
            if _paused(state, ack):
                continue
            admin = db.session.get(User, admin_id)
            row = broadcasts.create_broadcast(admin, title=f"broadcast {n}")
            broadcasts.fan_out(row.id)
            n += 1
            done.value = n
            db.session.remove()


def batch_writer(config: dict, user_ids: list[str], stop, done, state=None, ack=None,
                 seed: int = 0, hold: float = 0.01) -> None:
    """Ingest-style transactions: notify several users (in a random order)
    with ``commit=False``, hold the transaction a moment (ingest stores
    events and activities meanwhile), then commit."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.services import notifications

    app = create_app(config)
    rnd = random.Random(seed)
    n = 0
    with app.app_context():
        while not stop.is_set():
            if _paused(state, ack):
                continue
            users = list(user_ids)
            rnd.shuffle(users)
            for user_id in users:
                notifications.notify(user_id, "mining", "personal_best", f"batch {seed}.{n}", commit=False)
                n += 1
            time.sleep(rnd.uniform(0, hold))
            db.session.commit()
            done.value = n
            db.session.remove()
