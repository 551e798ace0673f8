"""The anonymous public profile cached in Redis (services/profile_cache.py):
a request between two changes reads no database, and after every kind of
change that feeds it (the miner's own rows, and anything that moves a
leaderboard rank) the next request answers what the database holds, also
when a profile read before a change is written to the cache after it."""
from __future__ import annotations

import json
import random

import pytest
import redis as redis_lib

from webapp.extensions import db, redis_key
from webapp.models import MinerStats
from webapp.services import accounts, demo, preferences, profile_cache, profiles, your_data

from .builders import PASSWORD, bearer, make_user, run_concurrently, sql_statements
from .mining_support import drain, share, xadd


def _path(user):
    return f"/api/public/miners/{user.user_id}"


def _seen(client, user):
    """The anonymous answer: (status, body or None)."""
    response = client.get(_path(user))
    return response.status_code, response.get_json() if response.status_code == 200 else None


def _fresh(user):
    """What the database says an anonymous visitor sees (no cache)."""
    try:
        return 200, profiles._public_profile(user.user_id, None)
    finally:
        db.session.rollback()  # ends the read's transaction (SQLite); the objects stay attached


def _edit(client, user, **changes):
    response = client.patch("/api/profile", json=changes, headers=bearer(user))
    assert response.status_code == 200, response.get_json()


def _best(user, value):
    db.session.merge(MinerStats(user_id=user.user_id, best_difficulty=value, total_shares=1))
    db.session.commit()


def _privacy(user, **privacy):
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"privacy": privacy}))


def _rank(client, user):
    return _seen(client, user)[1].get("leaderboard_rank")


def test_a_request_between_changes_reads_no_database(app, client):
    miner = make_user(country_code="DE")
    _best(miner, 5e9)
    path = _path(miner)
    first = client.get(path)
    with sql_statements() as seen:
        again = client.get(path)
    assert seen == []
    assert again.status_code == first.status_code == 200
    assert again.get_data() == first.get_data() and again.headers["ETag"] == first.headers["ETag"]
    assert again.get_json()["leaderboard_rank"] == 1 and again.get_json()["country_code"] == "DE"
    # A logged-in viewer's answer depends on their standing: always read.
    viewer = make_user()
    headers = bearer(viewer)
    client.get(path, headers=headers)
    with sql_statements() as seen:
        assert client.get(path, headers=headers).status_code == 200
    assert len(seen) == 1


def test_the_miners_own_changes_show_in_the_next_request(app, client):
    miner = make_user(country_code="DE", display_name="Before")
    _seen(client, miner)

    _edit(client, miner, display_name="After", visibility={"bio": "public"}, bio="**solo** since 2021")
    status, body = _seen(client, miner)
    assert (status, body["display_name"], body["bio"]) == (200, "After", "**solo** since 2021")
    assert "<strong>solo</strong>" in body["bio_html"]
    assert (status, body) == _fresh(miner)

    _privacy(miner, showCountryFlag=False)
    assert "country_code" not in _seen(client, miner)[1]
    _privacy(miner, showOnLeaderboard=False)
    assert "leaderboard_rank" not in _seen(client, miner)[1]
    _privacy(miner, publicProfile=False)
    assert _seen(client, miner) == (404, None)  # at once: the cached answer is never served again
    _privacy(miner, publicProfile=True, showOnLeaderboard=True)
    assert _seen(client, miner) == _fresh(miner)


def test_every_change_that_moves_a_rank_shows_in_the_next_request(app, client, redis):
    miner, rival = make_user(), make_user()
    _best(miner, 5e9)
    _best(rival, 1e9)
    assert _rank(client, miner) == 1

    # The rival's best rises past the miner's through the ingest (a Core upsert).
    xadd(redis, "share_submitted", share(rival.user_id, "rig", 7e9))
    drain()
    assert _rank(client, miner) == 2
    # The rival leaves the leaderboard, then comes back.
    _privacy(rival, showOnLeaderboard=False)
    assert _rank(client, miner) == 1
    _privacy(rival, showOnLeaderboard=True)
    assert _rank(client, miner) == 2
    # An address that mined before its miner registered joins the ranking with its account.
    early = "bc1qminedbeforeregistering000001"
    db.session.add(MinerStats(user_id=early, best_difficulty=9e9, total_shares=1))
    db.session.commit()
    assert _rank(client, miner) == 2  # not a user yet: not ranked
    make_user(early)
    assert _rank(client, miner) == 3
    # An account deleted (Core DELETEs) leaves it.
    your_data.delete_account(rival, PASSWORD)
    assert _rank(client, miner) == 2
    # The demo reset deletes every rollup (a Core DELETE).
    demo.reset_mining_data()
    assert _rank(client, miner) == 1
    assert _seen(client, miner) == _fresh(miner)


def test_a_batch_that_raises_no_registered_best_keeps_the_ranks(app, client, redis):
    miner = make_user()
    xadd(redis, "share_submitted", share(miner.user_id, "rig", 5e9))
    drain()
    _seen(client, miner)
    ranks = redis.get(redis_key("profile-ranks"))
    xadd(redis, "share_submitted", share(miner.user_id, "rig", 1e3))  # below the best
    xadd(redis, "share_submitted", share("bc1qnotregisteredatall0000001", "rig", 8e9))  # no account
    drain()
    assert redis.get(redis_key("profile-ranks")) == ranks
    path = _path(miner)
    with sql_statements() as seen:
        assert client.get(path).get_json()["leaderboard_rank"] == 1
    assert seen == []
    xadd(redis, "share_submitted", share(miner.user_id, "rig", 6e9))  # a new best
    drain()
    assert redis.get(redis_key("profile-ranks")) != ranks


def test_a_profile_read_before_a_change_and_cached_after_it_is_never_served(app, client):
    """The race the generations exist for: a reader reads the profile, a
    change commits and forgets, then the reader's slow ``fill`` lands; once
    for the miner's own generation and once for the shared one (ranks)."""
    miner, rival = make_user(display_name="Old"), make_user()
    _best(miner, 5e9)
    for change, check in (
        (lambda: _edit(client, miner, display_name="New"),
         lambda body: body["display_name"] == "New"),
        (lambda: _best(rival, 9e9), lambda body: body["leaderboard_rank"] == 2),
    ):
        profile_cache.CACHE.forget([miner.user_id])  # the previous check's answer
        cached, generation = profile_cache.CACHE.lookup(miner.user_id, profile_cache.ANONYMOUS)
        assert cached is None and generation is not None
        stale = profiles._public_profile(miner.user_id, None)
        db.session.rollback()
        change()
        profile_cache.CACHE.fill(miner.user_id, profile_cache.ANONYMOUS, generation, json.dumps(stale))
        status, body = _seen(client, miner)
        assert check(body) and not check(stale)
        assert (status, body) == _fresh(miner)


def test_a_transaction_that_wrote_what_it_reads_caches_nothing(app, client):
    """A read inside the transaction that changed the profile sees that
    change; it is not cached, since the transaction may yet roll back."""
    miner = make_user(display_name="Kept")
    miner.display_name = "RolledBack"
    db.session.flush()
    assert profiles.public_profile(miner.user_id)["display_name"] == "RolledBack"
    db.session.rollback()
    assert _seen(client, miner)[1]["display_name"] == "Kept"


def test_the_cache_expires_and_an_expired_hash_brings_no_old_generation_back(app, client, redis):
    miner = make_user(display_name="First")
    _seen(client, miner)
    ttl = redis.ttl(redis_key("profile", miner.user_id))
    assert 0 < ttl <= app.config["PROFILE_CACHE_TTL"] == 300
    _, generation = profile_cache.CACHE.lookup(miner.user_id, "other")
    redis.delete(redis_key("profile", miner.user_id))  # expired meanwhile
    _edit(client, miner, display_name="Second")
    profile_cache.CACHE.fill(miner.user_id, profile_cache.ANONYMOUS, generation, '{"display_name": "First"}')
    assert _seen(client, miner)[1]["display_name"] == "Second"


def test_without_redis_the_profile_comes_from_the_database(app, client, monkeypatch):
    miner = make_user(display_name="Direct")
    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, decode_responses=True)
    monkeypatch.setitem(app.extensions, "redis", down)
    assert profile_cache.CACHE.lookup(miner.user_id, profile_cache.ANONYMOUS) == (None, None)
    assert profiles.public_profile(miner.user_id)["display_name"] == "Direct"
    profile_cache.CACHE.forget([miner.user_id], shared=True)  # logged, not raised


@pytest.mark.slow
def test_concurrent_changes_and_requests_end_on_the_database_answer(app):
    """Writers in threads (names, privacy, bests) while readers ask for the
    anonymous profiles: once the writers stop, every answer is the
    database's."""
    miners = [make_user() for _ in range(3)]
    for i, miner in enumerate(miners):
        _best(miner, 1e9 * (i + 1))
    ids = [m.user_id for m in miners]
    rng = random.Random(11)

    def write():
        user = db.session.get(type(miners[0]), rng.choice(ids))
        action = rng.random()
        if action < 0.3:
            user.display_name = f"Name{rng.randrange(1000)}"
            db.session.commit()
        elif action < 0.6:
            _privacy(user, showOnLeaderboard=rng.random() < 0.5, showCountryFlag=rng.random() < 0.5)
        else:
            _best(user, rng.uniform(1e9, 5e9))

    def read():
        try:
            profiles.public_profile(rng.choice(ids))
        except profiles.NotFound:
            pass

    assert run_concurrently(app, [write] * 2 + [read] * 3, seconds=4) == []
    for uid in ids:
        cached = profiles.public_profile(uid)
        db.session.remove()
        assert cached == profiles._public_profile(uid, None)


def test_the_profile_comes_in_the_rate_limit_hits_round_trip(make_app, app, monkeypatch):
    """``prefetch``: the per-address rate-limit hit and the cached profile
    are one Redis round trip; the answer is still the current one, the hit
    still counts and the limit still refuses."""
    from webapp.extensions import limiter

    miner = make_user(display_name="Rider")
    path = _path(miner)
    limited = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="5 per minute",
                       RATELIMIT_STORAGE_URI="webapp+" + app.config["REDIS_URL"])
    sent = []
    original = redis_lib.connection.Connection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    viewer_headers = bearer(make_user())
    with limited.app_context():
        limiter.reset()
        client = limited.test_client()
        client.get(path)  # fills the cache
        monkeypatch.setattr(redis_lib.connection.Connection, "send_packed_command", counting)
        first, again = client.get(path), client.get(path)
        viewer = client.get(path, headers=viewer_headers)
        monkeypatch.undo()
        _edit(client, miner, display_name="Rerider")
        changed, refused = client.get(path), client.get(path)
        limiter.reset()
    make_app()  # the limiter is one object: switch it back off for the other tests
    wire = [c if isinstance(c, bytes) else b"".join(c) for c in sent]
    anonymous, logged_in = wire[:2], wire[2:]
    assert len(anonymous) == 2 and all(b":profile:" in c for c in anonymous), anonymous  # one per request
    # A logged-in viewer's answer is their own: the public one is not read for them.
    assert viewer.status_code == 200 and logged_in and not any(b":profile:" in c for c in logged_in), logged_in
    assert first.get_json()["display_name"] == again.get_json()["display_name"] == "Rider"
    assert [r.headers["X-RateLimit-Remaining"] for r in (first, again, viewer, changed)] == ["3", "2", "1", "0"]
    assert changed.get_json()["display_name"] == "Rerider"
    assert refused.status_code == 429
