"""Friend requests, friendships and blocks (API.md "Friends and blocks"):
the database invariants, the request race, the daily cap, expiry, the
notifications and the live pending counts, and blocks that look like a
missing account."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import Block, FriendRequest, Friendship, Notification, User, utcnow
from webapp.services import friends


def _ask(client, auth_headers, requester, recipient, message=None):
    body = {"user_id": recipient.user_id}
    if message is not None:
        body["message"] = message
    return client.post("/api/friends/requests", json=body, headers=auth_headers(requester))


def _friendship_rows(a, b) -> int:
    return db.session.scalar(select(func.count()).select_from(Friendship).where(
        ((Friendship.user_id == a.user_id) & (Friendship.friend_id == b.user_id))
        | ((Friendship.user_id == b.user_id) & (Friendship.friend_id == a.user_id))))


def test_request_accept_writes_both_rows_and_notifies(client, make_user, auth_headers):
    alice, bob = make_user(display_name="Alice"), make_user(display_name="Bob")
    resp = _ask(client, auth_headers, alice, bob, "Hi from the shelf")
    assert resp.status_code == 201
    req = resp.get_json()
    assert req["status"] == "pending" and req["requester"] == alice.user_id and req["recipient"] == bob.user_id
    assert req["message"] == "Hi from the shelf" and req["responded_at"] is None
    note = db.session.scalars(select(Notification).where(Notification.user_id == bob.user_id)).one()
    assert (note.category, note.subtype) == ("social", "friend_request_received")
    assert note.title == "Friend request from Alice" and note.body == "Hi from the shelf"

    incoming = client.get("/api/friends/requests?direction=incoming", headers=auth_headers(bob)).get_json()
    assert [r["id"] for r in incoming["requests"]] == [req["id"]] and incoming["incoming_count"] == 1
    assert client.get("/api/friends/requests?direction=outgoing",
                      headers=auth_headers(alice)).get_json()["outgoing_count"] == 1
    # Only the recipient answers; to anyone else the request does not exist.
    assert client.post(f"/api/friends/requests/{req['id']}/accept", headers=auth_headers(alice)).status_code == 404

    accepted = client.post(f"/api/friends/requests/{req['id']}/accept", headers=auth_headers(bob))
    assert accepted.status_code == 200 and accepted.get_json()["status"] == "accepted"
    assert accepted.get_json()["responded_at"] is not None
    assert _friendship_rows(alice, bob) == 2
    assert client.post(f"/api/friends/requests/{req['id']}/accept",
                       headers=auth_headers(bob)).get_json()["error"]["code"] == "request_not_pending"
    note = db.session.scalars(select(Notification).where(
        Notification.user_id == alice.user_id, Notification.subtype == "friend_request_accepted")).one()
    assert note.title == "Bob accepted your friend request"

    listed = client.get("/api/friends", headers=auth_headers(alice)).get_json()
    assert [(f["user_id"], f["display_name"], f["mutual_count"]) for f in listed["friends"]] == [
        (bob.user_id, "Bob", 0)]
    assert _ask(client, auth_headers, alice, bob).get_json()["error"]["code"] == "already_friends"

    assert client.delete(f"/api/friends/{bob.user_id}", headers=auth_headers(alice)).get_json() == {
        "status": "removed"}
    assert _friendship_rows(alice, bob) == 0
    assert client.delete(f"/api/friends/{bob.user_id}", headers=auth_headers(alice)).status_code == 404


def test_mutual_count_counts_shared_friends(client, make_user, auth_headers):
    a, b, c = make_user(), make_user(), make_user()
    for x, y in ((a, b), (a, c), (b, c)):
        row, _ = friends.send_request(x, y.user_id)
        friends.accept(y, row.id)
    listed = client.get("/api/friends", headers=auth_headers(a)).get_json()["friends"]
    assert {f["user_id"]: f["mutual_count"] for f in listed} == {b.user_id: 1, c.user_id: 1}


def test_decline_cancel_and_pending_conflicts(client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    first = _ask(client, auth_headers, alice, bob).get_json()
    again = _ask(client, auth_headers, alice, bob)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "request_pending"
    assert client.post(f"/api/friends/requests/{first['id']}/cancel", headers=auth_headers(bob)).status_code == 404
    declined = client.post(f"/api/friends/requests/{first['id']}/decline", headers=auth_headers(bob)).get_json()
    assert declined["status"] == "declined"
    second = _ask(client, auth_headers, alice, bob).get_json()
    cancelled = client.post(f"/api/friends/requests/{second['id']}/cancel", headers=auth_headers(alice)).get_json()
    assert cancelled["status"] == "cancelled" and _friendship_rows(alice, bob) == 0


def test_a_request_to_someone_who_asked_you_accepts_theirs(client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    theirs = _ask(client, auth_headers, alice, bob).get_json()
    resp = _ask(client, auth_headers, bob, alice)
    assert resp.status_code == 200
    assert resp.get_json()["id"] == theirs["id"] and resp.get_json()["status"] == "accepted"
    assert _friendship_rows(alice, bob) == 2


def test_bad_requests(client, make_user, auth_headers):
    alice = make_user()
    assert _ask(client, auth_headers, alice, alice).status_code == 400
    resp = client.post("/api/friends/requests", json={"user_id": "bc1qnosuchminer"}, headers=auth_headers(alice))
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    bob = make_user()
    assert _ask(client, auth_headers, alice, bob, "x" * 141).status_code == 400
    assert client.get("/api/friends/requests?direction=sideways", headers=auth_headers(alice)).status_code == 400


def test_database_refuses_self_requests_and_a_second_pending_per_pair(app, make_user):
    alice, bob = make_user(), make_user()
    low, high = sorted([alice.user_id, bob.user_id])
    db.session.add(FriendRequest(requester_id=alice.user_id, recipient_id=alice.user_id,
                                 user_low=alice.user_id, user_high=alice.user_id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(FriendRequest(requester_id=alice.user_id, recipient_id=bob.user_id, user_low=low, user_high=high))
    db.session.commit()
    # The other direction of the same pair: refused by the unordered-pair index.
    db.session.add(FriendRequest(requester_id=bob.user_id, recipient_id=alice.user_id, user_low=low, user_high=high))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # A pair written in the wrong order is refused by the CHECK.
    db.session.add(FriendRequest(requester_id=bob.user_id, recipient_id=alice.user_id, user_low=high, user_high=low,
                                 status="declined"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(Friendship(user_id=alice.user_id, friend_id=alice.user_id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


@pytest.mark.parametrize("round_", range(3))
def test_two_miners_asking_each_other_at_once_end_with_one_friendship(app, make_user, round_):
    alice, bob = make_user(), make_user()
    ids = (alice.user_id, bob.user_id)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def ask(me: str, them: str) -> None:
        with app.app_context():
            user = db.session.get(User, me)
            barrier.wait()
            try:
                row, created = friends.send_request(user, them)
                results[me] = (row.status, created)
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                results[me] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=ask, args=(ids[0], ids[1])), threading.Thread(target=ask, args=(ids[1], ids[0]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    db.session.expire_all()
    assert _friendship_rows(alice, bob) == 2, results
    rows = db.session.scalars(select(FriendRequest)).all()
    assert [r.status for r in rows] == ["accepted"], results
    # One side created the request, the other accepted it; neither saw an error.
    assert sorted(results.values(), key=str) == [("accepted", False), ("pending", True)], results


def test_daily_cap_answers_429_with_retry_after(client, make_app, make_user, auth_headers):
    capped = make_app(FRIEND_REQUEST_DAILY_CAP=2).test_client()
    alice = make_user()
    others = [make_user() for _ in range(3)]
    assert _ask(capped, auth_headers, alice, others[0]).status_code == 201
    assert _ask(capped, auth_headers, alice, others[1]).status_code == 201
    resp = _ask(capped, auth_headers, alice, others[2])
    assert resp.status_code == 429 and resp.get_json()["error"]["code"] == "rate_limited"
    assert 80000 < int(resp.headers["Retry-After"]) <= 86400
    # A day later the window has room again.
    db.session.execute(FriendRequest.__table__.update().values(created_at=utcnow() - timedelta(days=1, seconds=5)))
    db.session.commit()
    assert _ask(capped, auth_headers, alice, others[2]).status_code == 201


def test_pending_requests_expire_after_thirty_days(app, make_user):
    from jobs.friends import expire_friend_requests

    alice, bob, carol = make_user(), make_user(), make_user()
    old, _ = friends.send_request(alice, bob.user_id)
    fresh, _ = friends.send_request(alice, carol.user_id)
    old_id, fresh_id = old.id, fresh.id
    db.session.execute(FriendRequest.__table__.update().where(FriendRequest.id == old_id)
                       .values(created_at=utcnow() - timedelta(days=30, minutes=1)))
    db.session.commit()
    assert expire_friend_requests() == 1
    db.session.expire_all()
    assert db.session.get(FriendRequest, old_id).status == "expired"
    assert db.session.get(FriendRequest, fresh_id).status == "pending"
    assert friends.pending_counts(alice.user_id) == {"incoming": 0, "outgoing": 1}


def test_pending_counts_are_published_after_commit(app, make_user, redis):
    from webapp import realtime

    alice, bob = make_user(), make_user()
    pubsub = app.extensions["redis"].pubsub()
    pubsub.subscribe(realtime.user_channel(alice.user_id), realtime.user_channel(bob.user_id))
    pubsub.get_message(timeout=1)
    pubsub.get_message(timeout=1)
    friends.send_request(alice, bob.user_id)
    got = {}
    for _ in range(6):
        msg = pubsub.get_message(timeout=1)
        if msg and msg["type"] == "message":
            import json

            body = json.loads(msg["data"])
            if body["type"] == "friend_requests":
                got[msg["channel"]] = (body["incoming"], body["outgoing"])
    assert got == {realtime.user_channel(bob.user_id): (1, 0), realtime.user_channel(alice.user_id): (0, 1)}
    pubsub.close()


# ---- blocks ---------------------------------------------------------------------------------


def test_block_ends_friendship_cancels_requests_and_refuses_new_ones(client, make_user, auth_headers):
    alice, bob, carol = make_user(), make_user(), make_user()
    row, _ = friends.send_request(alice, bob.user_id)
    friends.accept(bob, row.id)
    friends.send_request(carol, alice.user_id)
    assert client.post("/api/blocks", json={"user_id": bob.user_id}, headers=auth_headers(alice)).status_code == 201
    assert _friendship_rows(alice, bob) == 0
    assert client.post("/api/blocks", json={"user_id": carol.user_id}, headers=auth_headers(alice)).status_code == 201
    assert db.session.scalars(select(FriendRequest.status).where(
        FriendRequest.requester_id == carol.user_id)).all() == ["cancelled"]
    blocks = client.get("/api/blocks", headers=auth_headers(alice)).get_json()["blocks"]
    assert {b["user_id"] for b in blocks} == {bob.user_id, carol.user_id}

    # To bob, alice is now a missing account.
    missing = client.post("/api/friends/requests", json={"user_id": "bc1qnosuchminer"}, headers=auth_headers(bob))
    blocked = _ask(client, auth_headers, bob, alice)
    assert blocked.status_code == missing.status_code == 404 and blocked.get_data() == missing.get_data()
    # alice, who blocked, is told to unblock first.
    assert _ask(client, auth_headers, alice, bob).get_json()["error"]["code"] == "blocked"

    assert client.delete(f"/api/blocks/{bob.user_id}", headers=auth_headers(alice)).status_code == 200
    assert client.delete(f"/api/blocks/{bob.user_id}", headers=auth_headers(alice)).status_code == 404
    assert _ask(client, auth_headers, bob, alice).status_code == 201
    assert db.session.get(Block, (alice.user_id, bob.user_id)) is None


def test_database_refuses_blocking_oneself(app, make_user):
    alice = make_user()
    db.session.add(Block(blocker_id=alice.user_id, blocked_id=alice.user_id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_pending_counts_reach_open_sockets_live(live, make_user):
    from .builders import token_of
    from .wshelpers import Client

    alice, bob = make_user(), make_user()
    sock = Client(live.ws_url(f"token={token_of(bob)}"))
    sock.recv_text()  # the unread count: the channel is subscribed
    html = Client(live.ws_url(f"format=html&token={token_of(bob)}"))
    html.recv_text()
    friends.send_request(alice, bob.user_id)
    assert sock.recv_until(lambda m: m["type"] == "friend_requests") == {
        "type": "friend_requests", "incoming": 1, "outgoing": 0}
    for _ in range(5):
        frame = html.recv_text()
        if "friend-requests-badge" in frame:
            assert 'data-count="1"' in frame and "hx-swap-oob" in frame
            break
    else:
        raise AssertionError("no friend request badge frame")
    sock.close()
    html.close()
