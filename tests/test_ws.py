"""The /ws socket against a real threaded server (API.md WebSocket section):
auth and Origin, JSON and HTML modes, cross-tab count sync, since catch-up,
the per-user socket limit, pushes from another process, XSS escaping."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import websocket

from webapp.extensions import db
from webapp.services import notifications, presence

from .builders import PASSWORD, token_of, wait_for
from .wshelpers import Client

ROOT = Path(__file__).resolve().parent.parent


def connect(live, user=None, token=None, query="", **options) -> Client:
    params = [query] if query else []
    if token:
        params.append(f"token={token}")
    return Client(live.ws_url("&".join(params)), **options)


def session_cookie(client, auth, user) -> str:
    auth.login(user.user_id, PASSWORD)
    cookie = client.get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"


# ---- authentication ---------------------------------------------------------------


def test_bad_or_missing_credentials_close_4001(live, make_user):
    make_user()
    assert connect(live, token="not-a-token").close_code() == 4001
    assert connect(live).close_code() == 4001


def test_cookie_socket_needs_own_origin(live, client, auth, make_user):
    user = make_user()
    cookie = session_cookie(client, auth, user)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(live, cookie=cookie, origin="http://evil.example")
    assert refused.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as missing:
        connect(live, cookie=cookie, suppress_origin=True)
    assert missing.value.status_code == 403
    ok = connect(live, cookie=cookie, origin=live.origin)
    assert ok.recv_json() == {"type": "unread_count", "count": 0}
    ok.close()


def test_compression_offer_is_declined(live, make_user):
    user = make_user()
    sock = connect(live, token=token_of(user),
                   header=["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"])
    assert "sec-websocket-extensions" not in {k.lower() for k in sock.ws.getheaders()}
    assert sock.recv_json()["type"] == "unread_count"
    sock.close()


# ---- JSON mode ------------------------------------------------------------------------


def test_two_sockets_of_one_user_both_receive(live, make_user):
    user, other = make_user(), make_user()
    token = token_of(user)
    first, second = connect(live, token=token), connect(live, token=token)
    stranger = connect(live, token=token_of(other))
    for sock in (first, second, stranger):
        assert sock.recv_json() == {"type": "unread_count", "count": 0}
    row = notifications.notify(user.user_id, "mining", "block_found", "Block 900001 found!", "You found it.")
    for sock in (first, second):
        message = sock.recv_json()
        assert message["type"] == "notification"
        assert message["data"]["id"] == row.id
        assert message["data"]["title"] == "Block 900001 found!"
        assert message["data"]["is_read"] is False
        assert sock.recv_json() == {"type": "unread_count", "count": 1}
    stranger.send_json({"type": "ping"})
    assert stranger.recv_json() == {"type": "pong"}  # and no notification before it
    for sock in (first, second, stranger):
        sock.close()


def test_mark_read_in_one_tab_updates_the_other(live, make_user):
    user = make_user()
    a = notifications.notify(user.user_id, "social", "coop_member_joined", "Bob joined").id
    notifications.notify(user.user_id, "social", "coop_member_joined", "Carol joined")
    token = token_of(user)
    tab1, tab2 = connect(live, token=token), connect(live, token=token)
    assert tab1.recv_json()["count"] == 2 and tab2.recv_json()["count"] == 2
    tab1.send_json({"type": "mark_read", "id": a})
    assert tab2.recv_json() == {"type": "unread_count", "count": 1}
    assert tab1.recv_json() == {"type": "unread_count", "count": 1}
    # Reading over HTTP updates open sockets too.
    from flask import current_app

    http = current_app.test_client()
    http.post("/api/notifications/read-all", headers={"Authorization": f"Bearer {token}"})
    assert tab2.recv_json() == {"type": "unread_count", "count": 0}
    tab1.send_json({"type": "mark_read", "id": 10**6})
    assert tab1.recv_until(lambda m: m["type"] == "error")["code"] == "not_found"
    for sock in (tab1, tab2):
        sock.close()


def test_reconnect_with_since_gets_exactly_the_missed_ones_in_order(live, make_user):
    user = make_user()
    token = token_of(user)
    seen = notifications.notify(user.user_id, "mining", "personal_best", "Best 1").id
    sock = connect(live, token=token)
    sock.recv_json()
    sock.close()
    missed = [notifications.notify(user.user_id, "mining", "personal_best", f"Missed {i}").id for i in range(3)]
    again = connect(live, token=token, query=f"since={seen}")
    got = [again.recv_json() for _ in range(3)]
    assert [m["type"] for m in got] == ["notification"] * 3
    assert [m["data"]["id"] for m in got] == missed
    assert again.recv_json() == {"type": "unread_count", "count": 4}
    # The first-message form does the same.
    again.send_json({"type": "resume", "since": missed[0]})
    assert [again.recv_json()["data"]["id"] for _ in range(2)] == missed[1:]
    again.close()


def test_sixth_socket_closes_the_oldest_with_4002(live, make_user):
    user = make_user()
    token = token_of(user)
    sockets = []
    for _ in range(5):
        sock = connect(live, token=token)
        sock.recv_json()
        sockets.append(sock)
        time.sleep(0.01)  # distinct opening times
    sixth = connect(live, token=token)
    sixth.recv_json()
    assert sockets[0].close_code() == 4002
    row = notifications.notify(user.user_id, "system", "announcement", "Still here?")
    for sock in sockets[1:] + [sixth]:
        assert sock.recv_json()["data"]["id"] == row.id
        sock.close()


@pytest.mark.slow
def test_notification_from_another_process_reaches_the_socket(live, make_user, migrated):
    user = make_user()
    sock = connect(live, token=token_of(user))
    sock.recv_json()
    env = dict(os.environ, DATABASE_URL=migrated["database_url"], REDIS_URL=migrated["redis_url"],
               REDIS_NAMESPACE=migrated["namespace"], SECRET_KEY="test-secret", EMBEDDED_SCHEDULER="0")
    script = textwrap.dedent(f"""
        from webapp import create_app
        from webapp.services.notifications import notify
        app = create_app()
        with app.app_context():
            print(notify({user.user_id!r}, "mining", "block_found", "From the worker process").id)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    message = sock.recv_json(timeout=10)
    assert message["type"] == "notification"
    assert message["data"]["id"] == int(done.stdout.strip().splitlines()[-1])
    assert message["data"]["title"] == "From the worker process"
    sock.close()


def test_waiting_sockets_hold_no_db_connection(live, make_user):
    user = make_user()
    socks = [connect(live, token=token_of(user)) for _ in range(3)]
    for sock in socks:
        sock.recv_json()
    db.session.remove()  # the test's own session
    assert wait_for(lambda: db.engine.pool.checkedout() == 0)
    notifications.notify(user.user_id, "mining", "block_found", "Block")
    db.session.remove()
    for sock in socks:
        assert sock.recv_json()["type"] == "notification"
    assert wait_for(lambda: db.engine.pool.checkedout() == 0)
    for sock in socks:
        sock.close()


def test_bad_messages_get_errors_and_oversized_ones_close(live, make_user):
    user = make_user()
    sock = connect(live, token=token_of(user))
    sock.recv_json()
    sock.ws.send("not json")
    assert sock.recv_json()["type"] == "error"
    sock.send_json({"type": "mark_read", "id": "7"})
    assert sock.recv_json()["code"] == "validation_error"
    sock.ws.send("x" * 5000)  # over WS_MAX_MESSAGE_SIZE (4096)
    assert sock.close_code() == 1009
    # The server's session ends with it (presence offline), not at its next
    # 30 s presence refresh.
    wait_for(lambda: not presence.connected([user.user_id]), timeout=5, what="the session to end")


def test_bad_parameters_are_refused_before_the_upgrade(live, make_user):
    token = token_of(make_user())
    for query in ("format=xml", "since=abc", "since=-1"):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            connect(live, token=token, query=query)
        assert refused.value.status_code == 400


# ---- HTML mode and XSS -----------------------------------------------------------------


def test_html_mode_pushes_escaped_oob_fragments(live, make_user):
    user = make_user()
    page = connect(live, token=token_of(user), query="format=html&list=1")
    assert 'id="notification-badge"' in page.recv_text()
    bell_only = connect(live, token=token_of(user), query="format=html")
    bell_only.recv_text()
    row = notifications.notify(user.user_id, "mining", "personal_best", '<script>alert("x")</script> best',
                               body="<img src=x onerror=alert(1)>")
    html = page.recv_text()
    assert '<ul id="notification-list" hx-swap-oob="afterbegin">' in html
    assert f'<li id="notification-{row.id}" class="notification unread new"' in html
    assert '<ul id="bell-list" hx-swap-oob="afterbegin">' in html
    assert 'id="notification-badge" class="badge" data-count="1"' in html and 'hx-swap-oob="outerHTML"' in html
    assert f'id="notification-cursor" data-since="{row.id}"' in html
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; best" in html
    other = bell_only.recv_text()
    assert "notification-list" not in other and 'id="bell-list"' in other and "<script>" not in other
    # A page filtered to another category gets the bell only.
    filtered = connect(live, token=token_of(user), query="format=html&list=1&category=social&since=0")
    assert "notification-list" not in filtered.recv_text()
    for sock in (page, bell_only, filtered):
        sock.close()


def test_xss_title_is_escaped_in_the_page_and_the_htmx_fragment(client, auth, make_user):
    user = make_user()
    auth.login(user.user_id, PASSWORD)
    row = notifications.notify(user.user_id, "social", "coop_member_joined", "<script>alert(1)</script>")
    page = client.get("/notifications").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    fragment = client.post(f"/notifications/{row.id}/read", headers={"HX-Request": "true",
                                                                      "X-CSRFToken": auth.csrf_token("/notifications")})
    assert fragment.status_code == 200
    text = fragment.get_data(as_text=True)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


class _GoneClient:
    """A socket whose client went away: every send fails as the kernel
    says (broken pipe), as simple-websocket lets it through."""

    def __init__(self) -> None:
        from webapp.realtime import SocketInbox

        self.event = SocketInbox()
        self.connected = True
        self.input_buffer: list = []
        self.closed_with = None

    def send(self, data) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def close(self, reason=None, message=None) -> None:
        self.closed_with = reason
        self.connected = False

    def receive(self, timeout=None):
        return None


def test_a_client_gone_mid_send_is_logged_quietly_and_ends_the_session(app, make_user, caplog):
    """A broken pipe is a client gone (normal): INFO, no traceback, the
    session ends without a close frame and its socket is forgotten."""
    import logging

    from webapp import realtime
    from webapp.ws import SocketSession

    user = make_user()
    gone = _GoneClient()
    session = SocketSession(gone, user.user_id, html=False, since=None)
    # Relative: another test's socket may still be closing in this process's hub.
    before = realtime.get_hub(app).local_socket_count()
    with caplog.at_level(logging.INFO, logger=app.logger.name):
        session.run()  # the first send (the unread count) fails
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    went = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(went) == 1 and went[0].levelno == logging.INFO and went[0].exc_info is None
    assert "BrokenPipeError" in went[0].getMessage()
    assert gone.closed_with is None  # no close frame into a broken pipe
    assert realtime.get_hub(app).local_socket_count() <= before  # this session is not left registered


def test_a_chat_message_after_a_gap_waits_for_the_missing_push_before_reading_the_database():
    """Pushes of one conversation from two processes overtake each other: a
    message that skips numbers is held until the missing one arrives (then
    both go out in seq order, no database read), or for ``GAP_WAIT`` at
    most, after which the gap is read from the database up to the highest
    held message. A removal drops what is held."""
    from webapp import ws_chat

    class Socket(ws_chat.ChatSocket):
        def __init__(self) -> None:
            self.user_id, self.html = "reader", False
            self.sent: list[int] = []
            self.fills: list[tuple[int, int, int | None]] = []
            self.init_chat(None)

        def send_json(self, message):
            if "seq" in message["data"]:
                self.sent.append(message["data"]["seq"])

        def chat_fill(self, cid, after, up_to):
            self.fills.append((cid, after, up_to))
            for seq in range(after + 1, (up_to or after) + 1):
                self.send_json({"data": {"seq": seq}})
                self.chat_seq[cid] = seq

    def message(seq: int, cid: int = 7) -> dict:
        return {"conversation_id": cid, "seq": seq, "body": f"m{seq}"}

    sock = Socket()
    for seq in (1, 3, 4):
        sock.on_chat_message(message(seq))
    assert sock.sent == [1] and 0 < sock.chat_held_due() <= ws_chat.GAP_WAIT
    sock.on_chat_message(message(2))
    assert sock.sent == [1, 2, 3, 4] and sock.fills == [] and sock.chat_held_due() is None
    sock.on_chat_message(message(3))  # a duplicate
    sock.on_chat_message(message(7))
    sock.on_chat_message(message(6))
    assert sock.sent == [1, 2, 3, 4]
    sock.chat_held_until = time.monotonic() - 1  # the wait is over
    assert sock.chat_held_due() == 0
    sock.fill_held()
    assert sock.fills == [(7, 4, 7)] and sock.sent == [1, 2, 3, 4, 5, 6, 7] and sock.chat_held_due() is None
    sock.on_chat_message(message(9))
    sock.on_conversation({"type": "conversation", "event": "removed", "data": {"id": 7}})
    assert sock.chat_held_due() is None and sock.chat_held == {}


def test_a_member_with_a_socket_in_this_process_counts_as_online_without_asking_redis(app, monkeypatch):
    """A post asks Redis who of the members has a socket open (for the "new
    messages" notices) only about those without one attached to this
    process's hub."""
    from webapp import realtime
    from webapp.services import messages, presence

    hub = realtime.get_hub(app)
    inbox = realtime.SocketInbox()
    monkeypatch.setitem(hub._inboxes, realtime.user_channel("local-member"), {"s1": inbox})
    assert realtime.users_with_local_sockets(["local-member", "elsewhere"]) == {"local-member"}
    asked: list[list[str]] = []

    def touch_and_connected(user_id, others):
        asked.append(list(others))
        return set(others), ({}, None)

    monkeypatch.setattr(presence, "touch_and_connected", touch_and_connected)
    online, wanted, _ = messages._online_before_lock(["sender", "local-member", "elsewhere"], "sender")
    assert asked == [["elsewhere"]]
    assert online == {"local-member", "elsewhere"} and wanted == {"local-member", "elsewhere"}


def test_a_sockets_first_pushes_in_the_wrong_order_lose_nothing():
    """The socket starts from each conversation's newest seq read once its
    channel is subscribed (``chat_snapshot``): when the first two pushes of
    a conversation arrive in the wrong order (published by two processes),
    the earlier one is not taken for a duplicate — both go out, in order."""
    from webapp import ws_chat

    class Socket(ws_chat.ChatSocket):
        def __init__(self) -> None:
            self.user_id, self.html = "reader", False
            self.sent: list[int] = []
            self.init_chat(None)

        def send_json(self, message):
            self.sent.append(message["data"]["seq"])

    sock = Socket()
    sock.chat_seq[7] = 4  # as chat_snapshot reads it: seq 4 was the newest at the start
    sock.on_chat_message({"conversation_id": 7, "seq": 6})
    sock.on_chat_message({"conversation_id": 7, "seq": 5})
    assert sock.sent == [5, 6]
