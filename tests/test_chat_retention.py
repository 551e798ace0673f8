"""Retention of archived conversations (services/chat_retention.py, the
daily job ``jobs.chat.purge_archived_conversations``): exactly the
conversations archived longer than CHAT_ARCHIVE_RETENTION_DAYS go, with
their messages, reactions and members; live ones stay, whatever their age."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from jobs.chat import purge_archived_conversations
from webapp.extensions import db
from webapp.models import Conversation, ConversationMember, DirectPair, Message, MessageReaction
from webapp.services import chat_retention, conversations, coops, messages
from webapp.services.schedule import PERIODIC
from webapp.vocabulary import ConversationKind

from .builders import make_coop, make_user

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _chat(coop_id: int) -> int:
    conversation_id = conversations.coop_conversation_id(coop_id)
    assert conversation_id is not None
    return conversation_id


def _talk(conversation_id: int, authors: list[str], count: int) -> None:
    """``count`` messages in turns, the second a reply to the first, a 🔥 and a read on the first."""
    first = None
    for i in range(count):
        data, _ = messages.post(authors[i % len(authors)], conversation_id, f"gm {i}",
                                reply_to=first["id"] if first and i == 1 else None)
        first = first or data
    assert first is not None
    messages.react(authors[-1], first["id"], "🔥", on=True)
    messages.mark_read(authors[-1], conversation_id, count)


def _store(conversation_id: int, authors: list[str], count: int) -> None:
    """``_talk`` for a direct or group conversation of miners who are not
    friends (a post would be refused as read-only): rows written directly."""
    rows = [Message(conversation_id=conversation_id, seq=i + 1, sender_id=authors[i % len(authors)],
                    body=f"gm {i}") for i in range(count)]
    db.session.add_all(rows)
    db.session.flush()
    rows[1].reply_to = rows[0].id
    db.session.add(MessageReaction(message_id=rows[0].id, user_id=authors[-1], emoji="🔥"))
    db.session.get(Conversation, conversation_id).last_seq = count
    db.session.commit()


def _abandoned(kind: str) -> int:
    """A direct or group conversation with messages whose members all left."""
    people = [make_user().user_id for _ in range(2 if kind == ConversationKind.DIRECT else 3)]
    conversation = conversations.create(kind, member_ids=people, created_by=people[0],
                                        title="Hashers" if kind == ConversationKind.GROUP else None)
    if kind == ConversationKind.DIRECT:
        low, high = sorted(people)
        db.session.add(DirectPair(user_low=low, user_high=high, conversation_id=conversation.id))
    db.session.commit()
    cid = conversation.id
    _store(cid, people, 3)
    for user_id in people:
        conversations.remove_member(cid, user_id)
    db.session.commit()
    return cid


def _holdings(conversation_id: int) -> tuple[bool, int, int, int]:
    """(the row exists, messages, reactions, member rows) of a conversation."""
    db.session.expire_all()
    count = lambda q: db.session.scalar(select(func.count()).select_from(q.subquery()))  # noqa: E731
    return (
        db.session.get(Conversation, conversation_id) is not None,
        count(select(Message.id).where(Message.conversation_id == conversation_id)),
        count(select(MessageReaction.message_id).join(Message, Message.id == MessageReaction.message_id)
              .where(Message.conversation_id == conversation_id)),
        count(select(ConversationMember.user_id).where(ConversationMember.conversation_id == conversation_id)),
    )


def test_the_purge_is_a_daily_job_with_a_90_day_default(app):
    assert ("jobs.chat.purge_archived_conversations", 24 * 3600) in [(j.job, j.every) for j in PERIODIC]
    assert app.config["CHAT_ARCHIVE_RETENTION_DAYS"] == 90


def test_exactly_the_conversations_archived_longer_than_the_retention_go(app):
    with time_machine.travel(T0, tick=False):
        old, old_admin, (old_member,) = make_coop(members=1, name="Old Crew")
        recent, recent_admin, (recent_member,) = make_coop(members=1, name="Recent Crew")
        live, live_admin, (live_member,) = make_coop(members=1, name="Live Crew")
        old_cid, recent_cid, live_cid = _chat(old.id), _chat(recent.id), _chat(live.id)
        _talk(old_cid, [old_admin.user_id, old_member.user_id], 5)
        _talk(recent_cid, [recent_admin.user_id, recent_member.user_id], 4)
        _talk(live_cid, [live_admin.user_id, live_member.user_id], 4)
        a, b = make_user().user_id, make_user().user_id
        friends = conversations.create(ConversationKind.DIRECT, member_ids=[a, b], created_by=a)
        db.session.add(DirectPair(user_low=min(a, b), user_high=max(a, b), conversation_id=friends.id))
        db.session.commit()
        direct_cid = friends.id
        _store(direct_cid, [a, b], 3)
        group_cid = _abandoned(ConversationKind.GROUP)
        gone_direct_cid = _abandoned(ConversationKind.DIRECT)
        coops.dissolve(old_admin, coop_id=old.id)
    with time_machine.travel(T0 + 80 * DAY, tick=False):
        coops.dissolve(recent_admin, coop_id=recent.id)

    # Day 91: the coop chat archived on day 0 goes, two messages per transaction;
    # the abandoned direct and group conversations are archived from today.
    assert _holdings(old_cid) == (True, 5, 1, 2)
    with time_machine.travel(T0 + 91 * DAY, tick=False):
        result = chat_retention.purge_archived(batch=2)
        assert result == chat_retention.PurgeResult(archived=2, conversations=1, messages=5)
        assert _holdings(old_cid) == (False, 0, 0, 0)
        for cid, count in ((recent_cid, 4), (live_cid, 4), (direct_cid, 3), (group_cid, 3), (gone_direct_cid, 3)):
            assert _holdings(cid)[:3] == (True, count, 1), cid
        for cid in (group_cid, gone_direct_cid):
            assert db.session.get(Conversation, cid).archived_at == T0 + 91 * DAY
        assert db.session.get(Conversation, direct_cid).archived_at is None
        assert db.session.get(Conversation, live_cid).archived_at is None
        # Idempotent: a second run on the same day finds nothing.
        assert purge_archived_conversations() == 0
        assert _holdings(recent_cid)[:2] == (True, 4)

    with time_machine.travel(T0 + 80 * DAY + 90 * DAY - timedelta(minutes=1), tick=False):
        assert purge_archived_conversations() == 0  # one minute short of 90 days
    with time_machine.travel(T0 + 80 * DAY + 91 * DAY, tick=False):
        assert purge_archived_conversations() == 1
        assert _holdings(recent_cid) == (False, 0, 0, 0)
        assert _holdings(group_cid)[:2] == (True, 3)
    with time_machine.travel(T0 + 182 * DAY, tick=False):
        assert purge_archived_conversations() == 2
        for cid in (group_cid, gone_direct_cid):
            assert _holdings(cid) == (False, 0, 0, 0)
        # Live conversations stay whatever their age, with their messages, reactions and members.
        assert _holdings(live_cid) == (True, 4, 1, 2)
        assert _holdings(direct_cid) == (True, 3, 1, 2)
        pairs = db.session.scalars(select(DirectPair.conversation_id)).all()
        assert pairs == [direct_cid]
        assert purge_archived_conversations() == 0
