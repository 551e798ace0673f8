"""Guessing invite codes (webapp/services/invites.py, docs/COOPS.md
"Guessing invite codes"): every door that tests a code — the join page
preview, its join button, the join form, ``POST /api/coops/join`` — goes
through one guarded lookup with failed-lookup limits per user, per client
IP (IPv6 by /64) and across the platform, the last one pausing typed codes
and alarming the admins once, while invite links keep working."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import CooperativeMember, Notification
from webapp.services import coops

from .builders import PASSWORD, AuthActions, bearer

LIMITS = {"RATELIMIT_ENABLED": True, "COOP_JOIN_RATE_LIMIT": "1000 per minute", "AUTH_RATE_LIMIT": "1000 per minute"}


def _client(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _page(app, user, ip: str):
    """A logged-in browser at ``ip``: (client, form data with the CSRF token)."""
    client = _client(app, ip)
    auth = AuthActions(client)
    assert auth.login(user.user_id, PASSWORD).status_code == 302
    return client, {"csrf_token": auth.csrf_token("/coop")}


def _members(coop_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(CooperativeMember).where(
        CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active"))


@pytest.fixture
def coop(app, make_user):
    return coops.create(make_user(display_name="Founder"), name="Guarded Coop", description="")


def test_every_door_shares_one_budget_of_failed_lookups_per_user(make_app, make_user, coop):
    app = make_app(**LIMITS, INVITE_CODE_FAILURE_LIMIT="4 per hour", INVITE_CODE_IP_FAILURE_LIMIT="100 per hour")
    guesser, honest = make_user(), make_user()
    page, form = _page(app, guesser, "203.0.113.5")
    api = _client(app, "203.0.113.5")
    wrong = iter(["WRONG001", "WRONG002", "WRONG003", "WRONG004"])
    # One failure through each door.
    assert page.get(f"/coop/join/{next(wrong)}").status_code == 404  # the preview: it used to be unlimited
    assert page.post(f"/coop/join/{next(wrong)}", data=form).status_code == 404
    assert page.post("/coop/join", data={**form, "invite_code": next(wrong)}).status_code == 404
    assert api.post("/api/coops/join", headers=bearer(guesser), json={"invite_code": next(wrong)}).status_code == 404
    # Budget spent: no more lookups for this user, even of the right code, on any door.
    preview = page.get(f"/coop/join/{coop.invite_code}")
    assert preview.status_code == 429 and int(preview.headers["Retry-After"]) > 0
    assert "Too many wrong invite codes" in preview.get_data(as_text=True)
    joined = api.post("/api/coops/join", headers=bearer(guesser), json={"invite_code": coop.invite_code})
    assert joined.status_code == 429 and joined.get_json()["error"]["code"] == "rate_limited"
    assert page.post("/coop/join", data={**form, "invite_code": coop.invite_code}).status_code == 429
    # Malformed codes are refused before any lookup (400) and never counted.
    assert api.post("/api/coops/join", headers=bearer(honest), json={"invite_code": "nope"}).status_code == 400
    # The coop stays open to everyone else.
    ok = api.post("/api/coops/join", headers=bearer(honest), json={"invite_code": coop.invite_code})
    assert ok.status_code == 200
    assert _members(coop.id) == 2


def test_failed_lookups_are_limited_per_ip_and_an_ipv6_client_by_its_64(make_app, make_user, coop):
    app = make_app(**LIMITS, INVITE_CODE_FAILURE_LIMIT="100 per hour", INVITE_CODE_IP_FAILURE_LIMIT="3 per hour")
    users = [make_user() for _ in range(5)]
    for n, user in enumerate(users[:3]):  # three accounts, one /64
        resp = _client(app, f"2001:db8:1:2::{n + 1}").post("/api/coops/join", headers=bearer(user),
                                                          json={"invite_code": f"WRONG00{n}"})
        assert resp.status_code == 404
    same_block = _client(app, "2001:db8:1:2:ffff::9").post("/api/coops/join", headers=bearer(users[3]),
                                                           json={"invite_code": coop.invite_code})
    assert same_block.status_code == 429
    elsewhere = _client(app, "2001:db8:1:3::1").post("/api/coops/join", headers=bearer(users[3]),
                                                     json={"invite_code": coop.invite_code})
    assert elsewhere.status_code == 200
    from webapp.services import invites

    assert invites.ip_bucket("2001:db8:1:2::1") == invites.ip_bucket("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert invites.ip_bucket("::ffff:198.51.100.7") == invites.ip_bucket("198.51.100.7") == "198.51.100.7"


def test_the_platform_limit_pauses_typed_codes_alarms_admins_once_and_links_still_work(make_app, make_user, coop):
    app = make_app(**LIMITS, INVITE_CODE_FAILURE_LIMIT="100 per hour", INVITE_CODE_IP_FAILURE_LIMIT="100 per hour",
                   INVITE_CODE_GLOBAL_FAILURE_LIMIT="5 per hour")
    admins = [make_user(is_admin=True), make_user(is_admin=True)]
    bots = [make_user() for _ in range(7)]
    statuses = []
    for n, bot in enumerate(bots):  # a botnet: every guess from another account and address
        resp = _client(app, f"198.51.100.{n + 1}").post("/api/coops/join", headers=bearer(bot),
                                                         json={"invite_code": f"GUESS{n:03d}"})
        statuses.append(resp.status_code)
    assert statuses == [404] * 5 + [429] * 2  # at most 5 guesses an hour, however many machines
    newcomer, linked = make_user(), make_user()
    typed = _client(app, "192.0.2.10").post("/api/coops/join", headers=bearer(newcomer),
                                            json={"invite_code": coop.invite_code})
    assert typed.status_code == 429 and "paused" in typed.get_json()["error"]["message"]
    # The invite link's key is not a guess: the member who got the link joins.
    from webapp.services import invites

    page, form = _page(app, linked, "192.0.2.11")
    key = invites.link_key(coop.invite_code)
    preview = page.get(f"/coop/join/{coop.invite_code}?k={key}")
    assert preview.status_code == 200 and "Join Guarded Coop" in preview.get_data(as_text=True)
    action = re.search(r'<form method="post" action="(/coop/join/[^"]+)"', preview.get_data(as_text=True)).group(1)
    assert f"k={key}" in action  # the join button keeps the key
    assert page.post(action.replace("&amp;", "&"), data=form).status_code == 302
    assert _members(coop.id) == 2
    # Each platform admin heard it once, and /admin says so.
    with app.app_context():
        alarms = db.session.scalars(select(Notification).where(Notification.subtype == "invite_code_guessing")).all()
        assert sorted(n.user_id for n in alarms) == sorted(a.user_id for a in admins)
        assert all(n.category == "system" and n.link == "/admin" for n in alarms)
    admin_page, _ = _page(app, admins[0], "192.0.2.12")
    line = admin_page.get("/admin").get_data(as_text=True)
    assert "5 wrong codes tried in the last hour" in line and "Typed codes are paused" in line


def test_a_wrong_key_is_counted_like_a_typed_code(make_app, make_user, coop):
    app = make_app(**LIMITS, INVITE_CODE_FAILURE_LIMIT="2 per hour")
    from webapp.services import invites

    user = make_user()
    client = _client(app, "192.0.2.20")
    bad = {"invite_code": "WRONG777", "invite_key": invites.link_key(coop.invite_code)}  # another code's key
    assert [client.post("/api/coops/join", headers=bearer(user), json=bad).status_code for _ in range(3)] == [404, 404,
                                                                                                            429]
