"""The activity timeline, settings and admin pages in a real browser under
the app's CSP: infinite scroll, live entries, "Saved" confirmations, and a
dissolve that reloads the audit log."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import AuditLog, User
from webapp.services import accounts, activity

from ..builders import PASSWORD, serve_own_origin
from .conftest import login

pytestmark = pytest.mark.browser


@pytest.fixture
def fast_server(app, make_app):
    """The live server with a 1-second activity poll."""
    server = serve_own_origin(make_app, ACTIVITY_POLL_SECONDS=1)
    yield server
    server.stop()


def test_timeline_scrolls_and_receives_new_entries(fast_server, page, make_user):
    user = make_user()
    for i in range(25):
        activity.record_activity(user.user_id, "badge_earned" if i % 2 else "level_up", f"Entry {i}")
    activity.record_activity(user.user_id, "share_submitted", "New personal best: 1.2M", data={"personal_best": True})
    db.session.commit()
    login(page, fast_server.url, user.user_id, PASSWORD)
    page.goto(f"{fast_server.url}/activity")
    items = page.locator("li.activity-item")
    assert items.count() == 20
    assert "🏆" in items.first.inner_text()
    page.locator("#activity-more").scroll_into_view_if_needed()
    items.nth(25).wait_for()  # the next page arrived (no eval: the CSP forbids it)
    assert items.count() == 26
    assert page.locator("section.day").count() == 1  # the second page joined today's section
    assert page.locator("#activity-more").inner_text().strip() == ""

    activity.record_activity(user.user_id, "coop_joined", "Joined Live Coop", link="/coop")
    db.session.commit()
    page.wait_for_selector("li.activity-item.new >> text=Joined Live Coop", timeout=5000)
    assert "Joined Live Coop" in items.first.inner_text()  # on top
    assert page.csp_errors == []


def test_settings_toggle_saves_with_a_confirmation(live_server, page, make_user):
    user = make_user(country_code="PT")
    login(page, live_server.url, user.user_id, PASSWORD)
    page.goto(f"{live_server.url}/settings")
    page.uncheck("input[name=showCountryFlag]")
    page.wait_for_selector("#privacy-status .saved")
    assert "Saved" in page.inner_text("#privacy-status")
    page.check("input[name='mining.email']")
    page.wait_for_selector("#notifications-status .saved")
    page.fill("input[name=email]", "miner@localhost")  # valid to the browser, refused by the server
    page.click("#email button[type=submit]")
    page.wait_for_selector("#email-status .error")
    db.session.expire_all()
    settings = accounts.get_settings(db.session.get(User, user.user_id))
    assert settings["privacy"]["showCountryFlag"] is False
    assert settings["notifications"]["categories"]["mining"]["email"] is True
    assert page.csp_errors == []


def admin_row(page, live_server, make_user, make_coop, name: str):
    """A platform admin on /admin; → (the coop, its row in the coops table)."""
    admin = make_user(is_admin=True)
    coop, _, _ = make_coop(name=name)
    login(page, live_server.url, admin.user_id, PASSWORD)
    page.goto(f"{live_server.url}/admin")
    return coop, page.locator(f"#coop-{coop.id}")


def test_admin_dissolves_a_coop_and_the_audit_log_updates(live_server, page, make_user, make_coop):
    coop, row = admin_row(page, live_server, make_user, make_coop, "Spammy Coop")
    assert not row.locator("form[action$='/dissolve']").is_visible()  # behind the row's disclosure
    row.locator("details.admin-manage > summary").click()
    row.locator("form[action$='/dissolve'] input[name=reason]").fill("Spam in the coop name")
    row.locator("form[action$='/dissolve'] button").click()
    page.wait_for_selector(f"#coop-{coop.id} >> text=Cooperative dissolved.")
    page.wait_for_selector("#admin-audit >> text=Spam in the coop name")
    assert db.session.scalars(select(AuditLog.action)).all() == ["coop.dissolve"]
    assert page.csp_errors == []


def test_admin_coops_table_reads_well_on_a_tablet_and_a_desktop(live_server, page, make_user, make_coop):
    from .test_mobile_a11y import axe_violations, overflow

    admin = make_user(is_admin=True)
    for name in ("FREE BTC CLICK HERE", "Lisbon Lightning", "Satoshi's Hunters"):
        make_coop(name=name)
    login(page, live_server.url, admin.user_id, PASSWORD)
    page.goto(f"{live_server.url}/admin")
    region = page.locator("#admin-coops .table-scroll")
    assert region.get_attribute("role") == "region" and region.get_attribute("aria-label") == "Cooperatives"
    assert region.get_attribute("tabindex") == "0"  # the keyboard can scroll it when it must
    scroll = "(el) => [el.scrollWidth, el.clientWidth]"
    first = page.locator("#admin-coops details.admin-manage").first
    for width in (768, 1024, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert overflow(page) is None, width
        # Closed, the actions are one button: the table fits its card, names break between words only.
        assert page.locator("#admin-coops form").first.is_visible() is False
        scroll_width, client_width = region.evaluate(scroll)
        assert scroll_width <= client_width, (width, scroll_width, client_width)
        broken = page.locator("#admin-coops td.admin-name").evaluate_all("""(cells) => cells.filter((td) => {
            const range = document.createRange();
            range.selectNodeContents(td.firstChild);  // the name's text, before its invite code
            return range.getClientRects().length > td.firstChild.textContent.trim().split(/\\s+/).length;
          }).map((td) => td.firstChild.textContent.trim())""")
        assert broken == [], (width, broken)
        tallest = max(page.locator("#admin-coops tbody tr").evaluate_all("(rows) => rows.map((r) => r.offsetHeight)"))
        assert tallest < 110, (width, tallest)  # the name, its invite code and padding: no pile of forms
        first.locator("summary").click()
        assert first.locator("form[action$='/rename'] button").is_visible()
        if width >= 1024:  # open, the forms still fit; at 768 the region scrolls sideways
            scroll_width, client_width = region.evaluate(scroll)
            assert scroll_width <= client_width, (width, scroll_width, client_width)
        first.locator("summary").click()
    assert axe_violations(page) == []
    assert page.csp_errors == []


def test_admin_renames_a_coop_with_the_keyboard_and_lands_on_the_outcome(live_server, page, make_user, make_coop):
    coop, row = admin_row(page, live_server, make_user, make_coop, "Lisbon Lightning")
    row.locator("details.admin-manage > summary").focus()
    page.keyboard.press("Enter")  # opens the disclosure
    page.keyboard.press("Tab")
    page.keyboard.type("Lisbon Thunder")
    page.keyboard.press("Tab")
    page.keyboard.type("Asked by the members")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#coop-{coop.id} >> text=Cooperative renamed.")
    # The form that held the focus was swapped away; the outcome has it now, not <body>.
    assert page.evaluate("document.activeElement.textContent") == "Cooperative renamed."
    assert "Lisbon Thunder" in page.locator(f"#coop-{coop.id} td.admin-name").inner_text()
    assert page.csp_errors == []
