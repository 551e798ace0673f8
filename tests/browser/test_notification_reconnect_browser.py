"""A page whose socket drops reconnects with the seq cursor of the newest
notification it has, and gets a notification with a lower id that committed
while it was away (the htmx ws extension, static/js/app.js)."""
from __future__ import annotations

import pytest

from webapp import realtime
from webapp.extensions import db
from webapp.services import notifications

from ..builders import PASSWORD, LateCommit
from .conftest import goto_live, login, wait_socket

pytestmark = pytest.mark.browser


def test_page_reconnects_after_its_newest_seq_and_gets_a_row_committed_meanwhile(app, live_server, page, make_user):
    user_id = make_user().user_id
    notifications.notify(user_id, "mining", "block_found", "Older block")  # seq 1
    db.session.remove()
    urls: list[str] = []
    page.on("websocket", lambda ws: urls.append(ws.url) if "/ws" in ws.url else None)
    login(page, live_server.url, user_id, PASSWORD)
    goto_live(page, f"{live_server.url}/notifications")
    assert "since_seq=1" in urls[-1]  # the page's cursor: the seq watermark when it was rendered

    late = LateCommit(app, lambda: notifications.notify(user_id, "mining", "personal_best", "Committed late",
                                                        commit=False).id).start()
    fast = notifications.notify(user_id, "system", "announcement", "Committed first").id  # seq 2
    db.session.remove()
    assert fast > late.result
    page.locator(f"#notification-list > li#notification-{fast}").wait_for(timeout=5000)

    # The tab's web process loses Redis: its sockets close with 1012 and the
    # extension reconnects; the slow transaction commits meanwhile.
    opened = len(page.sockets)
    realtime.get_hub(live_server.app)._restart_all()
    late.commit()
    wait_socket(page, opened, timeout=15)
    assert "since_seq=2" in urls[-1] and "since=" not in urls[-1].replace("since_seq", "")
    page.locator(f"#notification-list > li#notification-{late.result}").wait_for(timeout=5000)
    page.wait_for_function("() => document.querySelector('#notification-badge').dataset.count === '3'")
    ids = page.eval_on_selector_all("#notification-list > li, #bell-list > li", "els => els.map(e => e.id)")
    assert len(ids) == len(set(ids)), ids

    # A row sent again (it committed after the page read its cursor, so the
    # page shows it and the catch-up sends it): the copy just prepended goes.
    page.evaluate("""() => {
        for (const list of ['#notification-list', '#bell-list']) {
            const el = document.querySelector(list);
            const copy = el.querySelector('li:last-child').cloneNode(true);
            copy.classList.add('new');
            el.prepend(copy);
        }
        document.body.dispatchEvent(new CustomEvent('htmx:wsAfterMessage', {bubbles: true}));
    }""")
    after = page.eval_on_selector_all("#notification-list > li, #bell-list > li", "els => els.map(e => e.id)")
    assert after == ids
