"""The chat half of a ``/ws`` socket (API.md "Socket additions"), mixed
into ``ws.SocketSession``: live messages, edits, typing, reads, presence and
conversation changes from Redis; ``send``, ``typing``, ``read``,
``presence`` and ``resume`` (with ``conversations``) from the client.

Order and completeness per conversation, as for notifications: the socket
remembers the highest ``seq`` it sent of each conversation it follows (from
a ``resume``, or from the first message it forwards) and sends strictly in
seq order: a push at or below it is dropped (a duplicate), a push that skips
numbers first reads the missing ones from the database (pushes from two
processes can overtake each other; pub/sub may drop one). A ``resume``
reads everything after the client's seq with the channel already
subscribed, so nothing committed meanwhile is missed.

A member removed from a conversation (``conversation`` with ``event``
``removed``, ``left`` or ``archived``) is dropped from it on this socket; the
message service never publishes to them again after the removal commits,
and reading a gap would be refused (403), so nothing more of it is sent.

HTML mode (the chat page, ``?chat=<conversation id>``) gets fragments of
that conversation only (``templates/chat/_push.html``); other pages get no
chat frames.
"""
from __future__ import annotations

import time
from typing import Any

from flask import current_app, render_template
from sqlalchemy.exc import TimeoutError as PoolTimeout

from . import post_lane
from .extensions import db
from .services import conversations, inputs, messages, presence, relations
from .services.conversations import ARCHIVED, LEFT, REMOVED
from .services.errors import DomainError, NotAMember, Unavailable, ValidationError
from .vocabulary import ConversationKind

MAX_RESUME_CONVERSATIONS = 100
FILL_PAGE = 100
# Seconds a message that skips numbers waits for the missing pushes before
# the socket reads them from the database: pushes of one conversation
# published by two processes overtake each other within milliseconds, and
# a read per member socket for each would cost more than the post did.
GAP_WAIT = 0.25


class ChatSocket:
    """Chat state and handlers of one socket (see the module docstring)."""

    user_id: str
    html: bool
    page_chat: int | None
    page_messages: bool  # the /messages page (HTML mode), set by ws.SocketSession
    ws: Any  # the flask-sock socket, set by ws.SocketSession

    def init_chat(self, page_chat: int | None) -> None:
        self.page_chat = page_chat
        self.chat_seq: dict[int, int] = {}  # conversation -> highest seq sent
        self.chat_closed: set[int] = set()  # conversations this user was removed from
        # Messages after a gap, waiting for the missing ones: conversation ->
        # seq -> (data, push); ``chat_held_until``: when to read the gaps
        # from the database instead (monotonic seconds; 0: nothing held).
        self.chat_held: dict[int, dict[int, tuple[dict[str, Any], dict[str, Any] | None]]] = {}
        self.chat_held_until = 0.0
        self.presence_at = 0.0
        self.messages_announced: dict[int, int] = {}  # /messages page: conversation -> highest seq seen
        self.page_members: set[str] = set()  # of page_chat, read again on a miss (``_on_page``)
        # The chat page shows Delete on others' messages to the coop's moderators.
        self.chat_moderator = False
        if self.html and page_chat is not None:
            try:
                self.chat_moderator = messages.can_moderate(conversations.get(page_chat), self.user_id)
            except DomainError:
                pass
            finally:
                db.session.remove()

    def chat_snapshot(self) -> None:
        """With the channel subscribed: the newest seq of each conversation
        this socket follows, so that the first push of one is checked for a
        gap like any other (two processes' first pushes may arrive in the
        wrong order: the earlier one is then not taken for a duplicate). In
        the caller's transaction."""
        if self.html and self.page_chat is None:
            return
        seqs = conversations.last_seqs(self.user_id)
        if self.html:
            seqs = {cid: seq for cid, seq in seqs.items() if cid == self.page_chat}
        for cid, seq in seqs.items():
            self.chat_seq.setdefault(cid, seq)

    # ---- presence life ----

    def presence_open(self) -> None:
        self._presence(presence.socket_opened)

    def presence_snapshot(self) -> None:
        """The chat page (HTML mode), once this socket counts as open: every
        member's presence dot as the viewer may see it, their own included.
        Read with the channel already subscribed, so a change the page's
        render missed (a member whose socket opened while the page loaded,
        whose announcement went out before this socket listened) is not
        lost; later changes arrive as pushes."""
        if not self.html or self.page_chat is None:
            return
        try:
            self.page_members = set(conversations.member_ids(self.page_chat))
            seen = presence.visible(self.user_id, sorted(self.page_members))
        except Exception as exc:  # noqa: BLE001 - presence is best effort; the dots wait for the next change
            current_app.logger.warning("presence snapshot failed for %s: %r", self.user_id, exc)
            return
        finally:
            db.session.remove()
        self.ws.send(render_template("chat/_push.html", kind="presence_snapshot", presence=seen))

    def presence_close(self) -> None:
        self._presence(presence.socket_closed)

    def presence_tick(self) -> None:
        """Every ``presence.REFRESH_EVERY`` seconds: keep this socket counted
        (and let an idle user turn away)."""
        if time.monotonic() - self.presence_at >= presence.REFRESH_EVERY:
            self._presence(presence.socket_alive)

    def _presence(self, action) -> None:
        self.presence_at = time.monotonic()
        try:
            action(self.user_id, self.socket_id)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - presence is best effort; the socket stays
            current_app.logger.warning("presence update failed for %s: %r", self.user_id, exc)
        finally:
            db.session.remove()

    # ---- from Redis ----

    def on_chat_push(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.html and self.page_messages:
            self.messages_page_push(message)
        if kind == conversations.MESSAGE:
            self.on_chat_message(message["data"], message)
        elif kind == conversations.MESSAGE_UPDATED:
            data = message["data"]
            if self._follows(data["conversation_id"]):
                self.send_chat(message, "message_updated", m=self._as_seen(data))
        elif kind in (conversations.TYPING, conversations.READ):
            if self._follows(message["conversation_id"]):
                self.send_chat(message, kind, signal=message)
        elif kind == presence.PRESENCE:
            if self._on_page(message.get("user_id")):
                self.send_chat(message, "presence", signal=message)
        elif kind == conversations.CONVERSATION:
            self.on_conversation(message)

    def messages_page_push(self, message: dict[str, Any]) -> None:
        """HTML mode, the /messages page (``?messages=1``): a message (new or
        changed), the caller's own read (another tab) or a conversation
        change makes the page fetch its list again
        (friends/_messages_refresh.html; no DB work here). A new message
        from someone else is announced once: "New message from <name>"
        (never twice for one seq: a repeated push, or a later re-render)."""
        kind = message.get("type")
        announce = None
        if kind == conversations.MESSAGE:
            data = message["data"]
            sender = data.get("sender") or {}
            cid, seq = data["conversation_id"], data["seq"]
            if seq <= self.messages_announced.get(cid, 0):
                return  # a duplicate push: the page has it already
            self.messages_announced[cid] = seq
            if sender.get("user_id") != self.user_id:
                announce = f"New message from {sender.get('display_name') or 'a miner'}"
        elif kind == conversations.READ:
            if message.get("user_id") != self.user_id:
                return  # someone else's read changes nothing in this list
        elif kind not in (conversations.MESSAGE_UPDATED, conversations.CONVERSATION):
            return  # typing, presence: not shown in the list
        self.ws.send(render_template("friends/_messages_refresh.html", announce=announce))

    def _on_page(self, user_id: object) -> bool:
        """Whether the chat page shows ``user_id`` (a presence fragment for
        anyone else would be an out-of-band swap without a target: a friend
        outside the conversation, a coop-mate on a direct one). JSON sockets
        get every presence."""
        if not self.html:
            return True
        if self.page_chat is None or not isinstance(user_id, str):
            return False
        if user_id not in self.page_members:
            try:
                self.page_members = set(conversations.member_ids(self.page_chat))
            except Exception:  # noqa: BLE001 - a database hiccup drops one presence dot, never the socket
                return False
            finally:
                db.session.remove()
        return user_id in self.page_members

    def _follows(self, conversation_id: int) -> bool:
        if conversation_id in self.chat_closed:
            return False
        return not self.html or conversation_id == self.page_chat

    def on_chat_message(self, data: dict[str, Any], push: dict[str, Any] | None = None) -> None:
        """A live message: send it if it is the next seq of its conversation
        (``push``, the hub's message, as it came: its JSON is encoded once
        for every socket), drop a duplicate. One that skips numbers is held
        until the missing pushes arrive, or for ``GAP_WAIT`` seconds at most
        (``chat_held_due``): then the gap is read from the database."""
        cid, seq = data["conversation_id"], data["seq"]
        if not self._follows(cid):
            return
        last = self.chat_seq.get(cid)
        if last is not None:
            if seq <= last:
                return
            if seq > last + 1:
                self.chat_held.setdefault(cid, {})[seq] = (data, push)
                if not self.chat_held_until:
                    self.chat_held_until = time.monotonic() + GAP_WAIT
                return
        self._send_message(data, push)
        if cid in self.chat_held:
            self._release_held(cid)

    def _send_message(self, data: dict[str, Any], push: dict[str, Any] | None) -> None:
        self.chat_seq[data["conversation_id"]] = data["seq"]
        if push is None or push.keys() != {"type", "data"}:
            push = {"type": conversations.MESSAGE, "data": data}
        self.send_chat(push, "message", m=data)

    def _release_held(self, cid: int) -> None:
        """Send the held messages of ``cid`` that now follow in seq order."""
        held = self.chat_held.get(cid, {})
        while held and cid in self.chat_seq:
            last = self.chat_seq[cid]
            for seq in [s for s in held if s <= last]:  # sent meanwhile (a fill): duplicates
                del held[seq]
            item = held.pop(last + 1, None)
            if item is None:
                break
            self._send_message(*item)
        if not held:
            self._drop_held(cid)

    def _drop_held(self, cid: int) -> None:
        self.chat_held.pop(cid, None)
        if not self.chat_held:
            self.chat_held_until = 0.0

    def chat_held_due(self) -> float | None:
        """Seconds until the held messages' gaps are read from the database
        (0: now), or None when nothing is held."""
        if not self.chat_held_until:
            return None
        return max(0.0, self.chat_held_until - time.monotonic())

    def fill_held(self) -> None:
        """The wait is over: read every held gap from the database, in seq
        order up to the highest held message (which the read includes)."""
        held, self.chat_held, self.chat_held_until = self.chat_held, {}, 0.0
        for cid, messages_held in held.items():
            last = self.chat_seq.get(cid)
            if last is None or cid in self.chat_closed or not self._follows(cid):
                continue
            top = max(messages_held)
            if top > last:
                self.chat_fill(cid, last, top)

    def on_conversation(self, message: dict[str, Any]) -> None:
        cid = message["data"]["id"]
        if message.get("event") in (REMOVED, LEFT, ARCHIVED):
            self.chat_closed.add(cid)
            self.chat_seq.pop(cid, None)
            self._drop_held(cid)
        else:
            self.chat_closed.discard(cid)
        if not self.html or cid == self.page_chat:
            self.send_chat(message, "conversation", signal=message)

    def chat_fill(self, cid: int, after: int, up_to: int | None) -> None:
        """Send the messages of ``cid`` with ``after < seq <= up_to`` (no bound:
        up to the newest), in seq order, from the database. In a group, the
        messages of members this user blocked are skipped (counted as sent):
        ``messages.post`` does not push them to this user either."""
        try:
            skip = self._blocked_senders(cid)
            while True:
                try:
                    rows = messages.after_seq(self.user_id, cid, after, limit=FILL_PAGE, up_to=up_to)
                except NotAMember:
                    self.chat_closed.add(cid)
                    self.chat_seq.pop(cid, None)
                    return
                finally:
                    db.session.remove()  # hold no transaction while sending
                for data in rows:
                    self.chat_seq[cid] = data["seq"]
                    if skip and (data.get("sender") or {}).get("user_id") in skip:
                        continue
                    self.send_chat({"type": conversations.MESSAGE, "data": data}, "message", m=data)
                if len(rows) < FILL_PAGE:
                    self.chat_seq.setdefault(cid, after)
                    return
                after = rows[-1]["seq"]
        finally:
            db.session.remove()

    def _as_seen(self, data: dict[str, Any]) -> dict[str, Any]:
        """HTML mode: an update (a reaction, a tombstone) of a group message
        from a miner this user blocked stays collapsed on the page, as the
        history shows it (``message_history.mark_hidden``)."""
        if not self.html:
            return data
        try:
            hidden = (data.get("sender") or {}).get("user_id") in self._blocked_senders(data["conversation_id"])
        finally:
            db.session.remove()  # hold no DB connection while waiting
        return {**data, "hidden_for_viewer": True} if hidden else data

    def _blocked_senders(self, cid: int) -> set[str]:
        """Whom this user blocked, for a group conversation; else nobody."""
        try:
            if conversations.get(cid).kind != ConversationKind.GROUP:
                return set()
            return relations.blocked_ids(self.user_id)
        except DomainError:
            return set()

    # ---- from the client ----

    def on_chat_client(self, kind: str, message: dict[str, Any]) -> bool:
        """Handle a chat message type; False when ``kind`` is not one."""
        if kind == "send":
            self.client_send(message)
        elif kind == "typing":
            messages.typing(self.user_id, _conversation_id(message))
        elif kind == "read":
            messages.mark_read(self.user_id, _conversation_id(message), message.get("seq"))
        elif kind == "presence":
            presence.set_status(self.user_id, self.socket_id, message.get("status"))  # type: ignore[attr-defined]
        elif kind == "resume" and "conversations" in message:
            self.client_resume(message["conversations"])
        else:
            return False
        return True

    def client_send(self, message: dict[str, Any]) -> None:
        """``send``: the same as ``POST …/messages``; answered ``sent`` (with
        the message) or ``error`` (with the client_id) on this socket."""
        client_id = message.get("client_id")
        try:
            try:
                data, _ = post_lane.post(messages.PostRequest(
                    self.user_id, _conversation_id(message), message.get("body"),
                    reply_to=message.get("reply_to"), client_id=client_id))
            except PoolTimeout as busy:  # an overload: the sender may send it again, the socket stays
                raise Unavailable() from busy
        except DomainError as exc:
            db.session.rollback()
            error = exc.to_dict()["error"]
            if self.html:
                self.ws.send(render_template("chat/_push.html", kind="error", error=error))
            else:
                self.send_json({"type": "error", "client_id": client_id, "error": error})  # type: ignore[attr-defined]
            return
        if not self.html:
            self.send_json({"type": "sent", "client_id": client_id, "data": data})  # type: ignore[attr-defined]

    def client_resume(self, wanted: object) -> None:
        """``resume`` with ``{"<conversation id>": <last seq seen>}``: every
        message after each, in seq order; then live ones."""
        if not isinstance(wanted, dict) or len(wanted) > MAX_RESUME_CONVERSATIONS:
            raise ValidationError(
                f"conversations must be an object of at most {MAX_RESUME_CONVERSATIONS} ids and seqs.")
        for key, seq in wanted.items():
            if not inputs.is_ascii_int(key) or not isinstance(seq, int) or isinstance(seq, bool):
                raise ValidationError("conversations maps conversation ids to the last seq seen (whole numbers).")
            cid = conversations.check_id(int(key))
            if self.html and cid != self.page_chat:
                continue
            after = inputs.parse_int(seq, name="seq", maximum=conversations.MAX_MESSAGE_ID)
            self.chat_closed.discard(cid)
            self.chat_seq.pop(cid, None)
            self._drop_held(cid)  # the read below goes up to the newest
            self.chat_fill(cid, after, None)
            if cid in self.chat_closed:
                self.send_error("not_a_member", f"You are not a member of conversation {cid}.")  # type: ignore[attr-defined]

    # ---- sending ----

    def send_chat(self, payload: dict[str, Any], kind: str, **context: Any) -> None:
        """JSON: ``message`` as it is (a reaction's ``me`` is already the
        recipient's). HTML: the fragment of ``kind`` for the chat page."""
        if not self.html:
            self.send_json(payload)  # type: ignore[attr-defined]
            return
        if self.page_chat is None:
            return
        self.ws.send(render_template("chat/_push.html", kind=kind, me=self.user_id,
                                     can_moderate=self.chat_moderator, **context))


def _conversation_id(message: dict[str, Any]) -> int:
    value = message.get("conversation_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError("conversation_id must be a conversation id (a whole number).")
    return conversations.check_id(value)
