"""The coop pages in a real browser under the app's CSP: joining through an
invite link, and the admin's htmx actions (confirm dialogs, CSRF header,
partial swaps). The ``page`` fixture (tests/browser/conftest.py) accepts
``hx-confirm`` dialogs and records CSP errors."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Cooperative, CooperativeMember
from webapp.services import coops

from ..builders import PASSWORD
from .conftest import login

pytestmark = pytest.mark.browser


def test_join_by_link_then_admin_removes_and_regenerates(live_server, page, browser, make_user):
    admin = make_user(display_name="CaptainHash")
    coop = coops.create(admin, name="Browser Crew", description="Clicked together")
    stays = make_user(display_name="Stayer")
    coops.join(stays, invite_code=coop.invite_code)
    coop_id, old_code = coop.id, coop.invite_code
    joiner = make_user(display_name="Newcomer")

    # The newcomer opens the invite link and joins in one click.
    login(page, live_server.url, joiner.user_id, PASSWORD)
    page.goto(f"{live_server.url}/coop/join/{old_code.lower()}")
    page.click("#coop-join-preview button[type=submit]")
    page.wait_for_selector("#coop-members")
    assert page.locator("tr.member").count() == 3
    assert page.csp_errors == []

    # The admin removes the newcomer and replaces the invite code, each an htmx swap.
    admin_context = browser.new_context()
    admin_page = admin_context.new_page()
    admin_page.on("dialog", lambda dialog: dialog.accept())
    try:
        login(admin_page, live_server.url, admin.user_id, PASSWORD)
        admin_page.goto(f"{live_server.url}/coop/manage")
        row = admin_page.locator(f"tr.member[data-user-id='{joiner.user_id}']")
        row.locator("button", has_text="Remove").click()
        admin_page.wait_for_selector("#coop-members >> text=Newcomer was removed")
        assert admin_page.locator("tr.member").count() == 2
        admin_page.click("#coop-invite button[type=submit]")
        admin_page.wait_for_selector("#coop-invite >> text=The old link no longer works")
    finally:
        admin_context.close()

    db.session.expire_all()
    status = db.session.scalar(select(CooperativeMember.status).where(CooperativeMember.user_id == joiner.user_id))
    assert status == "removed"
    new_code = db.session.get(Cooperative, coop_id).invite_code
    assert new_code != old_code

    # The removed miner's open coop page leaves for the start page by itself,
    # saying why; the old link is dead, the new one works.
    page.wait_for_url(f"{live_server.url}/coop")
    page.wait_for_selector("text=You were removed from Browser Crew.")
    page.goto(f"{live_server.url}/coop/join/{old_code}")
    assert "Invite link not valid" in page.content()
    page.goto(f"{live_server.url}/coop/join/{new_code}")
    page.click("#coop-join-preview button[type=submit]")
    page.wait_for_selector("#coop-chart")
    assert page.csp_errors == []
