"""The polled unread count and newest page cached in Redis
(services/notification_cache.py): a poll between two changes reads no
database, and after every kind of change the next poll answers what the
database holds, also when a value read before a change is written to the
cache after it."""
from __future__ import annotations

from datetime import timedelta

import pytest
import redis as redis_lib
import sqlalchemy as sa

from webapp.extensions import db, redis_key
from webapp.models import Notification, utcnow
from webapp.services import demo, notification_cache, notifications, transactions

from .builders import bearer, run_concurrently, sql_statements

UNREAD = "/api/notifications/unread-count"
PAGE = "/api/notifications?limit=20"


def _db_count(user_id):
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.is_read.is_(False)))


def _poll(client, headers):
    response = client.get(UNREAD, headers=headers)
    assert response.status_code == 200
    return response.get_json()["count"]


def _page(client, headers):
    response = client.get(PAGE, headers=headers)
    assert response.status_code == 200
    return response.get_json()


def _summary(items, unread):
    return [(i["id"], i["is_read"], i["read_at"], i["title"]) for i in items], unread


def _db_page(user_id):
    """The newest page as the list route builds it, read from the database."""
    items, _next, unread = notifications._notification_page(user_id, 20, None, None, False)
    return _summary(items, unread)


def _page_seen(body):
    return _summary(body["notifications"], body["unread_count"])


def _statements_during(app, call):
    with sql_statements() as seen:
        result = call()
    return result, seen


def _notify(user_id, n=1, **kw):
    return [notifications.notify(user_id, "social", "mention", f"hello {i}", **kw) for i in range(n)]


def test_a_poll_between_changes_reads_no_database(app, client, make_user):
    user = make_user()
    headers = bearer(user)
    _notify(user.user_id, 3, data={"worker": "rig-1", "hashrate": 1.25e12, "nested": {"n": [1, 2]}})
    assert _poll(client, headers) == 3  # a miss: counted, then cached
    count, statements = _statements_during(app, lambda: _poll(client, headers))
    assert count == 3
    assert statements == []
    first = client.get(PAGE, headers=headers)  # a miss: read, then cached
    again, statements = _statements_during(app, lambda: client.get(PAGE, headers=headers))
    assert statements == []
    assert again.get_data() == first.get_data() and again.headers["ETag"] == first.headers["ETag"]
    assert again.get_json()["notifications"][0]["data"] == {"worker": "rig-1", "hashrate": 1.25e12,
                                                            "nested": {"n": [1, 2]}}
    # Other pages and filters are read from the database every time.
    _, statements = _statements_during(app, lambda: client.get(PAGE + "&unread_only=true", headers=headers))
    assert len(statements) == 1


def test_a_page_whose_data_orjson_cannot_write_is_not_cached(app, client, make_user):
    user = make_user()
    headers = bearer(user)
    _notify(user.user_id, 1, data={"big": 2**70})
    assert _page(client, headers)["notifications"][0]["data"] == {"big": 2**70}
    again, statements = _statements_during(app, lambda: _page(client, headers))
    assert again["notifications"][0]["data"] == {"big": 2**70}
    assert len(statements) == 1


def test_every_kind_of_change_shows_in_the_next_poll(app, client, make_user):
    user = make_user()
    uid = user.user_id
    headers = bearer(user)

    def check(expected):
        assert _poll(client, headers) == expected == _db_count(uid)
        assert _poll(client, headers) == expected  # the hit agrees
        assert _page_seen(_page(client, headers)) == _db_page(uid)
        assert _page_seen(_page(client, headers)) == _db_page(uid)
        assert _db_page(uid)[1] == expected
        db.session.commit()  # idle again: notify may take its one-statement path

    check(0)
    assert transactions.idle() == (db.engine.dialect.name == "postgresql")
    rows = _notify(uid, 4)  # one statement each in autocommit on PostgreSQL, the ORM on SQLite
    check(4)
    _notify(uid, 2, commit=False)  # in the caller's transaction: counted once it commits
    assert _poll(client, headers) == 4
    db.session.commit()
    check(6)
    notifications.mark_read(uid, rows[0].id)
    check(5)
    notifications.delete_notification(uid, rows[1].id)
    check(4)
    db.session.add(Notification(user_id=uid, category="social", subtype="mention", title="by hand", body=""))
    db.session.commit()  # an ORM insert outside the service
    check(5)
    assert notifications.mark_all_read(uid) == 5
    check(0)
    _notify(uid, 2)
    db.session.execute(sa.update(Notification).where(Notification.user_id == uid)
                       .values(created_at=utcnow() - timedelta(days=100)))
    db.session.commit()  # a Core UPDATE that leaves the unread count alone
    check(2)
    assert notifications.purge_older_than(utcnow() - timedelta(days=90)) == 8
    check(0)


def test_the_cache_is_forgotten_before_the_push_goes_out(app, client, make_user):
    """A client that polls when the socket push arrives sees the new count:
    the after-commit callbacks (where the push is sent) find the cached
    count already forgotten."""
    user = make_user()
    _notify(user.user_id, 1)
    assert _poll(client, bearer(user)) == 1
    assert notification_cache.lookup(user.user_id, notification_cache.COUNT)[0] == "1"
    seen = []
    _notify(user.user_id, 1, commit=False)  # the ORM path: its push is an after-commit callback
    transactions.after_commit(lambda: seen.append(
        notification_cache.lookup(user.user_id, notification_cache.COUNT)[0]))
    db.session.commit()
    assert seen == [None]
    assert _poll(client, bearer(user)) == 2


def test_a_rolled_back_savepoint_or_transaction_counts_nothing(app, client, make_user):
    user = make_user()
    headers = bearer(user)
    _notify(user.user_id, 1)
    assert _poll(client, headers) == 1
    with db.session.begin_nested() as savepoint:
        _notify(user.user_id, 1, commit=False)
        savepoint.rollback()
    _notify(user.user_id, 1, commit=False)
    db.session.rollback()
    assert _poll(client, headers) == 1 == _db_count(user.user_id)


def test_demo_reset_forgets_the_counts_of_its_mining_notifications(app, client, make_user):
    user = make_user()
    headers = bearer(user)
    notifications.notify(user.user_id, "mining", "worker_offline", "rig down")
    _notify(user.user_id, 1)
    assert _poll(client, headers) == 2
    demo.reset_mining_data()
    assert _poll(client, headers) == 1 == _db_count(user.user_id)


def test_a_count_read_before_a_change_and_cached_after_it_is_never_served(app, client, make_user):
    """The race the generation exists for: a reader counts (2), a change
    commits (3) and forgets, then the reader's slow ``fill`` lands."""
    user = make_user()
    headers = bearer(user)
    _notify(user.user_id, 2)
    cached, generation = notification_cache.lookup(user.user_id, notification_cache.COUNT)
    assert cached is None and generation is not None
    stale = notifications.unread_count(user.user_id)
    _notify(user.user_id, 1)
    notification_cache.fill(user.user_id, notification_cache.COUNT, generation, stale)
    assert stale == 2
    assert _poll(client, headers) == 3
    assert _poll(client, headers) == 3  # and the recount is what is cached now


def test_an_expired_hash_cannot_bring_an_old_generation_back(app, client, make_user, redis):
    user = make_user()
    headers = bearer(user)
    _notify(user.user_id, 1)
    _, generation = notification_cache.lookup(user.user_id, notification_cache.COUNT)
    redis.delete(redis_key("notifications", user.user_id))  # expired meanwhile
    _notify(user.user_id, 1)
    notification_cache.fill(user.user_id, notification_cache.COUNT, generation, 1)
    assert _poll(client, headers) == 2


def test_the_cache_expires(app, client, make_user, redis):
    user = make_user()
    _poll(client, bearer(user))
    ttl = redis.ttl(redis_key("notifications", user.user_id))
    assert 0 < ttl <= app.config["NOTIFICATION_CACHE_TTL"] == 300


def test_without_redis_the_count_comes_from_the_database(app, client, make_user, monkeypatch):
    user = make_user()
    _notify(user.user_id, 2)
    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, decode_responses=True)
    monkeypatch.setitem(app.extensions, "redis", down)
    assert notification_cache.lookup(user.user_id, notification_cache.COUNT) == (None, None)
    assert notifications.cached_unread_count(user.user_id) == 2
    notification_cache.forget([user.user_id])  # logged, not raised


@pytest.mark.slow
def test_concurrent_changes_and_polls_end_on_the_database_count(app, make_user):
    """Writers in threads (autocommit notify, mark read, mark all read,
    delete) while readers poll the count and the newest page: once the
    writers stop, both answer what the database holds."""
    users = [make_user() for _ in range(3)]
    ids = [u.user_id for u in users]

    import random
    rng = random.Random(7)

    def write():
        uid = rng.choice(ids)
        action = rng.random()
        if action < 0.5:
            _notify(uid, 1)
        elif action < 0.7:
            row = db.session.scalar(sa.select(Notification).where(Notification.user_id == uid,
                                                                  Notification.is_read.is_(False)).limit(1))
            if row is not None:
                try:
                    notifications.mark_read(uid, row.id)
                except notifications.NotFound:  # another writer deleted it first
                    pass
        elif action < 0.8:
            notifications.mark_all_read(uid)
        else:
            row = db.session.scalar(sa.select(Notification).where(Notification.user_id == uid).limit(1))
            if row is not None:
                try:
                    notifications.delete_notification(uid, row.id)
                except notifications.NotFound:  # another writer deleted it first
                    pass

    def read():
        uid = rng.choice(ids)
        notifications.cached_unread_count(uid)
        notifications.notification_page(uid, limit=20)

    assert run_concurrently(app, [write] * 3 + [read] * 3, seconds=4) == []
    for uid in ids:
        assert notifications.cached_unread_count(uid) == _db_count(uid)
        items, _next, unread = notifications.notification_page(uid, limit=20)
        assert _summary(items, unread) == _db_page(uid)


def test_the_count_comes_in_the_bearer_checks_round_trip(app, client, make_user, monkeypatch):
    """``prefetch``: the token's revocation state and the cached count are
    one Redis round trip; the answer is still the current count."""
    user = make_user()
    headers = bearer(user)
    _notify(user.user_id, 2)
    assert _poll(client, headers) == 2  # fills the revocation state and the count
    sent = []
    original = redis_lib.connection.Connection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(redis_lib.connection.Connection, "send_packed_command", counting)
    assert _poll(client, headers) == 2
    assert len(sent) == 1, sent
    _notify(user.user_id, 1)
    assert _poll(client, headers) == 3 == _db_count(user.user_id)
