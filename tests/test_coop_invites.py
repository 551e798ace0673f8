"""Extra coop invites (API.md "Coop governance and discovery"): expiry, use
limits counted atomically, revocation, 410 invite_expired and the
logged-out preview (issue "Coops people can find and join", item 1)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Cooperative, CooperativeMember, CoopInvite, User
from webapp.services import coops, invites
from webapp.services.errors import DomainError


def _invite(client, user, coop_id, auth_headers, **body):
    return client.post(f"/api/coops/{coop_id}/invites", json=body, headers=auth_headers(user))


def test_admin_and_moderator_make_invites_members_do_not(client, make_coop, auth_headers):
    coop, admin, (moderator, member) = make_coop(members=2)
    db.session.get(CooperativeMember, db.session.scalar(select(CooperativeMember.id).where(
        CooperativeMember.user_id == moderator.user_id))).role = "moderator"
    db.session.commit()
    made = _invite(client, admin, coop.id, auth_headers, max_uses=5, expires_in=3600)
    assert made.status_code == 201
    body = made.get_json()
    assert len(body["code"]) == 8 and body["code"].isupper() and body["code"] != coop.invite_code
    assert (body["uses"], body["max_uses"], body["created_by"]) == (0, 5, admin.user_id)
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(seconds=30)
    assert body["invite_url"].endswith(f"/coop/join/{body['code']}?k={invites.link_key(body['code'])}")
    assert _invite(client, moderator, coop.id, auth_headers).status_code == 201
    refused = _invite(client, member, coop.id, auth_headers)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_moderator"
    listed = client.get(f"/api/coops/{coop.id}/invites", headers=auth_headers(moderator)).get_json()["invites"]
    assert [i["created_by"] for i in listed] == [moderator.user_id, admin.user_id]
    assert client.get(f"/api/coops/{coop.id}/invites", headers=auth_headers(member)).status_code == 403


@pytest.mark.parametrize("body", [{"max_uses": 0}, {"max_uses": 101}, {"expires_in": 299},
                                  {"expires_in": 2592001}, {"max_uses": "5"}, {"nope": 1}])
def test_limits_outside_the_contract_are_400(client, make_coop, auth_headers, body):
    coop, admin, _ = make_coop()
    answer = _invite(client, admin, coop.id, auth_headers, **body)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "validation_error"
    assert db.session.scalar(select(func.count()).select_from(CoopInvite)) == 0


def test_a_used_up_invite_is_410_and_the_coop_code_still_works(client, make_coop, make_user, auth_headers):
    coop, admin, _ = make_coop()
    code = _invite(client, admin, coop.id, auth_headers, max_uses=1).get_json()["code"]
    first, second, third = make_user(), make_user(), make_user()
    joined = client.post("/api/coops/join", json={"invite_code": code.lower()}, headers=auth_headers(first))
    assert joined.status_code == 200 and joined.get_json()["id"] == coop.id
    gone = client.post("/api/coops/join", json={"invite_code": code}, headers=auth_headers(second))
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "invite_expired"
    assert client.post("/api/coops/join", json={"invite_code": coop.invite_code},
                       headers=auth_headers(third)).status_code == 200
    db.session.expire_all()
    assert db.session.scalar(select(CoopInvite.uses).where(CoopInvite.code == code)) == 1
    assert db.session.get(Cooperative, coop.id).member_count == 3


def test_expiry_with_frozen_time(client, make_coop, make_user, auth_headers):
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        coop, admin, _ = make_coop()
        code = _invite(client, admin, coop.id, auth_headers, expires_in=300).get_json()["code"]
        assert client.get(f"/api/invites/{code}").get_json()["expires_at"] == "2026-11-30T12:05:00Z"
        joiner, late = make_user(), make_user()
    with time_machine.travel(start + timedelta(seconds=299), tick=False):
        assert client.post("/api/coops/join", json={"invite_code": code},
                           headers=auth_headers(joiner)).status_code == 200
    with time_machine.travel(start + timedelta(seconds=300), tick=False):
        answer = client.post("/api/coops/join", json={"invite_code": code}, headers=auth_headers(late))
        assert answer.status_code == 410 and answer.get_json()["error"]["code"] == "invite_expired"
        assert client.get(f"/api/invites/{code}").status_code == 410


def test_a_revoked_invite_is_unknown(client, make_coop, make_user, auth_headers):
    coop, admin, _ = make_coop()
    code = _invite(client, admin, coop.id, auth_headers).get_json()["code"]
    assert client.delete(f"/api/coops/{coop.id}/invites/{code}", headers=auth_headers(admin)).get_json() == {
        "status": "revoked"}
    assert client.delete(f"/api/coops/{coop.id}/invites/{code}", headers=auth_headers(admin)).status_code == 404
    answer = client.post("/api/coops/join", json={"invite_code": code}, headers=auth_headers(make_user()))
    assert answer.status_code == 404
    assert client.get(f"/api/coops/{coop.id}/invites", headers=auth_headers(admin)).get_json() == {"invites": []}


def test_the_preview_needs_no_login_and_shows_the_coop(client, make_coop, auth_headers):
    coop, admin, _ = make_coop(members=2, name="Night Shift", description="S9s in a garage")
    code = _invite(client, admin, coop.id, auth_headers).get_json()["code"]
    for asked in (code, coop.invite_code):
        answer = client.get(f"/api/invites/{asked}")
        assert answer.status_code == 200
        body = answer.get_json()
        assert body["cooperative"] == {"id": coop.id, "name": "Night Shift", "description": "S9s in a garage",
                                       "member_count": 3, "total_hashrate": 0.0}
        assert body["expires_at"] is None and "invite_code" not in body["cooperative"]
    assert client.get("/api/invites/ZZZZZZZZ").status_code == 404
    assert client.get("/api/invites/bad").status_code == 400


@pytest.mark.many_connections
def test_a_hundred_concurrent_joins_on_a_five_use_invite_let_exactly_five_in(app, client, make_coop, make_user,
                                                                           auth_headers):
    coop, admin, _ = make_coop()
    coop_id = coop.id
    code = _invite(client, admin, coop_id, auth_headers, max_uses=5).get_json()["code"]
    joiners = [make_user().user_id for _ in range(100)]
    db.session.remove()

    def attempt(user_id: str) -> str:
        with app.app_context():
            try:
                user = db.session.get(User, user_id)
                db.session.rollback()
                coops.join(user, invite_code=code)
                return "ok"
            except DomainError as exc:
                return exc.code
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(attempt, joiners))

    assert results.count("ok") == 5
    assert results.count("invite_expired") == 95
    db.session.expire_all()
    assert db.session.scalar(select(CoopInvite.uses).where(CoopInvite.code == code)) == 5
    assert db.session.get(Cooperative, coop_id).member_count == 6
    assert db.session.scalar(select(func.count()).select_from(CooperativeMember).where(
        CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active")) == 6


def test_a_logged_out_visitor_sees_the_invite_page_and_registering_lands_in_the_coop(client, make_coop,
                                                                                   auth_headers):
    coop, admin, _ = make_coop(name="Garage Rigs")
    made = _invite(client, admin, coop.id, auth_headers, max_uses=3).get_json()
    page = client.get(f"/coop/join/{made['code']}?k={made['invite_key']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Join Garage Rigs" in html and "1/20 members" in html
    register_link = f"/register?invite={made['code']}&amp;k={made['invite_key']}"
    assert register_link in html and "/login?next=" in html
    form = client.get(register_link.replace("&amp;", "&")).get_data(as_text=True)
    assert f'name="invite" value="{made["code"]}"' in form
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/register", data={
        "csrf_token": token, "user_id": "bc1qnewcomer0000000000000000000000000000", "not_an_address": "1",
        "password": "a long passphrase", "invite": made["code"], "k": made["invite_key"]})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/coop")
    db.session.expire_all()
    member = db.session.scalar(select(CooperativeMember).where(
        CooperativeMember.user_id == "bc1qnewcomer0000000000000000000000000000"))
    assert (member.cooperative_id, member.status) == (coop.id, "active")
    assert db.session.scalar(select(CoopInvite.uses).where(CoopInvite.code == made["code"])) == 1
    assert "Garage Rigs" in client.get("/coop").get_data(as_text=True)


def test_the_manage_screen_makes_and_revokes_invites_through_htmx(client, make_coop, login_as):
    coop, admin, _ = make_coop()
    headers = login_as(admin, csrf_from="/coop/manage")
    page = client.get("/coop/manage").get_data(as_text=True)
    assert 'id="coop-invites"' in page and 'id="coop-invites-empty"' in page
    made = client.post(f"/coop/{coop.id}/invites", data={"max_uses": "10", "expires_in": "604800"}, headers=headers)
    assert made.status_code == 200
    invite = db.session.scalar(select(CoopInvite).where(CoopInvite.cooperative_id == coop.id))
    assert (invite.max_uses, invite.uses) == (10, 0)
    assert (invite.expires_at - invite.created_at) == timedelta(days=7)
    html = made.get_data(as_text=True)
    assert f'id="invite-{invite.code}"' in html and "0 / 10" in html and f"/coop/join/{invite.code}?k=" in html
    bad = client.post(f"/coop/{coop.id}/invites", data={"max_uses": "1000"}, headers=headers)
    assert bad.status_code == 400 and "max_uses must be 1–100" in bad.get_data(as_text=True)
    revoked = client.post(f"/coop/{coop.id}/invites/{invite.code}/revoke", headers=headers)
    assert revoked.status_code == 200 and f'id="invite-{invite.code}"' not in revoked.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(CoopInvite, invite.id).revoked_at is not None


def test_the_manage_form_refuses_digits_int_cannot_read(client, make_coop, login_as):
    """Found by the page fuzz: "²" passed str.isdigit and made int() fail (500)."""
    coop, admin, _ = make_coop()
    headers = login_as(admin, csrf_from="/coop/manage")
    for raw in ("²", "٣", "1e3", "-5"):
        answer = client.post(f"/coop/{coop.id}/invites", data={"expires_in": raw}, headers=headers)
        assert answer.status_code == 400, raw
