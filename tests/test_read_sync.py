"""Read state syncs across tabs for the items, not only the badge: a read,
"mark all read" or delete in one tab re-renders (or removes) that item in
the bell panel and the notification list of every other open page, through
the items' own partials (notifications/_sync.html over /ws in HTML mode)."""
from __future__ import annotations

import re

import pytest
from flask import current_app

from webapp.services import notifications

from .builders import token_of
from .wshelpers import Client, Gunicorn


def page(live, token: str, query: str = "format=html") -> Client:
    sock = Client(live.ws_url(f"{query}&token={token}"))
    assert 'id="notification-badge"' in sock.recv_text()
    return sock


def sync_frame(sock: Client) -> str:
    """The next frame with item updates (the badge frame comes first)."""
    for _ in range(4):
        html = sock.recv_text(10)
        if "data-if-present" in html:
            return html
    raise AssertionError("no item sync frame")


def test_a_read_in_one_tab_re_renders_the_item_in_the_others(live, make_user):
    user = make_user()
    first = notifications.notify(user.user_id, "social", "coop_member_joined", "Bob joined").id
    second = notifications.notify(user.user_id, "social", "coop_member_joined", "Carol joined").id
    token = token_of(user)
    list_tab = page(live, token, "format=html&list=1")
    other_tab = page(live, token)

    http = current_app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    http.post(f"/api/notifications/{first}/read", headers=auth)
    html = sync_frame(list_tab)
    item = re.search(rf'<li id="notification-{first}" class="notification"[^>]*>', html)
    assert item and 'hx-swap-oob="true"' in item.group(0)  # no "unread" class: shown read
    assert "Mark read" not in html.split(f'id="bell-item-{first}"')[0]
    assert re.search(rf'<li id="bell-item-{first}" class=""[^>]*hx-swap-oob="true" data-if-present>', html)
    other = sync_frame(other_tab)
    assert f'id="bell-item-{first}"' in other
    assert f'id="notification-{first}"' not in other  # that page shows no list

    http.post("/api/notifications/read-all", headers=auth)
    html = sync_frame(list_tab)
    assert f'id="notification-{second}"' in html and f'id="bell-item-{second}"' in html

    http.delete(f"/api/notifications/{first}", headers=auth)
    html = sync_frame(list_tab)
    assert f'<li id="notification-{first}" hx-swap-oob="delete" data-if-present></li>' in html
    assert f'<li id="bell-item-{first}" hx-swap-oob="delete" data-if-present></li>' in html
    # JSON sockets keep the contract's message.
    json_tab = Client(live.ws_url(f"token={token}"))
    json_tab.recv_json()
    http.delete(f"/api/notifications/{second}", headers=auth)
    assert json_tab.recv_json() == {"type": "unread_count", "count": 0}
    for sock in (list_tab, other_tab, json_tab):
        sock.close()


# ---- the production server: tabs spread over two gevent worker processes -------------


@pytest.fixture(scope="module")
def gunicorn(migrated):
    server = Gunicorn(migrated).wait_ready()
    yield server
    server.stop()


@pytest.mark.slow
def test_read_sync_reaches_tabs_on_both_workers(gunicorn, app, make_user):
    gunicorn.warm_up()
    user = make_user()
    row = notifications.notify(user.user_id, "social", "coop_member_joined", "Eve joined")
    token = token_of(user)
    tabs = [Client(gunicorn.ws_url(f"format=html&list=1&token={token}"), timeout=10) for _ in range(4)]
    for tab in tabs:
        assert 'id="notification-badge"' in tab.recv_text(10)
    notifications.mark_read(user.user_id, row.id)
    for tab in tabs:
        html = sync_frame(tab)
        assert f'<li id="notification-{row.id}" class="notification"' in html
        assert f'id="bell-item-{row.id}" class=""' in html
        tab.close()
