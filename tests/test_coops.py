"""Cooperatives over the JSON API: API.md "Coop rules" with exact status codes,
path ids honoured (IDOR), side effects, stats and the combined hashrate."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select

from webapp.extensions import db, redis_key
from webapp.models import (
    Cooperative,
    CooperativeMember,
    CoopHashrateSample,
    MinerStats,
    MiningEvent,
    Notification,
    User,
    UserActivity,
    WorkerStatus,
    utcnow,
)
from webapp.services import coop_hashrate, coops, demo

from .builders import run_jobs


def _error(resp) -> str:
    return resp.get_json()["error"]["code"]


def _active_rows(coop_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(CooperativeMember).where(
            CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active"
        )
    )


def _snapshot(coop_id: int) -> tuple:
    """Everything an unauthorised action must leave unchanged."""
    db.session.expire_all()
    coop = db.session.get(Cooperative, coop_id)
    members = db.session.execute(
        select(CooperativeMember.user_id, CooperativeMember.role, CooperativeMember.status)
        .where(CooperativeMember.cooperative_id == coop_id).order_by(CooperativeMember.id)
    ).all()
    return (coop.name, coop.description, coop.invite_code, coop.status, coop.member_count,
            coop.admin_user_id, tuple(members))


def _worker(user_id: str, name: str, hashrate: float, *, online: bool = True, age: timedelta = timedelta(minutes=1)):
    now = utcnow()
    db.session.add(WorkerStatus(worker=f"{user_id}.{name}", user_id=user_id, is_online=online,
                                last_sample_at=now - age, last_seen_at=now - age, hashrate_1h=hashrate))


# ---- 1. create ------------------------------------------------------------------------


def test_create_makes_caller_admin_and_returns_invite_code(client, make_user, auth_headers):
    user = make_user(display_name="Founder")
    resp = client.post("/api/coops", headers=auth_headers(user), json={"name": "  Garage S9s ", "description": "Loud."})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["name"] == "Garage S9s"
    assert body["description"] == "Loud."
    assert body["admin_user_id"] == user.user_id
    assert body["member_count"] == 1
    assert body["status"] == "active"
    assert body["total_hashrate"] == 0.0
    assert body["created_at"].endswith("Z")
    code = body["invite_code"]
    assert len(code) == 8 and code.isalnum() and code == code.upper()
    members = client.get(f"/api/coops/{body['id']}/members", headers=auth_headers(user)).get_json()["members"]
    assert [(m["user_id"], m["role"]) for m in members] == [(user.user_id, "admin")]
    acts = db.session.scalars(select(UserActivity.activity_type).where(UserActivity.user_id == user.user_id)).all()
    assert acts == ["coop_joined"]


@pytest.mark.parametrize("body", [
    {"name": "ab"}, {"name": "x" * 101}, {"name": "Fine name", "description": "d" * 501}, {"name": 123}, {},
    {"name": "Fine name", "extra": 1}, {"name": "   ab   "}, ["Fine name"],
])
def test_create_validates_body(client, make_user, auth_headers, body):
    resp = client.post("/api/coops", headers=auth_headers(make_user()), json=body)
    assert resp.status_code == 400
    assert _error(resp) == "validation_error"
    assert db.session.scalar(select(func.count()).select_from(Cooperative)) == 0


def test_create_needs_credentials(client):
    assert client.post("/api/coops", json={"name": "No auth"}).status_code == 401
    assert db.session.scalar(select(func.count()).select_from(Cooperative)) == 0


def test_create_while_in_a_coop_is_409(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    for user in (admin, member):
        resp = client.post("/api/coops", headers=auth_headers(user), json={"name": "Second coop"})
        assert resp.status_code == 409
        assert _error(resp) == "already_in_coop"
    assert db.session.scalar(select(func.count()).select_from(Cooperative)) == 1


# ---- 2. get mine ------------------------------------------------------------------------


def test_get_mine_is_null_then_the_coop(client, make_user, make_coop, auth_headers):
    loner = make_user()
    assert client.get("/api/coops/mine", headers=auth_headers(loner)).get_json() == {"cooperative": None}
    coop, admin, (member,) = make_coop(members=1)
    body = client.get("/api/coops/mine", headers=auth_headers(member)).get_json()["cooperative"]
    assert body["id"] == coop.id
    assert body["invite_code"] == coop.invite_code
    assert body["member_count"] == 2
    assert client.get("/api/coops/mine").status_code == 401


# ---- 3. join --------------------------------------------------------------------------------


def test_join_is_case_insensitive_and_notifies_the_admin(client, make_user, make_coop, auth_headers):
    coop, admin, _ = make_coop()
    joiner = make_user(display_name="Newbie")
    resp = client.post("/api/coops/join", headers=auth_headers(joiner), json={"invite_code": coop.invite_code.lower()})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"] == coop.id
    assert body["member_count"] == 2
    assert body["invite_code"] == coop.invite_code
    role = db.session.scalar(select(CooperativeMember.role).where(CooperativeMember.user_id == joiner.user_id))
    assert role == "member"
    note = db.session.execute(select(Notification).where(Notification.user_id == admin.user_id)).scalar_one()
    assert (note.category, note.subtype, note.title) == ("social", "coop_member_joined", "New member joined")
    assert "Newbie" in note.body
    act = db.session.execute(select(UserActivity).where(UserActivity.user_id == joiner.user_id)).scalar_one()
    assert act.activity_type == "coop_joined"


def test_join_with_malformed_code_is_400_before_any_lookup(client, make_user, make_coop, auth_headers):
    coop, _, _ = make_coop()
    headers = auth_headers(make_user())
    for code in ("ABC", "ABCDEFGHI", "ABCD-123", "ABCD 123", "", "ÄBCD1234", coop.invite_code + "0"):
        resp = client.post("/api/coops/join", headers=headers, json={"invite_code": code})
        assert resp.status_code == 400, code
        assert _error(resp) == "invalid_invite_code"
    resp = client.post("/api/coops/join", headers=headers, json={"invite_code": 12345678})
    assert resp.status_code == 400
    assert client.post("/api/coops/join", headers=headers, json={}).status_code == 400
    assert _active_rows(coop.id) == 1


def test_join_with_unknown_or_old_code_is_404(client, make_user, make_coop, auth_headers):
    coop, admin, _ = make_coop()
    headers = auth_headers(make_user())
    unknown = "ZZZZ9999" if coop.invite_code != "ZZZZ9999" else "YYYY9999"
    resp = client.post("/api/coops/join", headers=headers, json={"invite_code": unknown})
    assert resp.status_code == 404
    assert _error(resp) == "not_found"
    old = coop.invite_code
    new = client.post(f"/api/coops/{coop.id}/regenerate-code", headers=auth_headers(admin)).get_json()["invite_code"]
    assert new != old
    resp = client.post("/api/coops/join", headers=headers, json={"invite_code": old})
    assert resp.status_code == 404
    assert _error(resp) == "not_found"
    assert client.post("/api/coops/join", headers=headers, json={"invite_code": new}).status_code == 200


def test_join_attempts_are_rate_limited_per_ip(make_app, make_user, make_coop, auth_headers):
    coop, _, _ = make_coop()
    headers = auth_headers(make_user())
    limited = make_app(RATELIMIT_ENABLED=True, COOP_JOIN_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    statuses = [client.post("/api/coops/join", headers=headers, json={"invite_code": f"GUESS00{n}"}).status_code
                for n in range(3)]
    resp = client.post("/api/coops/join", headers=headers, json={"invite_code": coop.invite_code})
    make_app()  # the limiter is one object: switch it back off for the other tests
    assert statuses == [404, 404, 404]
    assert resp.status_code == 429
    assert resp.get_json()["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) > 0
    assert _active_rows(coop.id) == 1


def test_eleventh_wrong_invite_code_in_a_minute_is_429_and_the_coop_stays_open(make_app, make_user, make_coop,
                                                                              auth_headers):
    coop, _, _ = make_coop()
    guesser, honest, neighbour = make_user(), make_user(), make_user()
    limited = make_app(RATELIMIT_ENABLED=True)
    client = limited.test_client()
    statuses = [client.post("/api/coops/join", headers=auth_headers(guesser), json={"invite_code": f"WRONG{n:03d}"}).status_code
                for n in range(11)]
    make_app()  # the limiter is one object: switch it back off for the other tests
    assert statuses == [404] * 10 + [429]
    resp = client.post("/api/coops/join", headers=auth_headers(guesser), json={"invite_code": coop.invite_code})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    # The guesser is slowed down, not the coop: another miner elsewhere joins with the typed code...
    elsewhere = limited.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    ok = elsewhere.post("/api/coops/join", headers=auth_headers(honest), json={"invite_code": coop.invite_code})
    assert ok.status_code == 200
    # ...and a miner behind the guesser's address with the invite link's key.
    key = ok.get_json()["invite_key"]
    ok = client.post("/api/coops/join", headers=auth_headers(neighbour),
                     json={"invite_code": coop.invite_code, "invite_key": key})
    assert ok.status_code == 200
    assert _active_rows(coop.id) == 3


def test_join_full_coop_is_409(client, make_user, make_coop, auth_headers):
    coop, _, _ = make_coop(members=19)
    assert coop.member_count == 20
    resp = client.post("/api/coops/join", headers=auth_headers(make_user()), json={"invite_code": coop.invite_code})
    assert resp.status_code == 409
    assert _error(resp) == "coop_full"
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).member_count == 20
    assert _active_rows(coop.id) == 20


def test_join_while_in_a_coop_is_409(client, make_coop, auth_headers):
    first, _, (member,) = make_coop(members=1, name="First coop")
    second, _, _ = make_coop(name="Second coop")
    for code in (second.invite_code, first.invite_code):
        resp = client.post("/api/coops/join", headers=auth_headers(member), json={"invite_code": code})
        assert resp.status_code == 409
        assert _error(resp) == "already_in_coop"
    db.session.expire_all()
    assert db.session.get(Cooperative, second.id).member_count == 1
    assert db.session.get(Cooperative, first.id).member_count == 2


# ---- 4. leave ----------------------------------------------------------------------------------


def test_admin_leaving_hands_over_to_the_longest_standing_member(client, make_coop, auth_headers):
    coop, admin, (oldest, middle, newest) = make_coop(members=3)
    # Make the order explicit: joined_at decides, not insertion order.
    base = utcnow() - timedelta(days=10)
    for offset, user in ((3, oldest), (5, middle), (1, newest)):
        db.session.execute(
            CooperativeMember.__table__.update()
            .where(CooperativeMember.user_id == user.user_id)
            .values(joined_at=base + timedelta(days=offset))
        )
    db.session.commit()  # newest (day 1) is now the longest-standing
    resp = client.post(f"/api/coops/{coop.id}/leave", headers=auth_headers(admin))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "left"
    assert body["cooperative"]["admin_user_id"] == newest.user_id
    assert body["cooperative"]["member_count"] == 3
    assert "invite_code" not in body["cooperative"]
    roles = dict(db.session.execute(
        select(CooperativeMember.user_id, CooperativeMember.role)
        .where(CooperativeMember.cooperative_id == coop.id, CooperativeMember.status == "active")
    ).all())
    assert roles == {newest.user_id: "admin", oldest.user_id: "member", middle.user_id: "member"}
    note = db.session.execute(select(Notification).where(Notification.user_id == newest.user_id)).scalar_one()
    assert (note.category, note.subtype, note.title) == ("social", "coop_new_admin", "You're the new admin")
    left = db.session.scalars(select(UserActivity.activity_type).where(UserActivity.user_id == admin.user_id)
                              .order_by(UserActivity.id)).all()
    assert left == ["coop_joined", "coop_left"]
    assert client.get("/api/coops/mine", headers=auth_headers(admin)).get_json() == {"cooperative": None}


def test_member_leaving_tells_the_admin(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    resp = client.post(f"/api/coops/{coop.id}/leave", headers=auth_headers(member))
    assert resp.status_code == 200
    assert resp.get_json()["cooperative"]["member_count"] == 1
    subtypes = db.session.scalars(select(Notification.subtype).where(Notification.user_id == admin.user_id)
                                  .order_by(Notification.id)).all()
    assert subtypes == ["coop_member_joined", "coop_member_left"]
    again = client.post(f"/api/coops/{coop.id}/leave", headers=auth_headers(member))
    assert again.status_code == 403
    assert _error(again) == "not_a_member"


def test_last_member_leaving_dissolves_the_coop(client, make_user, make_coop, auth_headers):
    coop, admin, _ = make_coop()
    code = coop.invite_code
    resp = client.post(f"/api/coops/{coop.id}/leave", headers=auth_headers(admin))
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "left", "cooperative": None}
    db.session.expire_all()
    row = db.session.get(Cooperative, coop.id)
    assert (row.status, row.member_count) == ("dissolved", 0)
    assert row.dissolved_at is not None
    joiner = make_user()
    resp = client.post("/api/coops/join", headers=auth_headers(joiner), json={"invite_code": code})
    assert resp.status_code == 404
    # A dissolved coop answers reads with 404 and actions with 409.
    assert client.get(f"/api/coops/{coop.id}", headers=auth_headers(admin)).status_code == 404
    resp = client.post(f"/api/coops/{coop.id}/leave", headers=auth_headers(admin))
    assert resp.status_code == 409
    assert _error(resp) == "coop_dissolved"


# ---- 6. remove -------------------------------------------------------------------------------------


def test_admin_removes_a_member(client, make_coop, auth_headers):
    coop, admin, (gone, stays) = make_coop(members=2)
    resp = client.delete(f"/api/coops/{coop.id}/members/{gone.user_id}", headers=auth_headers(admin))
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "removed"}
    status = db.session.scalar(select(CooperativeMember.status).where(CooperativeMember.user_id == gone.user_id))
    assert status == "removed"
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).member_count == 2 == _active_rows(coop.id)
    note = db.session.execute(select(Notification).where(Notification.user_id == gone.user_id)).scalar_one()
    assert (note.category, note.subtype, note.title) == ("social", "coop_removed", "Removed from cooperative")
    acts = db.session.scalars(select(UserActivity.activity_type).where(UserActivity.user_id == gone.user_id)
                              .order_by(UserActivity.id)).all()
    assert acts == ["coop_joined", "coop_left"]
    # Removing someone who is no longer (or never was) a member: 404.
    again = client.delete(f"/api/coops/{coop.id}/members/{gone.user_id}", headers=auth_headers(admin))
    assert again.status_code == 404
    assert client.delete(f"/api/coops/{coop.id}/members/nobody-here", headers=auth_headers(admin)).status_code == 404
    # The removed miner may join another coop (or this one again).
    assert client.post("/api/coops/join", headers=auth_headers(gone),
                       json={"invite_code": coop.invite_code}).status_code == 200


def test_admin_cannot_remove_themself(client, make_coop, auth_headers):
    coop, admin, _ = make_coop(members=1)
    before = _snapshot(coop.id)
    resp = client.delete(f"/api/coops/{coop.id}/members/{admin.user_id}", headers=auth_headers(admin))
    assert resp.status_code == 400
    assert _error(resp) == "cannot_remove_self"
    assert _snapshot(coop.id) == before


# ---- 7. regenerate, PATCH, DELETE -----------------------------------------------------------


def test_regenerate_code_replaces_the_code(client, make_coop, auth_headers):
    coop, admin, _ = make_coop()
    old = coop.invite_code
    resp = client.post(f"/api/coops/{coop.id}/regenerate-code", headers=auth_headers(admin))
    assert resp.status_code == 200
    code = resp.get_json()["invite_code"]
    assert code != old
    assert re.fullmatch(r"[A-Z0-9]{8}", code)
    assert client.get("/api/coops/mine", headers=auth_headers(admin)).get_json()["cooperative"]["invite_code"] == code


def test_forced_invite_code_collision_retries(app, make_coop, make_user):
    taken, _, _ = make_coop(name="Holds the code")
    codes = iter([taken.invite_code, "FRESH001"])
    coop = coops.create(make_user(), name="Collides first", code_factory=lambda: next(codes))
    assert coop.invite_code == "FRESH001"
    codes = iter([taken.invite_code.lower(), "FRESH002"])
    admin = db.session.get(User, coop.admin_user_id)
    regenerated = coops.regenerate_code(admin, coop_id=coop.id, code_factory=lambda: next(codes))
    assert regenerated.invite_code == "FRESH002"
    # A dissolved coop's code is free again (unique among active coops only).
    old_code, old_admin = taken.invite_code, db.session.get(User, taken.admin_user_id)
    coops.dissolve(old_admin, coop_id=taken.id)
    reused = coops.create(old_admin, name="Reuses", code_factory=lambda: old_code)
    assert reused.invite_code == old_code


def test_patch_updates_name_and_description(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    headers = auth_headers(admin)
    resp = client.patch(f"/api/coops/{coop.id}", headers=headers, json={"name": "Renamed crew"})
    assert resp.status_code == 200
    assert resp.get_json()["name"] == "Renamed crew"
    assert resp.get_json()["description"] == "Bitaxes on shelves"
    resp = client.patch(f"/api/coops/{coop.id}", headers=headers, json={"description": None})
    assert resp.get_json()["description"] == ""
    for body in ({"name": "x"}, {"name": None}, {"description": "d" * 501}, {"admin_user_id": member.user_id}):
        assert client.patch(f"/api/coops/{coop.id}", headers=headers, json=body).status_code == 400, body
    resp = client.patch(f"/api/coops/{coop.id}", headers=auth_headers(member), json={"name": "Member's idea"})
    assert resp.status_code == 403
    assert _error(resp) == "not_admin"
    assert client.get(f"/api/coops/{coop.id}", headers=headers).get_json()["name"] == "Renamed crew"


def test_delete_dissolves_the_coop(client, make_user, make_coop, auth_headers):
    coop, admin, members = make_coop(members=2)
    resp = client.delete(f"/api/coops/{coop.id}", headers=auth_headers(admin))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "dissolved" and body["member_count"] == 0 and "invite_code" not in body
    assert _active_rows(coop.id) == 0
    statuses = db.session.scalars(select(CooperativeMember.status).where(CooperativeMember.cooperative_id == coop.id)).all()
    assert statuses == ["left", "left", "left"]
    for member in members:
        subtypes = db.session.scalars(select(Notification.subtype).where(Notification.user_id == member.user_id)).all()
        assert subtypes == ["coop_dissolved"]
        assert client.get("/api/coops/mine", headers=auth_headers(member)).get_json() == {"cooperative": None}
    for method, path in (("delete", ""), ("post", "/regenerate-code"), ("patch", "")):
        resp = getattr(client, method)(f"/api/coops/{coop.id}{path}", headers=auth_headers(admin),
                                       **({"json": {"name": "Again"}} if method == "patch" else {}))
        assert resp.status_code == 409, path
        assert _error(resp) == "coop_dissolved"
    for path in ("", "/members", "/hashrate", "/stats"):
        assert client.get(f"/api/coops/{coop.id}{path}", headers=auth_headers(admin)).status_code == 404
    # Everyone is free to start again.
    assert client.post("/api/coops", headers=auth_headers(members[0]), json={"name": "Phoenix"}).status_code == 201


# ---- IDOR and visibility ------------------------------------------------------------------------


def test_member_cannot_use_admin_routes(client, make_coop, auth_headers):
    coop, admin, (member, other) = make_coop(members=2)
    headers = auth_headers(member)
    before = _snapshot(coop.id)
    for method, path, kwargs in (
        ("delete", f"/members/{other.user_id}", {}),
        ("delete", f"/members/{admin.user_id}", {}),
        ("post", "/regenerate-code", {}),
        ("patch", "", {"json": {"name": "Taken over"}}),
        ("delete", "", {}),
    ):
        resp = getattr(client, method)(f"/api/coops/{coop.id}{path}", headers=headers, **kwargs)
        assert resp.status_code == 403, path
        assert _error(resp) == "not_admin"
    assert _snapshot(coop.id) == before


def test_admin_of_one_coop_cannot_act_on_another(client, make_coop, auth_headers):
    x, admin_x, _ = make_coop(members=1, name="Coop X")
    y, admin_y, (member_y,) = make_coop(members=1, name="Coop Y")
    headers = auth_headers(admin_x)
    before = _snapshot(y.id)
    for method, path, kwargs in (
        ("delete", f"/members/{member_y.user_id}", {}),
        ("post", "/regenerate-code", {}),
        ("patch", "", {"json": {"name": "Hijacked"}}),
        ("delete", "", {}),
    ):
        resp = getattr(client, method)(f"/api/coops/{y.id}{path}", headers=headers, **kwargs)
        assert resp.status_code in (403, 404), path
        assert _error(resp) in ("not_admin", "not_found")
    resp = client.post(f"/api/coops/{y.id}/leave", headers=headers)
    assert resp.status_code == 403
    assert _snapshot(y.id) == before
    # The member of Y is not removable through X's id either.
    resp = client.delete(f"/api/coops/{x.id}/members/{member_y.user_id}", headers=headers)
    assert resp.status_code == 404
    assert _snapshot(y.id) == before


def test_outsiders_get_403_not_a_member_and_missing_ids_404(client, make_user, make_coop, auth_headers):
    coop, _, _ = make_coop(members=1)
    outsider = auth_headers(make_user())
    for path in ("", "/members", "/hashrate", "/stats"):
        resp = client.get(f"/api/coops/{coop.id}{path}", headers=outsider)
        assert resp.status_code == 403, path
        assert _error(resp) == "not_a_member"
        resp = client.get(f"/api/coops/{coop.id + 1000}{path}", headers=outsider)
        assert resp.status_code == 404, path
        assert _error(resp) == "not_found"
        assert client.get(f"/api/coops/{coop.id}{path}").status_code == 401
    for bad in ("abc", "99999999999999999999", "-1", "0"):
        resp = client.get(f"/api/coops/{bad}/members", headers=outsider)
        assert resp.status_code == 404, bad
        assert resp.is_json
    resp = client.post("/api/coops/99999999999999999999/leave", headers=outsider)
    assert resp.status_code == 404 and resp.is_json


# ---- 5, 8, 9: members, hashrate, stats ---------------------------------------------------------------


def test_members_are_listed_oldest_first_with_live_hashrate(client, make_coop, auth_headers):
    coop, admin, (a, b) = make_coop(members=2)
    _worker(a.user_id, "bitaxe-1", 500e9)
    _worker(a.user_id, "bitaxe-2", 700e9)
    _worker(a.user_id, "stale", 9e12, age=timedelta(minutes=16))
    _worker(b.user_id, "s9", 13.5e12, online=False)
    db.session.commit()
    resp = client.get(f"/api/coops/{coop.id}/members", headers=auth_headers(b))
    assert resp.status_code == 200
    members = resp.get_json()["members"]
    assert [m["user_id"] for m in members] == [admin.user_id, a.user_id, b.user_id]
    assert [m["role"] for m in members] == ["admin", "member", "member"]
    assert set(members[0]) >= {"user_id", "display_name", "role", "joined_at", "hashrate", "is_online"}
    assert members[1]["hashrate"] == pytest.approx(1.2e12)
    assert members[1]["is_online"] is True
    assert (members[2]["hashrate"], members[2]["is_online"]) == (0.0, False)
    assert members[0]["display_name"] == admin.display_name
    joined = [m["joined_at"] for m in members]
    assert joined == sorted(joined)


def test_stats_sum_the_active_members(client, make_user, make_coop, auth_headers):
    coop, admin, (a, b) = make_coop(members=2)
    outsider = make_user()
    now = utcnow()

    def share(user_id, ago, accepted=True, event="share_submitted"):
        share.n += 1
        db.session.add(MiningEvent(stream=f"mining:{event}", entry_id=f"{share.n}-0", event=event, ts=now - ago,
                                   user_id=user_id, accepted=accepted, data={}))
    share.n = 0
    for user_id in (admin.user_id, a.user_id, a.user_id):
        share(user_id, timedelta(hours=1))
    share(b.user_id, timedelta(hours=23))
    share(b.user_id, timedelta(hours=25))  # too old
    share(b.user_id, timedelta(minutes=5), accepted=False)  # rejected
    share(outsider.user_id, timedelta(minutes=5))  # not a member
    share(a.user_id, timedelta(minutes=5), accepted=None, event="hashrate_update")
    db.session.add_all([
        MinerStats(user_id=admin.user_id, best_difficulty=1.5e6, blocks_found=0),
        MinerStats(user_id=a.user_id, best_difficulty=8.25e8, blocks_found=1),
        MinerStats(user_id=b.user_id, best_difficulty=3.0e7, blocks_found=2),
        MinerStats(user_id=outsider.user_id, best_difficulty=9.9e12, blocks_found=7),
    ])
    _worker(a.user_id, "bitaxe", 1e12)
    _worker(b.user_id, "s9", 13e12)
    db.session.commit()
    resp = client.get(f"/api/coops/{coop.id}/stats", headers=auth_headers(a))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["cooperative_id"] == coop.id
    assert body["member_count"] == 3
    assert body["online_count"] == 2
    assert body["total_hashrate"] == pytest.approx(14e12)
    assert body["shares_24h"] == 4
    assert body["best_difficulty"] == 8.25e8
    assert body["blocks_found"] == 3
    assert body["created_at"].endswith("Z")


def test_coop_total_is_the_sum_of_members_hashrates(client, app, redis, make_user, make_coop, auth_headers):
    """Integration 11: the aggregation job (run by a real RQ worker) stores,
    records and caches a total equal to the sum of members' hashrates."""
    coop, admin, (a, b) = make_coop(members=2)
    other, other_admin, _ = make_coop(name="Other crew")
    outsider = make_user()
    _worker(admin.user_id, "one", 1.25e12)
    _worker(a.user_id, "one", 0.5e12)
    _worker(a.user_id, "two", 0.75e12)
    _worker(b.user_id, "off", 4e12, online=False)
    _worker(outsider.user_id, "big", 100e12)
    _worker(other_admin.user_id, "x", 3e12)
    db.session.commit()

    queue = Queue("default", connection=app.extensions["redis_raw"])
    job = queue.enqueue("jobs.coops.aggregate_coop_hashrate")
    run_jobs(app)
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value() == 2

    db.session.expire_all()
    stored = db.session.get(Cooperative, coop.id)
    assert stored.total_hashrate == pytest.approx(2.5e12)
    assert stored.hashrate_updated_at is not None
    assert db.session.get(Cooperative, other.id).total_hashrate == pytest.approx(3e12)
    samples = db.session.execute(
        select(CoopHashrateSample.cooperative_id, CoopHashrateSample.total_hashrate, CoopHashrateSample.online_count)
        .order_by(CoopHashrateSample.cooperative_id)
    ).all()
    assert [(s[0], pytest.approx(s[1]), s[2]) for s in samples] == [(coop.id, 2.5e12, 2), (other.id, 3e12, 1)]
    key = redis_key("coop", coop.id, "hashrate")
    assert json.loads(redis.get(key))["total_hashrate"] == pytest.approx(2.5e12)
    assert 0 < redis.ttl(key) <= app.config["COOP_HASHRATE_CACHE_TTL"]

    body = client.get(f"/api/coops/{coop.id}/hashrate", headers=auth_headers(b)).get_json()
    assert body["cooperative_id"] == coop.id
    assert body["total_hashrate"] == pytest.approx(2.5e12)
    assert body["total_hashrate"] == pytest.approx(sum(m["hashrate"] for m in body["members"]))
    assert [m["user_id"] for m in body["members"]] == [admin.user_id, a.user_id, b.user_id]
    assert body["updated_at"] == json.loads(redis.get(key))["updated_at"]


def test_hashrate_endpoint_reads_the_cache_and_computes_on_a_miss(client, redis, make_coop, auth_headers):
    coop, admin, _ = make_coop()
    key = redis_key("coop", coop.id, "hashrate")
    redis.set(key, json.dumps({"total_hashrate": 42.0, "online_count": 1, "updated_at": "2025-01-01T00:00:00Z"}))
    body = client.get(f"/api/coops/{coop.id}/hashrate", headers=auth_headers(admin)).get_json()
    assert (body["total_hashrate"], body["updated_at"]) == (42.0, "2025-01-01T00:00:00Z")
    redis.delete(key)
    _worker(admin.user_id, "rig", 7e12)
    db.session.commit()
    body = client.get(f"/api/coops/{coop.id}/hashrate", headers=auth_headers(admin)).get_json()
    assert body["total_hashrate"] == pytest.approx(7e12)
    assert json.loads(redis.get(key))["total_hashrate"] == pytest.approx(7e12)
    assert redis.ttl(key) > 0


def test_membership_change_drops_the_cached_total(app, redis, make_user, make_coop):
    coop, admin, _ = make_coop()
    coop_hashrate.aggregate_all()
    key = redis_key("coop", coop.id, "hashrate")
    assert redis.exists(key)
    coops.join(make_user(), invite_code=coop.invite_code)
    assert not redis.exists(key)


def test_history_keeps_one_point_per_coop_per_run(app, make_coop):
    coop, _, _ = make_coop()
    start = utcnow() - timedelta(hours=30)
    for step in range(0, 30 * 12, 12):  # hourly runs over 30 hours
        coop_hashrate.aggregate_all(now=start + timedelta(minutes=5 * step))
    points = coop_hashrate.history(coop.id)
    assert 23 <= len(points) <= 25
    assert all(b[0] > a[0] for a, b in zip(points, points[1:], strict=False))


def test_backfilled_history_follows_the_members_samples(app, make_coop):
    coop, admin, (a, b) = make_coop(members=2)
    now = utcnow().replace(microsecond=0)
    for n, (user, minutes, rate) in enumerate(((a, 60, 1e12), (a, 30, 2e12), (b, 20, 5e11), (admin, 90, 9e12))):
        db.session.add(MiningEvent(stream="mining:hashrate_update", entry_id=f"{n}-0", event="hashrate_update",
                                   ts=now - timedelta(minutes=minutes), user_id=user.user_id,
                                   worker=f"{user.user_id}.rig", data={"hashrate_1h": rate}))
    db.session.commit()
    assert demo.backfill_history([coop.id], now=now, hours=1) == 12
    points = {round((now - at).total_seconds() / 60): total for at, total in coop_hashrate.history(coop.id, now=now)}
    # A worker counts at a point while its latest sample is at most 15 minutes old.
    assert points[55] == 1e12 and points[45] == 1e12 and points[40] == 0.0
    assert points[30] == 2e12 and points[20] == 2.5e12 and points[10] == 5e11 and points[0] == 0.0
    assert demo.backfill_history([coop.id], now=now, hours=1) == 0  # already drawn


# ---- demo world -----------------------------------------------------------------------------------------


def test_demo_coops_form_once_and_skip_missing_miners(app):
    from webapp.services import accounts

    miners = json.loads(demo.DEMO_MINERS.read_text())
    for index, miner in enumerate(miners):
        if index != 15:  # AxeQueen of Lisbon Lightning is not registered here
            accounts.register(user_id=miner["user_id"], password="demo-password",
                              display_name=miner["display_name"])
    formed = demo.form_demo_coops()
    assert [c.name for c in formed] == [name for name, _, _ in demo.DEMO_COOPS]
    by_name = {c.name: db.session.get(Cooperative, c.id) for c in formed}
    assert by_name["Satoshi's Hunters"].admin_user_id == demo.SATOSHI_HUNTER
    assert by_name["Satoshi's Hunters"].member_count == 7
    assert by_name["Bitaxe Brigade"].member_count == 20
    assert by_name["Lisbon Lightning"].member_count == 3
    for coop in by_name.values():
        assert coop.member_count == _active_rows(coop.id)
    assert demo.form_demo_coops() == []
    assert db.session.scalar(select(func.count()).select_from(Cooperative)) == 3
