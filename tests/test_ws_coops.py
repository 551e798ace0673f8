"""Live coop pages over /ws against a real threaded server: a join, leave,
removal, rename, new code or dissolve publishes ``coop_changed`` to the other
members' sockets (JSON: forwarded with its ``change``; HTML: a #coop-refresh
element for coop pages, nothing for other pages), and ``GET /coop/live``
serves every fragment htmx swaps in, or sends a former member away."""
from __future__ import annotations

from webapp.services import admin as admin_service
from webapp.services import coops, notifications

from .builders import PASSWORD, token_of
from .wshelpers import Client


def connect(live, user, query: str = "") -> Client:
    sock = Client(live.ws_url("&".join(filter(None, [query, f"token={token_of(user)}"]))))
    sock.recv_text()  # the unread count: the user's channel is subscribed
    return sock


def refresh_frame(sock: Client) -> str:
    """The next HTML frame with #coop-refresh (skipping notification frames)."""
    for _ in range(5):
        html = sock.recv_text()
        if "coop-refresh" in html:
            return html
    raise AssertionError("no #coop-refresh frame")


def test_join_leave_remove_push_coop_changed_to_the_others_in_json(live, make_user):
    admin, member = make_user(), make_user()
    coop = coops.create(admin, name="Socket Crew")
    coops.join(member, invite_code=coop.invite_code)
    admin_sock, member_sock = connect(live, admin), connect(live, member)

    newcomer = make_user()
    coops.join(newcomer, invite_code=coop.invite_code)
    changed = {"type": "coop_changed", "cooperative_id": coop.id, "change": "membership"}
    assert admin_sock.recv_until(lambda m: m["type"] == "coop_changed") == changed
    assert member_sock.recv_until(lambda m: m["type"] == "coop_changed") == changed

    coops.remove_member(admin, coop_id=coop.id, user_id=member.user_id)  # the removed member hears it too
    assert member_sock.recv_until(lambda m: m["type"] == "coop_changed") == changed
    # The acting admin's own socket gets nothing: its page already shows the result.
    notifications.notify(admin.user_id, "system", "announcement", "marker")
    assert admin_sock.recv_until(lambda m: m["type"] != "unread_count")["type"] == "notification"

    coops.leave(newcomer, coop_id=coop.id)
    assert admin_sock.recv_until(lambda m: m["type"] == "coop_changed") == changed
    for sock in (admin_sock, member_sock):
        sock.close()


def test_html_mode_sends_the_refresh_element_only_to_coop_pages(live, make_user):
    admin, member = make_user(), make_user()
    coop = coops.create(admin, name="Html Crew")
    coops.join(member, invite_code=coop.invite_code)
    dashboard = connect(live, member, "format=html&coop=members")
    manage = connect(live, admin, "format=html&coop=manage")
    elsewhere = connect(live, member, "format=html")

    coops.join(make_user(), invite_code=coop.invite_code)
    html = dashboard.recv_text()
    assert html.strip().startswith('<div id="coop-refresh" data-coop="members" hx-swap-oob="true" hidden')
    assert f'hx-get="/coop/live?view=dashboard&amp;coop_id={coop.id}"' in html and 'hx-trigger="load"' in html
    assert 'hx-swap="none"' in html
    manage_url = f'hx-get="/coop/live?view=manage&amp;coop_id={coop.id}"'
    assert manage_url in refresh_frame(manage)  # after "New member joined"
    # A page without the members table gets nothing: the next frame is a notification's.
    notifications.notify(member.user_id, "system", "announcement", "marker")
    assert "coop-refresh" not in elsewhere.recv_text()

    # A platform admin's dissolve reaches the former members.
    platform = make_user(is_admin=True)
    admin_service.dissolve_coop(platform, coop_id=coop.id, reason="Test dissolve")
    assert manage_url in refresh_frame(manage)
    for sock in (dashboard, manage, elsewhere):
        sock.close()


def test_members_fragment_for_the_dashboard_the_admin_screen_and_former_members(client, auth, make_user):
    admin, member = make_user(display_name="Boss"), make_user(display_name="Pal")
    coop = coops.create(admin, name="Fragment Crew")
    coops.join(member, invite_code=coop.invite_code)
    auth.login(admin.user_id, PASSWORD)
    dashboard = client.get("/coop/members").get_data(as_text=True)
    assert dashboard.count('<tr class="member"') == 2 and "Remove" not in dashboard
    assert "Members (2/20)" in dashboard
    manage = client.get("/coop/members?manage=1").get_data(as_text=True)
    assert manage.count(">Remove</button>") == 1

    client.post("/logout", data={"csrf_token": auth.csrf_token("/coop")})
    auth.login(member.user_id, PASSWORD)
    assert "Remove" not in client.get("/coop/members?manage=1").get_data(as_text=True)  # not the admin
    coops.remove_member(admin, coop_id=coop.id, user_id=member.user_id)
    gone = client.get("/coop/members")
    assert gone.status_code == 200
    assert "You are no longer a member of this cooperative." in gone.get_data(as_text=True)
