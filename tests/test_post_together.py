"""Posts stored together (messages.post_together, webapp/post_lane.py) on
PostgreSQL: the same messages, numbers, refusals and notifications as one
``post`` each, gap-free under concurrent lanes, and what it leaves to
``post``."""
from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from webapp import post_lane, realtime
from webapp.extensions import db
from webapp.models import ConversationMember, Message, Notification
from webapp.services import coop_moderation, direct_messages, friends, messages
from webapp.services.errors import MessageBlocked, Muted, ValidationError

from .builders import make_coop, make_user
from .test_chat import chat_of, online

R = messages.PostRequest


def stored(cid: int) -> list[tuple[int, str, str]]:
    db.session.expire_all()
    return [tuple(r) for r in db.session.execute(
        select(Message.seq, Message.sender_id, Message.body).where(Message.conversation_id == cid)
        .order_by(Message.seq)).all()]


def test_posts_in_two_coops_are_numbered_in_request_order_and_published_once_each(app, redis):
    one, admin1, (a,) = make_coop(members=1, name="One")
    two, admin2, (b,) = make_coop(members=1, name="Two")
    c1, c2 = chat_of(one), chat_of(two)
    online(admin1.user_id, a.user_id, admin2.user_id, b.user_id)
    messages.post(a.user_id, c1, "before")  # seq 1 of the first
    db.session.commit()
    pubsub = redis.pubsub()
    pubsub.subscribe(realtime.fanout_channel())
    pubsub.get_message(timeout=1)

    outcomes = messages.post_together([
        R(a.user_id, c1, "a1", client_id="a-1"), R(b.user_id, c2, "b1"), R(admin1.user_id, c1, "x1"),
        R(a.user_id, c1, "a2", client_id="a-2"),
    ])
    assert [o[0]["seq"] for o in outcomes] == [2, 1, 3, 4]  # type: ignore[index]
    assert all(o[1] is True for o in outcomes)  # type: ignore[index]
    assert stored(c1) == [(1, a.user_id, "before"), (2, a.user_id, "a1"), (3, admin1.user_id, "x1"),
                          (4, a.user_id, "a2")]
    assert stored(c2) == [(1, b.user_id, "b1")]
    # Each outcome is the stored message as the API gives it.
    for outcome in outcomes:
        data, _ = outcome  # type: ignore[misc]
        assert messages.get_message(data["sender"]["user_id"], data["id"]) == data
    assert outcomes[1][0]["sender"]["display_name"] == b.display_name  # type: ignore[index]
    # The sender's read position is their newest message.
    assert db.session.scalar(select(ConversationMember.last_read_seq).where(
        ConversationMember.conversation_id == c1, ConversationMember.user_id == a.user_id)) == 4
    published = []
    while (item := pubsub.get_message(timeout=1)) is not None:
        if item["type"] == "message":
            published.append(json.loads(item["data"]))
    assert [(sorted(p["to"]), p["m"]["data"]["body"]) for p in published] == [
        (sorted([admin1.user_id, a.user_id]), "a1"), (sorted([admin2.user_id, b.user_id]), "b1"),
        (sorted([admin1.user_id, a.user_id]), "x1"), (sorted([admin1.user_id, a.user_id]), "a2")]
    # A retry of a stored client_id is left to ``post``, which returns the first.
    assert messages.post_together([R(a.user_id, c1, "a1", client_id="a-1")]) == [None]
    assert messages.post(a.user_id, c1, "a1", client_id="a-1") == (outcomes[0][0], False)  # type: ignore[index]


def test_refusals_are_posts_refusals_and_the_rest_is_left_to_post(app, redis):
    coop, admin, (muted, member, flagger, slow) = make_coop(members=4)
    cid = chat_of(coop)
    outsider = make_user()
    coop_moderation.mute(admin, coop_id=coop.id, user_id=muted.user_id, minutes=5)
    coop_moderation.update_settings(admin, coop_id=coop.id, keyword_filters=[
        {"phrase": "scam", "action": "block"}, {"phrase": "pump", "action": "flag"}])
    friend = make_user()
    request, _ = friends.send_request(member, friend.user_id)
    friends.accept(friend, request.id)
    direct, _ = direct_messages.start(member, "direct", [friend.user_id])
    db.session.commit()

    outcomes = messages.post_together([
        R(muted.user_id, cid, "hello"),                     # 403 muted
        R(member.user_id, cid, "a scam here"),              # 400 message_blocked
        R(member.user_id, cid, "   "),                      # 400 empty body
        R(member.user_id, cid, "fine", client_id="x" * 65),  # 400 client_id
        R(flagger.user_id, cid, "pump it"),                  # a flag report follows: post
        R(member.user_id, cid, "reply", reply_to=1),         # a reply: post
        R(outsider.user_id, cid, "let me in"),               # not a member: post says 403
        R(member.user_id, 999_999, "nowhere"),               # no such conversation: post says 404
        R(member.user_id, direct["id"], "hi friend"),        # a direct conversation: post
        R(member.user_id, cid, "twice", client_id="t"),      # stored
        R(member.user_id, cid, "twice", client_id="t"),      # the same client_id at once: post
    ])
    assert isinstance(outcomes[0], Muted)
    assert isinstance(outcomes[1], MessageBlocked) and outcomes[1].details == {"phrases": ["scam"]}
    assert isinstance(outcomes[2], ValidationError) and isinstance(outcomes[3], ValidationError)
    assert outcomes[4:9] == [None] * 5
    assert outcomes[9][0]["body"] == "twice" and outcomes[10] is None  # type: ignore[index]
    assert stored(cid) == [(1, member.user_id, "twice")]

    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=30)
    db.session.commit()
    assert messages.post_together([R(slow.user_id, cid, "slowly")]) == [None]  # the slot is post's
    assert messages.post_together([R(admin.user_id, cid, "exempt")])[0][0]["seq"] == 2  # type: ignore[index]


def test_mentions_and_absent_members_are_notified_as_by_post(app, redis):
    coop, admin, (a, b, c) = make_coop(members=3)
    cid = chat_of(coop)
    online(admin.user_id, a.user_id, b.user_id)  # c has no socket open
    outcomes = messages.post_together([R(admin.user_id, cid, f"hey @{a.user_id}"), R(b.user_id, cid, "second")])
    first, second = (o[0] for o in outcomes)  # type: ignore[index]
    assert first["mentions"] == [a.user_id] and second["mentions"] == []
    rows = db.session.execute(select(Notification.user_id, Notification.subtype, Notification.data)
                              .where(Notification.subtype.in_(("mention", "chat_unread")))
                              .order_by(Notification.id)).all()
    assert [tuple(r) for r in rows] == [
        (a.user_id, "mention", {"conversation_id": cid, "message_id": first["id"], "seq": 1}),
        (c.user_id, "chat_unread", {"conversation_id": cid}),  # one for two messages
    ]


@pytest.mark.slow
@pytest.mark.many_connections
def test_lanes_and_single_posts_at_once_keep_every_sequence_gap_free(app, redis):
    """Four threads post batches across three coops in opposite orders (the
    lock order is the ids', so no deadlock) while two post one at a time;
    every post is stored once, by its batch, each conversation numbered 1..n."""
    coops = [make_coop(members=3, name=f"Coop {i}") for i in range(3)]
    cids = [chat_of(c) for c, _, _ in coops]
    members = {cid: [admin.user_id, *[m.user_id for m in ms]] for cid, (_, admin, ms) in zip(cids, coops, strict=True)}
    online(*[u for us in members.values() for u in us])
    db.session.commit()
    errors: list[BaseException] = []
    left: list[R] = []
    barrier = threading.Barrier(6)

    def batches(name: str, order: list[int]) -> None:
        with app.app_context():
            try:
                barrier.wait()
                for round_ in range(10):
                    requests = [R(members[cid][k], cid, f"{name}-{round_}-{cid}-{k}",
                                  client_id=f"{name}-{round_}-{cid}-{k}")
                                for cid in order for k in range(4)]
                    outcomes = messages.post_together(requests)
                    left.extend(r for r, o in zip(requests, outcomes, strict=True) if o is None)
                    db.session.remove()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    def singles(name: str) -> None:
        with app.app_context():
            try:
                barrier.wait()
                for i in range(20):
                    cid = cids[i % 3]
                    messages.post(members[cid][0], cid, f"{name}-{i}", client_id=f"{name}-{i}")
                    db.session.remove()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=batches, args=(f"b{n}", cids if n % 2 else cids[::-1])) for n in range(4)]
    threads += [threading.Thread(target=singles, args=(f"s{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert left == []  # no deadlock, no race left a batch to single posts
    total = 0
    for cid in cids:
        seqs = [s for s, _, _ in stored(cid)]
        assert seqs == list(range(1, len(seqs) + 1))
        total += len(seqs)
    assert total == 4 * 10 * 3 * 4 + 2 * 20
    assert len({b for cid in cids for _, _, b in stored(cid)}) == total  # each once


def test_the_lane_gives_what_post_gives(app, redis):
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    online(admin.user_id, a.user_id)
    app.config["CHAT_POST_ALONE"] = 0  # every post through the lane
    app.extensions.pop("post_lane", None)
    lane = post_lane.get_lane(app)
    assert lane is not None and lane.alone_max == 0
    data, created = post_lane.post(R(a.user_id, cid, "through the lane", client_id="l-1"))
    assert created and data["seq"] == 1
    # A retry is posted alone and answers the first, unchanged.
    assert post_lane.post(R(a.user_id, cid, "through the lane", client_id="l-1")) == (data, False)
    coop_moderation.mute(admin, coop_id=coop.id, user_id=a.user_id, minutes=5)
    db.session.commit()
    with pytest.raises(Muted):
        post_lane.post(R(a.user_id, cid, "muted now"))
    reply, _ = post_lane.post(R(admin.user_id, cid, "a reply", reply_to=data["id"]))
    assert reply["reply_to"] == data["id"] and reply["seq"] == 2
    app.config["CHAT_POST_LANES"] = 0
    try:
        assert post_lane.get_lane(app) is None
    finally:
        app.config["CHAT_POST_LANES"], app.config["CHAT_POST_ALONE"] = 2, 2
        app.extensions.pop("post_lane", None)


def test_a_quiet_batch_is_two_round_trips_in_autocommit(app, redis, tmp_path):
    """Like a quiet single post (test_chat): the checks of every post in one
    query and one statement for all, neither with BEGIN or COMMIT; a
    mention in the batch opens a transaction, and its notification commits
    with the messages."""
    from .builders import wire_trace

    one, admin1, (a,) = make_coop(members=1, name="One")
    two, admin2, (b,) = make_coop(members=1, name="Two")
    c1, c2 = chat_of(one), chat_of(two)
    ids = [admin1.user_id, a.user_id, admin2.user_id, b.user_id]
    online(*ids)
    db.session.commit()
    db.session.remove()
    with wire_trace(tmp_path / "quiet") as quiet:
        outcomes = messages.post_together([R(ids[1], c1, "one"), R(ids[3], c2, "two"), R(ids[0], c1, "three")])
    assert [o[0]["seq"] for o in outcomes] == [1, 1, 2]  # type: ignore[index]
    assert [m for m in quiet if m.startswith("Query")] == []
    # Two statements (a Sync more when psycopg prepares one after its fifth run on a connection).
    assert quiet.count("Execute") == 2
    with wire_trace(tmp_path / "mention") as mention:
        outcomes = messages.post_together([R(ids[1], c1, f"@{ids[0]} look"), R(ids[3], c2, "four")])
    assert [m for m in mention if m.startswith("Query")] == ["Query BEGIN", "Query COMMIT"]
    assert db.session.scalar(select(Notification.data).where(Notification.user_id == ids[0],
                                                             Notification.subtype == "mention")) \
        == {"conversation_id": c1, "message_id": outcomes[0][0]["id"], "seq": 3}  # type: ignore[index]


def test_a_lane_whose_batch_fails_posts_each_alone_and_goes_on(app, redis, monkeypatch, caplog):
    """A batch that raises (here: the call itself) answers every waiting
    socket by posting its message alone, and the lane's workers take the
    next posts as before."""
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    online(admin.user_id, a.user_id)
    db.session.commit()
    app.config["CHAT_POST_ALONE"] = 0  # every post through the lane
    app.extensions.pop("post_lane", None)
    try:
        def broken(requests):
            raise RuntimeError("the batch broke")

        monkeypatch.setattr(messages, "post_together", broken)
        data, created = post_lane.post(R(a.user_id, cid, "despite it", client_id="d-1"))
        assert created and data["seq"] == 1 and data["body"] == "despite it"
        assert "posting 1 messages together failed" in caplog.text
        monkeypatch.undo()
        data, created = post_lane.post(R(a.user_id, cid, "next", client_id="d-2"))
        assert created and data["seq"] == 2
        assert stored(cid) == [(1, a.user_id, "despite it"), (2, a.user_id, "next")]
    finally:
        app.config["CHAT_POST_ALONE"] = 2
        app.extensions.pop("post_lane", None)
