"""Charts and local time in a real browser (Debian's chromium, headless)
under the app's CSP, at a phone's width (390 px) and a desktop's (1280 px):

- the profile's hashrate chart draws axes with units (TH/s ticks, times in
  the browser's zone) and shows a tooltip and live legend on hover, and the
  range links redraw it in place; the best difficulty chart is on a log axis;
- the coop dashboard's chart names members, and a member hiding from coop
  rankings as "a member";
- relative times ("just now" → "2 min ago") stay fresh while the page is
  open, and a logged-out visitor reads times in the browser's zone;
- a signed-in miner who has not chosen a zone is offered the browser's.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent, UserSettings
from webapp.services import preferences

from ..builders import PASSWORD
from .conftest import assert_clean_console, login, watch

pytestmark = pytest.mark.browser

_seq = iter(range(10**9))


def mine(user, rigs=("attic", "shed"), hours: int = 3, rate: float = 1.2e12) -> None:
    """Hashrate samples every 5 minutes for the last ``hours`` and three personal bests."""
    now = datetime.now(UTC)
    for step in range(hours * 12, -1, -1):
        for i, rig in enumerate(rigs):
            at = now - timedelta(minutes=5 * step)
            db.session.add(MiningEvent(
                stream="mining:hashrate_update", entry_id=f"{next(_seq)}-0", event="hashrate_update", ts=at,
                user_id=user.user_id, worker=f"{user.user_id}.{rig}",
                data={"user": user.user_id, "worker": f"{user.user_id}.{rig}", "hashrate_1h": rate * (i + 1)}))
    for hours_ago, best in ((20, 16089.3), (5, 18674.3), (1, 4363291.8)):
        db.session.add(MiningEvent(
            stream="mining:share_best_diff", entry_id=f"{next(_seq)}-0", event="share_best_diff",
            ts=now - timedelta(hours=hours_ago), user_id=user.user_id, worker=f"{user.user_id}.attic",
            data={"new_best": best, "prev_best": 0, "timeframe": "alltime"}))
    db.session.commit()


def y_ticks(page, figure: str) -> list[str]:
    return page.evaluate(f"() => document.querySelector('{figure}')._plot.axes[1]._values || []")


def x_ticks(page, figure: str) -> list[str]:
    return page.evaluate(f"() => document.querySelector('{figure}')._plot.axes[0]._values || []")


def hover_plot(page, figure: str, fraction: float = 0.97) -> None:
    page.locator(f"{figure} .u-over").scroll_into_view_if_needed()
    box = page.locator(f"{figure} .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)


@pytest.mark.parametrize("width", [390, 1280])
def test_profile_charts_have_axes_with_units_and_a_tooltip(browser, live_server, make_user, width):
    user = make_user(display_name="Charted")
    mine(user)
    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id="America/New_York")
    page = watch(context.new_page())
    try:
        page.goto(f"{live_server.url}/miners/{user.user_id}")
        page.wait_for_selector("#hashrate-chart .uplot canvas")
        page.wait_for_selector("#best-progression .uplot canvas")
        ticks = y_ticks(page, "#hashrate-chart")
        assert ticks and all(t.endswith("TH/s") for t in ticks), ticks
        assert page.locator("#hashrate-chart .u-legend").inner_text().count("attic") == 1
        assert x_ticks(page, "#hashrate-chart"), "no time ticks"
        assert page.evaluate("() => document.querySelector('#hashrate-chart')._plot.axes[0].label") \
            == "Time (America/New_York)"
        # Hover: the tooltip names the time and the series with units; the legend follows.
        hover_plot(page, "#hashrate-chart")
        tip = page.locator("#hashrate-chart .chart-tooltip")
        tip.wait_for(state="visible")
        text = tip.inner_text()
        assert "All workers: 3.6 TH/s" in text and "attic: 1.2 TH/s" in text and "shed: 2.4 TH/s" in text, text
        assert "TH/s" in page.locator("#hashrate-chart .u-legend").inner_text()
        # Best difficulty on a log axis, ticks with SI suffixes.
        assert page.evaluate("() => document.querySelector('#best-progression')._plot.scales.y.distr") == 3
        assert any(t.endswith(("K", "M")) for t in y_ticks(page, "#best-progression"))
        # A range link redraws in place (no navigation) and says which range is shown.
        url = page.url
        page.click("#hashrate-chart .chart-ranges a[data-range='1h']")
        page.wait_for_function("() => document.querySelector('#hashrate-chart').dataset.range === '1h'")
        assert page.url == url
        assert page.locator("#hashrate-chart a[aria-current='true']").inner_text() == "1 h"
        assert "the last hour" in page.get_attribute("#hashrate-chart .chart-canvas", "aria-label")
        for figure in ("#hashrate-chart", "#best-progression"):  # the charts fit the screen
            assert page.evaluate(f"() => document.querySelector('{figure}').getBoundingClientRect().right") <= width
        assert_clean_console(page)
    finally:
        context.close()


def test_coop_chart_names_members_and_hides_the_shy_one(browser, live_server, make_user, make_coop):
    shy = make_user(display_name="Shy Miner")
    coop, admin, (bob, _) = make_coop(make_user(display_name="Admin Ann"), members=[make_user(display_name="Bob"), shy])
    settings = db.session.get(UserSettings, shy.user_id) or UserSettings(user_id=shy.user_id)
    settings.privacy = {**(settings.privacy or {}), "showInCoopRankings": False}
    db.session.add(settings)
    for user in (admin, bob, shy):
        mine(user, rigs=("rig",), hours=1)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = watch(context.new_page())
    try:
        login(page, live_server.url, bob.user_id, PASSWORD)
        page.goto(f"{live_server.url}/coop")
        page.wait_for_selector("#coop-chart .uplot canvas")
        legend = page.locator("#coop-chart .u-legend").inner_text()
        assert "Admin Ann" in legend and "Bob" in legend and "a member" in legend and "Shy Miner" not in legend
        assert all(t.endswith("TH/s") for t in y_ticks(page, "#coop-chart"))
        hover_plot(page, "#coop-chart")
        page.locator("#coop-chart .chart-tooltip").wait_for(state="visible")
        assert "a member: 1.2 TH/s" in page.locator("#coop-chart .chart-tooltip").inner_text()
        assert_clean_console(page)
    finally:
        context.close()


def test_relative_times_stay_fresh_and_visitors_read_their_own_zone(browser, live_server, make_user):
    user = make_user(display_name="Fresh")
    mine(user, hours=1)
    now = datetime.now(UTC)
    stats = db.session.get(MinerStats, user.user_id) or MinerStats(user_id=user.user_id)
    stats.last_share_at = now - timedelta(seconds=20)
    db.session.add(stats)
    db.session.commit()
    context = browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Asia/Tokyo")
    page = watch(context.new_page())
    try:
        page.clock.install(time=now)
        page.goto(f"{live_server.url}/miners/{user.user_id}")
        last = page.locator("#stat-last-share time")
        assert last.inner_text() == "just now"
        # Absolute times were written in UTC by the server, rewritten in Tokyo time (UTC+9).
        best = page.locator("#personal-bests time").first
        stamp = datetime.fromisoformat(best.get_attribute("datetime").replace("Z", "+00:00"))
        tokyo = stamp + timedelta(hours=9)
        assert best.inner_text() == tokyo.strftime("%Y-%m-%d %H:%M")
        assert "JST" in best.get_attribute("title") or "GMT+9" in best.get_attribute("title")
        page.evaluate("() => { document.querySelector('#personal-bests time').dataset.before = '1'; }")
        page.clock.fast_forward(150_000)  # past the page's refresh (PROFILE_REFRESH_SECONDS, 30 s)
        page.wait_for_function("() => document.querySelector('#stat-last-share time').textContent === '2 min ago'")
        # The refresh brings the bests back out of band, in UTC: rewritten too once htmx settles
        # (its settle timer runs on the installed clock, hence the nudges).
        page.wait_for_function("() => !document.querySelector('#personal-bests time').dataset.before")
        for _ in range(50):
            page.clock.run_for(100)
            if page.locator("#personal-bests time").first.inner_text() == tokyo.strftime("%Y-%m-%d %H:%M"):
                break
        assert page.locator("#personal-bests time").first.inner_text() == tokyo.strftime("%Y-%m-%d %H:%M")
        assert_clean_console(page)
    finally:
        context.close()


def test_a_miner_is_offered_the_browser_zone_once(browser, live_server, make_user, app):
    user = make_user()
    context = browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/Berlin")
    page = watch(context.new_page())
    try:
        login(page, live_server.url, user.user_id, PASSWORD)
        page.goto(f"{live_server.url}/miners/{user.user_id}")
        banner = page.locator("#timezone-banner")
        banner.wait_for(state="visible")
        assert "Europe/Berlin" in banner.inner_text()
        with page.expect_navigation():
            page.click("[data-timezone-use]")
        assert page.get_attribute("html", "data-tz") == "Europe/Berlin"
        assert not page.locator("#timezone-banner").count()
        db.session.expire_all()
        assert str(preferences.user_timezone(user.user_id)) == "Europe/Berlin"
        assert_clean_console(page)
    finally:
        context.close()


def test_keep_utc_dismisses_the_offer_in_this_browser(browser, live_server, make_user):
    user = make_user()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Kolkata")
    page = watch(context.new_page())
    try:
        login(page, live_server.url, user.user_id, PASSWORD)
        page.goto(f"{live_server.url}/activity")
        page.locator("#timezone-banner").wait_for(state="visible")
        page.click("[data-timezone-keep]")
        assert page.locator("#timezone-banner").is_hidden()
        page.reload()
        page.wait_for_load_state("load")
        page.wait_for_timeout(200)  # time.js has run
        assert page.locator("#timezone-banner").is_hidden()
        assert page.get_attribute("html", "data-tz") == "UTC"
        db.session.expire_all()
        assert str(preferences.user_timezone(user.user_id)) == "UTC"
        assert_clean_console(page)
    finally:
        context.close()


def test_recent_personal_bests_are_two_even_lines_on_a_phone(browser, live_server, make_user):
    user = make_user(display_name="Two Lines")
    now = datetime.now(UTC)
    for hours_ago, best, previous, rig in ((9, 760e3, 605e3, "bitaxe-garage-1"), (2, 46.6e6, 32.4e6, "bitaxe-attic-2")):
        db.session.add(MiningEvent(
            stream="mining:share_best_diff", entry_id=f"{next(_seq)}-0", event="share_best_diff",
            ts=now - timedelta(hours=hours_ago), user_id=user.user_id, worker=f"{user.user_id}.{rig}",
            data={"new_best": best, "prev_best": previous, "timeframe": "alltime"}))
    db.session.commit()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = watch(context.new_page())
    try:
        page.goto(f"{live_server.url}/miners/{user.user_id}")
        rows = page.evaluate("""() => Array.from(document.querySelectorAll('#personal-bests > li')).map((li) => {
            const top = (el) => Math.round(el.getBoundingClientRect().top);
            const upFrom = Array.from(li.querySelectorAll('span')).find((s) => s.textContent.startsWith('up from'));
            return {text: li.innerText.replace(/\\s+/g, ' ').trim(), value: top(li.querySelector('strong')),
                    upFrom: top(upFrom), worker: top(li.querySelector('.pb-worker')), time: top(li.querySelector('time'))};
        })""")
        assert [r["text"].split(" 20")[0] for r in rows] == ["46.6M up from 32.4M bitaxe-attic-2",
                                                            "760K up from 605K bitaxe-garage-1"]
        for row in rows:  # the best and what it beat on one line, the worker and the time on the next
            assert abs(row["upFrom"] - row["value"]) <= 4, row
            assert row["worker"] == row["time"] and row["worker"] > row["value"] + 10, row
        assert_clean_console(page)
    finally:
        context.close()
