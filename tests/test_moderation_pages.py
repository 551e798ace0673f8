"""The moderation screen and the admin's reports, through the pages (htmx
posts with the page's CSRF token)."""
from __future__ import annotations

from webapp.services import coop_moderation, moderation, reports


def test_the_screen_is_for_the_admin_and_moderators_only(client, make_coop, login_as):
    coop, admin, (mod, member) = make_coop(members=2)
    coop_moderation.set_role(admin, coop_id=coop.id, user_id=mod.user_id, role="moderator")
    login_as(member)
    assert client.get("/coop/moderation").status_code == 403
    assert "Moderation" not in client.get("/coop").get_data(as_text=True)
    client.post("/logout")
    login_as(mod)
    page = client.get("/coop/moderation").get_data(as_text=True)
    assert "Moderate Shelf Miners" in page and f'data-user-id="{member.user_id}"' in page
    assert "Make moderator" not in page  # roles are the admin's
    assert 'href="/coop/moderation"' in client.get("/coop").get_data(as_text=True)


def test_mute_ban_and_settings_by_htmx_answer_the_panel(client, make_coop, login_as):
    coop, admin, (member, other) = make_coop(members=2)
    headers = login_as(admin, csrf_from="/coop/moderation")
    resp = client.post(f"/coop/{coop.id}/moderation/members/{member.user_id}/mute", data={"minutes": "60"},
                       headers=headers)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f"{member.display_name} is muted." in body and "muted until" in body
    assert moderation.muted_until(coop.id, member.user_id) is not None

    resp = client.post(f"/coop/{coop.id}/moderation/members/{other.user_id}/ban", data={"reason": "spam"},
                       headers=headers)
    assert resp.status_code == 200 and moderation.is_banned(coop.id, other.user_id)
    assert "Lift ban" in resp.get_data(as_text=True)

    resp = client.post(f"/coop/{coop.id}/moderation/settings",
                       data={"slow_mode_seconds": "30", "block": "free bitcoin\n", "flag": "scam\nrug pull"},
                       headers=headers)
    assert resp.status_code == 200 and "Chat settings saved." in resp.get_data(as_text=True)
    db_coop = coop_moderation.coops.get_for_member(admin, coop_id=coop.id)
    assert db_coop.slow_mode_seconds == 30
    assert db_coop.keyword_filters == [{"phrase": "free bitcoin", "action": "block"},
                                       {"phrase": "scam", "action": "flag"},
                                       {"phrase": "rug pull", "action": "flag"}]
    # A refused action re-renders the panel with the error, never a 500.
    resp = client.post(f"/coop/{coop.id}/moderation/members/{admin.user_id}/mute", data={"minutes": "60"},
                       headers=headers)
    assert resp.status_code == 403 and "You cannot do that" in resp.get_data(as_text=True)
    resp = client.post(f"/coop/{coop.id}/moderation/members/{member.user_id}/mute", data={"minutes": "x"},
                       headers=headers)
    assert resp.status_code == 400
    audit = client.get("/coop/moderation").get_data(as_text=True)
    assert "set slow mode to 30 s" in audit and "banned" in audit


def test_reports_reach_the_screen_and_escalated_ones_the_admin_page(client, make_user, make_coop, login_as):
    coop, admin, (reporter, troll) = make_coop(members=2)
    report = reports.create(reporter, target_type="user", target_id=troll.user_id, reason="abuse",
                            details="called me <b>names</b>")
    headers = login_as(admin, csrf_from="/coop/moderation")
    page = client.get("/coop/moderation").get_data(as_text=True)
    assert f"#{report.id} Abuse" in page and "called me &lt;b&gt;names&lt;/b&gt;" in page
    resp = client.post(f"/coop/{coop.id}/moderation/reports/{report.id}/resolve",
                       data={"action": "dismiss", "note": "fine"}, headers=headers)
    assert resp.status_code == 200 and "No open reports." in resp.get_data(as_text=True)

    client.post("/logout")
    platform = make_user(is_admin=True)
    other = reports.create(reporter, target_type="cooperative", target_id=str(coop.id), reason="spam")
    login_as(platform)
    assert 'hx-get="/admin/reports"' in client.get("/admin").get_data(as_text=True)
    section = client.get("/admin/reports", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert f"#{other.id} Spam" in section
    assert "<h1>Platform admin: Reports</h1>" in client.get("/admin/reports").get_data(as_text=True)  # its own page
    headers = login_as(platform, csrf_from="/admin")
    done = client.post(f"/admin/reports/{other.id}/resolve", data={"action": "dismiss"}, headers=headers)
    # The outcome takes the focus, as on the coop's screen.
    assert done.status_code == 200 and 'tabindex="-1" autofocus>Report resolved.</p>' in done.get_data(as_text=True)
    login_as(reporter)
    assert client.get("/admin/reports").status_code == 403


def test_the_platform_admin_resolves_reports_by_htmx_or_a_plain_form(client, make_user, make_coop, login_as):
    coop, admin, (reporter, troll) = make_coop(members=2)
    first = reports.create(reporter, target_type="user", target_id=troll.user_id, reason="abuse")
    second = reports.create(reporter, target_type="cooperative", target_id=str(coop.id), reason="spam")
    headers = login_as(make_user(is_admin=True), csrf_from="/admin")
    resolve = f"/admin/reports/{first.id}/resolve"

    refused = client.post(resolve, data={"action": "mute", "minutes": "soon"}, headers=headers)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'class="mod-status error"' in html and "minutes" in html
    assert f"#{first.id} Abuse" in html and f"#{second.id} Spam" in html  # nothing resolved

    done = client.post(resolve, data={"action": "dismiss", "note": "fine"}, headers=headers)
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "Report resolved." in html and 'class="mod-status ok"' in html
    assert f"#{first.id} Abuse" not in html and f"#{second.id} Spam" in html
    again = client.post(resolve, data={"action": "dismiss"}, headers=headers)
    assert again.status_code == 409 and "This report has already been resolved." in again.get_data(as_text=True)

    # Without htmx: back to the section as a page of its own, the outcome flashed.
    plain = client.post(f"/admin/reports/{second.id}/resolve", data={"action": "dismiss"},
                        headers={"X-CSRFToken": headers["X-CSRFToken"]})
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/admin/reports")
    page = client.get("/admin/reports").get_data(as_text=True)
    assert "Report resolved." in page and "<html" in page and 'id="reports"' in page
    assert "No open reports." in page


def test_a_bad_mute_length_answers_the_panel_with_the_error(client, make_coop, login_as):
    coop, admin, (reporter, troll) = make_coop(members=2)
    report = reports.create(reporter, target_type="user", target_id=troll.user_id, reason="abuse")
    headers = login_as(admin, csrf_from="/coop/moderation")
    resp = client.post(f"/coop/{coop.id}/moderation/reports/{report.id}/resolve",
                       data={"action": "mute", "minutes": "soon"}, headers=headers)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "minutes" in html and f"#{report.id} Abuse" in html
    assert moderation.muted_until(coop.id, troll.user_id) is None


def test_a_reported_message_is_quoted_escaped_on_the_screen(client, make_coop, login_as):
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import Conversation
    from webapp.services import messages

    coop, admin, (reporter, troll) = make_coop(members=2)
    cid = db.session.scalar(select(Conversation.id).where(Conversation.cooperative_id == coop.id))
    posted, _ = messages.post(troll.user_id, cid, "<script>alert(1)</script> buy my coin")
    reports.create(reporter, target_type="message", target_id=str(posted["id"]), reason="spam")
    login_as(admin)
    page = client.get("/coop/moderation").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; buy my coin" in page and "<script>alert" not in page
    assert '<option value="delete_message">' in page


def test_a_reported_message_shows_as_it_was_reported_and_what_changed_since(client, make_coop, login_as):
    """A report keeps the words it was filed on: the author editing or
    deleting the message afterwards cannot change what the moderators read,
    and the screen says that it changed. A flag report keeps the words that
    matched, and those of the edit that opened it again."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.models import Report
    from webapp.services import conversations, messages

    coop, admin, (reporter, author) = make_coop(members=2)
    cid = conversations.coop_conversation_id(coop.id)
    nasty, _ = messages.post(author.user_id, cid, "you are all <b>idiots</b>")
    gone, _ = messages.post(author.user_id, cid, "buy my token")
    edited = reports.create(reporter, target_type="message", target_id=str(nasty["id"]), reason="abuse")
    deleted = reports.create(reporter, target_type="message", target_id=str(gone["id"]), reason="spam")
    assert edited.to_dict()["reported_body"] == "you are all <b>idiots</b>"
    messages.edit(author.user_id, nasty["id"], "have a nice day")
    messages.delete(author.user_id, gone["id"])

    login_as(admin)
    page = client.get("/coop/moderation").get_data(as_text=True)
    def item(report_id: int) -> str:
        return page[page.index(f'id="report-{report_id}"'):].split("</li>")[0]

    assert '<blockquote class="mod-quote">you are all &lt;b&gt;idiots&lt;/b&gt;</blockquote>' in item(edited.id)
    assert "Edited since the report; now: “have a nice day”" in item(edited.id)
    head = " ".join(item(edited.id).split())
    assert f"A message by {author.display_name} · reported " in head and f" by {reporter.display_name}</span>" in head
    assert '<blockquote class="mod-quote">buy my token</blockquote>' in item(deleted.id)
    assert "Deleted since the report." in item(deleted.id)

    # The keyword filter's report: the words that matched, then the edit's.
    coop_moderation.update_settings(admin, coop_id=coop.id, keyword_filters=[{"phrase": "scam", "action": "flag"}])
    flagged, _ = messages.post(author.user_id, cid, "this is a scam")
    flag = db.session.scalars(select(Report).where(Report.target_id == str(flagged["id"]),
                                                   Report.reason == "flagged")).one()
    assert flag.reported_body == "this is a scam"
    reports.resolve(admin, report_id=flag.id, action="dismiss")
    messages.edit(author.user_id, flagged["id"], "still a scam, really")
    db.session.expire_all()
    flag = db.session.get(Report, flag.id)
    assert (flag.status, flag.reported_body) == ("open", "still a scam, really")


def test_a_site_admins_resolution_shows_in_both_audit_logs_in_words(client, make_user, make_coop, login_as):
    """A platform admin resolving a coop's report: the coop's log says a
    site admin did it, with the note; the platform's log (/admin) has it
    too. Settings and mutes read in words."""
    coop, admin, (reporter, troll) = make_coop(members=2)
    report = reports.create(reporter, target_type="user", target_id=troll.user_id, reason="abuse")
    platform = make_user(is_admin=True, display_name="SiteKeeper")
    headers = login_as(platform, csrf_from="/admin")
    done = client.post(f"/admin/reports/{report.id}/resolve", data={"action": "mute", "note": "cool off"},
                       headers=headers)
    assert done.status_code == 200
    assert f"report {report.id}" in client.get("/admin/audit", headers={"HX-Request": "true"}).get_data(as_text=True)
    client.post("/logout")
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=10,
                                    keyword_filters=[{"phrase": "scam", "action": "flag"}])
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=0, keyword_filters=[])
    login_as(admin)
    log = " ".join(client.get("/coop/moderation").get_data(as_text=True).split())
    assert f"(a site admin) resolved report #{report.id}: mute — “cool off”" in log
    assert "muted" in log and "for 1 hour" in log
    assert "set slow mode to 10 s" in log and "changed the keyword filters (1 phrase)" in log
    assert "turned slow mode off" in log and "cleared the keyword filters" in log


def test_an_open_screen_hears_of_reports_and_actions_and_shows_the_latest_when_asked(live, client, make_coop,
                                                                                      login_as):
    """Another moderator's screen (``coop=moderation`` on its socket) gets a
    line saying what changed when a member files a report and when the
    admin mutes someone, never for its own viewer's action; a dashboard is
    not refreshed for it; JSON sockets of moderators get ``coop_changed``
    with ``change: moderation``, a member's nothing. "Show the latest"
    answers the panel as it is now and clears the line."""
    import json

    from .test_coop_live import connect

    coop, admin, (mod, member, troll) = make_coop(members=3)
    coop_moderation.set_role(admin, coop_id=coop.id, user_id=mod.user_id, role="moderator")
    screens = {u.user_id: connect(live.ws_url, u, "format=html&coop=moderation") for u in (mod, admin)}
    dashboard = connect(live.ws_url, mod, "format=html&coop=members")
    mod_json, member_json = connect(live.ws_url, mod, ""), connect(live.ws_url, member, "")

    def frames(sock, wait: float = 1.5) -> list[str]:
        got = []
        try:
            while True:
                got.append(sock.recv_text(wait))
        except Exception:  # noqa: BLE001 - the wait ended
            return got

    reports.create(member, target_type="user", target_id=troll.user_id, reason="abuse", details="rude")
    for user_id, sock in screens.items():
        lines = [f for f in frames(sock) if 'id="moderation-live"' in f]
        assert len(lines) == 1, (user_id, lines)
        assert "New reports or moderation actions since this screen loaded." in lines[0]
        assert 'hx-get="/coop/moderation/panel"' in lines[0] and 'hx-swap-oob="innerHTML"' in lines[0]
        assert 'hx-get="/coop/moderation/counts"' in lines[0] and 'hx-trigger="load"' in lines[0]
    def changes(sock, wait: float = 1.5) -> list[dict]:
        return [m for m in map(json.loads, frames(sock, wait)) if m["type"] == "coop_changed"]

    assert changes(mod_json) == [{"type": "coop_changed", "cooperative_id": coop.id, "change": "moderation"}]
    assert changes(member_json, 0.5) == []
    assert not any("coop-refresh" in f for f in frames(dashboard, 0.5))

    coop_moderation.mute(admin, coop_id=coop.id, user_id=troll.user_id, minutes=10)
    assert any('id="moderation-live"' in f for f in frames(screens[mod.user_id]))
    assert not any('id="moderation-live"' in f for f in frames(screens[admin.user_id], 0.5))  # her own action
    # Two audit entries in one transaction (slow mode and filters): one push.
    frames(mod_json, 0.3)
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=30,
                                    keyword_filters=[{"phrase": "spam", "action": "flag"}])
    assert changes(mod_json) == [{"type": "coop_changed", "cooperative_id": coop.id, "change": "moderation"}]

    login_as(member)
    assert client.get("/coop/moderation/counts").get_data(as_text=True) == ""  # not a moderator
    client.post("/logout")
    login_as(mod)
    counted = client.get("/coop/moderation/counts").get_data(as_text=True)
    assert 'id="mod-jump"' in counted and 'hx-swap-oob="true"' in counted
    assert "Reports (1)" in counted and "Bans (0)" in counted
    assert client.get("/coop/moderation/panel").status_code == 302  # not htmx: the screen
    html = client.get("/coop/moderation/panel", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert html.lstrip().startswith('<div id="moderation" class="moderation">')
    assert "Showing the latest." in html and "rude" in html and "muted" in html
    assert html.endswith('<div id="moderation-live" hx-swap-oob="innerHTML"></div>')
    for sock in [*screens.values(), dashboard, mod_json, member_json]:
        sock.close()
