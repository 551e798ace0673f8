"""Direct and group conversations between friends on the messaging core
(API.md "Conversations and messages": direct, group; 409 not_friends; read-only
after unfriending or blocking; delivery stops on the live channels)."""
from __future__ import annotations

import json
import threading

from sqlalchemy import func, select

from webapp import realtime
from webapp.extensions import db
from webapp.models import Conversation, DirectPair, User
from webapp.services import friends, messages


def _befriend(a, b) -> None:
    row, _ = friends.send_request(a, b.user_id)
    friends.accept(b, row.id)


def _start(client, auth_headers, user, kind, ids, title=None):
    body = {"kind": kind, "user_ids": [u.user_id for u in ids]}
    if title is not None:
        body["title"] = title
    return client.post("/api/conversations", json=body, headers=auth_headers(user))


def test_direct_between_friends_once_per_pair(client, make_user, auth_headers):
    alice, bob, carol = make_user(), make_user(), make_user()
    _befriend(alice, bob)
    first = _start(client, auth_headers, alice, "direct", [bob])
    assert first.status_code == 201
    conv = first.get_json()
    assert conv["kind"] == "direct" and {m["user_id"] for m in conv["members"]} == {alice.user_id, bob.user_id}
    again = _start(client, auth_headers, bob, "direct", [alice])
    assert again.status_code == 200 and again.get_json()["id"] == conv["id"]
    # Messages, read receipts and listing through the core's routes.
    sent = client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi **bob**"},
                       headers=auth_headers(alice))
    assert sent.status_code == 201 and sent.get_json()["seq"] == 1
    listed = client.get("/api/conversations", headers=auth_headers(bob)).get_json()["conversations"]
    assert [(c["id"], c["unread_count"]) for c in listed] == [(conv["id"], 1)]
    # Not friends: 409 with a helpful message naming who.
    refused = _start(client, auth_headers, alice, "direct", [carol])
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "not_friends" and carol.user_id in error["message"] and "friend request" in error["message"]
    missing = client.post("/api/conversations", json={"kind": "direct", "user_ids": ["bc1qnosuchminer"]},
                          headers=auth_headers(alice))
    assert missing.status_code == 404


def test_two_friends_starting_at_once_get_one_direct_conversation(app, make_user):
    alice, bob = make_user(), make_user()
    _befriend(alice, bob)
    from webapp.services import direct_messages

    barrier, results = threading.Barrier(2), []

    def start(me: str, them: str) -> None:
        with app.app_context():
            barrier.wait()
            results.append(direct_messages.start(db.session.get(User, me), "direct", [them])[0]["id"])
            db.session.remove()

    threads = [threading.Thread(target=start, args=(alice.user_id, bob.user_id)),
               threading.Thread(target=start, args=(bob.user_id, alice.user_id))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 2 and results[0] == results[1]
    assert db.session.scalar(select(func.count()).select_from(Conversation).where(Conversation.kind == "direct")) == 1
    assert db.session.scalar(select(func.count()).select_from(DirectPair)) == 1


def test_group_of_friends_with_a_title(client, make_user, auth_headers):
    owner = make_user()
    pals = [make_user() for _ in range(3)]
    for pal in pals:
        _befriend(owner, pal)
    stranger = make_user()
    assert _start(client, auth_headers, owner, "group", pals[:2]).status_code == 400  # no title
    assert _start(client, auth_headers, owner, "group", pals[:1], "Duo").status_code == 400  # 2 members
    refused = _start(client, auth_headers, owner, "group", [*pals[:2], stranger], "Shelf crew")
    assert refused.status_code == 409 and refused.get_json()["error"]["details"] == {"user_ids": [stranger.user_id]}
    made = _start(client, auth_headers, owner, "group", pals, "Shelf crew")
    assert made.status_code == 201
    group = made.get_json()
    assert group["kind"] == "group" and group["title"] == "Shelf crew" and len(group["members"]) == 4
    assert client.post(f"/api/conversations/{group['id']}/messages", json={"body": "hello all"},
                       headers=auth_headers(pals[0])).status_code == 201


def _subscribe(pubsub, user_id: str) -> None:
    """The user's channel and the fan-out channel, as a web process's hub."""
    pubsub.subscribe(realtime.user_channel(user_id), realtime.fanout_channel())


def _published(pubsub, user_id: str | None = None) -> list[dict]:
    """What the hub would hand the user's sockets: their channel's messages
    and the fan-out messages addressed to them."""
    got = []
    while True:
        msg = pubsub.get_message(timeout=0.5)
        if msg is None:
            return got
        if msg["type"] == "message":
            data = json.loads(msg["data"])
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
            if channel != realtime.fanout_channel():
                got.append(data)
            elif user_id in data["to"]:
                got.append(data["m"])


def test_blocking_mid_conversation_stops_delivery_and_makes_it_read_only(app, client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    _befriend(alice, bob)
    conv_id = _start(client, auth_headers, alice, "direct", [bob]).get_json()["id"]
    pubsub = app.extensions["redis"].pubsub()
    _subscribe(pubsub, alice.user_id)
    _published(pubsub)
    messages.post(bob.user_id, conv_id, "before the block")
    assert [m["data"]["body"] for m in _published(pubsub, alice.user_id)
            if m["type"] == "message"] == ["before the block"]

    friends.block(alice, bob.user_id)
    _published(pubsub)
    resp = client.post(f"/api/conversations/{conv_id}/messages", json={"body": "after"}, headers=auth_headers(bob))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "read_only"
    assert client.post(f"/api/conversations/{conv_id}/messages", json={"body": "mine"},
                       headers=auth_headers(alice)).status_code == 409
    assert [m for m in _published(pubsub, alice.user_id) if m["type"] == "message"] == []
    # History stays readable.
    history = client.get(f"/api/conversations/{conv_id}/messages", headers=auth_headers(alice)).get_json()
    assert [m["body"] for m in history["messages"]] == ["before the block"]
    pubsub.close()


def test_unfriending_removes_from_the_creators_groups_and_direct_turns_read_only(app, client, make_user,
                                                                                auth_headers):
    owner, pal, other = make_user(), make_user(), make_user()
    _befriend(owner, pal)
    _befriend(owner, other)
    group_id = _start(client, auth_headers, owner, "group", [pal, other], "Trio").get_json()["id"]
    direct_id = _start(client, auth_headers, owner, "direct", [pal]).get_json()["id"]
    pubsub = app.extensions["redis"].pubsub()
    _subscribe(pubsub, pal.user_id)
    _published(pubsub)
    assert client.delete(f"/api/friends/{pal.user_id}", headers=auth_headers(owner)).status_code == 200
    events = _published(pubsub, pal.user_id)
    assert any(e["type"] == "conversation" and e.get("event") == "removed" and e["data"]["id"] == group_id
               for e in events), events
    messages.post(owner.user_id, group_id, "without pal")
    assert [e for e in _published(pubsub, pal.user_id) if e["type"] == "message"] == []
    resp = client.post(f"/api/conversations/{direct_id}/messages", json={"body": "hey"}, headers=auth_headers(pal))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "read_only"
    pubsub.close()


def test_blocking_mid_conversation_stops_delivery_on_open_sockets(live, make_user):
    import time

    import websocket

    from .builders import token_of
    from .wshelpers import Client

    alice, bob = make_user(), make_user()
    _befriend(alice, bob)
    from webapp.services import direct_messages

    conv_id = direct_messages.start(alice, "direct", [bob.user_id])[0]["id"]
    sock = Client(live.ws_url(f"token={token_of(alice)}"))
    sock.recv_until(lambda m: m["type"] == "unread_count")
    messages.post(bob.user_id, conv_id, "live before")
    assert sock.recv_until(lambda m: m["type"] == "message")["data"]["body"] == "live before"
    friends.block(alice, bob.user_id)
    try:
        messages.post(bob.user_id, conv_id, "live after")
        raise AssertionError("a blocked miner could still post")
    except direct_messages.ReadOnly:
        pass
    got = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv_json(max(0.05, deadline - time.monotonic())))
        except websocket.WebSocketTimeoutException:
            break
    assert [m for m in got if m["type"] == "message"] == []
    sock.close()
