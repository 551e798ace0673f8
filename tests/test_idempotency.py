"""``Idempotency-Key`` on ``POST /api/internal/notifications``: a retried
request answers the first response and creates nothing, also when two
copies race; a key reused for another body is 409; keys expire."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import IdempotencyKey, Notification, utcnow

from .test_notifications import Channel, count_rows

URL = "/api/internal/notifications"
SERVICE = {"Authorization": "Bearer test-service-token"}


def post(client, body, key=None):
    headers = dict(SERVICE, **({"Idempotency-Key": key} if key is not None else {}))
    return client.post(URL, json=body, headers=headers)


def badge(user, **extra):
    return {"user_id": user.user_id, "category": "gamification", "subtype": "badge_earned", "title": "Badge!", **extra}


def test_a_retry_with_the_same_key_answers_the_first_response_and_creates_nothing(client, make_user, redis):
    user = make_user()
    channel = Channel(redis, user.user_id)
    first = post(client, badge(user), key="6f1c2a9e-0b7d-4c55-9a0e-3f1d2b4c5e6f")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # The same request again (keys in another order are the same body).
    again = client.post(URL, json=dict(reversed(list(badge(user).items()))),
                        headers=dict(SERVICE, **{"Idempotency-Key": "6f1c2a9e-0b7d-4c55-9a0e-3f1d2b4c5e6f"}))
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_rows(user.user_id) == 1
    assert [m["data"]["id"] for m in channel.messages() if m["type"] == "notification"] == [
        first.get_json()["notification"]["id"]]  # pushed once
    # The draft's quoted form names the same key; without a key every request counts.
    assert post(client, badge(user), key='"6f1c2a9e-0b7d-4c55-9a0e-3f1d2b4c5e6f"').get_json() == first.get_json()
    assert post(client, badge(user)).status_code == 201
    assert count_rows(user.user_id) == 2


def test_a_key_reused_with_another_body_is_409_and_changes_nothing(client, make_user):
    user = make_user()
    assert post(client, badge(user), key="order-42").status_code == 201
    other = post(client, badge(user, title="Another badge"), key="order-42")
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert count_rows(user.user_id) == 1


def test_a_suppressed_answer_is_replayed_and_a_refused_request_is_not_remembered(client, make_user, auth_headers):
    user = make_user()
    off = client.patch("/api/settings", json={"notifications": {"categories": {"gamification": {"enabled": False}}}},
                       headers=auth_headers(user))
    assert off.status_code == 200, off.get_json()
    assert post(client, badge(user), key="k-suppressed").get_json() == {"notification": None, "status": "suppressed"}
    client.patch("/api/settings", json={"notifications": {"categories": {"gamification": {"enabled": True}}}},
                 headers=auth_headers(user))
    replay = post(client, badge(user), key="k-suppressed")
    assert (replay.status_code, replay.get_json()["status"]) == (200, "suppressed")
    assert count_rows(user.user_id) == 0
    # A 404 stored nothing: the same key works once the user exists.
    ghost = badge(user, user_id="bc1qnotyetregistered")
    assert post(client, ghost, key="k-404").status_code == 404
    from . import builders

    builders.make_user("bc1qnotyetregistered")
    assert post(client, ghost, key="k-404").status_code == 201


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "two words", "caf\u00e9"])
def test_malformed_keys_are_400(client, make_user, key):
    user = make_user()
    resp = client.post(URL, json=badge(user), headers=dict(SERVICE, **{"Idempotency-Key": key.encode().decode("latin-1")}))
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "validation_error"
    assert count_rows(user.user_id) == 0


def test_a_key_of_255_characters_is_accepted(client, make_user):
    assert post(client, badge(make_user()), key="x" * 255).status_code == 201


def test_two_concurrent_requests_with_one_key_create_one_notification(app, make_user):
    """Both requests pass the "seen this key?" check before either commits
    (held at a barrier right after that SELECT); the unique (scope, key)
    lets one commit, the other rolls back and answers the same."""
    user = make_user()
    body = badge(user)
    barrier = threading.Barrier(2)
    held = set()

    def hold_after_the_key_lookup(conn, cursor, statement, parameters, context, executemany):
        name = threading.current_thread().name
        if name.startswith("retry-") and name not in held and statement.lstrip().upper().startswith("SELECT") \
                and "idempotency_keys" in statement:
            held.add(name)
            barrier.wait(timeout=10)

    responses = {}

    def send(name):
        responses[name] = post(app.test_client(), body, key="race-key")

    sa.event.listen(db.engine, "after_cursor_execute", hold_after_the_key_lookup)
    try:
        threads = [threading.Thread(target=send, args=(f"retry-{i}",), name=f"retry-{i}") for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sa.event.remove(db.engine, "after_cursor_execute", hold_after_the_key_lookup)
    db.session.expire_all()
    assert count_rows(user.user_id) == 1
    first, second = responses["retry-0"], responses["retry-1"]
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json() == second.get_json()
    assert {first.headers.get("Idempotent-Replayed"), second.headers.get("Idempotent-Replayed")} == {None, "true"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 1
    assert held == {"retry-0", "retry-1"} and not barrier.broken  # both had looked the key up before either commit


def test_keys_expire_after_a_day(client, make_user):
    from jobs.notifications import purge_old_notifications

    user = make_user()
    assert post(client, badge(user), key="old-key").status_code == 201
    assert post(client, badge(user), key="new-key").status_code == 201
    db.session.execute(sa.update(IdempotencyKey).where(IdempotencyKey.key == "old-key")
                       .values(created_at=utcnow() - timedelta(hours=24, minutes=1)))
    db.session.commit()
    purge_old_notifications()
    assert list(db.session.scalars(sa.select(IdempotencyKey.key))) == ["new-key"]
    assert post(client, badge(user), key="old-key").headers.get("Idempotent-Replayed") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 3


def test_the_header_is_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    operation = spec["paths"]["/api/internal/notifications"]["post"]
    assert {"name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"}} in operation["parameters"]
    assert "409" in operation["responses"]
