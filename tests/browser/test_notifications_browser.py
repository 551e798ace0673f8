"""Notifications in a real browser under the app's CSP: the bell's badge and
the /notifications list update live over the socket (htmx ws extension), a
new item slides in at the top, a click marks it read, and "Mark all read"
clears the badge — no script is injected by a hostile title."""
from __future__ import annotations

import pytest

from webapp.extensions import db
from webapp.services import notifications

from ..builders import PASSWORD
from .conftest import login

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.errors = []
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
    page.on("dialog", lambda dialog: page.errors.append(f"dialog: {dialog.message}") or dialog.dismiss())
    yield page
    context.close()


def test_live_bell_and_list(live_server, page, make_user, screenshot):
    user_id = make_user().user_id
    for i in range(3):
        notifications.notify(user_id, "mining", "block_found", f"Older block {i}")
    db.session.remove()
    login(page, live_server.url, user_id, PASSWORD)
    page.goto(f"{live_server.url}/notifications")
    badge = page.locator("#notification-badge")
    assert badge.get_attribute("data-count") == "3"
    page.wait_for_function("() => document.querySelector('#notification-badge') !== null")
    page.wait_for_timeout(500)  # the socket opens after load

    row_id = notifications.notify(user_id, "mining", "personal_best", "<script>alert('x')</script> New best 1.2T",
                                  body="Your best share so far.").id
    db.session.remove()
    item = page.locator(f"#notification-list > li#notification-{row_id}")
    item.wait_for(timeout=5000)
    assert "new" in item.get_attribute("class")
    assert page.locator("#notification-list > li").first.get_attribute("id") == f"notification-{row_id}"
    assert "<script>alert('x')</script> New best 1.2T" in item.inner_text()
    page.wait_for_function("() => document.querySelector('#notification-badge').dataset.count === '4'")
    assert page.locator(f"#bell-item-{row_id}").count() == 1
    screenshot(page, "notifications-live-1280")

    item.locator("button.notification-title").click()
    page.wait_for_function(
        f"() => !document.querySelector('#notification-{row_id}').classList.contains('unread')")
    page.wait_for_function("() => document.querySelector('#notification-badge').dataset.count === '3'")

    page.get_by_role("button", name="Mark all read").click()
    page.wait_for_function("() => document.querySelector('#notification-badge').dataset.count === '0'")
    page.wait_for_function("() => document.querySelectorAll('#notification-feed li.unread').length === 0")
    assert page.locator("#notification-list > li").count() == 4
    assert not [e for e in page.errors if "Content Security Policy" in e or "dialog" in e], page.errors


def test_other_pages_get_the_bell_only(live_server, page, make_user):
    user_id = make_user().user_id
    login(page, live_server.url, user_id, PASSWORD)
    page.goto(f"{live_server.url}/settings")
    page.wait_for_timeout(500)
    row_id = notifications.notify(user_id, "system", "announcement", "Maintenance tonight").id
    db.session.remove()
    page.locator(f"#bell-item-{row_id}").wait_for(state="attached", timeout=5000)
    page.wait_for_function("() => document.querySelector('#notification-badge').dataset.count === '1'")
    assert not [e for e in page.errors if "oobErrorNoTarget" in e or "notification-list" in e], page.errors
