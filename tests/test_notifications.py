"""Notifications: the dispatcher (preferences, after-commit push), endpoints
10–13 and DELETE, the internal API, the CLI, retention, and the pages."""
from __future__ import annotations

import json
import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Notification, NotificationDelivery, utcnow
from webapp.realtime import user_channel
from webapp.services import notifications
from webapp.services.errors import ValidationError

from .builders import PASSWORD, wait_for_lock_waiters


class Channel:
    """A real Redis subscription to one user's channel."""

    def __init__(self, redis, user_id: str) -> None:
        self.pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(user_channel(user_id))
        self.pubsub.get_message(timeout=1)  # the subscribe confirmation

    def messages(self, wait: float = 0.3) -> list[dict]:
        out = []
        while (message := self.pubsub.get_message(timeout=wait)) is not None:
            out.append(json.loads(message["data"]))
        self.pubsub.close()
        return out


def set_prefs(client, headers, notifications_patch: dict) -> None:
    resp = client.patch("/api/settings", json={"notifications": notifications_patch}, headers=headers)
    assert resp.status_code == 200, resp.get_json()


def count_rows(user_id: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(Notification.user_id == user_id))


# ---- the dispatcher ------------------------------------------------------------------


def test_notify_stores_commits_and_publishes_after_commit(app, redis, make_user):
    user = make_user()
    channel = Channel(redis, user.user_id)
    row = notifications.notify(user.user_id, "mining", "block_found", "Block found!", "Height 900001",
                               link="/miners/x", data={"height": 900001})
    assert row.id and row.is_read is False
    db.session.remove()
    stored = db.session.get(Notification, row.id)
    assert (stored.category, stored.subtype, stored.title, stored.data) == ("mining", "block_found", "Block found!",
                                                                           {"height": 900001})
    [message] = channel.messages()
    assert message["type"] == "notification"
    assert message["data"]["id"] == row.id and message["data"]["link"] == "/miners/x"
    assert set(message) == {"type", "data"}


def _columns(row_id: int) -> dict:
    table = Notification.__table__
    stored = db.session.execute(sa.select(table).where(table.c.id == row_id)).mappings().one()
    return {k: v for k, v in stored.items() if k not in ("id", "seq", "seq_floor", "created_at", "title")}


def test_notify_alone_is_two_statements_and_stores_what_the_transaction_path_stores(app, client, redis, make_user,
                                                                                   auth_headers):
    """A notify() that is its whole transaction (nothing begun) runs two
    statements in autocommit; one inside a caller's transaction runs the ORM
    path. Both store the same columns and delivery rows, publish the same
    payload, and number the rows one after the other."""
    user = make_user(email="both@example.org")
    user_id = user.user_id
    set_prefs(client, auth_headers(user), {"categories": {"mining": {"email": True}}})
    db.session.commit()
    notifications.notify(user_id, "mining", "personal_best", "warm-up")  # creates the counter row
    channel = Channel(redis, user_id)
    statements: list[str] = []
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert not db.session().in_transaction()
        alone = notifications.notify(user_id, "mining", "block_found", "Block", "Height 1", link="/x")
        alone_count = len(statements)
        db.session.scalar(sa.select(sa.literal(1)))  # a transaction has begun: the ORM path
        in_tx = notifications.notify(user_id, "mining", "block_found", "Block", "Height 1", link="/x")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)
    assert alone_count == (2 if db.engine.dialect.name == "postgresql" else 6)
    assert len(statements) - alone_count > 2
    assert (alone.seq, in_tx.seq) == (2, 3) and alone.seq_floor == 1
    assert _columns(alone.id) == _columns(in_tx.id)
    stored_null = sa.select(sa.func.count()).select_from(Notification).where(
        Notification.id.in_([alone.id, in_tx.id]), sa.text("data IS NULL"))
    assert db.session.scalar(stored_null) == 0  # JSON null from both (the column type's default)
    deliveries = db.session.execute(
        sa.select(NotificationDelivery.notification_id, NotificationDelivery.channel, NotificationDelivery.status)
        .where(NotificationDelivery.notification_id.in_([alone.id, in_tx.id])).order_by(NotificationDelivery.id)
    ).all()
    assert [(c, s) for _, c, s in deliveries] == [("email", "pending"), ("email", "pending")]
    assert [n for n, _, _ in deliveries] == [alone.id, in_tx.id]
    pushed = [m["data"] for m in channel.messages()]
    assert [m["seq"] for m in pushed] == [2, 3]
    assert {**pushed[0], "id": 0, "seq": 0, "created_at": 0} == {**pushed[1], "id": 0, "seq": 0, "created_at": 0}
    assert alone.to_dict() == pushed[0]


def test_notify_in_callers_transaction_pushes_only_after_its_commit(app, redis, make_user):
    user = make_user()
    channel = Channel(redis, user.user_id)
    notifications.notify(user.user_id, "mining", "personal_best", "Kept", commit=False)
    savepoint = db.session.begin_nested()
    notifications.notify(user.user_id, "mining", "personal_best", "Rolled back", commit=False)
    savepoint.rollback()
    savepoint = db.session.begin_nested()
    notifications.notify(user.user_id, "mining", "personal_best", "Released", commit=False)
    savepoint.commit()  # RELEASE SAVEPOINT is not the commit
    assert channel.pubsub.get_message(timeout=0.2) is None
    db.session.commit()
    titles = [m["data"]["title"] for m in channel.messages()]
    assert titles == ["Kept", "Released"]
    assert count_rows(user.user_id) == 2


def test_rolled_back_notify_pushes_nothing(app, redis, make_user):
    user = make_user()
    channel = Channel(redis, user.user_id)
    notifications.notify(user.user_id, "mining", "personal_best", "Never", commit=False)
    db.session.rollback()
    db.session.commit()
    assert channel.messages() == []
    assert count_rows(user.user_id) == 0


def test_disabled_category_stores_pushes_and_mails_nothing(app, client, redis, make_user, auth_headers):
    user = make_user(email="miner@example.org")
    headers = auth_headers(user)
    set_prefs(client, headers, {"categories": {"competition": {"enabled": False, "email": True}}})
    channel = Channel(redis, user.user_id)
    assert notifications.notify(user.user_id, "competition", "match_won", "You won") is None
    assert count_rows(user.user_id) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationDelivery)) == 0
    assert channel.messages() == []
    assert redis.llen("rq:queue:email") == 0


def test_personal_best_toggle_off_means_no_notification(app, client, make_user, auth_headers):
    user = make_user()
    set_prefs(client, auth_headers(user), {"personalBest": False})
    assert notifications.notify(user.user_id, "mining", "personal_best", "New best: 1.2T") is None
    # Other mining subtypes still arrive; blockFoundAny is off by default (frontend default).
    assert notifications.notify(user.user_id, "mining", "block_found", "Block!") is not None
    assert notifications.notify(user.user_id, "mining", "block_found_any", "Someone found a block") is None
    assert count_rows(user.user_id) == 1


def test_opted_in_email_gets_a_pending_delivery_and_a_job(app, client, redis, make_user, auth_headers):
    user = make_user(email="miner@example.org")
    set_prefs(client, auth_headers(user), {"categories": {"mining": {"email": True}, "social": {"email": True}}})
    row = notifications.notify(user.user_id, "mining", "block_found", "Block!")
    notifications.notify(user.user_id, "social", "coop_member_joined", "Bob joined")  # social is never mailed
    deliveries = db.session.execute(sa.select(NotificationDelivery.notification_id, NotificationDelivery.status)).all()
    assert deliveries == [(row.id, "pending")]
    assert redis.llen("rq:queue:email") == 1


@pytest.mark.parametrize("fields", [
    {"category": "weather"},
    {"subtype": ""},
    {"title": ""},
    {"title": "x" * 201},
    {"link": "javascript:alert(1)"},
    {"link": "//evil.example/x"},
    {"data": ["not", "an", "object"]},
])
def test_notify_rejects_bad_fields(app, make_user, fields):
    user = make_user()
    args = {"category": "mining", "subtype": "block_found", "title": "ok", **fields}
    with pytest.raises(ValidationError):
        notifications.notify(user.user_id, args.pop("category"), args.pop("subtype"), args.pop("title"), **args)
    assert count_rows(user.user_id) == 0


def test_category_check_constraint_exists_in_the_database(app, make_user):
    user = make_user()
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(sa.text("INSERT INTO notifications (user_id, category, subtype, title, body, is_read, "
                                   "created_at) VALUES (:u, 'weather', 'x', 't', '', false, now())"),
                           {"u": user.user_id})
    db.session.rollback()


def test_unknown_user_is_none(app):
    assert notifications.notify("bc1qnobody", "mining", "block_found", "x") is None


# ---- endpoints 10–13 and DELETE ----------------------------------------------------------


def make_many(user_id: str, n: int, category: str = "mining") -> list[int]:
    ids = [notifications.notify(user_id, category, "block_found", f"N{i}", commit=False).id for i in range(n)]
    db.session.commit()
    return ids


def test_list_is_keyset_paged_newest_first(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    ids = make_many(user.user_id, 5)
    first = client.get("/api/notifications?limit=2", headers=headers).get_json()
    assert [n["id"] for n in first["notifications"]] == ids[::-1][:2]
    assert first["unread_count"] == 5
    assert set(first["notifications"][0]) >= {"id", "category", "subtype", "title", "body", "link", "data",
                                              "is_read", "read_at", "created_at"}
    second = client.get(f"/api/notifications?limit=2&cursor={first['next_cursor']}", headers=headers).get_json()
    assert [n["id"] for n in second["notifications"]] == ids[::-1][2:4]
    third = client.get(f"/api/notifications?limit=2&cursor={second['next_cursor']}", headers=headers).get_json()
    assert [n["id"] for n in third["notifications"]] == [ids[0]]
    assert third["next_cursor"] is None


def test_list_filters_by_category_and_unread(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    mining = make_many(user.user_id, 2, "mining")
    social = make_many(user.user_id, 2, "social")
    client.post(f"/api/notifications/{social[0]}/read", headers=headers)
    body = client.get("/api/notifications?category=social", headers=headers).get_json()
    assert [n["id"] for n in body["notifications"]] == social[::-1]
    body = client.get("/api/notifications?unread_only=true", headers=headers).get_json()
    assert [n["id"] for n in body["notifications"]] == [social[1], mining[1], mining[0]]
    assert body["unread_count"] == 3
    body = client.get("/api/notifications?category=social&unread_only=1", headers=headers).get_json()
    assert [n["id"] for n in body["notifications"]] == [social[1]]


@pytest.mark.parametrize("query", ["category=weather", "unread_only=maybe", "limit=0", "limit=101", "cursor=%%%"])
def test_list_rejects_bad_parameters(client, make_user, auth_headers, query):
    resp = client.get(f"/api/notifications?{query}", headers=auth_headers(make_user()))
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "validation_error"


def test_list_is_scoped_to_the_caller(client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    make_many(alice.user_id, 2)
    body = client.get("/api/notifications", headers=auth_headers(bob)).get_json()
    assert body == {"notifications": [], "next_cursor": None, "unread_count": 0}
    assert client.get("/api/notifications").status_code == 401


def test_mark_read_and_unread_count(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    ids = make_many(user.user_id, 3)
    assert client.get("/api/notifications/unread-count", headers=headers).get_json() == {"count": 3}
    resp = client.post(f"/api/notifications/{ids[1]}/read", headers=headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"] == ids[1] and body["is_read"] is True and body["read_at"].endswith("Z")
    again = client.post(f"/api/notifications/{ids[1]}/read", headers=headers).get_json()
    assert again["read_at"] == body["read_at"]  # idempotent
    assert client.get("/api/notifications/unread-count", headers=headers).get_json() == {"count": 2}


def test_someone_elses_notification_is_404_like_a_missing_one(client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    [alice_id] = make_many(alice.user_id, 1)
    bob_headers = auth_headers(bob)
    foreign = client.post(f"/api/notifications/{alice_id}/read", headers=bob_headers)
    missing = client.post("/api/notifications/999999/read", headers=bob_headers)
    huge = client.post(f"/api/notifications/{10**30}/read", headers=bob_headers)
    assert foreign.status_code == missing.status_code == huge.status_code == 404
    assert foreign.get_json() == missing.get_json() == {"error": {"code": "not_found", "message": "No such notification."}}
    assert client.delete(f"/api/notifications/{alice_id}", headers=bob_headers).status_code == 404
    assert client.get("/api/notifications/unread-count", headers=auth_headers(alice)).get_json() == {"count": 1}


def test_read_all_uses_a_watermark(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    ids = make_many(user.user_id, 3)
    resp = client.post("/api/notifications/read-all", json={"up_to_id": ids[1]}, headers=headers)
    assert resp.get_json() == {"updated": 2}
    unread = client.get("/api/notifications?unread_only=true", headers=headers).get_json()["notifications"]
    assert [n["id"] for n in unread] == [ids[2]]
    later = make_many(user.user_id, 1)
    assert client.post(f"/api/notifications/read-all?up_to_id={ids[2]}", headers=headers).get_json() == {"updated": 1}
    assert client.get("/api/notifications/unread-count", headers=headers).get_json() == {"count": 1}
    assert client.post("/api/notifications/read-all", headers=headers).get_json() == {"updated": 1}
    assert later[0] == max(ids + later)
    bad = client.post("/api/notifications/read-all", json={"up_to_id": "7"}, headers=headers)
    assert bad.status_code == 400
    assert client.post("/api/notifications/read-all", json={"extra": 1}, headers=headers).status_code == 400


def test_read_all_default_watermark_is_the_newest_id_at_request_time(app, make_user):
    user = make_user()
    make_many(user.user_id, 2)
    # A row committed after the watermark was taken stays unread.
    watermark = notifications.latest_id(user.user_id)
    late = make_many(user.user_id, 1)[0]
    assert notifications.mark_all_read(user.user_id, up_to_id=watermark) == 2
    assert notifications.unread_count(user.user_id) == 1
    assert late > watermark


def test_delete_removes_and_syncs_the_count(client, redis, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    ids = make_many(user.user_id, 2)
    channel = Channel(redis, user.user_id)
    resp = client.delete(f"/api/notifications/{ids[0]}", headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"status": "deleted", "id": ids[0]}
    assert client.delete(f"/api/notifications/{ids[0]}", headers=headers).status_code == 404
    assert channel.messages() == [{"type": "unread_count", "count": 1, "deleted": [ids[0]]}]
    body = client.get("/api/notifications", headers=headers).get_json()
    assert [n["id"] for n in body["notifications"]] == [ids[1]]


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
def test_two_concurrent_deletes_of_one_notification_give_one_delete_and_one_not_found(app, redis, make_user):
    """Both deletes start while the row is locked elsewhere, so both wait on
    its lock: one deletes it, the other raises NotFound (before: a second
    "deleted" and SQLAlchemy's warning that the DELETE matched no row); one
    push, and the count is right."""
    uid = make_user().user_id
    ids = make_many(uid, 2)
    channel = Channel(redis, uid)
    db.session.remove()
    results = []

    def delete():
        with app.app_context():
            try:
                notifications.delete_notification(uid, ids[0])
                results.append("deleted")
            except notifications.NotFound:
                results.append("not_found")
            except Exception as exc:  # noqa: BLE001 - handed to the assertion
                results.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=delete) for _ in range(2)]
    with db.engine.connect() as holder:
        holder.execute(sa.text("SELECT id FROM notifications WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        for thread in threads:
            thread.start()
        wait_for_lock_waiters(2)
        holder.rollback()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["deleted", "not_found"]
    assert channel.messages() == [{"type": "unread_count", "count": 1, "deleted": [ids[0]]}]
    assert notifications.unread_count(uid) == 1


def test_cookie_requests_need_csrf(client, auth, make_user):
    user = make_user()
    [nid] = make_many(user.user_id, 1)
    auth.login(user.user_id, PASSWORD)
    assert client.post(f"/api/notifications/{nid}/read").status_code == 403
    token = auth.csrf_token("/notifications")
    assert client.post(f"/api/notifications/{nid}/read", headers={"X-CSRFToken": token}).status_code == 200


def test_unread_count_uses_the_partial_index(app, make_user):
    """EXPLAIN on PostgreSQL: an index-only scan of ix_notifications_unread."""
    users = [make_user() for _ in range(3)]
    db.session.execute(sa.text(
        "INSERT INTO notifications (user_id, category, subtype, title, body, is_read, created_at) "
        "SELECT (ARRAY[:a, :b, :c])[1 + (g % 3)], 'mining', 'block_found', 't', '', g % 10 <> 0, now() "
        "FROM generate_series(1, 30000) g"), {"a": users[0].user_id, "b": users[1].user_id, "c": users[2].user_id})
    db.session.commit()
    db.session.execute(sa.text("ANALYZE notifications"))
    query = sa.select(sa.func.count()).select_from(Notification).where(*notifications._unread(users[0].user_id))
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    plan = "\n".join(db.session.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_notifications_unread" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert notifications.unread_count(users[0].user_id) == 1000


# ---- other senders -----------------------------------------------------------------------


def test_internal_api_needs_the_service_token(client, make_user):
    user = make_user()
    body = {"user_id": user.user_id, "category": "gamification", "subtype": "badge_earned", "title": "Badge!"}
    assert client.post("/api/internal/notifications", json=body).status_code == 401
    wrong = client.post("/api/internal/notifications", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "unauthorized"
    ok = client.post("/api/internal/notifications", json=body,
                     headers={"Authorization": "Bearer test-service-token"})
    assert ok.status_code == 201
    assert ok.get_json()["notification"]["title"] == "Badge!"
    assert count_rows(user.user_id) == 1


def test_internal_api_body_is_strict(client, make_user):
    user = make_user()
    headers = {"Authorization": "Bearer test-service-token"}
    base = {"user_id": user.user_id, "category": "gamification", "subtype": "badge_earned", "title": "Badge!"}
    for bad in ({**base, "category": "weather"}, {**base, "extra": 1}, {**base, "title": 5},
                {**base, "link": "javascript:x"}, {k: v for k, v in base.items() if k != "title"}):
        resp = client.post("/api/internal/notifications", json=bad, headers=headers)
        assert resp.status_code == 400, bad
        assert resp.get_json()["error"]["code"] == "validation_error"
    missing = client.post("/api/internal/notifications", json={**base, "user_id": "bc1qnobody"}, headers=headers)
    assert missing.status_code == 404
    assert count_rows(user.user_id) == 0


def test_internal_api_refuses_everything_without_a_configured_token(make_app, make_user):
    app = make_app(SERVICE_TOKEN="")
    with app.app_context():
        user = make_user()
        resp = app.test_client().post(
            "/api/internal/notifications", headers={"Authorization": "Bearer "},
            json={"user_id": user.user_id, "category": "system", "subtype": "x", "title": "t"})
    assert resp.status_code == 401


def test_internal_api_reports_suppressed(client, make_user, auth_headers):
    user = make_user()
    set_prefs(client, auth_headers(user), {"badgeEarned": False})
    resp = client.post("/api/internal/notifications", headers={"Authorization": "Bearer test-service-token"},
                       json={"user_id": user.user_id, "category": "gamification", "subtype": "badge_earned",
                             "title": "Badge!"})
    assert resp.status_code == 200 and resp.get_json() == {"notification": None, "status": "suppressed"}


def test_cli_notify(runner, make_user):
    user = make_user()
    result = runner.invoke(args=["notify", user.user_id, "--category", "system", "--subtype", "announcement",
                                 "--title", "Maintenance tonight", "--link", "/status"])
    assert result.exit_code == 0, result.output
    assert re.match(r"notification \d+ sent to ", result.output)
    row = db.session.scalars(sa.select(Notification)).one()
    assert (row.title, row.link, row.category) == ("Maintenance tonight", "/status", "system")
    bad = runner.invoke(args=["notify", "bc1qnobody", "--category", "system", "--subtype", "x", "--title", "t"])
    assert bad.exit_code != 0 and "No user" in bad.output


# ---- retention ----------------------------------------------------------------------------


def test_purge_deletes_only_old_notifications_in_batches(app, make_user):
    from jobs.notifications import purge_old_notifications

    user = make_user()
    ids = make_many(user.user_id, 7)
    old = utcnow() - timedelta(days=91)
    db.session.execute(sa.update(Notification).where(Notification.id.in_(ids[:5])).values(created_at=old))
    db.session.add(NotificationDelivery(notification_id=ids[0], channel="email"))
    db.session.commit()
    assert notifications.purge_older_than(utcnow() - timedelta(days=90), batch_size=2) == 5
    assert sorted(db.session.scalars(sa.select(Notification.id))) == ids[5:]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationDelivery)) == 0
    assert purge_old_notifications() == 0


# ---- pages --------------------------------------------------------------------------------


def test_bell_shows_the_unread_count_on_every_page(client, auth, make_user):
    user = make_user()
    make_many(user.user_id, 3)
    auth.login(user.user_id, PASSWORD)
    page = client.get("/notifications").get_data(as_text=True)
    assert 'id="notification-badge" class="badge" data-count="3"' in page
    assert 'id="bell-list"' in page and 'id="notification-cursor"' in page
    assert 'ws-connect="/ws?format=html"' in page


def test_page_groups_filters_and_pages(client, auth, make_user):
    user = make_user()
    ids = make_many(user.user_id, 25, "mining")
    db.session.execute(sa.update(Notification).where(Notification.id.in_(ids[:3]))
                       .values(created_at=utcnow() - timedelta(days=1)))
    db.session.execute(sa.update(Notification).where(Notification.id.in_(ids[3:6]))
                       .values(created_at=utcnow() - timedelta(days=5)))
    social = make_many(user.user_id, 1, "social")
    db.session.commit()
    auth.login(user.user_id, PASSWORD)
    page = client.get("/notifications").get_data(as_text=True)
    assert page.index(">Today<") < page.index(f'id="notification-{social[0]}"')
    assert 'id="notification-list"' in page
    assert 'hx-trigger="revealed"' in page
    more = re.search(r'hx-get="([^"]+)" hx-trigger="revealed"', page).group(1).replace("&amp;", "&")
    rest = client.get(more, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in rest
    assert ">Yesterday<" in rest and ">Earlier<" in rest
    assert f'id="notification-{ids[0]}"' in rest
    filtered = client.get("/notifications?category=social").get_data(as_text=True)
    assert f'id="notification-{social[0]}"' in filtered and f'id="notification-{ids[-1]}"' not in filtered
    assert client.get("/notifications?category=weather").status_code == 400


def test_page_actions_mark_read_delete_and_read_all(client, auth, make_user):
    user = make_user()
    ids = make_many(user.user_id, 3)
    auth.login(user.user_id, PASSWORD)
    headers = {"HX-Request": "true", "X-CSRFToken": auth.csrf_token("/notifications")}
    read = client.post(f"/notifications/{ids[0]}/read", headers=headers).get_data(as_text=True)
    assert f'<li id="notification-{ids[0]}" class="notification"' in read
    assert 'data-count="2"' in read and 'hx-swap-oob="outerHTML"' in read
    deleted = client.post(f"/notifications/{ids[1]}/delete", headers=headers).get_data(as_text=True)
    assert f"notification-{ids[1]}" not in deleted and 'data-count="1"' in deleted
    opened = client.post(f"/notifications/{ids[2]}/open", headers=headers)
    assert opened.headers["HX-Redirect"] == "/notifications"
    make_many(user.user_id, 2)
    done = client.post("/notifications/read-all", data={"up_to_id": str(ids[2] + 1)}, headers=headers)
    assert 'data-count="1"' in done.get_data(as_text=True)
    assert client.post(f"/notifications/{ids[0]}/read").status_code == 403  # no CSRF token


def test_notifications_page_needs_login(client):
    resp = client.get("/notifications")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_notify_refuses_nul_characters_and_non_finite_data(app, make_user):
    from webapp.services import notifications as service
    from webapp.services.errors import ValidationError

    user = make_user()
    for kwargs in ({"title": "bad\x00title"}, {"data": {"x": float("nan")}}, {"link": "javascript:alert(1)"}):
        args = {"title": "ok", **kwargs}
        with pytest.raises(ValidationError):
            service.notify(user.user_id, "system", "test", args.pop("title"), "", **args)
