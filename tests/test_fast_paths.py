"""The cheap paths of the JSON routes (docs/PERFORMANCE.md): bearer tokens
checked against the revocation state cached in Redis (no user row per
request, revocation still at once), the Core page of notifications, the
orjson JSON provider, and ETag / 304 on the reads that clients poll."""
from __future__ import annotations

import dataclasses
import decimal
import json
import time
import uuid
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup

from webapp.extensions import db, redis_key
from webapp.jsonprovider import OrjsonProvider
from webapp.models import User
from webapp.services import accounts, notifications

from .builders import PASSWORD, bearer, sql_statements

UNREAD = "/api/notifications/unread-count"


def _statements(app, client, path, headers):
    """(response, the SQL statements the request ran)."""
    with app.app_context(), sql_statements() as seen:
        response = client.get(path, headers=headers)
    return response, seen


def _auth_hash(redis, user_id):
    return redis.hgetall(redis_key("auth", user_id))


# ---- bearer tokens: revocation state in Redis ------------------------------------------


def test_a_bearer_request_loads_no_user_row_once_the_revocation_state_is_cached(app, client, make_user, redis):
    user = make_user()
    headers = bearer(user)
    assert client.get(UNREAD, headers=headers).status_code == 200  # a miss: read from the database
    assert _auth_hash(redis, user.user_id) == {"e": "0"}
    response, statements = _statements(app, client, UNREAD, headers)
    assert response.status_code == 200 and response.get_json() == {"count": 0}
    assert [s for s in statements if "users" in s] == []
    assert statements == []  # the count too came from Redis (tests/test_notification_cache.py)


def test_log_out_everywhere_revokes_cached_tokens_at_once(client, make_user, redis):
    user = make_user()
    first, second = bearer(user), bearer(user)
    assert [client.get(UNREAD, headers=h).status_code for h in (first, second)] == [200, 200]  # both cached
    response = client.post("/api/auth/logout-everywhere", headers=first)
    assert response.status_code == 200
    assert [client.get(UNREAD, headers=h).status_code for h in (first, second)] == [401, 401]
    assert _auth_hash(redis, user.user_id)["e"] == "1"
    assert client.get(UNREAD, headers=bearer(db.session.get(User, user.user_id))).status_code == 200


def test_password_change_revokes_cached_tokens_at_once(client, make_user):
    user = make_user()
    kept, other = bearer(user), bearer(user)
    assert client.get(UNREAD, headers=other).status_code == 200
    response = client.post("/api/auth/password", headers=kept,
                           json={"current_password": PASSWORD, "new_password": "a much newer passphrase 42"})
    assert response.status_code == 200, response.get_json()
    assert [client.get(UNREAD, headers=h).status_code for h in (kept, other)] == [401, 401]


def test_logout_of_one_token_denies_it_in_the_cache_and_after_the_cache_is_lost(client, make_user, redis):
    user = make_user()
    gone, kept = bearer(user), bearer(user)
    assert [client.get(UNREAD, headers=h).status_code for h in (gone, kept)] == [200, 200]
    assert client.post("/api/auth/logout", headers=gone).status_code == 200
    assert [client.get(UNREAD, headers=h).status_code for h in (gone, kept)] == [401, 200]
    assert any(field.startswith("r:") for field in _auth_hash(redis, user.user_id))
    redis.flushdb()  # Redis restarted empty: the state is read again from the database
    assert [client.get(UNREAD, headers=h).status_code for h in (gone, kept)] == [401, 200]


def test_an_epoch_bump_is_never_undone_by_a_late_cache_fill_or_an_older_bump(app, make_user, redis):
    user = make_user()
    key = redis_key("auth", user.user_id)
    accounts._raise_cached_epoch(user.user_id, 3)
    accounts._raise_cached_epoch(user.user_id, 2)  # a concurrent bump that committed first, written last
    assert redis.hget(key, "e") == "3"
    # A reader that read the database (epoch 0) before the bump committed fills late.
    assert accounts._fill_cache(user.user_id, "r:x") == ("3", None)
    token = bearer(user)  # issued with the database's epoch 0
    assert app.test_client().get(UNREAD, headers=token).status_code == 401


def test_a_bump_in_the_database_is_seen_once_the_cache_expires(app, make_user, redis):
    """``AUTH_CACHE_TTL`` bounds how long the cached state lives; revocations
    go through ``accounts`` and update it at once (the tests above)."""
    user = make_user()
    headers = bearer(user)
    client = app.test_client()
    assert client.get(UNREAD, headers=headers).status_code == 200
    assert 0 < redis.ttl(redis_key("auth", user.user_id)) <= app.config["AUTH_CACHE_TTL"]
    db.session.execute(sa.update(User).where(User.user_id == user.user_id).values(auth_epoch=User.auth_epoch + 1))
    db.session.commit()
    redis.delete(redis_key("auth", user.user_id))  # as the TTL would
    assert client.get(UNREAD, headers=headers).status_code == 401


def test_the_embedded_default_checks_tokens_with_its_in_process_redis(make_app, app, make_user):
    user = make_user()
    embedded = make_app(REDIS_URL="", EMBEDDED=True)
    with embedded.app_context():
        client = embedded.test_client()
        owner = db.session.get(User, user.user_id)
        headers = bearer(owner)
        assert client.get(UNREAD, headers=headers).status_code == 200
        assert client.get(UNREAD, headers=headers).status_code == 200  # from the stand-in's cache
        accounts.log_out_everywhere(owner)
        assert client.get(UNREAD, headers=headers).status_code == 401
        db.session.remove()


def test_a_route_that_needs_the_user_still_gets_it(client, make_user):
    user = make_user(display_name="Loaded")
    response = client.get("/api/me", headers=bearer(user))
    assert response.status_code == 200 and response.get_json()["display_name"] == "Loaded"


# ---- the notification page as Core rows ------------------------------------------------------


def test_the_core_page_has_the_orm_shape(app, make_user):
    user = make_user()
    for i in range(7):
        notifications.notify(user.user_id, "mining" if i % 2 else "social", "personal_best", f"Best {i}",
                             "ü " * i, link=f"/miners/{user.user_id}", data={"d": i, "nested": {"x": [1, 2]}})
    notifications.mark_read(user.user_id, notifications.list_notifications(user.user_id, limit=1)[0][0].id)
    for kwargs in ({"limit": 3}, {"limit": 20}, {"limit": 2, "category": "mining"}, {"limit": 5, "unread_only": True}):
        rows, next_id = notifications.list_notifications(user.user_id, **kwargs)
        items, core_next, unread = notifications.notification_page(user.user_id, **kwargs)
        assert items == [row.to_dict() for row in rows]
        assert core_next == next_id
        assert unread == notifications.unread_count(user.user_id) == 6
        if next_id:
            rows, next_id = notifications.list_notifications(user.user_id, before_id=next_id, **kwargs)
            assert notifications.notification_page(user.user_id, before_id=core_next, **kwargs)[0] == [
                row.to_dict() for row in rows]
    assert notifications.notification_page(user.user_id, limit=5, before_id=1) == ([], None, 6)


def test_a_polled_read_outside_a_transaction_runs_in_autocommit_and_inside_one_sees_its_writes(app, make_user):
    from webapp.services import transactions

    user_id = make_user().user_id
    notifications.notify(user_id, "mining", "personal_best", "Best", "b")
    db.session.commit()
    db.session.close()
    seen = []

    def listener(conn, cursor, statement, *args):
        seen.append(conn.connection.driver_connection.autocommit)

    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert notifications.unread_count(user_id) == 1
        assert seen == [True] and not db.session().in_transaction()  # no BEGIN, nothing to roll back
        notifications.notify(user_id, "mining", "personal_best", "Second", "b", commit=False)
        assert notifications.unread_count(user_id) == 2  # the session's own uncommitted row
        assert seen[-1] is False and db.session().in_transaction()
        db.session.rollback()
        assert notifications.unread_count(user_id) == 1
        assert transactions.read(sa.select(sa.literal(7))) == [(7,)]
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)


# ---- Flask-Limiter's before-request pass --------------------------------------------------------


def test_the_limiter_skips_its_before_request_pass_only_when_it_has_nothing_to_check(app):
    from flask import Flask

    from webapp.extensions import RouteLimiter, limiter

    assert not limiter._has_limits_before_the_view()  # ours: limits per route only, the pass is skipped
    for kwargs in ({"default_limits": ["2 per minute"]}, {"application_limits": ["2 per minute"]}):
        other = Flask(__name__)
        other.config["RATELIMIT_STORAGE_URI"] = "memory://"
        other_limiter = RouteLimiter(key_func=lambda: "one-client", app=other, **kwargs)
        other.get("/free")(lambda: "ok")
        assert other_limiter._has_limits_before_the_view()
        client = other.test_client()
        assert [client.get("/free").status_code for _ in range(3)] == [200, 200, 429], kwargs
    plain = Flask(__name__)
    plain.config["RATELIMIT_STORAGE_URI"] = "memory://"
    plain_limiter = RouteLimiter(key_func=lambda: "one-client", app=plain)
    plain.get("/limited")(plain_limiter.limit("2 per minute")(lambda: "ok"))
    client = plain.test_client()
    assert [client.get("/limited").status_code for _ in range(3)] == [200, 200, 429]


# ---- the JSON provider ----------------------------------------------------------------------


@dataclasses.dataclass
class _Point:
    x: int
    label: str


def test_the_orjson_provider_writes_what_flask_wrote(app):
    default = DefaultJSONProvider(app)
    provider = app.json
    assert isinstance(provider, OrjsonProvider)
    values = [
        {"b": 1, "a": [1, 2.5, None, True], "c": {"z": "ü€😀", "y": "</script>"}},
        {"when": datetime(2026, 11, 30, 4, 5, 6, tzinfo=UTC), "day": date(2026, 11, 30)},
        {"n": decimal.Decimal("1.50"), "id": uuid.UUID(int=7), "p": _Point(1, "x"), "m": Markup("<b>x</b>")},
        {1: "int key", 2: "other"},
        {"big": 2**70},  # beyond orjson: Flask's encoder
        [],
        "plain",
    ]
    for value in values:
        ours, flask_own = provider.dumps(value), default.dumps(value)
        assert json.loads(ours) == json.loads(flask_own), value
        if isinstance(value, dict):
            assert list(json.loads(ours)) == list(json.loads(flask_own))  # same key order
        assert provider.loads(ours) == default.loads(flask_own)
    with app.test_request_context():
        response = provider.response({"b": 1, "a": "ü"})
        assert response.mimetype == "application/json"
        assert response.get_data() == b'{"a":"\xc3\xbc","b":1}\n'


def test_error_bodies_keep_their_shape(client):
    response = client.get(UNREAD, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert set(response.get_json()["error"]) >= {"code", "message"}


# ---- ETag and 304 on polled reads --------------------------------------------------------------


def _revalidated(client, path, headers=None):
    """(first response, the 304 response, the ETag)."""
    first = client.get(path, headers=headers or {})
    assert first.status_code == 200, first.get_json()
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = client.get(path, headers={**(headers or {}), "If-None-Match": etag})
    return first, again, etag


def test_unread_count_answers_304_until_a_notification_changes_it(client, make_user):
    user = make_user()
    headers = bearer(user)
    first, again, etag = _revalidated(client, UNREAD, headers)
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert "Authorization" in first.headers["Vary"]
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag
    notifications.notify(user.user_id, "mining", "personal_best", "New best")
    changed = client.get(UNREAD, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json() == {"count": 1}
    assert changed.headers["ETag"] != etag


def test_the_notification_list_answers_304_until_one_is_read(client, make_user):
    user = make_user()
    headers = bearer(user)
    row = notifications.notify(user.user_id, "mining", "personal_best", "New best")
    path = "/api/notifications?limit=20"
    first, again, etag = _revalidated(client, path, headers)
    assert again.status_code == 304
    assert client.post(f"/api/notifications/{row.id}/read", headers=headers).status_code == 200
    changed = client.get(path, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["notifications"][0]["is_read"] is True


def test_activity_and_the_public_profile_answer_304(client, make_user):
    user = make_user(display_name="Before")
    _, again, _ = _revalidated(client, "/api/activity", bearer(user))
    assert again.status_code == 304
    path = f"/api/public/miners/{user.user_id}"
    first, again, etag = _revalidated(client, path)
    assert again.status_code == 304
    assert first.headers["Cache-Control"] == "no-cache"
    db.session.get(User, user.user_id).display_name = "After"
    db.session.commit()
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["display_name"] == "After"


def test_a_304_is_only_for_a_matching_etag_and_never_for_errors(client, make_user):
    user = make_user()
    other = client.get(UNREAD, headers={**bearer(user), "If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200
    missing = client.get("/api/public/miners/bc1qnosuchminer", headers={"If-None-Match": "*"})
    assert missing.status_code == 404 and "ETag" not in missing.headers


def test_without_validators_the_answer_has_the_headers_make_conditional_gives(app, client, make_user):
    """The fast path of conditional_response (no If-* or Range header) adds
    what werkzeug's make_conditional adds then: the same headers, 200."""
    from webapp.api.openapi import conditional_response

    user = make_user()
    fast = client.get(UNREAD, headers=bearer(user))
    with app.test_request_context(UNREAD, headers={"If-None-Match": 'W/"other"'}):
        slow = conditional_response(app.response_class(fast.get_data(), mimetype=fast.mimetype), private=True)
    assert fast.status_code == slow.status_code == 200
    for name in ("ETag", "Cache-Control", "Vary", "Content-Length", "Content-Type"):
        assert fast.headers[name] == slow.headers[name], name
    assert "Date" in fast.headers and "Date" in slow.headers


def test_stored_json_is_read_as_json_reads_it():
    from webapp.jsonprovider import load_stored_json

    texts = ['{"a": 1, "b": [1.5, -0.0, 1e-320, null, true], "c": "\\u00e9\u00e9"}',
             '{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',  # beyond 64 bits
             '{"x": 1e400}', '"\\ud800"', '{"k": "12345678901234567890"}', "[]"]
    for text in texts:
        for data in (text, text.encode()):
            value = load_stored_json(data)
            assert value == json.loads(text) or value != value, text  # nan-free: inf == inf
            assert type(value) is type(json.loads(text))
    assert type(load_stored_json(texts[1])["big"]) is int


def test_ensure_sync_is_remembered_for_the_same_answer(app):
    async def coroutine() -> None:
        return None

    def plain() -> None:
        return None

    assert app.ensure_sync(plain) is plain and app.ensure_sync(plain) is plain
    for _ in range(2):  # still Flask's answer for a coroutine (here: no async extra installed)
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(coroutine)


# ---- the public profile in one statement -------------------------------------------------------


def test_the_one_statement_public_profile_matches_the_orm_one(app, make_user):
    from webapp.models import MinerStats
    from webapp.services import profiles

    users = [make_user(country_code="DE") for _ in range(5)]
    for i, user in enumerate(users):
        db.session.add(MinerStats(user_id=user.user_id, total_shares=10, best_difficulty=[5e9, 1e9, 5e9, 7e9, float("nan")][i]))
    variants = [{}, {"showOnLeaderboard": False}, {"showCountryFlag": False}, {"showOnLeaderboard": True}, {}]
    for user, privacy in zip(users, variants, strict=True):
        accounts.get_settings_row(user.user_id).privacy = {"publicProfile": True, **privacy}
    db.session.commit()
    for user in users:
        assert profiles.public_profile(user.user_id) == profiles.profile_dict(*profiles.visible_user(user.user_id))
    assert profiles.public_profile(users[0].user_id)["leaderboard_rank"] == 2  # 7e9 above; 5e9 ties share
    accounts.get_settings_row(users[0].user_id).privacy = {"publicProfile": False}
    db.session.commit()
    for missing in (users[0].user_id, "bc1qnosuchminer", "no/such"):
        try:
            profiles.public_profile(missing)
        except profiles.NotFound:
            continue
        raise AssertionError(f"{missing} was shown")


def test_the_public_profile_with_a_viewer_is_one_statement(app, client, make_user):
    """The viewer's friendship and the blocks come in the profile's own
    statement: one SQL statement per request for a logged-in viewer; none
    for an anonymous one while the profile is cached (profile_cache)."""
    from webapp.services import friends

    owner, viewer, blocked = make_user(country_code="DE"), make_user(), make_user()
    friends.block(owner, blocked.user_id)
    path = f"/api/public/miners/{owner.user_id}"
    for headers, expected in (({}, 0), (bearer(viewer), 1), (bearer(owner), 1)):
        client.get(path, headers=headers)  # caches the token's revocation state (and the anonymous answer)
        response, statements = _statements(app, client, path, headers)
        assert response.status_code == 200
        assert len(statements) == expected, statements
    headers = bearer(blocked)
    client.get(path, headers=headers)
    response, statements = _statements(app, client, path, headers)
    assert response.status_code == 404 and len(statements) == 1


def test_the_profile_knows_the_viewers_friendship_in_every_state(client, make_user):
    from webapp.services import friends, relations

    alice, bob = make_user(), make_user()
    path_a, path_b = f"/api/public/miners/{alice.user_id}", f"/api/public/miners/{bob.user_id}"

    def states():
        seen = (client.get(path_b, headers=bearer(alice)).get_json()["friendship"],
                client.get(path_a, headers=bearer(bob)).get_json()["friendship"])
        assert seen == (relations.friendship_state(alice.user_id, bob.user_id),
                        relations.friendship_state(bob.user_id, alice.user_id))
        return seen

    assert states() == ("none", "none")
    request, _ = friends.send_request(alice, bob.user_id)
    db.session.commit()
    assert states() == ("pending_outgoing", "pending_incoming")
    friends.accept(bob, request.id)
    db.session.commit()
    assert states() == ("friends", "friends")
    assert "friendship" not in client.get(path_a, headers=bearer(alice)).get_json()  # the owner
    assert "friendship" not in client.get(path_a).get_json()  # anonymous
    friends.block(bob, alice.user_id)
    db.session.commit()
    assert client.get(path_b, headers=bearer(alice)).status_code == 404
    assert client.get(path_a, headers=bearer(bob)).get_json()["friendship"] == "none"


# ---- rate limits in one round trip ---------------------------------------------------------------


def test_one_trip_rate_limit_storage_counts_and_reports_as_the_stock_one(make_app, app, make_user):
    from webapp.extensions import OneTripRedisStorage, limiter

    user = make_user()
    path = f"/api/public/miners/{user.user_id}"
    seen = {}
    for scheme in ("", "webapp+"):
        limited = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="3 per minute",
                           RATELIMIT_STORAGE_URI=scheme + app.config["REDIS_URL"])
        with limited.app_context():
            assert isinstance(limiter.storage, OneTripRedisStorage) == bool(scheme)
            limiter.reset()
            client = limited.test_client()
            answers = [client.get(path) for _ in range(4)]
            seen[scheme] = [(r.status_code, r.headers.get("X-RateLimit-Limit"), r.headers.get("X-RateLimit-Remaining"))
                            for r in answers]
            reset = int(answers[0].headers["X-RateLimit-Reset"])
            assert 0 < reset - time.time() <= 61
            limiter.reset()
    assert seen[""] == seen["webapp+"] == [
        (200, "3", "2"), (200, "3", "1"), (200, "3", "0"), (429, "3", "0")]


def test_one_trip_storage_loads_its_script_again_after_the_server_forgot_it(make_app, app, make_user):
    from webapp.extensions import limiter

    user = make_user()
    limited = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="3 per minute",
                       RATELIMIT_STORAGE_URI="webapp+" + app.config["REDIS_URL"])
    with limited.app_context():
        limiter.reset()
        client = limited.test_client()
        path = f"/api/public/miners/{user.user_id}"
        first = client.get(path)
        limiter.storage.get_connection().script_flush()  # a restarted or flushed Redis: NOSCRIPT next
        answers = [first] + [client.get(path) for _ in range(3)]
        limiter.reset()
    make_app()  # the limiter is one object: switch it back off for the other tests
    assert [(r.status_code, r.headers.get("X-RateLimit-Remaining")) for r in answers] == [
        (200, "2"), (200, "1"), (200, "0"), (429, "0")]


def test_the_profiles_limit_is_one_budget_per_address_across_its_doors_and_follows_the_setting(make_app, make_user):
    from webapp.extensions import limiter

    user = make_user()
    doors = [f"/api/public/miners/{user.user_id}", f"/miners/{user.user_id}",
             f"/api/public/miners/{user.user_id}/stats"]
    seen = {}
    for setting in ("3 per minute", "2 per minute", "3 per minute"):
        limited = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT=setting)
        with limited.app_context():
            limiter.reset()
            client = limited.test_client()
            # One budget per address across the JSON routes and the page.
            answers = [client.get(doors[i % 3]) for i in range(4)]
            seen.setdefault(setting, []).append([(r.status_code, r.headers.get("X-RateLimit-Limit")) for r in answers])
            other = limited.test_client()
            other.environ_base["REMOTE_ADDR"] = "198.51.100.9"  # per client IP
            assert other.get(doors[0]).status_code == 200
            limiter.reset()
    make_app()  # the limiter is one object: switch it back off for the other tests
    assert seen["3 per minute"] == [[(200, "3"), (200, "3"), (200, "3"), (429, "3")]] * 2
    assert seen["2 per minute"] == [[(200, "2"), (200, "2"), (429, "2"), (429, "2")]]
