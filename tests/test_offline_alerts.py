"""Worker-offline notices a miner can live with (issue 11 §3): the owner's
threshold, muted workers, one notice per worker per hour, one notice for
workers that drop together, and nothing for a worker back in time.
Events go through the real streams and consumer (Redis, PostgreSQL)."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Notification, WorkerStatus
from webapp.services import accounts, mining, preferences

from .mining_support import drain, sample, xadd


def _offline_notes(user_id: str) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Notification).where(
        Notification.user_id == user_id, Notification.subtype.in_(("worker_offline", "worker_online")))
        .order_by(Notification.id)))


def _down(user_id: str, rig: str, at: datetime) -> str:
    worker = f"{user_id}.{rig}"
    row = db.session.get(WorkerStatus, worker) or WorkerStatus(worker=worker, user_id=user_id)
    row.is_online, row.state_changed_at, row.last_seen_at = False, at, at
    db.session.add(row)
    db.session.commit()
    return worker


def _up(worker: str, at: datetime) -> None:
    row = db.session.get(WorkerStatus, worker)
    row.is_online, row.state_changed_at = True, at
    db.session.commit()


def _patch(user, **values) -> None:
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"notifications": values}))


def test_a_worker_back_within_the_threshold_raises_nothing(app, redis, make_user):
    user = make_user().user_id
    worker, now = f"{user}.bitaxe", time.time()
    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 1200)
    xadd(redis, "hashrate_update", sample(user, "bitaxe", 5e11), ts=now - 1100)
    drain()
    xadd(redis, "miner_disconnected", {"user": user, "worker": worker}, ts=now - 1000)
    drain()
    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 1000 + 10 * 60)  # back after 10 min
    drain()
    assert mining.alert_offline_workers(datetime.fromtimestamp(now + 3600, UTC)) == {}
    assert _offline_notes(user) == []  # neither "went offline" nor "back online"


def test_the_owners_threshold_and_muted_workers(app, make_user):
    owner = make_user()
    _patch(owner, worker_offline={"after_minutes": 45, "muted_workers": ["test-rig"]})
    t0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    rig = _down(owner.user_id, "garage-s9", t0)
    _down(owner.user_id, "test-rig", t0)
    assert mining.alert_offline_workers(t0 + timedelta(minutes=44)) == {}
    assert mining.alert_offline_workers(t0 + timedelta(minutes=45)) == {owner.user_id: [rig]}
    [note] = _offline_notes(owner.user_id)
    assert note.title == "garage-s9 went offline" and "45 minutes" in note.body
    assert note.data["at"] == "2026-11-30T03:00:00Z" and note.data["workers"] == [rig]
    assert note.group_key == f"worker_offline:{owner.user_id}"
    assert mining.alert_offline_workers(t0 + timedelta(hours=5)) == {}  # muted for good, the other told once


def test_flapping_worker_gets_one_notice_an_hour(app, make_user):
    owner = make_user()
    t0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    rig = _down(owner.user_id, "flappy", t0)
    assert mining.alert_offline_workers(t0 + timedelta(minutes=15)) == {owner.user_id: [rig]}
    _up(rig, t0 + timedelta(minutes=20))
    _down(owner.user_id, "flappy", t0 + timedelta(minutes=25))
    # Down again for 15 min, but told 25 min ago: held back until an hour has passed.
    assert mining.alert_offline_workers(t0 + timedelta(minutes=40)) == {}
    assert mining.alert_offline_workers(t0 + timedelta(minutes=74)) == {}
    assert mining.alert_offline_workers(t0 + timedelta(minutes=75)) == {owner.user_id: [rig]}
    assert [n.subtype for n in _offline_notes(owner.user_id)] == ["worker_offline", "worker_offline"]


def test_workers_dropping_together_make_one_notice(app, make_user):
    owner, other = make_user(), make_user()
    t0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    rigs = [_down(owner.user_id, f"rig-{i}", t0 + timedelta(seconds=i)) for i in range(3)]
    theirs = _down(other.user_id, "solo", t0)
    assert mining.alert_offline_workers(t0 + timedelta(minutes=16)) == {owner.user_id: rigs, other.user_id: [theirs]}
    [note] = _offline_notes(owner.user_id)
    assert note.title == "3 workers offline"
    assert note.body == "rig-0, rig-1 and rig-2 went offline."
    assert note.data["workers"] == rigs
    assert [n.title for n in _offline_notes(other.user_id)] == ["solo went offline"]


def test_back_online_is_told_only_after_an_announced_outage(app, redis, make_user):
    user = make_user().user_id
    worker, now = f"{user}.r", time.time()
    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 4000)
    drain()
    xadd(redis, "miner_disconnected", {"user": user, "worker": worker}, ts=now - 3000)
    drain()
    assert mining.alert_offline_workers(datetime.fromtimestamp(now - 3000 + 16 * 60, UTC)) == {user: [worker]}
    xadd(redis, "miner_connected", {"user": user, "worker": worker}, ts=now - 100)
    drain()
    assert [n.subtype for n in _offline_notes(user)] == ["worker_offline", "worker_online"]
