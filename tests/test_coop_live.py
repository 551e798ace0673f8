"""Every open coop page stays true: a rename, a new invite code, a join, a
removal, a dissolve, the hashrate job and stored mining events reach the
other members' open pages (a #coop-refresh over /ws, then ``GET /coop/live``
with every fragment out of band, rendered by the page's own partials), and a
removed member's or a dissolved coop's page is sent away with a message."""
from __future__ import annotations

import re

import pytest

from webapp.services import coop_hashrate, coops

from .builders import PASSWORD, AuthActions, token_of
from .mining_support import drain, sample, share, xadd
from .wshelpers import Client, Gunicorn


def connect(url_of, user, query: str = "format=html&coop=members") -> Client:
    sock = Client(url_of("&".join(filter(None, [query, f"token={token_of(user)}"]))), timeout=10)
    sock.recv_text(10)  # the unread badge: the user's channel is subscribed
    return sock


def refresh_url(sock: Client, timeout: float = 10) -> str:
    """The /coop/live URL of the next #coop-refresh frame (skipping notification frames)."""
    for _ in range(8):
        html = sock.recv_text(timeout)
        if "coop-refresh" in html:
            match = re.search(r'hx-get="([^"]+)"', html)
            assert match and 'hx-trigger="load"' in html
            return match.group(1).replace("&amp;", "&")
    raise AssertionError("no #coop-refresh frame")


def fragments(client, url: str) -> str:
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers, response.headers
    return response.get_data(as_text=True)


def counts(html: str) -> tuple[int, int, int]:
    """(header pill, "Members online x / N", table heading) member counts."""
    pill = re.search(r"(\d+)/20 members</span>", html)
    card = re.search(r"Members online</div><div class=\"value\">\d+ / (\d+)", html)
    table = re.search(r"Members \((\d+)/20\)", html)
    assert pill and card and table, html
    return int(pill.group(1)), int(card.group(1)), int(table.group(1))


def test_rename_new_code_and_join_reach_an_open_dashboard(live, client, auth, make_user):
    admin, member = make_user(display_name="Boss"), make_user(display_name="Pal")
    coop = coops.create(admin, name="Old Name", description="old words")
    coops.join(member, invite_code=coop.invite_code)
    auth.login(member.user_id, PASSWORD)
    page = client.get("/coop").get_data(as_text=True)
    assert counts(page) == (2, 2, 2)
    sock = connect(live.ws_url, member)

    coops.update_details(admin, coop_id=coop.id, name="New Name", description="fresh words")
    url = refresh_url(sock)
    assert url == f"/coop/live?view=dashboard&coop_id={coop.id}"
    html = fragments(client, url)
    for fragment in ("coop-header", "coop-stats", "coop-invite", "coop-members"):
        assert f'id="{fragment}" hx-swap-oob="true"' in html
    assert "<h1>New Name</h1>" in html and "fresh words" in html and "Old Name" not in html

    old_code = coop.invite_code
    fresh = coops.regenerate_code(admin, coop_id=coop.id)
    html = fragments(client, refresh_url(sock))
    assert fresh.invite_code != old_code
    assert fresh.invite_code in html and old_code not in html

    coops.join(make_user(display_name="Newbie"), invite_code=fresh.invite_code)
    html = fragments(client, refresh_url(sock))
    assert "Newbie" in html
    assert counts(html) == (3, 3, 3)  # the header, the card and the table agree
    sock.close()


def test_removed_member_and_dissolved_coop_pages_are_sent_away(live, app, make_user):
    admin, member, other = make_user(), make_user(), make_user()
    coop = coops.create(admin, name="Leaving Crew")
    for user in (member, other):
        coops.join(user, invite_code=coop.invite_code)
    removed_sock, other_sock = connect(live.ws_url, member), connect(live.ws_url, other)
    removed_client, other_client = app.test_client(), app.test_client()
    for c, user in ((removed_client, member), (other_client, other)):
        AuthActions(c).login(user.user_id, PASSWORD)

    coops.remove_member(admin, coop_id=coop.id, user_id=member.user_id)
    gone = removed_client.get(refresh_url(removed_sock), headers={"HX-Request": "true"})
    assert gone.status_code == 200 and gone.headers["HX-Redirect"] == "/coop"
    assert "You were removed from Leaving Crew." in removed_client.get("/coop").get_data(as_text=True)
    assert counts(fragments(other_client, refresh_url(other_sock))) == (2, 2, 2)

    coops.dissolve(admin, coop_id=coop.id)
    gone = other_client.get(refresh_url(other_sock), headers={"HX-Request": "true"})
    assert gone.headers["HX-Redirect"] == "/coop"
    assert "Leaving Crew was dissolved." in other_client.get("/coop").get_data(as_text=True)
    for sock in (removed_sock, other_sock):
        sock.close()


def test_admin_screen_of_a_former_admin_is_sent_away(client, auth, make_user):
    admin, member = make_user(), make_user()
    coop = coops.create(admin, name="Handover Crew")
    coops.join(member, invite_code=coop.invite_code)
    auth.login(admin.user_id, PASSWORD)
    html = fragments(client, f"/coop/live?view=manage&coop_id={coop.id}")
    assert ">Remove</button>" in html and 'id="coop-invite" hx-swap-oob="true"' in html
    assert client.get("/coop/live?view=nope").status_code == 400
    coops.leave(admin, coop_id=coop.id)
    coops.join(admin, invite_code=coop.invite_code)  # back, as a plain member now
    gone = client.get(f"/coop/live?view=manage&coop_id={coop.id}", headers={"HX-Request": "true"})
    assert gone.headers["HX-Redirect"] == "/coop"
    assert "You are no longer the admin of Handover Crew." in client.get("/coop").get_data(as_text=True)


def test_the_hashrate_job_and_mining_events_announce_new_numbers(live, app, redis, make_user):
    admin, member = make_user(), make_user()
    coop = coops.create(admin, name="Numbers Crew")
    coops.join(member, invite_code=coop.invite_code)
    sock = connect(live.ws_url, member, "")  # JSON mode
    numbers = {"type": "coop_changed", "cooperative_id": coop.id, "change": "numbers"}

    coop_hashrate.aggregate_all()
    assert sock.recv_until(lambda m: m["type"] == "coop_changed", 10) == numbers

    xadd(redis, "hashrate_update", sample(admin.user_id, "rig", 4.2e12))
    xadd(redis, "share_submitted", share(admin.user_id, "rig", 5000.0))
    drain()
    assert sock.recv_until(lambda m: m["type"] == "coop_changed", 10) == numbers
    # Within COOP_LIVE_PUSH_INTERVAL the next batch announces nothing more.
    xadd(redis, "share_submitted", share(admin.user_id, "rig", 6000.0))
    drain()
    assert coop_hashrate.announce_mining([admin.user_id]) == 0
    sock.close()


# ---- the production server: two gevent worker processes ---------------------------------


@pytest.fixture(scope="module")
def gunicorn(migrated):
    server = Gunicorn(migrated).wait_ready()
    yield server
    server.stop()


@pytest.mark.slow
def test_coop_changes_reach_pages_on_both_workers(gunicorn, app, make_user):
    admin, member, leaver = make_user(), make_user(), make_user()
    coop = coops.create(admin, name="Gunicorn Crew")
    for user in (member, leaver):
        coops.join(user, invite_code=coop.invite_code)
    # Four tabs each: the sockets spread over both worker processes.
    gunicorn.warm_up()
    tabs = [connect(gunicorn.ws_url, member) for _ in range(4)]
    leaver_tabs = [connect(gunicorn.ws_url, leaver) for _ in range(4)]
    expected = f"/coop/live?view=dashboard&coop_id={coop.id}"
    member_client = app.test_client()
    AuthActions(member_client).login(member.user_id, PASSWORD)

    coops.update_details(admin, coop_id=coop.id, name="Renamed Crew")
    assert {refresh_url(tab) for tab in tabs + leaver_tabs} == {expected}
    assert "<h1>Renamed Crew</h1>" in fragments(member_client, expected)
    fresh = coops.regenerate_code(admin, coop_id=coop.id)
    assert {refresh_url(tab) for tab in tabs + leaver_tabs} == {expected}
    assert fresh.invite_code in fragments(member_client, expected)
    coops.join(make_user(display_name="Late Joiner"), invite_code=fresh.invite_code)
    assert {refresh_url(tab) for tab in tabs + leaver_tabs} == {expected}
    assert counts(fragments(member_client, expected)) == (4, 4, 4)

    coops.remove_member(admin, coop_id=coop.id, user_id=leaver.user_id)
    assert {refresh_url(tab) for tab in tabs + leaver_tabs} == {expected}
    leaver_client = app.test_client()
    AuthActions(leaver_client).login(leaver.user_id, PASSWORD)
    assert leaver_client.get(expected, headers={"HX-Request": "true"}).headers["HX-Redirect"] == "/coop"

    coops.dissolve(admin, coop_id=coop.id)
    assert {refresh_url(tab) for tab in tabs} == {expected}
    assert member_client.get(expected, headers={"HX-Request": "true"}).headers["HX-Redirect"] == "/coop"
    assert "Renamed Crew was dissolved." in member_client.get("/coop").get_data(as_text=True)
    for tab in tabs + leaver_tabs:
        tab.close()


def test_stat_cards_agree_with_the_members_table_between_two_aggregations(client, auth, redis, make_user):
    admin, member = make_user(), make_user()
    coop = coops.create(admin, name="Agreeing Crew")
    coops.join(member, invite_code=coop.invite_code)
    coop_hashrate.aggregate_all()  # cached: 0 H/s, nobody online
    xadd(redis, "hashrate_update", sample(admin.user_id, "rig", 4.2e12))
    drain()
    auth.login(member.user_id, PASSWORD)
    html = fragments(client, f"/coop/live?view=dashboard&coop_id={coop.id}")
    card = re.search(r'Combined hashrate</div><div class="value">([^<]+)<', html).group(1)
    online = re.search(r'Members online</div><div class="value">([^<]+)<', html).group(1)
    assert (card, online) == ("4.2 TH/s", "1 / 2")
    assert html.count("4.2 TH/s") == 2  # the card and the admin's row
