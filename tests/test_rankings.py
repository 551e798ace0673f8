"""Rankings (API.md "Coop governance and discovery" → Rankings): the coop's
own leaderboard honours showInCoopRankings; the public leaderboard lists
miners shown on it, ties share a rank, keyset pages."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent
from webapp.services import accounts, preferences


def _best(user, value):
    db.session.merge(MinerStats(user_id=user.user_id, best_difficulty=value, total_shares=1))
    db.session.commit()


def _hide(user, **privacy):
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"privacy": privacy}))


def _share(user, sdiff, at):
    db.session.add(MiningEvent(stream="mining:test", entry_id=f"{user.user_id[-6:]}-{sdiff}-{at.timestamp()}",
                               event="share_submitted", ts=at, user_id=user.user_id, worker=f"{user.user_id}.rig",
                               accepted=True, data={"sdiff": sdiff}))
    db.session.commit()


def test_the_coop_leaderboard_ranks_members_and_hides_those_who_ask(client, make_coop, auth_headers):
    coop, admin, (shy, bold) = make_coop(members=2)
    _best(admin, 5e9)
    _best(shy, 9e9)
    _best(bold, 5e9)
    _hide(shy, showInCoopRankings=False)
    answer = client.get(f"/api/coops/{coop.id}/leaderboard?metric=best_difficulty", headers=auth_headers(bold))
    assert answer.status_code == 200
    entries = answer.get_json()["entries"]
    # The hidden member is counted but neither ranked nor measured: 9e9 would name them.
    assert entries[-1] == {"rank": None, "user_id": None, "display_name": "a member", "value": None, "me": False}
    assert {(e["rank"], e["user_id"], e["value"]) for e in entries[:2]} == {(1, admin.user_id, 5e9),
                                                                             (1, bold.user_id, 5e9)}
    assert "9000000000" not in answer.get_data(as_text=True)
    assert [e["me"] for e in entries if e["user_id"] == bold.user_id] == [True]
    # The hidden member sees their own name.
    own = client.get(f"/api/coops/{coop.id}/leaderboard?metric=best_difficulty", headers=auth_headers(shy))
    assert own.get_json()["entries"][0]["user_id"] == shy.user_id
    assert client.get(f"/api/coops/{coop.id}/leaderboard?metric=luck", headers=auth_headers(bold)).status_code == 400


def test_shares_in_the_last_24_hours(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    now = datetime.now(UTC)
    for i in range(3):
        _share(member, 1000 + i, now - timedelta(hours=1))
    _share(admin, 10, now - timedelta(hours=30))  # too old
    entries = client.get(f"/api/coops/{coop.id}/leaderboard?metric=shares_24h",
                         headers=auth_headers(admin)).get_json()["entries"]
    assert [(e["user_id"], e["value"]) for e in entries] == [(member.user_id, 3.0), (admin.user_id, 0.0)]


def test_a_non_member_cannot_read_the_coop_leaderboard(client, make_coop, make_user, auth_headers):
    coop, _, _ = make_coop()
    assert client.get(f"/api/coops/{coop.id}/leaderboard", headers=auth_headers(make_user())).status_code == 403


def test_the_public_leaderboard_lists_shown_miners_with_shared_ranks_and_pages(client, make_user):
    top, second, tied, hidden, private, zero = (make_user() for _ in range(6))
    for user, value in ((top, 9e12), (second, 3e12), (tied, 3e12), (hidden, 99e12), (private, 50e12), (zero, 0)):
        _best(user, value)
    _hide(hidden, showOnLeaderboard=False)
    _hide(private, publicProfile=False)
    body = client.get("/api/leaderboard").get_json()
    assert body["total"] == 3 and body["next_cursor"] is None
    assert [(e["rank"], e["user_id"]) for e in body["entries"]] == [
        (1, top.user_id), *sorted([(2, second.user_id), (2, tied.user_id)])]
    first = client.get("/api/leaderboard?limit=2").get_json()
    assert len(first["entries"]) == 2 and first["next_cursor"]
    rest = client.get(f"/api/leaderboard?limit=2&cursor={first['next_cursor']}").get_json()
    assert [e["rank"] for e in rest["entries"]] == [2] and rest["next_cursor"] is None
    assert {e["user_id"] for e in first["entries"] + rest["entries"]} == {top.user_id, second.user_id, tied.user_id}
    assert client.get("/api/leaderboard?cursor=nonsense").status_code == 400
    assert client.get("/api/leaderboard?period=year").status_code == 400


def test_the_weekly_leaderboard_counts_the_last_seven_days(client, make_user):
    recent, old = make_user(), make_user()
    now = datetime.now(UTC)
    _share(recent, 4000, now - timedelta(days=1))
    _share(old, 90000, now - timedelta(days=8))
    _best(old, 90000)
    _best(recent, 4000)
    week = client.get("/api/leaderboard?period=week").get_json()
    assert [(e["user_id"], e["value"]) for e in week["entries"]] == [(recent.user_id, 4000.0)]
    assert [e["user_id"] for e in client.get("/api/leaderboard").get_json()["entries"]] == [old.user_id,
                                                                                          recent.user_id]
