"""What mining events mean: personal bests, blocks found, worker offline and
online (events and the sweep), preferences, and the event validation rules.
Events go through the real streams and consumer (real Redis, PostgreSQL)."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent, Notification, UserActivity, WorkerStatus, iso, utcnow
from webapp.services import accounts, mining, preferences

from .mining_support import drain, sample, share, xadd


def _notes(user_id: str, subtype: str | None = None) -> list[Notification]:
    query = sa.select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
    if subtype:
        query = query.where(Notification.subtype == subtype)
    return list(db.session.scalars(query))


def _activities(user_id: str) -> list[UserActivity]:
    return list(db.session.scalars(sa.select(UserActivity).where(UserActivity.user_id == user_id)
                                   .order_by(UserActivity.id)))


def _worker(name: str) -> WorkerStatus:
    db.session.expire_all()
    return db.session.get(WorkerStatus, name)


# ---- personal bests and blocks --------------------------------------------------------


def test_personal_best_raises_a_notification_and_an_activity(app, redis, make_user):
    user = make_user().user_id
    now = time.time()
    xadd(redis, "share_submitted", share(user, "attic-1", 46608917.88671861), ts=now - 5)
    xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.attic-1", "new_best": 46608917.88671861,
                                    "prev_best": 32412345.0, "timeframe": "alltime"}, ts=now - 5)
    drain()
    [note] = _notes(user)
    assert (note.category, note.subtype) == ("mining", "personal_best")
    assert note.title == "New personal best: 46.6M"
    assert "attic-1" in note.body and "32.4M" in note.body
    assert note.link == f"/miners/{user}"
    event_at = iso(datetime.fromtimestamp(now - 5, UTC))
    assert note.data == {"difficulty": 46608917.88671861, "previous_best": 32412345.0, "worker": f"{user}.attic-1",
                         "at": event_at}
    # Created when ingested (so it agrees with its id); the event's time is data.at.
    assert note.created_at.timestamp() >= now
    [activity] = _activities(user)
    assert activity.activity_type == "share_submitted"
    assert activity.data == {"personal_best": True, "difficulty": 46608917.88671861, "previous_best": 32412345.0,
                             "worker": f"{user}.attic-1", "at": event_at}
    assert abs(activity.created_at.timestamp() - (now - 5)) < 0.01  # the feed is dated when it happened


def test_a_new_best_below_the_stored_best_raises_nothing(app, redis, make_user):
    """A replayed or reordered stream (the demo's looping day, a pool that
    restarted its count) can say "new best 350K" to a miner whose profile
    shows 8.96M: no notice, no feed entry; a real new best still raises both."""
    user = make_user().user_id
    now = time.time()
    xadd(redis, "share_submitted", share(user, "s9", 8_960_000.0), ts=now - 60)
    drain()
    xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.s9", "new_best": 350_000.0,
                                    "prev_best": 290_000.0, "timeframe": "alltime"}, ts=now - 30)
    drain()
    assert _notes(user, "personal_best") == [] and _activities(user) == []
    xadd(redis, "share_submitted", share(user, "s9", 9_100_000.0), ts=now - 5)
    xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.s9", "new_best": 9_100_000.0,
                                    "prev_best": 8_960_000.0, "timeframe": "alltime"}, ts=now - 5)
    drain()
    assert [n.title for n in _notes(user, "personal_best")] == ["New personal best: 9.1M"]
    assert len(_activities(user)) == 1
    # In one batch, a "best" below an earlier one of the same batch is not one either.
    for best, at in ((9_500_000.0, now - 4), (9_200_000.0, now - 3), (9_600_000.0, now - 2)):
        xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.s9", "new_best": best,
                                        "prev_best": 9_100_000.0, "timeframe": "alltime"}, ts=at)
    drain()
    assert [n.title for n in _notes(user, "personal_best")] == [
        "New personal best: 9.1M", "New personal best: 9.5M", "New personal best: 9.6M"]


def test_personal_best_off_stores_no_notification_but_keeps_the_activity(app, redis, make_user):
    user = make_user()
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"notifications": {"personalBest": False}}))
    muted = make_user()
    accounts.update_settings(muted, preferences.SettingsPatch.model_validate(
        {"notifications": {"categories": {"mining": {"enabled": False}}}}))
    for who in (user.user_id, muted.user_id):
        xadd(redis, "share_best_diff", {"user": who, "worker": f"{who}.r", "new_best": 5000.0, "prev_best": 10.0,
                                        "timeframe": "alltime"})
    drain()
    assert _notes(user.user_id, "personal_best") == [] and _notes(muted.user_id, "personal_best") == []
    assert [a.activity_type for a in _activities(user.user_id) if a.data and a.data.get("personal_best")] == \
        ["share_submitted"]


def test_best_difficulty_counts_accepted_shares_only(app, redis):
    user, now = "bc1qrejected01", time.time()
    xadd(redis, "share_submitted", share(user, "r", 1000.0), ts=now - 3)
    xadd(redis, "share_submitted", share(user, "r", 9e9, accepted=False, reject_reason="stale"), ts=now - 2)
    xadd(redis, "share_submitted", share(user, "r", 2000.0), ts=now - 1)
    drain()
    stats = db.session.get(MinerStats, user)
    assert (stats.total_shares, stats.rejected_shares, stats.best_difficulty) == (2, 1, 2000.0)
    assert abs(stats.best_difficulty_at.timestamp() - (now - 1)) < 0.01


def test_other_timeframes_and_unregistered_miners_raise_nothing(app, redis, make_user):
    user = make_user().user_id
    xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.r", "new_best": 5.0, "prev_best": 1.0,
                                    "timeframe": "session"})
    xadd(redis, "share_best_diff", {"user": "bc1qnotregistered", "worker": "bc1qnotregistered.r",
                                    "new_best": 5.0, "prev_best": 1.0, "timeframe": "alltime"})
    xadd(redis, "share_submitted", share("bc1qnotregistered", "r", 5.0))
    stats = drain()
    assert stats.inserted == 3 and stats.notifications == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0
    assert db.session.get(MinerStats, "bc1qnotregistered").total_shares == 1  # rollups for everyone


def test_block_found_counts_notifies_the_finder_and_records_an_activity(app, redis, make_user):
    finder = make_user().user_id
    xadd(redis, "block_found", {"user": finder, "worker": f"{finder}.lucky-1", "height": 924501,
                                "hash": "0000000000000000000abc", "diff": 1.49e14, "reward": 3.125})
    xadd(redis, "block_found", {"user": finder})  # tolerant: only the finder is needed
    drain()
    assert db.session.get(MinerStats, finder).blocks_found == 2
    notes = _notes(finder, "block_found")
    assert [n.title for n in notes] == ["You found block 924,501!", "You found a block!"]
    assert {k: v for k, v in notes[0].data.items() if k != "at"} == {
        "height": 924501, "hash": "0000000000000000000abc", "worker": f"{finder}.lucky-1", "difficulty": 1.49e14}
    assert notes[0].data["at"].endswith("Z")
    assert [a.activity_type for a in _activities(finder)] == ["block_found", "block_found"]


# ---- workers ----------------------------------------------------------------------------


def test_worker_offline_once_on_disconnect_and_online_when_back(app, redis, make_user):
    user = make_user().user_id
    worker, now = f"{user}.bitaxe-1", time.time()
    xadd(redis, "miner_connected", {"user": user, "worker": worker, "useragent": "bitaxe/BM1370"}, ts=now - 900)
    xadd(redis, "hashrate_update", sample(user, "bitaxe-1", 5e11), ts=now - 600)
    drain()
    assert _notes(user) == []  # a worker's first appearance is not news
    assert _worker(worker).is_online and _worker(worker).useragent == "bitaxe/BM1370"

    xadd(redis, "miner_disconnected", {"user": user, "worker": worker, "session_duration": 300.0}, ts=now - 500)
    xadd(redis, "miner_disconnected", {"user": user, "worker": worker}, ts=now - 499)  # a repeat
    drain()
    assert _notes(user, "worker_offline") == []  # not at once: after the owner's threshold (15 min)
    assert not _worker(worker).is_online
    assert mining.alert_offline_workers(datetime.fromtimestamp(now - 499 + 14 * 60, UTC)) == {}
    assert mining.alert_offline_workers(datetime.fromtimestamp(now - 499 + 15 * 60, UTC)) == {user: [worker]}
    assert mining.alert_offline_workers(datetime.fromtimestamp(now - 499 + 16 * 60, UTC)) == {}  # once
    offline = _notes(user, "worker_offline")
    assert len(offline) == 1 and offline[0].title == "bitaxe-1 went offline"
    assert "15 minutes" in offline[0].body and offline[0].data["workers"] == [worker]

    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 100)
    drain()
    online = _notes(user, "worker_online")
    assert len(online) == 1 and online[0].title == "bitaxe-1 is back online"
    assert _worker(worker).is_online


def test_out_of_order_transitions_never_override_newer_ones(app, redis, make_user):
    """Streams are read out of order: a disconnect older than the last
    connect must not take the worker offline."""
    user = make_user().user_id
    worker, now = f"{user}.r", time.time()
    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 1000)
    drain()
    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 100)
    drain()
    xadd(redis, "miner_disconnected", {"user": user, "worker": worker}, ts=now - 500)  # older than the connect
    xadd(redis, "hashrate_update", sample(user, "r", 7e11), ts=now - 50)
    xadd(redis, "hashrate_update", sample(user, "r", 1e11), ts=now - 400)  # older sample, arrives later
    drain()
    state = _worker(worker)
    assert state.is_online and state.hashrate_1h == 7e11
    assert abs(state.last_sample_at.timestamp() - (now - 50)) < 0.01
    assert _notes(user) == []


def test_sweep_marks_silent_workers_offline_once_and_a_fresh_sample_brings_them_back(app, redis, make_user):
    user = make_user().user_id
    now = time.time()
    silent, fresh, rejoined = f"{user}.silent", f"{user}.fresh", f"{user}.rejoined"
    xadd(redis, "hashrate_update", sample(user, "silent", 1e11), ts=now - 16 * 60)
    xadd(redis, "hashrate_update", sample(user, "fresh", 2e11), ts=now - 60)
    xadd(redis, "hashrate_update", sample(user, "rejoined", 3e11), ts=now - 40 * 60)
    xadd(redis, "miner_connected", {"user": user, "worker": rejoined}, ts=now - 5 * 60)  # no sample yet: grace
    drain()
    assert mining.sweep_offline_workers() == [silent]
    assert mining.sweep_offline_workers() == []  # once
    assert not _worker(silent).is_online and _worker(fresh).is_online and _worker(rejoined).is_online
    went = _worker(silent).state_changed_at
    assert mining.alert_offline_workers(went + timedelta(minutes=15)) == {user: [silent]}
    [note] = _notes(user, "worker_offline")
    assert note.title == "silent went offline"

    xadd(redis, "hashrate_update", sample(user, "silent", 1.5e11), ts=time.time())
    drain()
    assert _worker(silent).is_online
    [back] = _notes(user, "worker_online")
    assert back.data["reason"] == "sample"


def test_sweep_job_runs_on_a_real_rq_worker(app, redis, make_user):
    from rq import Queue

    from .builders import run_jobs

    user = make_user().user_id
    xadd(redis, "hashrate_update", sample(user, "old", 1e11), ts=time.time() - 3600)
    drain()
    job = Queue("default", connection=app.extensions["redis_raw"]).enqueue("jobs.mining.sweep_offline_workers")
    run_jobs(app)
    assert job.return_value() == 1
    assert not _worker(f"{user}.old").is_online


def test_worker_status_respects_the_worker_status_toggle(app, redis, make_user):
    user = make_user()
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"notifications": {"workerStatus": False}}))
    worker = f"{user.user_id}.r"
    xadd(redis, "miner_connected", {"user": user.user_id, "worker": worker}, ts=time.time() - 60)
    drain()
    xadd(redis, "miner_disconnected", {"user": user.user_id, "worker": worker}, ts=time.time())
    drain()
    assert not _worker(worker).is_online
    mining.alert_offline_workers(utcnow() + timedelta(minutes=20))
    assert _notes(user.user_id, "worker_offline") == []


def test_purge_deletes_only_events_older_than_the_retention(app, redis):
    now = time.time()
    xadd(redis, "share_submitted", share("bc1qold0001", "r", 1.0), ts=now - 91 * 86400)
    xadd(redis, "share_submitted", share("bc1qold0001", "r", 2.0), ts=now - 89 * 86400)
    drain()
    assert mining.purge_old_events() == 1
    assert [e.data["sdiff"] for e in db.session.scalars(sa.select(MiningEvent))] == [2.0]
    assert db.session.get(MinerStats, "bc1qold0001").total_shares == 2  # rollups stay


# ---- validation and formatting ---------------------------------------------------------


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"ts": "1763078400", "data": "{}"}, "unknown or missing event"),
        ({"event": "share_submitted", "data": "{}"}, "ts must be"),
        ({"event": "share_submitted", "ts": "inf", "data": "{}"}, "ts must be"),
        ({"event": "share_submitted", "ts": "1000", "data": "{}"}, "ts must be"),
        ({"event": "share_submitted", "ts": str(time.time() + 3 * 86400), "data": "{}"}, "ts must be"),
        ({"event": "share_submitted", "ts": "1763078400"}, "data field is missing"),
        ({"event": "share_submitted", "ts": "1763078400", "data": '{"user": "u"}'}, "data.worker is missing"),
        ({"event": "share_submitted", "ts": "1763078400",
          "data": '{"user": "u", "worker": "u.r", "sdiff": 1, "accepted": "yes"}'}, "data.accepted must be"),
        ({"event": "share_submitted", "ts": "1763078400",
          "data": '{"user": "u", "worker": "u.r", "sdiff": -1, "accepted": true}'}, "data.sdiff must be"),
        ({"event": "share_submitted", "ts": "1763078400",
          "data": '{"user": "u", "worker": "u.r", "sdiff": 1e999, "accepted": true}'}, "data.sdiff must be"),
        ({"event": "share_submitted", "ts": "1763078400",
          "data": '{"user": "u", "worker": "u.r", "sdiff": true, "accepted": true}'}, "data.sdiff must be"),
        ({"event": "share_submitted", "ts": "1763078400",
          "data": '{"user": "", "worker": "u.r", "sdiff": 1, "accepted": true}'}, "data.user must be"),
        ({"event": "hashrate_update", "ts": "1763078400",
          "data": '{"user": "u", "worker": "u.r", "hashrate_1h": null}'}, "data.hashrate_1h must be"),
        ({"event": "share_submitted", "ts": "1763078400", "source": "s" * 65, "data": "{}"}, "source"),
        ({"event": "share_submitted", "ts": "1763078400",
          "data": '{"user": "u", "worker": "u.r", "sdiff": 1, "accepted": true, "x": "\\ud800"}'}, "Unicode"),
    ],
)
def test_parse_entry_rejects_malformed_entries(fields, reason):
    stream = f"mining:{fields.get('event', 'share_submitted')}"
    with pytest.raises(mining.MalformedEvent, match=reason.replace(".", r"\.")):
        mining.parse_entry(stream, "1-0", fields)


def test_parse_entry_accepts_the_shared_day_shapes_and_extra_fields():
    ev = mining.parse_entry("mining:share_submitted", "1700000000000-0", {
        b"event": b"share_submitted", b"ts": b"1763078420.166747", b"source": b"hosted", b"extra": b"kept",
        b"data": b'{"user":"bc1q","worker":"bc1q.rig","diff":4096,"sdiff":16089.3,"accepted":false,'
                 b'"reject_reason":"stale","new_field":1}'})
    assert (ev.user, ev.worker, ev.accepted, ev.source) == ("bc1q", "bc1q.rig", False, "hosted")
    assert ev.ts == datetime(2025, 11, 14, 0, 0, 20, 166747, tzinfo=UTC)
    assert ev.data["new_field"] == 1
    network = mining.parse_entry("mining:new_block_network", "1-0", {
        "event": "new_block_network", "ts": "1763078664.29", "data": '{"height": 924501, "hash": "00ab"}'})
    assert network.user is None and network.source is None


def test_number_formats():
    assert mining.format_difficulty(46608917.88671861) == "46.6M"
    assert mining.format_difficulty(950) == "950"
    assert mining.format_difficulty(16089.3) == "16.1K"
    assert mining.format_difficulty(999_700) == "1M"
    assert mining.format_difficulty(None) == "0"
    assert mining.format_hashrate(575899027258.6) == "576 GH/s"
    assert mining.format_hashrate(2353634916542.8) == "2.35 TH/s"
    assert mining.format_hashrate(1500) == "1.5 kH/s"
    assert mining.format_hashrate(0) == "0 H/s"


def test_hashrate_counts_connected_workers_sampled_within_15_minutes(app, redis, make_user):
    from webapp.services import hashrate

    user = make_user().user_id
    now = time.time()
    xadd(redis, "hashrate_update", sample(user, "a", 1e12), ts=now - 60)
    xadd(redis, "hashrate_update", sample(user, "b", 2e12), ts=now - 120)
    xadd(redis, "hashrate_update", sample(user, "stale", 4e12), ts=now - 16 * 60)
    xadd(redis, "hashrate_update", sample(user, "gone", 8e12), ts=now - 60)
    drain()
    xadd(redis, "miner_disconnected", {"user": user, "worker": f"{user}.gone"}, ts=now - 30)
    drain()
    assert hashrate.hashrate_by_user([user], utcnow())[user] == (3e12, 2)
    later = utcnow() + timedelta(minutes=16)
    assert hashrate.hashrate_by_user([user], later)[user] == (0.0, 0)


def test_the_profiles_personal_bests_only_go_up(app, redis, make_user):
    """A replayed day's lower "bests" are stored (one row per stream entry)
    but the profile's list and chart show records only."""
    user = make_user().user_id
    now = time.time()
    for offset, best in ((50, 100_000.0), (40, 300_000.0), (30, 50_000.0), (20, 200_000.0), (10, 400_000.0)):
        xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.r", "new_best": best, "prev_best": 1.0,
                                        "timeframe": "alltime"}, ts=now - offset)
        drain()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MiningEvent)
                             .where(MiningEvent.user_id == user)) == 5
    assert [b["difficulty"] for b in mining.recent_personal_bests(user)] == [400_000.0, 300_000.0, 100_000.0]
    assert [value for _, value in mining.personal_best_history(user)] == [100_000.0, 300_000.0, 400_000.0]
    assert [n.title for n in _notes(user, "personal_best")] == [
        "New personal best: 100K", "New personal best: 300K", "New personal best: 400K"]
