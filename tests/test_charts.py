"""Chart data: the JSON endpoints behind the profile's and the coop
dashboard's charts (values, ranges, privacy, bad input)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine

from webapp.extensions import db
from webapp.models import CoopHashrateSample, MiningEvent, UserSettings
from webapp.services import hashrate

NOW = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
_seq = iter(range(10**9))


def sample(user, rig: str, at: datetime, rate: float) -> None:
    db.session.add(MiningEvent(stream="mining:hashrate_update", entry_id=f"{next(_seq)}-0", event="hashrate_update",
                               ts=at, user_id=user.user_id, worker=f"{user.user_id}.{rig}",
                               data={"user": user.user_id, "worker": f"{user.user_id}.{rig}", "hashrate_1h": rate}))


def best(user, at: datetime, value: float) -> None:
    db.session.add(MiningEvent(stream="mining:share_best_diff", entry_id=f"{next(_seq)}-0", event="share_best_diff",
                               ts=at, user_id=user.user_id, worker=f"{user.user_id}.rig",
                               data={"new_best": value, "prev_best": 0, "timeframe": "alltime"}))


def set_privacy(user, **privacy) -> None:
    row = db.session.get(UserSettings, user.user_id) or UserSettings(user_id=user.user_id)
    row.privacy = {**(row.privacy or {}), **privacy}
    db.session.add(row)


def series(body, key):
    return next(s for s in body["series"] if s["key"] == key)["values"]


def at_point(body, moment: datetime) -> int:
    return body["timestamps"].index(int(moment.timestamp()) // body["step"] * body["step"])


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def test_time_grid_covers_the_range_in_steps():
    grid = hashrate.time_grid(hashrate.RANGES["1h"], NOW)
    assert len(grid) == 61 and grid[-1] == int(NOW.timestamp()) // 60 * 60
    assert all(b - a == 60 for a, b in zip(grid, grid[1:], strict=False))
    assert len(hashrate.time_grid(hashrate.RANGES["30d"], NOW)) == 121


def test_miner_hashrate_sums_workers_and_holds_a_sample_until_offline(client, make_user, frozen):
    user = make_user()
    sample(user, "a", NOW - timedelta(minutes=30), 2e12)
    sample(user, "b", NOW - timedelta(minutes=30), 1e12)
    sample(user, "a", NOW - timedelta(minutes=20), 4e12)  # b sends nothing more: offline after 15 min
    db.session.commit()
    resp = client.get(f"/api/public/miners/{user.user_id}/hashrate?range=1h")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["range"] == "1h" and body["unit"] == "H/s" and body["step"] == 60 and body["scale"] == "linear"
    assert body["end"] == "2026-11-20T12:00:30Z" and body["start"] == "2026-11-20T11:00:30Z"
    assert len(body["timestamps"]) == 61
    total, rig_a, rig_b = series(body, "total"), series(body, f"worker:{user.user_id}.a"), series(body, f"worker:{user.user_id}.b")
    i30, i20 = at_point(body, NOW - timedelta(minutes=30)), at_point(body, NOW - timedelta(minutes=20))
    assert total[i30 - 1] == 0.0 and rig_a[i30 - 1] is None
    assert total[i30] == 3e12 and total[i30 + 5] == 3e12
    assert total[i20] == 5e12  # a's new sample, b still held (10 min old)
    assert rig_b[i30 + 15] == 1e12 and rig_b[i30 + 16] is None
    assert total[i30 + 16] == 4e12
    assert rig_a[i20 + 15] == 4e12 and rig_a[i20 + 16] is None and total[-1] == 0.0
    labels = {s["key"]: s["label"] for s in body["series"]}
    assert labels[f"worker:{user.user_id}.a"] == "a" and labels["total"] == "All workers"


def test_wider_ranges_average_samples_per_point(client, make_user, frozen):
    user = make_user()
    for minutes, rate in ((170, 1e12), (150, 3e12), (60 * 24 * 6, 5e12), (60 * 24 * 20, 7e12), (60 * 24 * 40, 9e12)):
        sample(user, "a", NOW - timedelta(minutes=minutes), rate)
    db.session.commit()
    week = client.get(f"/api/public/miners/{user.user_id}/hashrate?range=7d").get_json()
    assert week["step"] == 3600 and len(week["timestamps"]) == 169
    known = [v for v in series(week, "total") if v]
    assert known == [5e12, 2e12]  # the hour two hours ago averages 1 and 3 TH/s
    month = client.get(f"/api/public/miners/{user.user_id}/hashrate?range=30d").get_json()
    assert [v for v in series(month, "total") if v] == [7e12, 5e12, 2e12]  # 40 days ago is out of range
    default = client.get(f"/api/public/miners/{user.user_id}/hashrate").get_json()
    assert default["range"] == "24h" and default["step"] == 300


@pytest.mark.parametrize("bad", ["2h", "", "24H", "1h;drop", "30d30d"])
def test_a_bad_range_is_400(client, make_user, bad):
    user = make_user()
    for path in (f"/api/public/miners/{user.user_id}/hashrate", f"/api/public/miners/{user.user_id}/best-difficulty"):
        resp = client.get(path, query_string={"range": bad})
        assert resp.status_code == 400, (path, bad)
        assert resp.get_json()["error"]["code"] == "validation_error"
        assert "range" in resp.get_json()["error"]["message"] + str(resp.get_json()["error"].get("details"))


def test_private_profile_charts_are_404_except_to_their_owner(client, make_user, login_as):
    user = make_user()
    set_privacy(user, publicProfile=False)
    db.session.commit()
    missing = client.get("/api/public/miners/nobody-here/hashrate")
    for path in (f"/api/public/miners/{user.user_id}/hashrate", f"/api/public/miners/{user.user_id}/best-difficulty"):
        resp = client.get(path)
        assert resp.status_code == 404 and resp.get_data() == missing.get_data()
    login_as(user)
    assert client.get(f"/api/public/miners/{user.user_id}/hashrate").status_code == 200


def test_best_difficulty_holds_each_record_over_the_range(client, make_user, frozen):
    user = make_user()
    best(user, NOW - timedelta(days=3), 16089.3)
    best(user, NOW - timedelta(hours=5), 18674.3)
    best(user, NOW - timedelta(hours=1), 4363291.8)
    db.session.commit()
    body = client.get(f"/api/public/miners/{user.user_id}/best-difficulty?range=24h").get_json()
    assert body["scale"] == "log" and body["unit"] == "" and body["step"] is None
    start = int((NOW - timedelta(hours=24)).timestamp())
    assert body["timestamps"] == [start, int((NOW - timedelta(hours=5)).timestamp()),
                                  int((NOW - timedelta(hours=1)).timestamp()), int(NOW.timestamp())]
    assert series(body, "best") == [16089.3, 18674.3, 4363291.8, 4363291.8]
    assert client.get(f"/api/public/miners/{make_user().user_id}/best-difficulty").get_json()["timestamps"] == []


def test_coop_chart_combined_and_members_with_hidden_names(client, make_user, make_coop, auth_headers, frozen):
    shy = make_user(display_name="Shy Miner")
    coop, admin, (member, _) = make_coop(make_user(display_name="Admin Ann"), members=[make_user(display_name="Bob"), shy])
    set_privacy(shy, showInCoopRankings=False)
    sample(admin, "a", NOW - timedelta(minutes=10), 1e12)
    sample(member, "a", NOW - timedelta(minutes=10), 2e12)
    sample(shy, "a", NOW - timedelta(minutes=10), 4e12)
    db.session.add(CoopHashrateSample(cooperative_id=coop.id, total_hashrate=7e12, online_count=3,
                                      computed_at=NOW - timedelta(minutes=9)))
    db.session.commit()
    resp = client.get(f"/api/coops/{coop.id}/hashrate/history?range=1h", headers=auth_headers(member))
    assert resp.status_code == 200
    body = resp.get_json()
    i = at_point(body, NOW - timedelta(minutes=9))
    assert series(body, "combined")[i] == 7e12 and series(body, "combined")[0] is None
    labels = [(s["key"], s["label"]) for s in body["series"]]
    assert labels == [("combined", "Coop combined"), (f"member:{admin.user_id}", "Admin Ann"),
                      (f"member:{member.user_id}", "Bob"), ("member-1", "a member")]
    assert series(body, "member-1")[i] == 4e12
    assert shy.user_id not in resp.get_data(as_text=True) and "Shy Miner" not in resp.get_data(as_text=True)
    # The hidden member sees their own name.
    own = client.get(f"/api/coops/{coop.id}/hashrate/history", headers=auth_headers(shy)).get_json()
    assert ("member:" + shy.user_id, "Shy Miner") in [(s["key"], s["label"]) for s in own["series"]]


def test_coop_chart_is_for_members_only(client, make_user, make_coop, auth_headers):
    coop, admin, _ = make_coop()
    assert client.get(f"/api/coops/{coop.id}/hashrate/history").status_code == 401
    assert client.get(f"/api/coops/{coop.id}/hashrate/history", headers=auth_headers(make_user())).status_code == 403
    assert client.get("/api/coops/999999/hashrate/history", headers=auth_headers(make_user())).status_code == 404
    bad = client.get(f"/api/coops/{coop.id}/hashrate/history?range=week", headers=auth_headers(admin))
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "validation_error"


def test_chart_routes_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/public/miners/{user_id}/hashrate", "/api/public/miners/{user_id}/best-difficulty",
                 "/api/coops/{coop_id}/hashrate/history"):
        assert path in paths, path
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert params["range"]["schema"]["enum"] == ["1h", "24h", "7d", "30d"]


def test_coop_history_is_full_for_two_days_then_hourly_for_a_month(app, make_coop, redis):
    from webapp.extensions import redis_key
    from webapp.services import coop_hashrate

    coop, _, _ = make_coop()
    now = NOW.replace(minute=2, second=0)
    ages = [timedelta(hours=1), timedelta(hours=50), timedelta(days=32)]
    for age in ages:
        for minutes in range(0, 60, 5):  # one hour of the 5-minute job
            db.session.add(CoopHashrateSample(cooperative_id=coop.id, total_hashrate=1.0, online_count=1,
                                              computed_at=now - age + timedelta(minutes=minutes)))
    db.session.commit()
    redis.delete(redis_key("coop", "history", "purged"))
    coop_hashrate.aggregate_all(now=now)
    kept = db.session.scalars(sa.select(CoopHashrateSample.computed_at).where(
        CoopHashrateSample.cooperative_id == coop.id).order_by(CoopHashrateSample.computed_at)).all()
    recent = [at for at in kept if at >= now - timedelta(hours=2)]
    older = [at for at in kept if at < now - timedelta(hours=2)]
    assert len(recent) == 12 + 1  # every sample of the last hour, and this run's
    assert [at.minute for at in older] == [2]  # 50 h ago: the first run of that hour only; 32 days: gone


def test_history_is_cached_for_the_current_point(client, make_user, frozen, redis):
    user = make_user()
    sample(user, "a", NOW - timedelta(minutes=3), 1e12)
    db.session.commit()
    first = series(client.get(f"/api/public/miners/{user.user_id}/hashrate?range=1h").get_json(), "total")
    assert first[-1] == 1e12
    keys = redis.keys("*chart:hashrate:1h:*" + user.user_id)
    assert len(keys) == 1 and 0 < redis.ttl(keys[0]) <= 60  # at most one step (60 s)
    sample(user, "b", NOW - timedelta(minutes=2), 2e12)
    db.session.commit()
    cached = series(client.get(f"/api/public/miners/{user.user_id}/hashrate?range=1h").get_json(), "total")
    assert cached == first  # served from the cache
    redis.delete(*keys)
    fresh = series(client.get(f"/api/public/miners/{user.user_id}/hashrate?range=1h").get_json(), "total")
    assert fresh[-1] == 3e12
