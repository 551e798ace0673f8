"""The messaging core (services/messages.py, services/conversations.py) on
PostgreSQL: the coop conversation follows the coop's membership in the same
transaction, seqs are gap-free under concurrency, client_id retries return
the first message, non-members are refused, tombstones, reactions, reads,
mentions and the one "new messages" notification per absent member."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.models import Conversation, ConversationMember, Message, Notification
from webapp.services import conversations, coops, messages, presence
from webapp.services.errors import AlreadyInCoop, Forbidden, NotAMember, ValidationError

from .builders import make_coop, make_user, wire_trace


def chat_of(coop) -> int:
    conversation_id = conversations.coop_conversation_id(coop.id)
    assert conversation_id is not None
    return conversation_id


def current_members(conversation_id: int) -> set[str]:
    db.session.expire_all()
    return set(conversations.member_ids(conversation_id))


def test_coop_conversation_follows_found_join_leave_remove_dissolve(app):
    coop, admin, (a, b, c) = make_coop(members=3)
    cid = chat_of(coop)
    assert current_members(cid) == {admin.user_id, a.user_id, b.user_id, c.user_id}
    coops.leave(a, coop_id=coop.id)
    assert current_members(cid) == {admin.user_id, b.user_id, c.user_id}
    coops.remove_member(admin, coop_id=coop.id, user_id=b.user_id)
    assert current_members(cid) == {admin.user_id, c.user_id}
    coops.join(a, invite_code=coop.invite_code)  # rejoining reopens the row
    assert current_members(cid) == {admin.user_id, c.user_id, a.user_id}
    coops.dissolve(admin, coop_id=coop.id)
    assert current_members(cid) == set()
    assert db.session.get(Conversation, cid, populate_existing=True).archived_at is not None
    assert conversations.coop_conversation_id(coop.id) is None


def test_a_failed_join_leaves_no_chat_membership(app):
    coop, admin, _ = make_coop()
    other, _, _ = make_coop(name="Other Crew")
    newcomer = make_user()
    coops.join(newcomer, invite_code=other.invite_code)
    with pytest.raises(AlreadyInCoop):
        coops.join(newcomer, invite_code=coop.invite_code)  # already in a coop: rolled back
    assert newcomer.user_id not in current_members(chat_of(coop))


def test_the_database_allows_one_live_conversation_per_coop(app):
    coop, _, _ = make_coop()
    db.session.add(Conversation(kind="coop", cooperative_id=coop.id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(Conversation(kind="direct", cooperative_id=coop.id))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_post_numbers_messages_and_history_pages_newest_first(app):
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    for i in range(5):
        data, created = messages.post(admin.user_id if i % 2 else a.user_id, cid, f"hello {i}")
        assert created and data["seq"] == i + 1
    page, cursor = messages.history(a.user_id, cid, limit=2)
    assert [m["seq"] for m in page] == [5, 4] and cursor == "4"
    page, cursor = messages.history(a.user_id, cid, limit=2, cursor=cursor)
    assert [m["seq"] for m in page] == [3, 2]
    page, cursor = messages.history(a.user_id, cid, limit=2, cursor=cursor)
    assert [m["seq"] for m in page] == [1] and cursor is None
    assert [m["body"] for m in messages.after_seq(a.user_id, cid, 3)] == ["hello 3", "hello 4"]


def test_client_id_retry_returns_the_first_message(app):
    coop, admin, _ = make_coop()
    cid = chat_of(coop)
    first, created = messages.post(admin.user_id, cid, "once", client_id="abc-1")
    again, created_again = messages.post(admin.user_id, cid, "once (retry)", client_id="abc-1")
    assert created and not created_again
    assert again["id"] == first["id"] and again["body"] == "once"
    assert db.session.scalar(select(Conversation.last_seq).where(Conversation.id == cid)) == 1


def test_non_member_cannot_read_or_post(app):
    coop, admin, _ = make_coop()
    stranger = make_user()
    cid = chat_of(coop)
    with pytest.raises(NotAMember):
        messages.post(stranger.user_id, cid, "let me in")
    with pytest.raises(NotAMember):
        messages.history(stranger.user_id, cid)
    with pytest.raises(NotAMember):
        messages.after_seq(stranger.user_id, cid, 0)


def test_removed_member_can_no_longer_post(app):
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    coops.remove_member(admin, coop_id=coop.id, user_id=a.user_id)
    with pytest.raises(NotAMember):
        messages.post(a.user_id, cid, "still here?")


def test_body_rules(app):
    coop, admin, _ = make_coop()
    cid = chat_of(coop)
    for bad in ("", "   ", "x" * 2001, None, 5):
        with pytest.raises(ValidationError):
            messages.post(admin.user_id, cid, bad)
    data, _ = messages.post(admin.user_id, cid, "x" * 2000)
    assert len(data["body"]) == 2000


def test_edit_delete_tombstone_and_moderator_delete(app):
    coop, admin, (a, b) = make_coop(members=2)
    cid = chat_of(coop)
    data, _ = messages.post(a.user_id, cid, "typo")
    with pytest.raises(Forbidden):
        messages.edit(b.user_id, data["id"], "not mine")
    edited = messages.edit(a.user_id, data["id"], "fixed")
    assert edited["body"] == "fixed" and edited["edited_at"]
    with pytest.raises(Forbidden):
        messages.delete(b.user_id, data["id"])  # a plain member, not the author
    messages.react(b.user_id, data["id"], "👍", on=True)
    gone = messages.delete(admin.user_id, data["id"])  # the coop's admin moderates
    assert gone["body"] is None and gone["deleted_at"] and gone["reactions"] == []
    second, _ = messages.post(a.user_id, cid, "after")
    assert second["seq"] == 2  # the tombstone keeps seq 1
    assert [m["seq"] for m in messages.history(a.user_id, cid)[0]] == [2, 1]


def test_reactions_are_a_fixed_set_and_idempotent(app):
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    data, _ = messages.post(a.user_id, cid, "nice block")
    assert messages.react(admin.user_id, data["id"], "👍", on=True) == [{"emoji": "👍", "count": 1, "me": True}]
    assert messages.react(admin.user_id, data["id"], "👍", on=True) == [{"emoji": "👍", "count": 1, "me": True}]
    assert messages.react(a.user_id, data["id"], "👍", on=True) == [{"emoji": "👍", "count": 2, "me": True}]
    assert messages.react(a.user_id, data["id"], "👍", on=False) == [{"emoji": "👍", "count": 1, "me": False}]
    with pytest.raises(ValidationError):
        messages.react(a.user_id, data["id"], "🍕", on=True)


def test_read_never_moves_backwards_and_counts_unread(app):
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    for i in range(4):
        messages.post(admin.user_id, cid, f"m{i}")
    assert messages.get_conversation(a.user_id, cid)["unread_count"] == 4
    assert messages.mark_read(a.user_id, cid, 3) == {"last_read_seq": 3, "unread_count": 1}
    assert messages.mark_read(a.user_id, cid, 1) == {"last_read_seq": 3, "unread_count": 1}
    assert messages.mark_read(a.user_id, cid, 99) == {"last_read_seq": 4, "unread_count": 0}
    convs, _ = messages.list_conversations(a.user_id)
    assert [c["id"] for c in convs] == [cid] and convs[0]["last_message"]["body"] == "m3"
    assert convs[0]["title"] == coop.name and convs[0]["kind"] == "coop"


def test_mentions_notify_members_and_absent_members_get_one_unread_notice(app):
    coop, admin, (a, b) = make_coop(members=2)
    cid = chat_of(coop)
    data, _ = messages.post(admin.user_id, cid, f"hey @{a.user_id} and @nobody_here")
    assert data["mentions"] == [a.user_id]
    messages.post(admin.user_id, cid, "second")
    messages.post(admin.user_id, cid, "third")

    def kinds(user):
        return [n.subtype for n in db.session.scalars(
            select(Notification).where(Notification.user_id == user.user_id,
                                       Notification.subtype.in_(("mention", "chat_unread"))))]

    assert kinds(a) == ["mention"]
    assert kinds(b) == ["chat_unread"]  # one, not three
    messages.mark_read(b.user_id, cid, 3)
    messages.post(admin.user_id, cid, "fourth")
    assert kinds(b) == ["chat_unread", "chat_unread"]  # read, then one more


def test_mention_respects_the_preference(app, client):
    from webapp.services import accounts, preferences

    coop, admin, (a,) = make_coop(members=1)
    accounts.update_settings(a, preferences.SettingsPatch.model_validate({"notifications": {"chatMentions": False}}))
    messages.post(admin.user_id, chat_of(coop), f"@{a.user_id} ping")
    assert db.session.scalar(select(Notification).where(Notification.subtype == "mention")) is None


def online(*user_ids: str) -> None:
    """Each of ``user_ids`` has a socket open (presence), as a tab holds one."""
    for user_id in user_ids:
        presence.socket_opened(user_id, f"tab-of-{user_id}")


def test_a_post_with_nobody_to_notify_sends_no_begin_or_commit(app, redis, tmp_path):
    """On PostgreSQL a coop post that writes nothing but the message (every
    other member has a socket open, nobody is mentioned) is two round trips
    on the wire, the checks and the one statement, both in autocommit; a
    mention or an absent member opens a transaction, and its notification
    commits with the message. Seen in libpq's trace of what is sent."""
    coop, admin, (a, b) = make_coop(members=2)
    cid = chat_of(coop)
    ids = [admin.user_id, a.user_id, b.user_id]
    db.session.commit()
    db.session.remove()
    online(*ids)
    with wire_trace(tmp_path / "quiet") as quiet:
        first, created = messages.post(ids[1], cid, "gm", client_id="q-1")
    assert created and first["seq"] == 1
    assert [m for m in quiet if m.startswith("Query")] == []  # no BEGIN, no COMMIT
    # Two statements, each its own round trip (a Sync more when psycopg
    # prepares one, after its fifth run on a pooled connection).
    assert quiet.count("Execute") == 2
    with wire_trace(tmp_path / "retry") as retry:
        assert messages.post(ids[1], cid, "gm", client_id="q-1") == (first, False)
    assert [m for m in retry if m.startswith("Query")] == []

    with wire_trace(tmp_path / "mention") as mention:
        second, _ = messages.post(ids[1], cid, f"@{ids[0]} gm")
    assert [m for m in mention if m.startswith("Query")] == ["Query BEGIN", "Query COMMIT"]
    assert second["seq"] == 2
    assert db.session.scalar(select(Notification.data).where(Notification.user_id == ids[0],
                                                             Notification.subtype == "mention")) \
        == {"conversation_id": cid, "message_id": second["id"], "seq": 2}

    presence.socket_closed(ids[2], f"tab-of-{ids[2]}")
    with wire_trace(tmp_path / "absent") as absent:
        third, _ = messages.post(ids[1], cid, "anyone?")
    assert [m for m in absent if m.startswith("Query")] == ["Query BEGIN", "Query COMMIT"]
    assert db.session.scalars(select(Notification.user_id).where(Notification.subtype == "chat_unread")).all() \
        == [ids[2]]
    assert db.session.execute(select(Message.seq, Message.body).where(Message.conversation_id == cid)
                              .order_by(Message.seq)).all() == [(1, "gm"), (2, f"@{ids[0]} gm"), (3, "anyone?")]
    assert db.session.scalar(select(ConversationMember.last_read_seq).where(
        ConversationMember.conversation_id == cid, ConversationMember.user_id == ids[1])) == 3


@pytest.mark.slow
@pytest.mark.many_connections
@pytest.mark.parametrize("sockets", ["none open", "all open"])
def test_twenty_members_posting_concurrently_get_gap_free_seqs(app, redis, sockets):
    """Twenty writers, five posts each, and each post sent twice at once
    with its client_id (a retry racing the first): one message per
    client_id, seqs 1..100 without a gap. "all open": the posts write the
    message alone, in autocommit; "none open": each also notifies."""
    coop, admin, members = make_coop(members=19)
    cid = chat_of(coop)
    users = [admin.user_id, *[m.user_id for m in members]]
    if sockets == "all open":
        online(*users)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2 * len(users))

    def write(user_id: str) -> None:
        with app.app_context():
            try:
                barrier.wait()
                for i in range(5):
                    messages.post(user_id, cid, f"{user_id} {i}", client_id=f"{user_id}-{i}")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=write, args=(u,)) for u in users * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = db.session.execute(select(Message.seq, Message.sender_id, Message.body)
                              .where(Message.conversation_id == cid).order_by(Message.seq)).all()
    assert [r.seq for r in rows] == list(range(1, 101))
    for user_id in users:  # each writer's own messages in its order
        assert [r.body for r in rows if r.sender_id == user_id] == [f"{user_id} {i}" for i in range(5)]
    assert db.session.scalar(select(Conversation.last_seq).where(Conversation.id == cid)) == 100
    assert db.session.scalar(select(ConversationMember.last_read_seq).where(
        ConversationMember.conversation_id == cid, ConversationMember.user_id == users[0])) >= 5


# ---- the JSON routes ---------------------------------------------------------------


def test_api_post_history_edit_delete_react_read(client, app):
    from urllib.parse import quote

    from .builders import bearer

    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    found = client.get(f"/api/coops/{coop.id}/conversation", headers=bearer(a)).get_json()
    assert found["id"] == cid and found["kind"] == "coop" and found["title"] == coop.name
    assert {m["user_id"]: m["role"] for m in found["members"]} == {admin.user_id: "admin", a.user_id: "member"}

    resp = client.post(f"/api/conversations/{cid}/messages", headers=bearer(a),
                       json={"body": "line one\n**bold**", "client_id": "c-1"})
    assert resp.status_code == 201
    first = resp.get_json()
    assert first["seq"] == 1 and first["sender"] == {"user_id": a.user_id, "display_name": a.display_name}
    again = client.post(f"/api/conversations/{cid}/messages", headers=bearer(a),
                        json={"body": "different", "client_id": "c-1"})
    assert again.status_code == 200 and again.get_json()["id"] == first["id"]

    resp = client.post(f"/api/conversations/{cid}/messages", headers=bearer(admin),
                       json={"body": "reply", "reply_to": first["id"]})
    assert resp.status_code == 201 and resp.get_json()["reply_to"] == first["id"]

    page = client.get(f"/api/conversations/{cid}/messages?limit=1", headers=bearer(a)).get_json()
    assert [m["seq"] for m in page["messages"]] == [2] and page["next_cursor"] == "2"
    page = client.get(f"/api/conversations/{cid}/messages?limit=1&cursor=2", headers=bearer(a)).get_json()
    assert [m["seq"] for m in page["messages"]] == [1]
    caught = client.get(f"/api/conversations/{cid}/messages?after_seq=0", headers=bearer(a)).get_json()
    assert [m["seq"] for m in caught["messages"]] == [1, 2]

    resp = client.patch(f"/api/messages/{first['id']}", headers=bearer(a), json={"body": "edited"})
    assert resp.status_code == 200 and resp.get_json()["edited_at"]
    assert client.patch(f"/api/messages/{first['id']}", headers=bearer(admin), json={"body": "x"}).status_code == 403

    resp = client.put(f"/api/messages/{first['id']}/reactions/{quote('🎉')}", headers=bearer(admin))
    assert resp.status_code == 200 and resp.get_json() == {"reactions": [{"emoji": "🎉", "count": 1, "me": True}]}
    assert client.put(f"/api/messages/{first['id']}/reactions/pizza", headers=bearer(admin)).status_code == 400
    resp = client.delete(f"/api/messages/{first['id']}/reactions/{quote('🎉')}", headers=bearer(admin))
    assert resp.get_json() == {"reactions": []}

    resp = client.post(f"/api/conversations/{cid}/read", headers=bearer(a), json={"seq": 2})
    assert resp.get_json() == {"last_read_seq": 2, "unread_count": 0}

    resp = client.delete(f"/api/messages/{first['id']}", headers=bearer(a))
    assert resp.status_code == 200 and resp.get_json() == {"status": "deleted"}
    tomb = client.get(f"/api/conversations/{cid}/messages?after_seq=0", headers=bearer(a)).get_json()["messages"][0]
    assert tomb["body"] is None and tomb["deleted_at"]

    listed = client.get("/api/conversations", headers=bearer(a)).get_json()
    assert [c["id"] for c in listed["conversations"]] == [cid] and listed["next_cursor"] is None
    assert listed["conversations"][0]["last_message"]["seq"] == 2


def test_api_non_member_is_403_and_unknown_is_404(client, app):
    from .builders import bearer

    coop, admin, _ = make_coop()
    cid = chat_of(coop)
    stranger = make_user()
    posted = client.post(f"/api/conversations/{cid}/messages", headers=bearer(stranger), json={"body": "hi"})
    assert posted.status_code == 403 and posted.get_json()["error"]["code"] == "not_a_member"
    read = client.get(f"/api/conversations/{cid}/messages", headers=bearer(stranger))
    assert read.status_code == 403 and read.get_json()["error"]["code"] == "not_a_member"
    assert client.get(f"/api/conversations/{cid}", headers=bearer(stranger)).status_code == 403
    data, _ = messages.post(admin.user_id, cid, "members only")
    assert client.put(f"/api/messages/{data['id']}/reactions/%F0%9F%91%8D", headers=bearer(stranger)).status_code == 403
    assert client.delete(f"/api/messages/{data['id']}", headers=bearer(stranger)).status_code == 403
    assert client.get("/api/conversations/999999/messages", headers=bearer(admin)).status_code == 404
    assert client.patch("/api/messages/999999", headers=bearer(admin), json={"body": "x"}).status_code == 404
    too_long = client.post(f"/api/conversations/{cid}/messages", headers=bearer(admin), json={"body": "x" * 2001})
    assert too_long.status_code == 400 and too_long.get_json()["error"]["code"] == "validation_error"
    assert client.post(f"/api/conversations/{cid}/messages", headers=bearer(admin), json={}).status_code == 400
    assert client.get(f"/api/conversations/{cid}/messages", headers=None).status_code == 401


# ---- the chat page -----------------------------------------------------------------

XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>[x](javascript:alert(3))'


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every element a browser would build from ``html`` (tag, attributes)."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str | None]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect().feed(html)
    return found


def assert_inert(html: str) -> None:
    """No script element but the page's own files, no event handler
    attribute, no javascript: link, no image."""
    for tag, attrs in tags_of(html):
        assert not (tag == "script" and not (attrs.get("src") or "").startswith("/static/")), (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "javascript:" not in (attrs.get("href") or ""), (tag, attrs)
        assert tag != "img", (tag, attrs)


def test_chat_page_shows_history_members_and_escapes_everything(client, app, login_as):
    coop, admin, (a,) = make_coop(members=1, name="<script>alert('coop')</script>")
    a.display_name = '<img src=x onerror=alert("name")>'
    db.session.commit()
    cid = chat_of(coop)
    messages.post(a.user_id, cid, XSS + " **bold** `code`")
    messages.post(a.user_id, cid, "second")
    login_as(admin)
    html = client.get("/coop/chat").get_data(as_text=True)
    assert_inert(html)
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "&lt;script&gt;alert(&#39;coop&#39;)&lt;/script&gt;" in html
    assert 'id="unread-divider"' in html  # two unread messages from a
    assert html.index("New messages") < html.index("second")
    assert 'class="presence presence-offline"' in html
    assert "Members online now" in html and 'role="log" aria-live="off"' in html
    # New messages are read out in a region of their own (chat.js), not by re-reading the log.
    assert '<p id="chat-announcer" class="visually-hidden" aria-live="polite"></p>' in html
    # The pushed fragment goes through the same template.
    from flask import render_template

    data = messages.history(admin.user_id, cid)[0][-1]
    with app.test_request_context():
        fragment = render_template("chat/_push.html", kind="message", m=data, me=admin.user_id)
    assert_inert(fragment)
    assert "&lt;img src=x onerror" in fragment  # the name, as text
    assert 'hx-swap-oob="beforeend"' in fragment


def test_chat_page_needs_a_coop_and_older_pages_load(client, app, login_as):
    loner = make_user()
    login_as(loner)
    assert client.get("/coop/chat").status_code == 302
    coop, admin, _ = make_coop()
    cid = chat_of(coop)
    for i in range(55):
        messages.post(admin.user_id, cid, f"n{i}")
    client.get("/logout")
    login_as(admin)
    html = client.get("/coop/chat").get_data(as_text=True)
    assert 'id="chat-older"' in html and "n54" in html and ">n4<" not in html
    older = client.get("/coop/chat/older?cursor=6").get_data(as_text=True)
    assert "n4" in older and "This is the start of the conversation." in older


def test_chat_page_edits_inline_and_screens_the_edit_like_a_post(client, app, login_as):
    """The inline edit: Edit answers the form (labelled, the text in it,
    the keys explained); Save goes through messages.edit, so a blocked
    phrase comes back in the form with the error and the text kept, and a
    flagged one is saved and reported; Cancel answers the message."""
    from webapp.models import Report
    from webapp.services import coop_moderation

    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    coop_moderation.update_settings(admin, coop_id=coop.id, keyword_filters=[
        {"phrase": "rug pull", "action": "block"}, {"phrase": "scam", "action": "flag"}])
    mine, _ = messages.post(a.user_id, cid, "gm <all>")
    theirs, _ = messages.post(admin.user_id, cid, "gm")
    headers = login_as(a, csrf_from="/coop/chat")
    url = f"/coop/chat/messages/{mine['id']}/edit"

    form = client.get(url, headers=headers)
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and f'id="msg-{mine["id"]}"' in html and 'class="msg mine editing"' in html
    assert f'<label for="msg-edit-{mine["id"]}"' in html and "gm &lt;all&gt;</textarea>" in html
    assert "Enter saves, Shift+Enter for a new line, Escape cancels." in html and "autofocus" in html
    assert client.get(f"/coop/chat/messages/{theirs['id']}/edit", headers=headers).status_code == 403
    assert client.get("/coop/chat/messages/999999/edit", headers=headers).status_code == 404

    blocked = client.post(url, data={"body": "a rug pull <b>x</b>"}, headers=headers)
    html = blocked.get_data(as_text=True)
    assert blocked.status_code == 400 and 'role="alert"' in html and 'aria-invalid="true"' in html
    assert "does not allow" in html and "a rug pull &lt;b&gt;x&lt;/b&gt;</textarea>" in html
    db.session.expire_all()
    assert db.session.get(Message, mine["id"]).body == "gm <all>"

    saved = client.post(url, data={"body": "scam\nalert"}, headers=headers)
    html = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "editing" not in html and "(edited)" in html and "scam" in html
    assert 'data-action="edit"' in html and "autofocus" in html  # the focus goes back to Edit
    db.session.expire_all()
    assert db.session.get(Message, mine["id"]).body == "scam\nalert"
    report = db.session.scalar(select(Report).where(Report.target_id == str(mine["id"])))
    assert (report.reason, report.status, report.details) == ("flagged", "open", "Matched after an edit: scam")

    cancel = client.get(f"/coop/chat/messages/{mine['id']}", headers=headers)
    assert cancel.status_code == 200 and "editing" not in cancel.get_data(as_text=True)
    # Without htmx the form posts and comes back to the chat.
    plain = client.post(url, data={"body": "gm again", "csrf_token": headers["X-CSRFToken"]})
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/coop/chat")
    db.session.expire_all()
    assert db.session.get(Message, mine["id"]).body == "gm again"


# ---- moderation through the messaging core, presence privacy ----------------------


def test_a_member_reports_a_message_from_the_chat_page(client, app, login_as):
    """Report on someone else's message: the form is on the page (not on
    one's own messages), a sent report lands in the coop's triage list, a
    second one says the first stands (200), a stranger's is 404,
    and without htmx the outcome is flashed back on the page."""
    from webapp.models import Report

    coop, admin, (a, b) = make_coop(members=2)
    cid = chat_of(coop)
    theirs, _ = messages.post(admin.user_id, cid, "buy my token")
    mine, _ = messages.post(a.user_id, cid, "no thanks")
    headers = login_as(a, csrf_from="/coop/chat")
    html = client.get("/coop/chat").get_data(as_text=True)
    assert f'action="/chat/messages/{theirs["id"]}/report"' in html
    assert f'action="/chat/messages/{mine["id"]}/report"' not in html

    url = f"/chat/messages/{theirs['id']}/report"
    sent = client.post(url, data={"reason": "spam", "details": "shilling <b>"}, headers=headers)
    assert sent.status_code == 201
    assert sent.get_data(as_text=True).strip().endswith(
        'role="status" tabindex="-1" autofocus>Reported. The moderators will look at it.</p>')
    db.session.expire_all()
    row = db.session.scalars(select(Report).where(Report.target_id == str(theirs["id"]))).one()
    assert (row.reporter_user_id, row.reason, row.details, row.cooperative_id, row.target_user_id) == \
        (a.user_id, "spam", "shilling <b>", coop.id, admin.user_id)
    # Again: the earlier report stands, said without an error (nor a 4xx in the console).
    again = client.post(url, data={"reason": "abuse"}, headers=headers)
    assert again.status_code == 200 and "already reported" in again.get_data(as_text=True)
    assert 'class="msg-report-status"' in again.get_data(as_text=True)

    # A message of a chat the reporter is not in: the same 404 as none at all.
    other, other_admin, _ = make_coop(members=0)
    elsewhere, _ = messages.post(other_admin.user_id, chat_of(other), "private")
    assert client.post(f"/chat/messages/{elsewhere['id']}/report", data={"reason": "spam"},
                       headers=headers).status_code == 404

    # Without htmx: back to the page it came from, the outcome flashed.
    headers = login_as(b, csrf_from="/coop/chat")
    plain = client.post(url, data={"reason": "other"}, headers={"X-CSRFToken": headers["X-CSRFToken"],
                                                                 "Referer": "http://localhost/coop/chat"})
    assert plain.status_code == 302 and plain.headers["Location"] == "/coop/chat"
    assert "Reported. The moderators will look at it." in client.get("/coop/chat").get_data(as_text=True)


def test_moderation_refusals_reach_the_poster_and_a_ban_ends_the_chat(client, app):
    from webapp.services import coop_moderation

    from .builders import bearer

    coop, admin, (a, b) = make_coop(members=2)
    cid = chat_of(coop)
    coop_moderation.mute(admin, coop_id=coop.id, user_id=a.user_id, minutes=5)
    muted = client.post(f"/api/conversations/{cid}/messages", headers=bearer(a), json={"body": "hello?"})
    assert muted.status_code == 403 and muted.get_json()["error"]["code"] == "muted"
    assert client.get(f"/api/conversations/{cid}", headers=bearer(a)).get_json()["muted_until"]
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=60,
                                    keyword_filters=[{"phrase": "shitcoin", "action": "block"},
                                                     {"phrase": "pump", "action": "flag"}])
    blocked = client.post(f"/api/conversations/{cid}/messages", headers=bearer(b), json={"body": "a SHITCOIN!"})
    assert blocked.status_code == 400 and blocked.get_json()["error"]["code"] == "message_blocked"
    flagged = client.post(f"/api/conversations/{cid}/messages", headers=bearer(b), json={"body": "pump it"})
    assert flagged.status_code == 201
    slow = client.post(f"/api/conversations/{cid}/messages", headers=bearer(b), json={"body": "again"})
    assert slow.status_code == 429 and slow.get_json()["error"]["code"] == "slow_mode"
    assert int(slow.headers["Retry-After"]) >= 1
    coop_moderation.ban(admin, coop_id=coop.id, user_id=b.user_id)
    assert b.user_id not in current_members(cid)
    assert client.get(f"/api/conversations/{cid}/messages", headers=bearer(b)).status_code == 403
    assert [m["seq"] for m in messages.history(admin.user_id, cid)[0]] == [1]  # refused posts took no number


def test_presence_is_shown_to_coop_mates_only_and_only_with_show_presence(app, redis):
    from webapp.services import accounts, preferences, presence

    coop, admin, (a,) = make_coop(members=1)
    stranger = make_user()
    presence.socket_opened(a.user_id, "sock-1")
    assert presence.visible(admin.user_id, [a.user_id])[a.user_id]["status"] == "online"
    assert presence.visible(stranger.user_id, [a.user_id])[a.user_id] == {"status": "offline", "last_active_at": None}
    presence.set_status(a.user_id, "sock-1", "dnd")
    assert presence.visible(admin.user_id, [a.user_id])[a.user_id]["status"] == "dnd"
    accounts.update_settings(a, preferences.SettingsPatch.model_validate({"privacy": {"showPresence": False}}))
    assert presence.visible(admin.user_id, [a.user_id])[a.user_id]["status"] == "offline"
    presence.socket_closed(a.user_id, "sock-1")
    assert presence.raw_status([a.user_id])[a.user_id]["status"] == "offline"


def test_away_is_a_sockets_word_and_ends_with_the_socket(app, redis):
    """A hidden tab's "away" used to be the miner's for 30 days: closing
    that tab and opening the site again still showed them away. Now it is
    the socket's: another socket in view keeps them online, and it ends
    when its socket closes. Do not disturb is the miner's, until "online"."""
    from webapp.extensions import get_redis, redis_key

    coop, admin, (a,) = make_coop(members=1)
    user = a.user_id

    def status() -> str:
        return presence.raw_status([user])[user]["status"]

    presence.socket_opened(user, "tab-1")
    presence.socket_opened(user, "tab-2")
    assert presence.set_status(user, "tab-1", "away") == "online"  # tab-2 is in view
    assert presence.set_status(user, "tab-2", "away") == "away"
    presence.socket_alive(user, "tab-2")  # the periodic refresh keeps it away
    assert status() == "away"
    assert presence.set_status(user, "tab-2", "online") == "online"
    presence.set_status(user, "tab-2", "away")
    presence.socket_closed(user, "tab-2")
    assert status() == "away"  # tab-1 is still open and away
    presence.socket_closed(user, "tab-1")
    assert status() == "offline"
    presence.socket_opened(user, "tab-3")
    assert status() == "online"  # the away went with its sockets

    assert presence.set_status(user, "tab-3", "dnd") == "dnd"
    presence.socket_opened(user, "tab-4")
    assert presence.set_status(user, "tab-4", "away") == "dnd"
    assert status() == "dnd"
    assert presence.set_status(user, "tab-4", "online") == "online"

    # A choice of "away" stored before away was per socket means nothing.
    get_redis().hset(redis_key("presence", "state", user), "choice", "away")
    assert status() == "online"
    with pytest.raises(ValidationError):
        presence.set_status(user, "tab-3", "busy")


def test_friends_see_presence_too(app, redis):
    from webapp.extensions import db as _db
    from webapp.models import Friendship
    from webapp.services import presence

    a, b, c = make_user(), make_user(), make_user()
    _db.session.add_all([Friendship(user_id=a.user_id, friend_id=b.user_id),
                         Friendship(user_id=b.user_id, friend_id=a.user_id)])
    _db.session.commit()
    presence.socket_opened(a.user_id, "sock-f")
    assert presence.visible(b.user_id, [a.user_id])[a.user_id]["status"] == "online"
    assert presence.visible(c.user_id, [a.user_id])[a.user_id]["status"] == "offline"


def test_the_chat_page_socket_opens_with_every_members_presence(app, live):
    """The page renders the dots before its socket listens: a member whose
    socket opened in between was announced to nobody on this page, and the
    viewer's own dot was rendered offline. Once it counts as open, the
    page's socket sends every member's dot as of then."""
    from .builders import token_of
    from .wshelpers import Client

    coop, admin, (mate, away) = make_coop(members=2)
    cid = chat_of(coop)
    mate_socket = Client(live.ws_url(f"token={token_of(mate)}"))
    mate_socket.recv_until(lambda m: m["type"] == "unread_count")
    page = Client(live.ws_url(f"format=html&chat={cid}&token={token_of(admin)}"))
    try:
        page.recv_text()  # the unread count, sent once subscribed
        snapshot = page.recv_text()
        assert f'id="presence-{admin.user_id}" class="presence presence-online" hx-swap-oob="true"' in snapshot
        assert f'id="presence-{mate.user_id}" class="presence presence-online" hx-swap-oob="true"' in snapshot
        assert f'id="presence-{away.user_id}" class="presence presence-offline" hx-swap-oob="true"' in snapshot
    finally:
        page.close()
        mate_socket.close()


def test_a_coop_id_beyond_the_column_is_404_not_a_database_error(client, make_user, auth_headers):
    """Found by the API fuzz: an id past the 32-bit column answered 500."""
    answer = client.get("/api/coops/9223372036854775806/conversation", headers=auth_headers(make_user()))
    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"


def test_a_form_line_break_counts_one_character(app):
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    # 1,000 lines as a browser form sends them (CRLF): 1,999 characters once normalised.
    body = "\r\n".join(["x"] * 1000)
    data, _ = messages.post(a.user_id, cid, body)
    assert data["body"] == "\n".join(["x"] * 1000)
    with pytest.raises(ValidationError):
        messages.post(a.user_id, cid, body + "\r\nxx")


def test_a_post_is_one_publish_addressed_to_the_members_read_under_the_lock(app, redis):
    """One PUBLISH per message, whatever the number of members, on the
    fan-out channel that every web process's hub routes (realtime.py): its
    ``to`` is the member list of the post's commit, without a removed member;
    nothing goes to a user's own channel."""
    import json

    from webapp import realtime

    coop, admin, members = make_coop(members=5)
    cid = chat_of(coop)
    removed = members[0]
    coops.remove_member(admin, coop_id=coop.id, user_id=removed.user_id)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"{app.config['REDIS_NAMESPACE']}:*")
    assert pubsub.get_message(timeout=1) is None  # the subscribe confirmation

    data, created = messages.post(members[1].user_id, cid, "gm coop", client_id="one-publish")
    assert created
    published = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        published.append((msg["channel"], json.loads(msg["data"])))
    chat = [(channel, m) for channel, m in published if m.get("m", {}).get("type") == "message"
            or m.get("type") == "message"]
    assert [channel for channel, _ in chat] == [realtime.fanout_channel()]
    (_, sent), = chat
    assert sorted(sent["to"]) == sorted([admin.user_id, *(m.user_id for m in members[1:])])
    assert removed.user_id not in sent["to"]
    assert sent["m"] == {"type": "message", "data": data}
    pubsub.close()


def test_last_seqs_are_those_of_the_current_memberships(app):
    """A socket's starting point (``ws_chat.chat_snapshot``)."""
    coop, admin, (a,) = make_coop(members=1)
    cid = chat_of(coop)
    assert conversations.last_seqs(a.user_id) == {cid: 0}
    messages.post(admin.user_id, cid, "gm")
    assert conversations.last_seqs(a.user_id) == {cid: 1}
    coops.leave(a, coop_id=coop.id)
    assert conversations.last_seqs(a.user_id) == {}


@pytest.mark.parametrize("who", ["another member", "the sender"])
def test_a_removal_committed_between_a_posts_checks_and_its_number_is_seen(app, monkeypatch, who):
    """A post reads the members before it takes its number (on PostgreSQL
    numbering, insert and read position are then one statement, valid
    while the conversation's ``members_version`` has not moved): a removal
    committed in between bumps the version, so the post reads the members
    again under the lock. The removed member is not addressed; a removed
    sender is refused and the number goes back."""
    coop, admin, members = make_coop(members=3)
    cid = chat_of(coop)
    sender = members[0]
    removed = members[1] if who == "another member" else sender
    before = db.session.get(Conversation, cid, populate_existing=True).members_version

    def remove_in_another_transaction() -> None:
        with app.app_context():
            conversations.remove_member(cid, removed.user_id, reason=conversations.REMOVED)
            db.session.commit()
            db.session.remove()

    real = messages._online_before_lock

    def checks_then_removal(*args):
        worker = threading.Thread(target=remove_in_another_transaction)
        worker.start()
        worker.join(10)
        return real(*args)

    published: list[tuple[list[str], dict]] = []
    monkeypatch.setattr(messages, "_online_before_lock", checks_then_removal)
    monkeypatch.setattr(conversations, "publish_many", lambda ids, message: published.append((list(ids), message)))
    if who == "the sender":
        with pytest.raises(NotAMember):
            messages.post(sender.user_id, cid, "gm")
        assert db.session.get(Conversation, cid, populate_existing=True).last_seq == 0
        assert [m for _, m in published if m.get("type") == "message"] == []
        return
    data, created = messages.post(sender.user_id, cid, "gm")
    assert created and data["seq"] == 1
    assert db.session.get(Conversation, cid, populate_existing=True).members_version > before
    chat = [(ids, m) for ids, m in published if m.get("type") == "message"]
    assert len(chat) == 1
    assert sorted(chat[0][0]) == sorted([admin.user_id, sender.user_id, members[2].user_id])


def test_posts_number_and_read_on_sqlite_the_embedded_default(tmp_path):
    """The post statements (one per database: PostgreSQL folds the read
    position into the insert) on the embedded default's SQLite."""
    from flask_migrate import upgrade

    from webapp import create_app

    lite = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'chat.db'}",
                       "REDIS_URL": "", "SECRET_KEY": "x", "RATELIMIT_ENABLED": False,
                       "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    with lite.app_context():
        upgrade()
        coop, admin, (a,) = make_coop(members=1)
        cid = chat_of(coop)
        first, _ = messages.post(a.user_id, cid, "gm from sqlite", client_id="lite-1")
        second, _ = messages.post(admin.user_id, cid, "gm back")
        assert (first["seq"], second["seq"]) == (1, 2)
        assert messages.post(a.user_id, cid, "gm from sqlite", client_id="lite-1") == (first, False)
        reads = dict(db.session.execute(select(ConversationMember.user_id, ConversationMember.last_read_seq)
                                        .where(ConversationMember.conversation_id == cid)).all())
        assert reads == {a.user_id: 1, admin.user_id: 2}
        db.session.remove()
