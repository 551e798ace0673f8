"""Open pages stay true in a real browser: two members' coop dashboards see
a rename and a join live (header, count, members table), a removed member's
page leaves with a message, and a read in one tab shows in the other tab's
bell and list items."""
from __future__ import annotations

import pytest

from webapp.services import coops, notifications

from ..builders import PASSWORD
from .conftest import login, wait_socket, watch

pytestmark = pytest.mark.browser


def _open_dashboard(browser, base_url: str, user):
    context = browser.new_context()
    page = watch(context.new_page())
    login(page, base_url, user.user_id, PASSWORD)
    page.goto(f"{base_url}/coop")
    page.wait_for_selector("#coop-members")
    wait_socket(page, 0)
    return context, page


def test_two_members_see_a_rename_and_a_join_live(live_server, browser, make_user):
    admin = make_user(display_name="Chief")
    coop = coops.create(admin, name="Before Crew", description="old words")
    first, second = make_user(display_name="Ann"), make_user(display_name="Ben")
    for user in (first, second):
        coops.join(user, invite_code=coop.invite_code)
    pages = [_open_dashboard(browser, live_server.url, user) for user in (first, second)]
    try:
        coops.update_details(admin, coop_id=coop.id, name="After Crew", description="new words")
        coops.join(make_user(display_name="Cleo"), invite_code=coop.invite_code)
        for _, page in pages:
            page.wait_for_selector("#coop-header h1:has-text('After Crew')", timeout=10_000)
            page.wait_for_selector("#coop-members tr.member:has-text('Cleo')", timeout=10_000)
            assert page.locator("#coop-header").inner_text().count("new words") == 1
            assert "4/20 members" in page.locator("#coop-header").inner_text()
            assert "Members (4/20)" in page.locator("#coop-members h2").inner_text()
            assert page.locator("tr.member").count() == 4
            assert page.csp_errors == []

        # The second member is removed: their page says so and leaves for /coop.
        _, removed = pages[1]
        coops.remove_member(admin, coop_id=coop.id, user_id=second.user_id)
        removed.wait_for_url(f"{live_server.url}/coop", timeout=10_000)
        removed.wait_for_selector(".flash:has-text('You were removed from After Crew.')")
        _, stays = pages[0]
        stays.wait_for_selector("#coop-header:has-text('3/20 members')", timeout=10_000)
    finally:
        for context, _ in pages:
            context.close()


def test_a_read_in_one_tab_shows_in_the_other_tabs_items(live_server, browser, make_user):
    user = make_user()
    row = notifications.notify(user.user_id, "social", "coop_member_joined", "Dora joined")
    context = browser.new_context()
    try:
        tabs = []
        for _ in range(2):
            tab = watch(context.new_page())
            if not tabs:
                login(tab, live_server.url, user.user_id, PASSWORD)
            tab.goto(f"{live_server.url}/notifications")
            wait_socket(tab, 0)
            tabs.append(tab)
        reader, other = tabs
        assert other.locator(f"#notification-{row.id}.unread").count() == 1
        reader.locator(f"#notification-{row.id} button", has_text="Mark read").click()
        other.wait_for_selector(f"#notification-{row.id}:not(.unread)", timeout=10_000)
        other.wait_for_selector(f"#bell-item-{row.id}:not(.unread)", state="attached", timeout=10_000)
        assert other.locator(f"#notification-{row.id} button", has_text="Mark read").count() == 0
        assert other.locator("#notification-badge").inner_text().strip() == ""
        assert not [text for kind, text in other.console if kind == "error"]
    finally:
        context.close()


def test_an_open_leaderboard_follows_new_best_difficulties_and_rests_while_hidden(make_app, browser, make_user):
    from webapp.extensions import db
    from webapp.models import MinerStats

    from ..builders import serve_own_origin

    def best(user, value: float) -> None:
        db.session.merge(MinerStats(user_id=user.user_id, best_difficulty=value, total_shares=1))
        db.session.commit()

    server = serve_own_origin(make_app, LEADERBOARD_REFRESH_SECONDS=1)
    first, second = make_user(display_name="Ada Hash"), make_user(display_name="Bo Shares")
    best(first, 5_000_000)
    best(second, 1_000_000)
    context = browser.new_context()
    try:
        page = watch(context.new_page())
        page.goto(f"{server.url}/leaderboard")
        rows = page.locator("#leaderboard tbody tr")
        assert rows.nth(0).inner_text().startswith("#1\tAda Hash")
        best(second, 9_000_000_000)  # Bo's new personal best overtakes Ada
        page.wait_for_selector("#leaderboard tbody tr:first-child:has-text('Bo Shares')", timeout=10_000)
        assert rows.nth(0).inner_text().split("\t")[:2] == ["#1", "Bo Shares"]
        assert rows.nth(1).inner_text().split("\t")[:2] == ["#2", "Ada Hash"]
        assert page.locator("#leaderboard-board").count() == 1  # swapped in place, not nested
        # A hidden tab asks nothing: no request while the page says it is hidden.
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/leaderboard" in r.url else None)
        page.evaluate("Object.defineProperty(document, 'hidden', {value: true, configurable: true})")
        page.wait_for_timeout(2500)
        assert requests == []
        page.evaluate("Object.defineProperty(document, 'hidden', {value: false, configurable: true})")
        page.wait_for_timeout(2500)
        assert requests, "the board refreshes again once visible"
        assert page.csp_errors == []
    finally:
        context.close()
        server.stop()


def test_an_open_profile_follows_its_figures_and_keeps_its_charts(make_app, browser, make_user):
    from webapp.extensions import db
    from webapp.models import MinerStats

    from ..builders import serve_own_origin

    server = serve_own_origin(make_app, PROFILE_REFRESH_SECONDS=1)
    miner = make_user(display_name="Cy Rig")
    db.session.merge(MinerStats(user_id=miner.user_id, best_difficulty=4_000, total_shares=12))
    db.session.commit()
    context = browser.new_context()
    try:
        page = watch(context.new_page())
        page.goto(f"{server.url}/miners/{miner.user_id}")
        assert page.locator("#stat-shares").inner_text() == "12"
        page.evaluate("document.querySelector('#hashrate-chart').dataset.kept = 'yes'")
        db.session.merge(MinerStats(user_id=miner.user_id, best_difficulty=7_500_000, total_shares=1_234))
        db.session.commit()
        page.wait_for_selector("#stat-shares:has-text('1,234')", timeout=10_000)
        assert page.locator("#stat-best").inner_text() == "7.5M"
        assert page.locator("#miner-stats").count() == 1 and page.locator("#miner-workers").count() == 1
        assert page.locator("#hashrate-chart").get_attribute("data-kept") == "yes"  # not re-rendered
        assert page.csp_errors == []
    finally:
        context.close()
        server.stop()
