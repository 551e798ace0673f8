"""Coop pages: dashboard, create/join forms, join link, the admin's htmx
actions (each answering only the partial that changed) and CSRF."""
from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import (
    Cooperative,
    CooperativeMember,
    MinerStats,
    WorkerStatus,
    utcnow,
)
from webapp.services import coop_hashrate, coops, invites, mining

from .builders import sql_statements


def _member_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="member" data-user-id="([^"]+)"', html)


def _status(user_id: str) -> str | None:
    db.session.expire_all()
    return db.session.scalar(
        select(CooperativeMember.status).where(CooperativeMember.user_id == user_id).order_by(CooperativeMember.id.desc())
    )


def test_coop_page_needs_login(client):
    resp = client.get("/coop")
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


def test_not_in_a_coop_shows_create_and_join_forms(client, make_user, login_as):
    login_as(make_user())
    html = client.get("/coop").get_data(as_text=True)
    assert "Found a cooperative" in html and "Join with an invite code" in html
    assert 'name="csrf_token"' in html


def test_create_form_founds_a_coop_and_shows_the_dashboard(client, make_user, login_as, auth):
    user = make_user(display_name="Founder")
    login_as(user)
    token = auth.csrf_token("/coop")
    resp = client.post("/coop/create", data={"name": "Shelf Squad", "description": "Bitaxes only", "csrf_token": token})
    assert resp.status_code == 302
    coop = coops.get_mine(user)
    assert coop.name == "Shelf Squad"
    html = client.get("/coop").get_data(as_text=True)
    assert "Shelf Squad" in html and "Bitaxes only" in html
    for label in ("Combined hashrate", "Members online", "Shares (24 h)", "Best difficulty", "Blocks found"):
        assert label in html
    key = invites.link_key(coop.invite_code)
    assert f'data-copy="http://localhost/coop/join/{coop.invite_code}?k={key}"' in html
    assert _member_rows(html) == [user.user_id]
    assert "Manage" in html
    # Errors come back inline on the same page, in plain words.
    resp = client.post("/coop/create", data={"name": "Another", "csrf_token": token})
    assert resp.status_code == 409
    assert "already in a cooperative" in resp.get_data(as_text=True)


def test_dashboard_shows_stats_members_and_the_24h_chart(client, make_user, make_coop, login_as):
    coop, admin, (member,) = make_coop(members=1)
    now = utcnow()
    db.session.add(WorkerStatus(worker=f"{member.user_id}.bitaxe", user_id=member.user_id, is_online=True,
                                last_sample_at=now, hashrate_1h=1.2e12))
    db.session.add(MinerStats(user_id=member.user_id, best_difficulty=2.5e6, blocks_found=1))
    db.session.commit()
    for hours in (20, 10, 1):
        coop_hashrate.aggregate_all(now=now - timedelta(hours=hours, minutes=-1))
    coop_hashrate.invalidate(coop.id)
    login_as(member)
    page = client.get("/coop").get_data(as_text=True)
    chart = page[page.index('<figure class="card chart-figure" id="coop-chart"'):page.index("</figure>") + 9]
    board = page[page.index('<section class="card" id="coop-leaderboard"'):]
    board = board[:board.index("</section>") + 10]
    html = page.replace(chart, "").replace(board, "")
    assert html.count(f">{mining.format_hashrate(1.2e12)}<") == 2  # the combined card and the member's row
    assert f">{mining.format_difficulty(2.5e6)}<" in html  # best difficulty
    # The chart: drawn from its JSON route, its figures readable without JS.
    assert f'data-chart-src="/api/coops/{coop.id}/hashrate/history"' in chart and 'data-range="24h"' in chart
    assert re.search(r'<th scope="row">Coop combined</th><td class="num">1.2 TH/s</td>', chart)
    assert "Coop combined over the last 24 hours: now 1.2 TH/s" in chart
    assert _member_rows(html) == [admin.user_id, member.user_id]
    assert 'class="dot on"' in html
    assert "Manage" not in html  # not the admin


def _statements_of(client, path: str) -> int:
    with sql_statements() as seen:
        assert client.get(path).status_code == 200
    return len(seen)


def test_the_dashboard_costs_the_same_statements_however_many_members_its_timeline_names(
        client, make_user, make_coop, login_as):
    """The timeline names its members in batches and the ranking and chart
    reuse the page's member list: four more members named in the timeline
    (and ranked, and charted) add no statement to the page."""
    coop, admin, _ = make_coop(members=2)
    login_as(admin)
    client.get("/coop")  # warm-up
    few = _statements_of(client, "/coop")
    for _ in range(4):
        coops.join(make_user(), invite_code=db.session.get(Cooperative, coop.id).invite_code)
    entries, _ = coops.timeline(admin, coop_id=coop.id)
    assert [e.kind for e in entries].count("joined") == 7  # the founder, the first two and the four
    client.get("/coop")  # the coop's cached total and chart, dropped by the joins, are computed again once
    assert _statements_of(client, "/coop") == few


def test_join_link_previews_and_joins_in_one_click(client, make_user, make_coop, login_as, auth):
    coop, admin, _ = make_coop()
    joiner = make_user()
    login_as(joiner)
    page = client.get(f"/coop/join/{coop.invite_code.lower()}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert coop.name in html and "1/20 members" in html and f"Join {coop.name}" in html
    token = auth.csrf_token(f"/coop/join/{coop.invite_code}")
    resp = client.post(f"/coop/join/{coop.invite_code}", data={"csrf_token": token})
    assert resp.status_code == 302
    assert coops.get_mine(joiner).id == coop.id
    assert "You are already a member" in client.get(f"/coop/join/{coop.invite_code}").get_data(as_text=True)


def test_join_link_errors_in_plain_words(client, make_user, make_coop, login_as):
    coop, _, _ = make_coop()
    login_as(make_user())
    bad = client.get("/coop/join/abc")
    assert bad.status_code == 400
    assert "8 letters or digits" in bad.get_data(as_text=True)
    unknown = "ZZZZ9999" if coop.invite_code != "ZZZZ9999" else "YYYY9999"
    gone = client.get(f"/coop/join/{unknown}")
    assert gone.status_code == 404
    assert "Ask its admin for a fresh link" in gone.get_data(as_text=True)


def test_join_form_accepts_a_pasted_link(client, make_user, make_coop, login_as, auth):
    coop, _, _ = make_coop()
    joiner = make_user()
    login_as(joiner)
    token = auth.csrf_token("/coop")
    resp = client.post("/coop/join", data={"invite_code": f"http://localhost/coop/join/{coop.invite_code}",
                                           "csrf_token": token})
    assert resp.status_code == 302
    assert coops.get_mine(joiner).id == coop.id


def test_admin_removes_a_member_with_htmx_and_the_fragment_drops_them(client, make_coop, login_as):
    coop, admin, (gone, stays) = make_coop(members=2)
    headers = login_as(admin)
    manage = client.get("/coop/manage").get_data(as_text=True)
    assert _member_rows(manage) == [admin.user_id, gone.user_id, stays.user_id]
    assert f'hx-post="/coop/{coop.id}/members/{gone.user_id}/remove"' in manage
    assert "hx-confirm=" in manage
    resp = client.post(f"/coop/{coop.id}/members/{gone.user_id}/remove", headers=headers)
    assert resp.status_code == 200
    fragment = resp.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section class="card" id="coop-members">')
    assert "<html" not in fragment
    assert _member_rows(fragment) == [admin.user_id, stays.user_id]
    assert f"{gone.display_name} was removed" in fragment
    assert _status(gone.user_id) == "removed"


def test_post_without_csrf_token_is_refused(client, make_coop, login_as):
    coop, admin, (member,) = make_coop(members=1)
    login_as(admin)
    resp = client.post(f"/coop/{coop.id}/members/{member.user_id}/remove", headers={"HX-Request": "true"})
    assert resp.status_code == 403
    assert _status(member.user_id) == "active"
    resp = client.post(f"/coop/{coop.id}/dissolve")
    assert resp.status_code == 403
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).status == "active"


def test_member_cannot_manage(client, make_coop, login_as):
    coop, admin, (member, other) = make_coop(members=2)
    headers = login_as(member)
    assert client.get("/coop/manage").status_code == 403
    resp = client.post(f"/coop/{coop.id}/members/{other.user_id}/remove", headers=headers)
    assert resp.status_code == 403
    fragment = unescape(resp.get_data(as_text=True))
    assert "Only the cooperative's admin" in fragment
    assert "Remove</button>" not in fragment
    assert _status(other.user_id) == "active"
    old = coop.invite_code
    assert client.post(f"/coop/{coop.id}/regenerate-code", headers=headers).status_code == 403
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).invite_code == old


def test_admin_regenerates_the_code_and_edits_details_with_htmx(client, make_coop, login_as):
    coop, admin, _ = make_coop()
    old = coop.invite_code
    headers = login_as(admin)
    resp = client.post(f"/coop/{coop.id}/regenerate-code", headers=headers)
    assert resp.status_code == 200
    fragment = resp.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section class="card" id="coop-invite">')
    db.session.expire_all()
    new = db.session.get(Cooperative, coop.id).invite_code
    assert new != old and f"/coop/join/{new}" in fragment and old not in fragment

    resp = client.post(f"/coop/{coop.id}/details", headers=headers, data={"name": "New name", "description": "New words"})
    assert resp.status_code == 200
    assert 'id="coop-details"' in resp.get_data(as_text=True) and "Saved." in resp.get_data(as_text=True)
    resp = client.post(f"/coop/{coop.id}/details", headers=headers, data={"name": "x", "description": ""})
    assert resp.status_code == 400
    assert "The name must be 3 to 100 characters." in resp.get_data(as_text=True)
    db.session.expire_all()
    assert (db.session.get(Cooperative, coop.id).name, db.session.get(Cooperative, coop.id).description) == (
        "New name", "New words")


def test_admin_dissolves_with_htmx_and_is_sent_to_the_start_page(client, make_coop, login_as):
    coop, admin, (member,) = make_coop(members=1)
    headers = login_as(admin)
    resp = client.post(f"/coop/{coop.id}/dissolve", headers=headers)
    assert resp.status_code == 204
    assert resp.headers["HX-Redirect"] == "/coop"
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).status == "dissolved"
    assert "Found a cooperative" in client.get("/coop").get_data(as_text=True)


def test_leave_from_the_dashboard(client, make_coop, login_as):
    coop, admin, (member,) = make_coop(members=1)
    headers = login_as(member)
    resp = client.post(f"/coop/{coop.id}/leave", headers=headers)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/coop"
    assert _status(member.user_id) == "left"

