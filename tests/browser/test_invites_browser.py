"""A logged-out visitor follows an invite link, registers from the invite
page and lands in the coop (issue "Coops people can find and join", tests)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import CooperativeMember
from webapp.services import coops, invites

from .conftest import assert_clean_console, watch

pytestmark = pytest.mark.browser


def test_a_logged_out_visitor_follows_an_invite_registers_and_lands_in_the_coop(live_server, browser, make_coop):
    coop, admin, _ = make_coop(name="Balcony Bitaxes", description="Three Bitaxes and a fan")
    invite = coops.create_invite(admin, coop_id=coop.id, max_uses=5, expires_in=86400)
    code, coop_id = invite.code, coop.id
    link = f"{live_server.url}/coop/join/{code}?k={invites.link_key(code)}"
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = watch(context.new_page())
        page.goto(link)
        assert page.locator("h1").inner_text() == "Join Balcony Bitaxes"
        assert "1/20 members" in page.locator("#coop-join-preview").inner_text()
        assert page.locator("#invite-expiry").is_visible()
        with page.expect_navigation():
            page.click("#register-to-join")
        assert "You will join" in page.locator("#register-invite").inner_text()
        page.fill("input[name=user_id]", "bc1qbalconyminer00000000000000000000000000")
        page.fill("input[name=display_name]", "Balcony Ben")
        page.fill("input[name=password]", "a long passphrase")
        with page.expect_navigation():
            page.click("button[type=submit]")
        if page.locator("input[name=not_an_address]").count():  # the test address is not a real one
            page.fill("input[name=password]", "a long passphrase")
            page.check("input[name=not_an_address]")
            with page.expect_navigation():
                page.click("button[type=submit]")
        assert page.url.endswith("/coop")
        assert "Balcony Bitaxes" in page.locator("main").inner_text()
        assert "Welcome to Balcony Bitaxes" in page.content()
        db.session.expire_all()
        membership = db.session.scalar(select(CooperativeMember).where(
            CooperativeMember.user_id == "bc1qbalconyminer00000000000000000000000000"))
        assert (membership.cooperative_id, membership.status) == (coop_id, "active")
        assert_clean_console(page, allow=("400",))
    finally:
        context.close()
