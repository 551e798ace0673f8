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


# ---- groups and blocks ---------------------------------------------------------------------


def test_a_group_with_two_members_who_block_each_other_is_refused(client, make_user, auth_headers):
    owner = make_user(display_name="Group Owner")
    pal, foe, other = (make_user(display_name=n) for n in ("Pal Miner", "Foe Miner", "Other Miner"))
    for friend in (pal, foe, other):
        _befriend(owner, friend)
    _befriend(pal, foe)
    friends.block(foe, pal.user_id)
    refused = _start(client, auth_headers, owner, "group", [pal, foe, other], "Quartet")
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    pair = sorted([pal.user_id, foe.user_id])
    assert error["code"] == "blocked_participants"
    names = {pal.user_id: "Pal Miner", foe.user_id: "Foe Miner"}
    assert error["message"] == (f"These miners cannot be in a group together: {names[pair[0]]} and "
                                f"{names[pair[1]]}. Leave one of each pair out.")
    assert error["details"] == {"pairs": [pair]}
    assert db.session.scalar(select(func.count()).select_from(Conversation).where(Conversation.kind == "group")) == 0
    # Without one of the pair: created.
    assert _start(client, auth_headers, owner, "group", [pal, other], "Trio").status_code == 201

    # The blocked miner learns nothing: the blocker is a missing account to them,
    # exactly as one that does not exist.
    _befriend(pal, other)
    as_pal = _start(client, auth_headers, pal, "group", [foe, other], "Pals")
    missing = client.post("/api/conversations", json={"kind": "group", "user_ids": ["bc1qnosuchminer", other.user_id],
                                                       "title": "Pals"}, headers=auth_headers(pal))
    assert as_pal.status_code == missing.status_code == 404
    assert as_pal.get_json() == missing.get_json()
    # The blocker is told they are not friends (they ended it), not who blocked whom.
    _befriend(foe, other)
    as_foe = _start(client, auth_headers, foe, "group", [pal, other], "Foes")
    assert as_foe.status_code == 409 and as_foe.get_json()["error"]["code"] == "not_friends"


def test_a_block_inside_a_group_stops_live_pushes_to_the_blocker_only(app, client, make_user, auth_headers):
    from webapp.models import Notification
    from webapp.vocabulary import NotificationSubtype

    owner, pal, foe = make_user(), make_user(), make_user()
    for friend in (pal, foe):
        _befriend(owner, friend)
    group_id = _start(client, auth_headers, owner, "group", [pal, foe], "Trio").get_json()["id"]
    channels = {u.user_id: app.extensions["redis"].pubsub() for u in (owner, foe)}
    for user_id, pubsub in channels.items():
        _subscribe(pubsub, user_id)
        _published(pubsub)

    def bodies(user) -> list[str]:
        return [m["data"]["body"] for m in _published(channels[user.user_id], user.user_id) if m["type"] == "message"]

    messages.post(pal.user_id, group_id, "before the block")
    assert bodies(owner) == bodies(foe) == ["before the block"]

    friends.block(foe, pal.user_id)  # inside the owner's group: both stay members
    assert {m["user_id"] for m in messages.get_conversation(owner.user_id, group_id)["members"]} == \
        {owner.user_id, pal.user_id, foe.user_id}
    _published(channels[owner.user_id], owner.user_id), _published(channels[foe.user_id], foe.user_id)

    def notices() -> list[str]:
        return list(db.session.scalars(select(Notification.subtype).where(
            Notification.user_id == foe.user_id,
            Notification.subtype.in_([NotificationSubtype.MENTION, NotificationSubtype.CHAT_UNREAD]))))

    before = notices()
    messages.post(pal.user_id, group_id, f"after the block @{foe.user_id}")
    assert bodies(owner) == [f"after the block @{foe.user_id}"]
    assert bodies(foe) == []
    assert notices() == before  # no mention, no "new messages" either
    # Everyone else's messages still reach the blocker; the history keeps all.
    messages.post(owner.user_id, group_id, "from the owner")
    assert bodies(foe) == ["from the owner"]
    # An edit by the blocked member is new words too: not to the blocker.
    first = messages.history(pal.user_id, group_id, limit=10)[0][-1]
    messages.edit(pal.user_id, first["id"], "before the block (edited)")

    def updates(user) -> list[str]:
        return [m["data"]["body"] for m in _published(channels[user.user_id], user.user_id) if m["type"] == "message_updated"]

    assert updates(owner) == ["before the block (edited)"]
    assert updates(foe) == []
    messages.edit(owner.user_id, messages.history(owner.user_id, group_id, limit=1)[0][0]["id"], "from the owner!")
    assert updates(foe) == ["from the owner!"]
    history = client.get(f"/api/conversations/{group_id}/messages", headers=auth_headers(foe)).get_json()
    assert [m["body"] for m in reversed(history["messages"])] == [
        "before the block (edited)", f"after the block @{foe.user_id}", "from the owner!"]
    for pubsub in channels.values():
        pubsub.close()


def test_a_blockers_open_socket_skips_the_blocked_members_group_messages_in_catch_up(live, make_user):
    from webapp.services import direct_messages

    from .builders import token_of
    from .wshelpers import Client

    owner, pal, foe = make_user(), make_user(), make_user()
    for friend in (pal, foe):
        _befriend(owner, friend)
    group_id = direct_messages.start(owner, "group", [pal.user_id, foe.user_id], "Trio")[0]["id"]
    friends.block(foe, pal.user_id)
    sock = Client(live.ws_url(f"token={token_of(foe)}"))
    sock.recv_until(lambda m: m["type"] == "unread_count")
    messages.post(owner.user_id, group_id, "one")  # seq 1: the socket follows from here
    assert sock.recv_until(lambda m: m["type"] == "message")["data"]["body"] == "one"
    messages.post(pal.user_id, group_id, "hidden")  # seq 2: not pushed to foe
    messages.post(owner.user_id, group_id, "three")  # seq 3: the socket reads the gap, skips seq 2
    got = sock.recv_until(lambda m: m["type"] == "message")
    assert (got["data"]["body"], got["data"]["seq"]) == ("three", 3)
    # A resume from the start skips it as well.
    sock.send_json({"type": "resume", "conversations": {str(group_id): 0}})
    resumed = [sock.recv_until(lambda m: m["type"] == "message")["data"]["body"] for _ in range(2)]
    assert resumed == ["one", "three"]
    sock.close()


def test_adding_to_a_group_checks_friends_size_and_blocks(client, make_user, auth_headers):
    owner = make_user(display_name="Group Owner")
    pal, foe, newcomer, stranger = (make_user(display_name=n) for n in ("Pal Miner", "Foe Miner", "New Miner",
                                                                        "Strange Miner"))
    for friend in (pal, foe, newcomer):
        _befriend(owner, friend)
    group_id = _start(client, auth_headers, owner, "group", [pal, newcomer], "Trio").get_json()["id"]
    url = f"/api/conversations/{group_id}/members"

    # A friend who blocked a member (or was blocked by one): 409, the pair named, no direction.
    _befriend(foe, pal)
    friends.block(foe, pal.user_id)
    refused = client.post(url, json={"user_id": foe.user_id}, headers=auth_headers(owner))
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    pair = sorted([pal.user_id, foe.user_id])
    names = {pal.user_id: "Pal Miner", foe.user_id: "Foe Miner"}
    assert error["code"] == "blocked_participants" and error["details"] == {"pairs": [pair]}
    assert error["message"] == (f"These miners cannot be in a group together: {names[pair[0]]} and "
                                f"{names[pair[1]]}. Leave one of each pair out.")
    assert {m["user_id"] for m in messages.get_conversation(owner.user_id, group_id)["members"]} == \
        {owner.user_id, pal.user_id, newcomer.user_id}

    # Not a friend: 409 not_friends; only the creator adds; a member again: 200, unchanged.
    assert client.post(url, json={"user_id": stranger.user_id},
                       headers=auth_headers(owner)).get_json()["error"]["code"] == "not_friends"
    as_member = client.post(url, json={"user_id": owner.user_id}, headers=auth_headers(pal))
    assert as_member.status_code == 403 and as_member.get_json()["error"]["code"] == "forbidden"
    again = client.post(url, json={"user_id": pal.user_id}, headers=auth_headers(owner))
    assert again.status_code == 200 and len(again.get_json()["members"]) == 3

    # Once unblocked, foe joins and can write there.
    friends.unblock(foe, pal.user_id)
    added = client.post(url, json={"user_id": foe.user_id}, headers=auth_headers(owner))
    assert added.status_code == 200
    assert {m["user_id"] for m in added.get_json()["members"]} == {owner.user_id, pal.user_id, newcomer.user_id,
                                                                    foe.user_id}
    assert client.post(f"/api/conversations/{group_id}/messages", json={"body": "hi all"},
                       headers=auth_headers(foe)).status_code == 201

    # Full at ten.
    more = [make_user() for _ in range(7)]
    for friend in more:
        _befriend(owner, friend)
    for friend in more[:6]:
        assert client.post(url, json={"user_id": friend.user_id}, headers=auth_headers(owner)).status_code == 200
    full = client.post(url, json={"user_id": more[6].user_id}, headers=auth_headers(owner))
    assert full.status_code == 400 and full.get_json()["error"]["message"] == "A group has at most 10 members."
    assert len(messages.get_conversation(owner.user_id, group_id)["members"]) == 10


def test_a_conversation_page_gets_presence_only_of_its_members(live, make_user):
    """A friend outside the conversation going online used to reach the
    page as a presence fragment with no target (an htmx console error)."""
    import time

    from webapp.services import direct_messages

    from .builders import token_of
    from .wshelpers import Client

    alice, bob, carol = make_user(), make_user(), make_user()
    _befriend(alice, bob)
    _befriend(alice, carol)
    conv_id = direct_messages.start(alice, "direct", [bob.user_id])[0]["id"]
    page = Client(live.ws_url(f"format=html&chat={conv_id}&token={token_of(alice)}"))
    page.recv_text()  # the first frame: the unread count, sent once subscribed
    # Then the members' dots as of now, Alice's own included; Carol has none here.
    snapshot = page.recv_text()
    assert f'id="presence-{alice.user_id}" class="presence presence-online"' in snapshot, snapshot
    assert f'id="presence-{bob.user_id}" class="presence presence-offline"' in snapshot, snapshot
    assert carol.user_id not in snapshot
    carol_socket = Client(live.ws_url(f"token={token_of(carol)}"))
    carol_socket.recv_until(lambda m: m["type"] == "unread_count")
    bob_socket = Client(live.ws_url(f"token={token_of(bob)}"))
    bob_socket.recv_until(lambda m: m["type"] == "unread_count")
    frames = []
    deadline = time.monotonic() + 5
    while not any(f'id="presence-{bob.user_id}"' in f for f in frames) and time.monotonic() < deadline:
        frames.append(page.recv_text(max(0.05, deadline - time.monotonic())))
    assert any(f'id="presence-{bob.user_id}"' in f and "presence-online" in f for f in frames), frames
    assert not any(f"presence-{carol.user_id}" in f for f in frames), frames
    for sock in (page, carol_socket, bob_socket):
        sock.close()


def _friends_talking_and_listening(app, client, make_user, auth_headers):
    """Two friends whose direct conversation has Bob's "hi", each with a
    hub-like subscription drained: (alice, bob, conversation id, {user id: pubsub})."""
    alice, bob = make_user(), make_user()
    _befriend(alice, bob)
    conv_id = _start(client, auth_headers, alice, "direct", [bob]).get_json()["id"]
    messages.post(bob.user_id, conv_id, "hi")
    channels = {u.user_id: app.extensions["redis"].pubsub() for u in (alice, bob)}
    for user_id, pubsub in channels.items():
        _subscribe(pubsub, user_id)
        _published(pubsub)
    return alice, bob, conv_id, channels


def test_blocking_announces_the_direct_conversation_read_only_to_both(app, client, make_user, auth_headers):
    alice, bob, conv_id, channels = _friends_talking_and_listening(app, client, make_user, auth_headers)
    friends.block(bob, alice.user_id)
    for user in (alice, bob):
        events = [e for e in _published(channels[user.user_id], user.user_id) if e["type"] == "conversation"]
        assert [(e["event"], e["data"]["id"]) for e in events] == [("read_only", conv_id)]
        # Each member's own view: Alice has one unread message, Bob none.
        assert events[0]["data"]["unread_count"] == (1 if user is alice else 0)
    # Both stay members; the history stays.
    assert {m["user_id"] for m in messages.get_conversation(alice.user_id, conv_id)["members"]} == \
        {alice.user_id, bob.user_id}
    for pubsub in channels.values():
        pubsub.close()


def test_friends_again_announces_the_direct_conversation_writable_to_both(app, client, make_user, auth_headers):
    """Unfriend (read_only), then a request accepted: both hear ``writable``
    and may post again; after a block, an unblock alone announces nothing
    (still not friends), the accepted request does."""
    alice, bob, conv_id, channels = _friends_talking_and_listening(app, client, make_user, auth_headers)

    def events(user) -> list[tuple[str, int]]:
        return [(e["event"], e["data"]["id"]) for e in _published(channels[user.user_id], user.user_id)
                if e["type"] == "conversation"]

    friends.unfriend(alice, bob.user_id)
    assert events(alice) == events(bob) == [("read_only", conv_id)]
    _befriend(bob, alice)
    got = {u.user_id: [e for e in _published(channels[u.user_id], u.user_id) if e["type"] == "conversation"] for u in (alice, bob)}
    for user in (alice, bob):
        assert [(e["event"], e["data"]["id"]) for e in got[user.user_id]] == [("writable", conv_id)]
    assert got[alice.user_id][0]["data"]["unread_count"] == 1 and got[bob.user_id][0]["data"]["unread_count"] == 0
    assert client.post(f"/api/conversations/{conv_id}/messages", json={"body": "back"},
                       headers=auth_headers(alice)).status_code == 201
    _published(channels[alice.user_id], alice.user_id), _published(channels[bob.user_id], bob.user_id)

    friends.block(alice, bob.user_id)
    assert events(alice) == events(bob) == [("read_only", conv_id)]
    friends.unblock(alice, bob.user_id)
    assert events(alice) == events(bob) == []  # not friends yet: still read-only
    _befriend(alice, bob)
    assert events(alice) == events(bob) == [("writable", conv_id)]
    for pubsub in channels.values():
        pubsub.close()


def test_a_conversation_page_socket_gets_the_writable_signal(live, make_user):
    import time

    from webapp.services import direct_messages

    from .builders import token_of
    from .wshelpers import Client

    alice, bob = make_user(), make_user()
    _befriend(alice, bob)
    conv_id = direct_messages.start(alice, "direct", [bob.user_id])[0]["id"]
    friends.unfriend(bob, alice.user_id)
    page = Client(live.ws_url(f"format=html&chat={conv_id}&token={token_of(alice)}"))
    page.recv_text()  # the unread count, sent once subscribed
    _befriend(alice, bob)
    deadline = time.monotonic() + 5
    frame = ""
    while 'data-event="writable"' not in frame and time.monotonic() < deadline:
        frame = page.recv_text(5)
    assert 'data-kind="conversation"' in frame and 'data-event="writable"' in frame
    assert f'data-conversation-id="{conv_id}"' in frame
    page.close()


def test_a_blockers_group_history_marks_the_blocked_members_messages_hidden(client, make_user, auth_headers):
    """Kept in place and shape (seqs gap-free) with ``hidden_for_viewer``
    for the blocker only; newest first and after_seq alike."""
    owner, pal, foe = make_user(), make_user(), make_user()
    for friend in (pal, foe):
        _befriend(owner, friend)
    group_id = _start(client, auth_headers, owner, "group", [pal, foe], "Trio").get_json()["id"]
    messages.post(owner.user_id, group_id, "one")
    messages.post(pal.user_id, group_id, "two from pal")
    friends.block(foe, pal.user_id)
    messages.post(pal.user_id, group_id, "three from pal")
    messages.post(owner.user_id, group_id, "four")

    def page(user, query=""):
        resp = client.get(f"/api/conversations/{group_id}/messages{query}", headers=auth_headers(user))
        assert resp.status_code == 200
        return resp.get_json()["messages"]

    newest = page(foe)
    assert [(m["seq"], m["body"], m.get("hidden_for_viewer", False)) for m in reversed(newest)] == [
        (1, "one", False), (2, "two from pal", True), (3, "three from pal", True), (4, "four", False)]
    assert set(newest[0]) == set(newest[1]) - {"hidden_for_viewer"}  # the same shape plus the flag
    assert [(m["seq"], m.get("hidden_for_viewer", False)) for m in page(foe, "?after_seq=1")] == [
        (2, True), (3, True), (4, False)]
    for other in (owner, pal):
        assert not any("hidden_for_viewer" in m for m in page(other))
    # The list of conversations: the last message is marked the same way.
    messages.post(pal.user_id, group_id, "five from pal")
    listed = client.get("/api/conversations", headers=auth_headers(foe)).get_json()["conversations"]
    assert [(c["id"], c["last_message"]["seq"], c["last_message"].get("hidden_for_viewer")) for c in listed] == [
        (group_id, 5, True)]
    # Unblocked: shown in full again.
    friends.unblock(foe, pal.user_id)
    assert not any("hidden_for_viewer" in m for m in page(foe))


# ---- the /messages page, live ---------------------------------------------------------------


def _frames(sock, until, timeout: float = 5.0) -> list[str]:
    """Text frames until one satisfies ``until`` (or the time is up)."""
    import time

    import websocket

    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (got and until(got[-1])):
        try:
            got.append(sock.recv_text(max(0.05, deadline - time.monotonic())))
        except websocket.WebSocketTimeoutException:
            break
    return got


def test_the_messages_page_socket_refreshes_its_list_and_announces_once(live, make_user):
    from webapp.services import direct_messages

    from .builders import token_of
    from .wshelpers import Client

    alice, bob, carol = (make_user(display_name=n) for n in ("Alice Live", "Bob Live", "Carol Live"))
    _befriend(alice, bob)
    _befriend(carol, bob)
    conv_id = direct_messages.start(alice, "direct", [bob.user_id])[0]["id"]
    page = Client(live.ws_url(f"format=html&messages=1&token={token_of(bob)}"))
    page.recv_text()  # the unread count, sent once subscribed
    refresh = 'id="messages-refresh"'

    messages.post(alice.user_id, conv_id, "hello bob")
    got = _frames(page, lambda f: refresh in f)
    assert refresh in got[-1] and 'hx-get="/messages/live"' in got[-1] and 'hx-trigger="load delay:250ms"' in got[-1]
    assert "New message from Alice Live" in got[-1] and 'id="messages-announcer" hx-swap-oob="innerHTML"' in got[-1]
    # Bob's own read in another tab: the list again, nothing read out.
    messages.mark_read(bob.user_id, conv_id, 1)
    got = _frames(page, lambda f: refresh in f)
    assert refresh in got[-1] and "messages-announcer" not in got[-1]
    # Alice's read of the same conversation changes nothing in Bob's list.
    messages.post(bob.user_id, conv_id, "hi alice")  # Bob's own message: refreshed, not announced
    got = _frames(page, lambda f: refresh in f)
    assert refresh in got[-1] and "messages-announcer" not in got[-1]
    messages.mark_read(alice.user_id, conv_id, 2)
    # A new conversation (Carol starts one): it appears, through the same refresh.
    direct_messages.start(carol, "direct", [bob.user_id])
    got = _frames(page, lambda f: refresh in f)
    assert refresh in got[-1] and "messages-announcer" not in got[-1]
    assert not any(refresh in f for f in got[:-1])  # Alice's read made no frame before it
    # Typing is not shown in the list: no frame.
    messages.typing(alice.user_id, conv_id)
    assert _frames(page, lambda f: True, timeout=1.0) == []
    page.close()


def test_the_messages_live_fragment_is_the_list_out_of_band(client, make_user, login_as):
    from webapp.services import direct_messages

    alice, bob = make_user(display_name="Alice Frag"), make_user(display_name="Bob Frag")
    _befriend(alice, bob)
    conv_id = direct_messages.start(alice, "direct", [bob.user_id])[0]["id"]
    messages.post(alice.user_id, conv_id, "first")
    messages.post(alice.user_id, conv_id, "second words")
    login_as(bob)
    page = client.get("/messages").get_data(as_text=True)
    assert 'id="messages-announcer" class="visually-hidden" role="status" aria-live="polite"' in page
    assert '<div id="conversation-list">' in page
    live_list = client.get("/messages/live").get_data(as_text=True)
    assert live_list.lstrip().startswith('<div id="conversation-list" hx-swap-oob="true">')
    row = live_list.split(f'id="conversation-{conv_id}"')[1].split("</li>")[0]
    assert 'aria-label="2 unread"' in row and "Alice Frag:" in row and "second words" in row and "<time" in row
    messages.mark_read(bob.user_id, conv_id, 2)
    row = client.get("/messages/live").get_data(as_text=True).split(f'id="conversation-{conv_id}"')[1]
    assert "unread" not in row.split("</li>")[0]


def test_a_reaction_pushed_to_a_blockers_open_page_keeps_the_message_collapsed(live, make_user):
    from webapp.services import direct_messages

    from .builders import token_of
    from .wshelpers import Client

    owner, pal, foe = make_user(), make_user(), make_user()
    for friend in (pal, foe):
        _befriend(owner, friend)
    group_id = direct_messages.start(owner, "group", [pal.user_id, foe.user_id], "Trio")[0]["id"]
    hidden = messages.post(pal.user_id, group_id, "secret words")[0]
    friends.block(foe, pal.user_id)
    page = Client(live.ws_url(f"format=html&chat={group_id}&token={token_of(foe)}"))
    page.recv_text()  # the unread count, sent once subscribed
    messages.react(owner.user_id, hidden["id"], "👍", on=True)
    got = _frames(page, lambda f: f'id="msg-{hidden["id"]}"' in f)
    frame = got[-1]
    assert f'id="msg-{hidden["id"]}" class="msg hidden-for-viewer"' in frame
    assert "Message from a miner you blocked" in frame and 'data-react' not in frame
    assert "secret words" not in frame.split('<details class="msg-hidden">')[0]
    page.close()


def test_two_adds_at_once_to_a_group_of_nine_leave_it_at_ten(app, client, make_user, auth_headers):
    """The 10-member cap holds under concurrent adds (the conversation's row lock)."""
    from webapp.services import conversations, direct_messages
    from webapp.services.errors import ValidationError

    owner = make_user()
    pals = [make_user() for _ in range(10)]
    for pal in pals:
        _befriend(owner, pal)
    group_id = _start(client, auth_headers, owner, "group", pals[:8], "Nine").get_json()["id"]
    assert len(conversations.member_ids(group_id)) == 9
    barrier, added, refused = threading.Barrier(2), [], []

    def add(user_id: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                added.append(direct_messages.add_to_group(db.session.get(User, owner.user_id), group_id, user_id)[1])
            except ValidationError:
                refused.append(user_id)
            db.session.remove()

    threads = [threading.Thread(target=add, args=(pal.user_id,)) for pal in pals[8:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert added == [True] and len(refused) == 1
    db.session.expire_all()
    assert len(conversations.member_ids(group_id)) == 10


def test_a_direct_message_reported_from_its_page_goes_to_the_sites_admins(client, make_user, login_as):
    """The conversation page's Report says who will look at it: a direct
    message has no coop moderators, its report goes to the platform's admins."""
    from webapp.models import Report
    from webapp.services import direct_messages

    alice, bob = make_user(), make_user()
    _befriend(alice, bob)
    conv_id = direct_messages.start(alice, "direct", [bob.user_id])[0]["id"]
    rude, _ = messages.post(bob.user_id, conv_id, "rude words")
    headers = login_as(alice, csrf_from=f"/conversations/{conv_id}")
    assert f'action="/chat/messages/{rude["id"]}/report"' in client.get(f"/conversations/{conv_id}").get_data(as_text=True)
    sent = client.post(f"/chat/messages/{rude['id']}/report", data={"reason": "abuse"}, headers=headers)
    assert sent.status_code == 201 and "Reported. The site&#39;s admins will look at it." in sent.get_data(as_text=True)
    row = db.session.scalars(select(Report).where(Report.target_id == str(rude["id"]))).one()
    assert (row.cooperative_id, row.target_user_id, row.reporter_user_id) == (None, bob.user_id, alice.user_id)
