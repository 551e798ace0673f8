"""What miners see, in real browsers (Debian's chromium, headless) against
the app served on the run's PostgreSQL and Redis, under its CSP:

- two miners in two browser contexts: one founds a coop through the /coop
  form, the other joins through the invite link, and the founder's open
  members table shows the newcomer (and later loses them) without a reload;
- a personal best replayed into the real ``mining:*`` streams and ingested
  by the real consumer reaches the bell and the list of open pages within a
  second of the ingest commit; reading it in one tab clears the other tab's
  badge;
- hiding the country flag on /settings hides it from other visitors of the
  public profile and from the public API;
- a username that is not a Bitcoin address is registered only after the
  register page's warning is confirmed.

The tour of every page over a slice of the demo day, which saves the
screenshots of docs/SCREENSHOTS.md, is tests/browser/test_mobile_a11y.py.

Every page's console is collected, and none may mention the Content
Security Policy.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from webapp.extensions import db
from webapp.models import Notification
from webapp.services import ingest

from ..builders import PASSWORD
from .conftest import assert_clean_console, goto_live, login, wait_socket, watch

pytestmark = pytest.mark.browser


@pytest.fixture
def context(browser):
    """A second browser context (another miner, or an anonymous visitor)."""
    context = browser.new_context()
    yield context
    context.close()


def track_navigations(page) -> list[str]:
    """The URLs the page's main frame navigates to from now on."""
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    return navigations


# ---- 1. a coop grows under its founder's eyes ------------------------------------------


def test_founder_sees_the_newcomer_join_and_leave_without_a_reload(live_server, page, context, make_user):
    founder = make_user(display_name="FounderFiona")
    joiner = make_user(display_name="JoinerJack")
    base = live_server.url

    # The founder founds the coop through the /coop form and lands on its dashboard.
    login(page, base, founder.user_id, PASSWORD)
    page.goto(f"{base}/coop")
    page.fill("#coop-create input[name=name]", "Fiona's Friends")
    page.fill("#coop-create textarea[name=description]", "Home miners from the garden shed.")
    opened = len(page.sockets)
    page.click("#coop-create button[type=submit]")
    page.wait_for_selector("#coop-members")
    wait_socket(page, opened)
    assert page.locator("#coop-members tr.member").count() == 1
    invite_url = page.locator("#coop-invite button[data-copy]").get_attribute("data-copy")
    assert invite_url.startswith(f"{base}/coop/join/")
    navigations = track_navigations(page)

    # The joiner opens the link in another browser and joins in one click.
    other = watch(context.new_page())
    login(other, base, joiner.user_id, PASSWORD)
    other.goto(invite_url)
    assert "Join Fiona's Friends" in other.inner_text("#coop-join-preview h1")
    other.click("#coop-join-preview button[type=submit]")
    other.wait_for_selector("#coop-members")

    newcomer = page.locator(f"#coop-members tr.member[data-user-id='{joiner.user_id}']")
    newcomer.wait_for(timeout=5000)
    assert "JoinerJack" in newcomer.inner_text()
    assert page.locator("#coop-members h2").inner_text() == "Members (2/20)"
    assert navigations == []  # no reload: htmx swapped the table

    # The joiner leaves (hx-confirm accepted); the founder's table drops them.
    other.click("form[action$='/leave'] button")
    other.wait_for_selector("#coop-create")
    newcomer.wait_for(state="detached", timeout=5000)
    assert page.locator("#coop-members tr.member").count() == 1
    assert navigations == []
    assert_clean_console(page)
    assert_clean_console(other)


# ---- 2 and 3. a replayed personal best, live in two tabs ---------------------------------


def _write_events(path, user_id: str, ts: float):
    """A replay log (the upstream envelope format) with one accepted share
    and the all-time personal best it set."""
    worker = f"{user_id}.bitaxe-shed"
    envelopes = [
        {"event": "share_submitted", "ts": ts, "source": "pool-eu", "region": "eu",
         "data": {"user": user_id, "worker": worker, "diff": 4096, "sdiff": 52_400_000.0, "accepted": True}},
        {"event": "share_best_diff", "ts": ts, "source": "pool-eu", "region": "eu",
         "data": {"user": user_id, "worker": worker, "new_best": 52_400_000.0, "prev_best": 31_000_000.0,
                  "timeframe": "alltime"}},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in envelopes))
    return path


def test_replayed_personal_best_reaches_both_tabs_and_reading_it_clears_the_other(live_server, page, make_user,
                                                                                  tmp_path):
    user = make_user(display_name="ShedMiner")
    base = live_server.url
    login(page, base, user.user_id, PASSWORD)
    goto_live(page, f"{base}/notifications")  # tab 1: the list and the bell
    tab2 = watch(page.context.new_page())
    goto_live(tab2, f"{base}/activity")  # tab 2: the bell only
    for tab in (page, tab2):
        assert tab.locator("#notification-badge").get_attribute("data-count") == "0"

    page.bring_to_front()  # tab 1 is the one the miner looks at
    # Replay into the real streams (the `flask replay` publisher), then run the real consumer here.
    stats = ingest.publish_file(_write_events(tmp_path / "best.jsonl", user.user_id, time.time()), progress=False)
    assert stats.published == 2
    commits: list[float] = []
    me = threading.get_ident()

    def on_commit(session) -> None:
        if threading.get_ident() == me:  # not the live server's threads
            commits.append(time.time())

    event.listen(db.session, "after_commit", on_commit)
    try:
        result = ingest.Consumer(name="browser-test").run(drain=True, max_retries=0)
    finally:
        event.remove(db.session, "after_commit", on_commit)
    assert result.inserted == 2 and result.notifications == 1
    note = db.session.scalar(sa.select(Notification).where(Notification.user_id == user.user_id))
    assert (note.subtype, note.title) == ("personal_best", "New personal best: 52.4M")

    # Shown when the item is in the list and the bell, and the badge says 1 (checked every frame).
    seen_ms = page.wait_for_function(
        """id => document.getElementById('notification-' + id)
                && document.getElementById('bell-item-' + id)
                && document.getElementById('notification-badge').dataset.count === '1'
                && Date.now()""",
        arg=note.id, timeout=5000,
    ).json_value()
    latency = seen_ms / 1000.0 - commits[0]  # from the first ingest commit: an upper bound
    print(f"\ningest commit → list, bell and badge on the page: {latency * 1000:.0f} ms")
    assert latency < 1.0, f"{latency:.3f} s from the ingest commit to the page"
    item = page.locator(f"#notification-{note.id}")
    assert "New personal best: 52.4M" in item.inner_text() and "unread" in item.get_attribute("class")

    # The other tab: badge and bell panel.
    tab2.wait_for_function("() => document.getElementById('notification-badge').dataset.count === '1'",
                           timeout=5000, polling=50)  # a background tab gets no animation frames
    tab2.click("#notification-bell summary")
    assert tab2.locator(f"#bell-item-{note.id}").is_visible()
    assert "New personal best: 52.4M" in tab2.inner_text(f"#bell-item-{note.id}")

    # Reading it in tab 1 clears tab 2's badge (published unread count).
    item.locator("button.notification-title").click()
    tab2.wait_for_function("() => document.getElementById('notification-badge').dataset.count === '0'",
                           timeout=5000, polling=50)
    assert tab2.inner_text("#notification-badge").strip() == ""
    page.wait_for_function(f"() => !document.getElementById('notification-{note.id}').classList.contains('unread')")
    assert page.locator("#notification-badge").get_attribute("data-count") == "0"
    assert_clean_console(page)
    assert_clean_console(tab2)


# ---- 4. privacy: the country flag ---------------------------------------------------------


def test_hiding_the_country_flag_hides_it_from_visitors_and_the_public_api(live_server, page, context, make_user):
    owner = make_user(display_name="LisbonLuis", country_code="PT")
    base = live_server.url
    visitor = watch(context.new_page())  # anonymous
    profile_url = f"{base}/miners/{owner.user_id}"
    visitor.goto(profile_url)
    assert visitor.locator(".profile-flag").get_attribute("title") == "PT"
    assert context.request.get(f"{base}/api/public/miners/{owner.user_id}").json()["country_code"] == "PT"

    login(page, base, owner.user_id, PASSWORD)
    page.goto(f"{base}/settings")
    page.uncheck("input[name=showCountryFlag]")  # saved by htmx on change
    page.wait_for_selector("#privacy-status .saved")

    visitor.goto(profile_url)
    assert visitor.locator("h1.profile-name").inner_text() == "LisbonLuis"
    assert visitor.locator(".profile-flag").count() == 0
    public = context.request.get(f"{base}/api/public/miners/{owner.user_id}")
    assert public.status == 200 and "country_code" not in public.json()
    assert_clean_console(page)
    assert_clean_console(visitor)


def test_register_page_warns_about_a_username_that_is_not_a_bitcoin_address(live_server, context):
    base = live_server.url
    visitor = watch(context.new_page())
    visitor.goto(f"{base}/register")
    visitor.fill("input[name=user_id]", "alice.rig01")
    visitor.fill("input[name=password]", "longenough")
    with visitor.expect_navigation():
        visitor.click("button[type=submit]")
    assert "not a Bitcoin address" in visitor.locator("#address-warning").inner_text()
    assert visitor.locator("input[name=user_id]").input_value() == "alice.rig01"
    visitor.fill("input[name=password]", "longenough")
    visitor.check("input[name=not_an_address]")  # "This is not a Bitcoin address; register anyway"
    with visitor.expect_navigation():
        visitor.click("button[type=submit]")
    assert "/register" not in visitor.url  # logged in, sent home (their profile)
    assert context.request.get(f"{base}/api/me").json()["user_id"] == "alice.rig01"
    assert_clean_console(visitor, allow=("400",))  # the warned form answers 400
