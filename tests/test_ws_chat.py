"""Chat over /ws against the production server (gunicorn, two gevent worker
processes): send over the socket as over POST, fan-out to every member's
sockets in both processes, typing, read receipts, presence, resume by seq
with no loss and no duplicates, and a removed member's socket hearing
nothing after the removal commits."""
from __future__ import annotations

import threading
import time

import pytest
import requests
import websocket
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Conversation, Message
from webapp.services import conversations, coops, messages

from .builders import bearer, make_coop, make_user, token_of, wait_for_lock_waiters
from .wshelpers import Client, Gunicorn

pytestmark = pytest.mark.slow  # the production server, two gevent worker processes


@pytest.fixture(scope="module")
def server(migrated):
    gunicorn = Gunicorn(migrated).wait_ready()
    for _ in range(4):  # warm both workers up (imports, first connections) on a loaded machine
        requests.get(f"http://127.0.0.1:{gunicorn.port}/api/openapi.json", timeout=120)
    yield gunicorn
    print(gunicorn.log_tail(20000))  # shown with -s or on failure
    gunicorn.stop()


def connect(server, user) -> Client:
    sock = Client(server.ws_url(f"token={token_of(user)}"), timeout=30)
    assert sock.recv_until(lambda m: m["type"] == "unread_count", 30)  # subscribed
    return sock


def chat_messages(sock: Client, count: int, timeout: float = 60) -> list[dict]:
    """The next ``count`` chat ``message`` events (other types skipped)."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        message = sock.recv_until(lambda m: m["type"] == "message", max(0.1, deadline - time.monotonic()))
        found.append(message["data"])
    return found


def nothing_of(sock: Client, types: set[str], wait: float) -> list[dict]:
    """Every message of ``types`` received within ``wait`` seconds."""
    got: list[dict] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            message = sock.recv_json(max(0.05, deadline - time.monotonic()))
        except websocket.WebSocketTimeoutException:
            break
        if message["type"] in types:
            got.append(message)
    return got


def test_send_typing_read_and_presence_reach_every_socket(server, app):
    coop, admin, (a,) = make_coop(members=1)
    cid = conversations.coop_conversation_id(coop.id)
    admin_tabs = [connect(server, admin) for _ in range(3)]  # spread over both workers
    a_sock = connect(server, a)
    # The admin's tabs hear that a came online (coop-mates see presence).
    online = admin_tabs[0].recv_until(lambda m: m["type"] == "presence" and m["user_id"] == a.user_id, 30)
    assert online["status"] == "online" and online["last_active_at"]

    a_sock.send_json({"type": "send", "conversation_id": cid, "body": "gm **miners**", "client_id": "k1"})
    sent = a_sock.recv_until(lambda m: m["type"] == "sent", 30)
    assert sent["client_id"] == "k1" and sent["data"]["seq"] == 1 and sent["data"]["body"] == "gm **miners**"
    for tab in admin_tabs:
        assert chat_messages(tab, 1)[0]["id"] == sent["data"]["id"]
    a_sock.send_json({"type": "send", "conversation_id": cid, "body": "retry", "client_id": "k1"})
    again = a_sock.recv_until(lambda m: m["type"] == "sent", 30)
    assert again["data"]["id"] == sent["data"]["id"] and again["data"]["body"] == "gm **miners**"

    a_sock.send_json({"type": "typing", "conversation_id": cid})
    for tab in admin_tabs:
        typing = tab.recv_until(lambda m: m["type"] == "typing", 30)
        assert typing == {"type": "typing", "conversation_id": cid, "user_id": a.user_id, "expires_in": 6}

    admin_tabs[1].send_json({"type": "read", "conversation_id": cid, "seq": 1})
    read = a_sock.recv_until(lambda m: m["type"] == "read", 30)
    assert read == {"type": "read", "conversation_id": cid, "user_id": admin.user_id, "last_read_seq": 1}

    a_sock.send_json({"type": "presence", "status": "dnd"})
    dnd = admin_tabs[2].recv_until(lambda m: m["type"] == "presence" and m["user_id"] == a.user_id, 30)
    assert dnd["status"] == "dnd"

    # "away" is the socket's: a second socket of a's in view makes a online,
    # and a is away again once it closes (the first one still says away).
    def a_status() -> str:
        return admin_tabs[2].recv_until(lambda m: m["type"] == "presence" and m["user_id"] == a.user_id, 30)["status"]

    a_sock.send_json({"type": "presence", "status": "online"})
    assert a_status() == "online"
    a_sock.send_json({"type": "presence", "status": "away"})
    assert a_status() == "away"
    second = connect(server, a)
    assert a_status() == "online"
    second.close()
    assert a_status() == "away"

    # An edit and a reaction over HTTP (either worker) arrive as message_updated.
    resp = requests.put(f"http://127.0.0.1:{server.port}/api/messages/{sent['data']['id']}/reactions/%F0%9F%94%A5",
                        headers=bearer(admin), timeout=10)
    assert resp.status_code == 200
    mine = admin_tabs[0].recv_until(lambda m: m["type"] == "message_updated", 30)["data"]["reactions"]
    theirs = a_sock.recv_until(lambda m: m["type"] == "message_updated", 30)["data"]["reactions"]
    assert mine == [{"emoji": "🔥", "count": 1, "me": True}] and theirs == [{"emoji": "🔥", "count": 1, "me": False}]

    a_sock.close()
    offline = admin_tabs[0].recv_until(lambda m: m["type"] == "presence" and m["user_id"] == a.user_id, 30)
    assert offline["status"] == "offline"
    for tab in admin_tabs:
        tab.close()


def test_socket_errors_carry_the_client_id(server, app):
    coop, admin, _ = make_coop()
    cid = conversations.coop_conversation_id(coop.id)
    stranger = make_user()
    sock = connect(server, stranger)
    sock.send_json({"type": "send", "conversation_id": cid, "body": "let me in", "client_id": "z9"})
    error = sock.recv_until(lambda m: m["type"] == "error", 30)
    assert error["client_id"] == "z9" and error["error"]["code"] == "not_a_member"
    sock.send_json({"type": "resume", "conversations": {str(cid): 0}})
    assert sock.recv_until(lambda m: m["type"] == "error", 30)["code"] == "not_a_member"
    member = connect(server, admin)
    member.send_json({"type": "send", "conversation_id": cid, "body": "", "client_id": "z10"})
    error = member.recv_until(lambda m: m["type"] == "error", 30)
    assert error["client_id"] == "z10" and error["error"]["code"] == "validation_error"
    sock.close()
    member.close()


def _post(server, user, cid: int, body: str, headers: dict | None = None) -> int:
    resp = requests.post(f"http://127.0.0.1:{server.port}/api/conversations/{cid}/messages",
                         headers=headers or bearer(user), json={"body": body}, timeout=60)
    assert resp.status_code == 201, resp.text
    return resp.json()["seq"]


def test_a_dropped_socket_resumes_with_exactly_the_missed_messages(server, app):
    coop, admin, (w1, w2, reader) = make_coop(members=3)
    cid = conversations.coop_conversation_id(coop.id)
    for i in range(3):
        _post(server, admin, cid, f"before {i}")
    sock = connect(server, reader)
    sock.send_json({"type": "resume", "conversations": {str(cid): 0}})
    seen = chat_messages(sock, 3)
    assert [m["seq"] for m in seen] == [1, 2, 3]

    # 50 messages by 3 writers over HTTP (gunicorn spreads them over both
    # workers); the reader's socket drops after the first few arrive.
    writers = [(admin, bearer(admin), 17), (w1, bearer(w1), 17), (w2, bearer(w2), 16)]
    errors: list[BaseException] = []

    def write(user, headers, count):  # no app context here: headers made before
        try:
            for i in range(count):
                _post(server, user, cid, f"{user.user_id[-6:]} {i}", headers)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=w) for w in writers]
    for t in threads:
        t.start()
    seen += chat_messages(sock, 4)
    sock.close()
    for t in threads:
        t.join()
    assert errors == []
    last_seen = seen[-1]["seq"]

    again = connect(server, reader)
    again.send_json({"type": "resume", "conversations": {str(cid): last_seen}})
    missed = chat_messages(again, 53 - last_seen)
    _post(server, admin, cid, "live after resume")
    live = chat_messages(again, 1)
    seqs = [m["seq"] for m in seen + missed + live]
    assert seqs == list(range(1, 55))  # in order, no gap, no duplicate
    assert len({m["id"] for m in seen + missed}) == 53
    assert nothing_of(again, {"message"}, 1.0) == []
    again.close()


@pytest.fixture(scope="module")
def lane_server(migrated):
    """gunicorn whose socket posts all go through the lane (``CHAT_POST_ALONE=0``)."""
    gunicorn = Gunicorn(migrated, CHAT_POST_ALONE="0", RATELIMIT_ENABLED="0").wait_ready()
    yield gunicorn
    print(gunicorn.log_tail(20000))
    gunicorn.stop()


@pytest.mark.parametrize("via", ["POST", "sockets through the lane"])
def test_a_removed_member_hears_nothing_after_the_removal_commits(request, app, via):
    """One writer posting over HTTP, or three over sockets with every post
    stored in batches; the removal commits in the middle."""
    server = request.getfixturevalue("server" if via == "POST" else "lane_server")
    coop, admin, (writer, w2, w3, removed) = make_coop(members=4)
    cid = conversations.coop_conversation_id(coop.id)
    tabs = [connect(server, removed) for _ in range(2)]
    stop = threading.Event()
    errors: list[BaseException] = []
    headers = bearer(writer)
    writer_socks = [connect(server, u) for u in (writer, w2, w3)] if via != "POST" else []

    def write(index: int):
        i = 0
        try:
            while not stop.is_set():
                if via == "POST":
                    _post(server, writer, cid, f"busy {i}", headers)
                else:
                    sock = writer_socks[index]
                    sock.send_json({"type": "send", "conversation_id": cid, "body": f"busy {index} {i}"})
                    assert sock.recv_until(lambda m: m["type"] in ("sent", "error"), 30)["type"] == "sent"
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(1 if via == "POST" else 3)]
    for thread in threads:
        thread.start()
    chat_messages(tabs[0], 3)
    # Hold the conversation's lock (as a post does) to read the last seq
    # before the removal in the removal's own transaction.
    before = db.session.execute(
        select(Conversation.last_seq).where(Conversation.id == cid).with_for_update()).scalar_one()
    coops.remove_member(admin, coop_id=coop.id, user_id=removed.user_id)
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    for tab in tabs:
        got = nothing_of(tab, {"message", "conversation", "message_updated", "typing"}, 2.0)
        late = [m for m in got if m["type"] == "message" and m["data"]["seq"] > before]
        assert late == []
        after_removal = False
        for message in got:
            if message["type"] == "conversation":
                assert message["event"] == "removed" and message["data"]["id"] == cid
                after_removal = True
            else:
                assert not after_removal, "a chat event after the removal"
    # And nothing later either.
    messages.post(admin.user_id, cid, "after you left")
    for tab in tabs:
        assert nothing_of(tab, {"message"}, 1.0) == []
        tab.close()
    for sock in writer_socks:
        sock.close()
    seqs = db.session.scalars(select(Message.seq).where(Message.conversation_id == cid).order_by(Message.seq)).all()
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free through it all


def test_a_post_that_finds_no_free_connection_is_refused_and_the_socket_stays(migrated, app):
    """One worker with one pooled connection (``DB_POOL_TIMEOUT`` 1 s): while
    a post holds it (waiting on the conversation's lock, held here), a
    socket's post is answered ``error`` with code ``unavailable`` and its
    client_id, and the socket stays open; a POST is 503 with ``Retry-After``.
    Nothing of them is stored; once the connection is free, the same
    client_id is posted once."""
    gunicorn = Gunicorn(migrated, WEB_CONCURRENCY="1", DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0",
                        DB_POOL_TIMEOUT="1", RATELIMIT_ENABLED="0").wait_ready()
    try:
        coop, admin, (waiting,) = make_coop(members=1)
        cid = conversations.coop_conversation_id(coop.id)
        first, second = connect(gunicorn, waiting), connect(gunicorn, admin)
        db.session.execute(select(Conversation.id).where(Conversation.id == cid).with_for_update())
        first.send_json({"type": "send", "conversation_id": cid, "body": "first", "client_id": "f1"})
        wait_for_lock_waiters()  # its statement waits on the lock, holding the worker's connection
        second.send_json({"type": "send", "conversation_id": cid, "body": "second", "client_id": "s1"})
        error = second.recv_until(lambda m: m["type"] == "error", 30)
        assert error["client_id"] == "s1" and error["error"]["code"] == "unavailable"
        refused = requests.post(f"http://127.0.0.1:{gunicorn.port}/api/conversations/{cid}/messages",
                                json={"body": "by POST", "client_id": "h1"}, headers=bearer(admin), timeout=30)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "unavailable"
        db.session.commit()  # the lock goes: the first post is stored
        assert first.recv_until(lambda m: m["type"] == "sent", 30)["data"]["seq"] == 1
        second.send_json({"type": "send", "conversation_id": cid, "body": "second", "client_id": "s1"})
        assert second.recv_until(lambda m: m["type"] == "sent", 30)["data"]["seq"] == 2
        assert [m["body"] for m in chat_messages(first, 2)] == ["first", "second"]
        stored = db.session.execute(select(Message.seq, Message.body, Message.client_id)
                                    .where(Message.conversation_id == cid).order_by(Message.seq)).all()
        assert stored == [(1, "first", "f1"), (2, "second", "s1")]
        assert db.session.scalar(select(Conversation.last_seq).where(Conversation.id == cid)) == 2
        first.close()
        second.close()
    finally:
        db.session.rollback()
        gunicorn.stop()


def test_socket_posts_stored_together_are_numbered_and_delivered_like_single_ones(lane_server, app):
    """Every socket post through the lane (``CHAT_POST_ALONE=0``: none is
    stored on its own), ten members sending ten each at once over sockets
    in both workers, one of them sending each twice (a retry), one
    mentioning the eleventh member, who has no socket open: 100 messages,
    seqs 1..100, each sender's in its order, each client_id once; every
    socket hears all 100 in seq order, each sender's ``sent`` answers are
    the stored messages, and the absent member has the mention and one
    "new messages" notice."""
    from webapp.models import Notification

    gunicorn = lane_server
    try:
        coop, admin, others = make_coop(members=10)
        cid = conversations.coop_conversation_id(coop.id)
        users, absent = [admin, *others[:9]], others[9]
        absent_id = absent.user_id
        socks = [connect(gunicorn, u) for u in users]
        errors: list[BaseException] = []
        answers: dict[str, list[dict]] = {}
        barrier = threading.Barrier(len(users))

        def write(index: int) -> None:
            user, sock = users[index], socks[index]
            try:
                barrier.wait()
                for i in range(10):
                    text = f"{index}:{i}" + (f" @{absent_id}" if (index, i) == (1, 3) else "")
                    body = {"type": "send", "conversation_id": cid, "body": text, "client_id": f"c{i}"}
                    sock.send_json(body)
                    if index == 0:
                        sock.send_json(body)
                got = []
                while len(got) < (20 if index == 0 else 10):
                    got.append(sock.recv_until(lambda m: m["type"] in ("sent", "error"), 60))
                answers[user.user_id] = got
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(len(users))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = db.session.execute(select(Message.id, Message.seq, Message.sender_id, Message.body, Message.client_id)
                                  .where(Message.conversation_id == cid).order_by(Message.seq)).all()
        assert [r.seq for r in rows] == list(range(1, 101))
        by_id = {r.id: r for r in rows}
        for index, user in enumerate(users):
            mine = [r for r in rows if r.sender_id == user.user_id]
            assert [r.body.split(" @")[0] for r in mine] == [f"{index}:{i}" for i in range(10)]
            got = answers[user.user_id]
            assert {m["type"] for m in got} == {"sent"}
            ids = [m["data"]["id"] for m in got]
            assert ids == ([r.id for r in mine for _ in (0, 1)] if index == 0 else [r.id for r in mine])
            for m in got:
                stored = by_id[m["data"]["id"]]
                assert (m["client_id"], m["data"]["seq"], m["data"]["body"]) == (stored.client_id, stored.seq,
                                                                                 stored.body)
        for sock in socks:
            assert [m["seq"] for m in chat_messages(sock, 100)] == list(range(1, 101))
            assert nothing_of(sock, {"message"}, 0.3) == []
            sock.close()
        mention = next(r for r in rows if r.body.endswith(f" @{absent_id}"))
        notices = db.session.execute(select(Notification.subtype, Notification.data)
                                     .where(Notification.user_id == absent_id).order_by(Notification.id)).all()
        assert sorted(n.subtype for n in notices) == ["chat_unread", "mention"]
        assert next(n.data for n in notices if n.subtype == "mention") \
            == {"conversation_id": cid, "message_id": mention.id, "seq": mention.seq}
    finally:
        db.session.rollback()
