"""The ``/ws`` socket (API.md, WebSocket section).

Authentication happens in a ``before_request`` hook, because flask-sock
accepts the handshake before the view runs: a cookie-authenticated socket
whose ``Origin`` is not the app's own is refused there with a plain 403
(no upgrade). A socket with bad or missing credentials is accepted and then
closed with 4001, as API.md says.

The hook also drops the client's ``Sec-WebSocket-Extensions`` offer, so the
server does not negotiate permessage-deflate (unless WS_PERMESSAGE_DEFLATE):
simple-websocket would accept it with the largest window, ~200–250 KB per
socket (DESIGN.md), while our messages are a few hundred bytes.

A socket remembers the credential it was opened with (the page session or
the bearer token): a revocation published on the user's channel
(``realtime.REVOKED``: logout, log out everywhere, password change) that
covers it closes it with 4001, and the credential is checked again once the
channel is subscribed, so a revocation committed in between is not missed.

Each socket: attach to this process's hub (subscribe first), count against
the per-user limit, read the unread count and the user's seq watermark in
one snapshot, send the catch-up rows after the client's cursor up to that
watermark, then the count, release the DB session, then wait on one inbox
that the hub (Redis messages) and the socket's reader thread (client
messages, close) both wake.

Delivery follows ``seq``, the user's numbering in commit order
(services/sequences.py): the socket sends rows strictly in seq order and
never one at or below what it has sent. A live push may overtake an earlier
one (they are published by different processes after their commits), or be
lost (Redis pub/sub is at-most-once): a push that skips a number makes the
socket first read the missing rows from the database — once seq N is
committed, every lower one is. So a client that saw a row has seen every row
before it, and reconnecting with that row's id (or seq) skips nothing.

The unread count: exact at the snapshot, plus one per unread row sent above
the watermark. A count change published by a read, read-all or delete makes
the socket read a fresh snapshot (catching up to its watermark first), so
counts published out of order by different processes cannot leave it stale.
"""
from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, render_template, request
from flask_login import current_user
from simple_websocket import ConnectionClosed
from sqlalchemy.exc import TimeoutError as PoolTimeout
from wsproto import ConnectionState, WSConnection

from . import realtime
from .extensions import db, sock
from .models import NOTIFICATION_CATEGORIES
from .services import accounts, inputs, notifications, presence, sessions
from .services.errors import DomainError, Forbidden, Unauthorized, Unavailable, ValidationError
from .ws_chat import ChatSocket

bp = Blueprint("ws", __name__)

CLOSE_UNAUTHORIZED = 4001
CLOSE_REPLACED = 4002  # the user opened more sockets than WS_MAX_SOCKETS_PER_USER
CLOSE_RESTART = 1012  # this process lost Redis: reconnect with since
CLOSE_TRY_AGAIN = 1013
CLOSE_INTERNAL_ERROR = 1011
CATCH_UP_PAGE = 200  # rows per catch-up query
REFRESH_EVERY = presence.REFRESH_EVERY  # seconds: a waiting socket wakes to keep its presence


def init_app(app: Flask) -> None:
    """Register the socket route and its server options. This process's
    Redis listener starts with the first socket."""
    options = app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.setdefault("ping_interval", app.config["WS_PING_INTERVAL"])
    options.setdefault("max_message_size", app.config["WS_MAX_MESSAGE_SIZE"])
    options["event_class"] = realtime.SocketInbox
    options["thread_class"] = realtime.reader_thread
    app.register_blueprint(bp)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins() -> set[str]:
    """The app's own origin: PUBLIC_BASE_URL's, and the one the request was
    addressed to (scheme and Host header)."""
    return {_origin(current_app.config["PUBLIC_BASE_URL"]), _origin(request.host_url)}


def _int_arg(name: str) -> int | None:
    return inputs.optional_int(request.args.get(name), name=name, maximum=notifications.MAX_ID)


@bp.before_request
def authenticate_socket() -> None:
    """Decide who the socket belongs to before the handshake (see module doc).

    Sets ``g.ws_user_id`` (None → the view closes with 4001). Raises
    Forbidden (403, no upgrade) for a foreign or missing Origin on a
    cookie-authenticated socket, ValidationError (400) for bad parameters.
    """
    if not current_app.config["WS_PERMESSAGE_DEFLATE"]:
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    g.ws_user_id, g.ws_credential = None, None
    g.ws_format = request.args.get("format", "json")
    if g.ws_format not in ("json", "html"):
        raise ValidationError("format must be json or html.")
    g.ws_since = _int_arg("since")
    g.ws_since_seq = _int_arg("since_seq")
    token = request.args.get("token")
    if token:
        try:
            g.ws_user_id = accounts.verify_token(token).user_id
            g.ws_credential = Credential(token=token)
        except Unauthorized:
            pass
        return
    if g.get("auth_mode") == "bearer":  # Authorization header, for non-browser clients
        g.ws_user_id = g.auth_token.user_id
        g.ws_credential = Credential(token=request.headers["Authorization"].partition(" ")[2].strip())
        return
    origin = request.headers.get("Origin")
    if origin is not None and _origin(origin) not in allowed_origins():
        raise Forbidden("This socket only accepts pages of this site.")
    if current_user.is_authenticated:
        if origin is None:
            raise Forbidden("A cookie-authenticated socket must send its Origin.")
        g.ws_user_id = current_user.user_id
        g.ws_credential = Credential(session_secret=current_user.auth_session_secret)


@sock.route("/ws", bp=bp)
def socket(ws) -> None:
    """The socket view: close 4001 without a user, else serve it."""
    if g.ws_user_id is None:
        ws.close(CLOSE_UNAUTHORIZED, "Unauthorized: log in or pass ?token=<bearer>.")
        db.session.remove()
        return
    list_category = request.args.get("category") or None
    SocketSession(
        ws,
        g.ws_user_id,
        credential=g.ws_credential,
        html=g.ws_format == "html",
        since=g.ws_since,
        since_seq=g.ws_since_seq,
        # HTML mode: does the page show #notification-list (for which category)?
        page_list=request.args.get("list") == "1",
        page_category=list_category if list_category in NOTIFICATION_CATEGORIES else None,
        # HTML mode: does the page show a coop (#coop-refresh: the dashboard, the admin or the moderation screen)?
        page_coop=request.args.get("coop") if request.args.get("coop") in ("members", "manage", "moderation")
        else None,
        # HTML mode: the chat page of one conversation (its id).
        page_chat=int(request.args["chat"]) if inputs.is_ascii_int(request.args.get("chat"))
        and 0 < len(request.args["chat"]) <= 10 else None,
        # HTML mode: the /messages page (the list of conversations, ws_chat.py).
        page_messages=request.args.get("messages") == "1",
    ).run()


class Credential:
    """What a socket was opened with: a page session (its secret) or a
    bearer token."""

    def __init__(self, *, session_secret: str | None = None, token: str | None = None) -> None:
        self.session_secret = session_secret
        self.token = token
        self.session_id = sessions.session_id(session_secret) if session_secret else None
        self.token_id: str | None = None

    def is_live(self) -> bool:
        """Check it again in the database (sessions.load / accounts.verify_token)."""
        if self.session_secret:
            return sessions.load(self.session_secret) is not None
        if self.token:
            try:
                self.token_id = accounts.verify_token(self.token).token_id
            except Unauthorized:
                return False
            return True
        return False

    def revoked_by(self, message: dict[str, Any]) -> bool:
        return realtime.is_revoked(message, session=self.session_id, token=self.token_id)


class SocketSession(ChatSocket):
    """One open socket of one user (JSON or HTML mode); the chat messages
    are handled by ``ws_chat.ChatSocket``."""

    def __init__(self, ws, user_id: str, *, html: bool, since: int | None, since_seq: int | None = None,
                 credential: Credential | None = None,
                 page_list: bool = False, page_category: str | None = None, page_coop: str | None = None,
                 page_chat: int | None = None, page_messages: bool = False) -> None:
        self.ws = ws
        self.user_id = user_id
        self.credential = credential
        self.html = html
        self.since = since
        self.since_seq = since_seq
        self.page_list = page_list
        self.page_category = page_category
        self.page_coop = page_coop
        self.socket_id = uuid.uuid4().hex
        self.inbox: realtime.SocketInbox = ws.event
        # Every row of the user with a seq up to this has been sent, or lies
        # before the client's cursor; the next one to send is seq + 1.
        self.seq = 0
        # The unread count as this socket knows it: exact at its last snapshot,
        # plus one per unread row sent above that snapshot's watermark.
        self.count = 0
        self.init_chat(page_chat)
        self.page_messages = page_messages
        # JSON frames written as bytes built once per push (``send_json``)
        # when the connection negotiated no extension (permessage-deflate
        # would compress per connection); a stand-in socket goes through send().
        self.raw_frames = not current_app.config["WS_PERMESSAGE_DEFLATE"] \
            and isinstance(getattr(ws, "ws", None), WSConnection) and getattr(ws, "sock", None) is not None

    def run(self) -> None:
        # The app itself, not the proxy (it outlives this context); Flask types
        # ``current_app`` as a Flask, hiding the proxy's method.
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        hub = realtime.get_hub(app)
        channel = realtime.user_channel(self.user_id)
        try:
            hub.attach(channel, self.socket_id, self.inbox)
        except TimeoutError:
            db.session.remove()
            self.ws.close(CLOSE_TRY_AGAIN, "Try again later.")
            return
        try:
            # Subscribed now: a revocation committed before this check is seen
            # here, one committed after it arrives as a message.
            if self.credential is not None and not self.credential.is_live():
                db.session.remove()
                self.ws.close(CLOSE_UNAUTHORIZED, "Unauthorized: this session or token was logged out.")
                return
            realtime.register_socket(self.user_id, self.socket_id, app.config["WS_MAX_SOCKETS_PER_USER"])
            count, self.seq = notifications.unread_snapshot(self.user_id)
            self.chat_snapshot()
            cursor = self.cursor(self.since, self.since_seq)
            db.session.commit()  # sends below may block; no transaction stays open meanwhile
            if cursor is not None:
                self.send_range(cursor, self.seq)
            self.send_count(count)
            db.session.remove()  # hold no DB connection while waiting
            self.presence_open()
            self.presence_snapshot()
            self.loop()
        except ConnectionClosed:
            pass
        except ConnectionError as exc:  # the client went away mid-send (broken pipe, reset): normal
            app.logger.info("socket %s of %s: the client went away (%s)", self.socket_id, self.user_id,
                            type(exc).__name__)
        except Exception:  # noqa: BLE001 - e.g. Redis or the DB went away: tell the client to retry
            app.logger.exception("socket %s of %s failed", self.socket_id, self.user_id)
            try:
                self.ws.close(CLOSE_INTERNAL_ERROR, "Server error; reconnect with since.")
            except ConnectionClosed:
                pass
        finally:
            hub.detach(channel, self.socket_id)
            self.presence_close()
            try:
                realtime.unregister_socket(self.user_id, self.socket_id)
            except Exception as exc:  # noqa: BLE001 - Redis down; the entry ages out
                app.logger.warning("could not unregister socket %s: %r", self.socket_id, exc)
            db.session.remove()

    def loop(self) -> None:
        inbox = self.inbox
        while True:
            due = self.chat_held_due()
            inbox.wait(REFRESH_EVERY if due is None else min(due, REFRESH_EVERY))
            inbox.clear()
            self.presence_tick()
            # Client messages the reader thread queued. ``receive(timeout=0)``
            # only when there is one: on an empty queue it waits a turn of the
            # event loop (a timer), which every push would pay.
            while self.ws.input_buffer or not self.ws.connected:
                try:
                    text = self.ws.receive(timeout=0)
                except ConnectionClosed:
                    return
                if text is None:
                    break
                self.on_client_message(text)
            while inbox.items:
                if not self.on_push(inbox.items.popleft()):
                    return
            if self.chat_held_due() == 0:
                self.fill_held()
            if not self.ws.connected:
                return

    # -- from Redis --

    def on_push(self, message: dict[str, Any]) -> bool:
        """Forward one hub message. Returns False when the socket must end."""
        kind = message.get("type")
        if kind == realtime.EVICT:
            self.ws.close(CLOSE_REPLACED, "Too many open sockets; this, the oldest, was closed.")
            return False
        if kind == realtime.REVOKED:
            if self.credential is not None and self.credential.revoked_by(message):
                self.ws.close(CLOSE_UNAUTHORIZED, "Unauthorized: this session or token was logged out.")
                return False
            return True
        if kind == realtime.RESTART["type"]:
            self.ws.close(CLOSE_RESTART, "Reconnect with since.")
            return False
        if kind == "notification":
            self.on_notification(message["data"])
        elif kind == "unread_count":
            self.resync()
            if self.html:
                self.send_read_state(message)
        elif kind == realtime.COOP_CHANGED:
            self.send_coop_changed(message["cooperative_id"], message.get("change"))
        elif kind == realtime.FRIEND_REQUESTS:
            self.send_friend_requests(message)
        else:
            self.on_chat_push(message)
        return True

    def on_notification(self, data: dict[str, Any]) -> None:
        """A committed row pushed live: send it if it is the next seq, drop it
        if it was sent, fill the gap from the database if it skips ahead."""
        seq = data.get("seq")
        if not isinstance(seq, int):  # from a process older than seq (during an upgrade): as it comes
            if not data.get("is_read"):
                self.count += 1
            return self.send_notification(data, self.count)
        if seq <= self.seq:
            return None
        if seq == self.seq + 1:
            self.seq = seq
            if not data["is_read"]:
                self.count += 1
            return self.send_notification(data, self.count)
        try:
            self.send_range(self.seq, seq, counted=True)
        finally:
            db.session.remove()
        self.seq = seq
        return None

    def resync(self) -> None:
        """The count changed somewhere (a read, read-all or delete): read a
        fresh snapshot, send the rows up to its watermark, then its count."""
        try:
            count, watermark = notifications.unread_snapshot(self.user_id)
            if watermark > self.seq:
                self.send_range(self.seq, watermark)
                self.seq = watermark
        finally:
            db.session.remove()
        self.send_count(count)

    # -- from the client --

    def on_client_message(self, text: str | bytes) -> None:
        """One client message: JSON through ``inputs.load_json`` (nesting
        bounded, text rule), so no message can raise past this handler; a
        bad one is answered with an ``error`` message and the socket stays."""
        try:
            message = inputs.load_json(text, what="The message", path="message")
        except ValidationError as exc:
            return self.send_error(exc.code, exc.message)
        if not isinstance(message, dict):
            return self.send_error("validation_error", "Messages are JSON objects with a type.")
        kind = message.get("type")
        try:
            if kind == "ping":
                self.send_json({"type": "pong"})
            elif kind == "mark_read":
                # The service pushes the new count to every socket, this one included.
                notifications.mark_read(self.user_id, _message_id(message, "id"))
            elif isinstance(kind, str) and self.on_chat_client(kind, message):
                pass
            elif kind == "resume":
                since = _message_id(message, "since") if "since" in message else None
                since_seq = _message_id(message, "since_seq") if "since_seq" in message else None
                after = self.cursor(since, since_seq)
                if after is None:  # neither was given
                    raise ValidationError("resume needs since (a notification id) or since_seq.")
                self.send_range(after, self.seq)
            else:
                self.send_error("validation_error",
                                "type must be ping, mark_read, resume, send, typing, read or presence.")
        except DomainError as exc:
            self.send_error(exc.code, exc.message)
        except PoolTimeout:  # an overload (no connection came free): this message only, the socket stays
            self.send_error(Unavailable.code, Unavailable.message)
        finally:
            db.session.remove()

    # -- sending --

    def cursor(self, since: int | None, since_seq: int | None) -> int | None:
        """The seq after which the client has seen nothing: ``since_seq`` as
        given, ``since`` (an id) mapped by ``cursor_after_id``; with both, the
        lower. None when the client gave neither (no catch-up)."""
        cursors = [c for c in (since_seq,) if c is not None]
        if since is not None:
            cursors.append(notifications.cursor_after_id(self.user_id, since))
        return min(cursors) if cursors else None

    def send_range(self, after: int, up_to: int, *, counted: bool = False) -> None:
        """Send the rows with ``after < seq <= up_to`` in seq order. With
        ``counted`` each unread one is one more unread (rows above the
        snapshot); otherwise the count follows separately."""
        while after < up_to:
            rows = [(row.to_dict(), row.is_read) for row in
                    notifications.after_seq(self.user_id, after, up_to=up_to, limit=CATCH_UP_PAGE)]
            # A slow client can block a send for long: hold no transaction (and
            # no locks a TRUNCATE or migration would wait for) meanwhile.
            db.session.commit()
            for data, is_read in rows:
                count = None
                if counted:
                    self.count += 0 if is_read else 1
                    count = self.count
                self.send_notification(data, count)
            if len(rows) < CATCH_UP_PAGE:
                return
            after = rows[-1][0]["seq"]

    def send_notification(self, data: dict[str, Any], count: int | None) -> None:
        if self.html:
            show_in_list = self.page_list and self.page_category in (None, data["category"])
            self.ws.send(render_template("notifications/_push.html", n=data, count=count, in_list=show_in_list))
            return
        self.send_json({"type": "notification", "data": data})
        if count is not None:
            self.send_json({"type": "unread_count", "count": count})

    def send_count(self, count: int) -> None:
        self.count = count
        if self.html:
            self.ws.send(render_template("notifications/_badge.html", count=count, oob=True))
        else:
            self.send_json({"type": "unread_count", "count": count})

    def send_read_state(self, message: dict[str, Any]) -> None:
        """HTML mode, after a read, "mark all read" or delete in any tab:
        the changed items re-rendered by their own partials
        (notifications/_sync.html), or removed, each swapped only where the
        page shows it (``data-if-present``, static/js/app.js)."""
        read = message.get("read")
        up_to = message.get("read_up_to")
        deleted = [i for i in message.get("deleted") or [] if isinstance(i, int)]
        rows: list[dict[str, Any]] = []
        if isinstance(read, list) or isinstance(up_to, int):
            try:
                ids = [i for i in read if isinstance(i, int)] if isinstance(read, list) else None
                rows = [row.to_dict() for row in notifications.read_rows(
                    self.user_id, ids=ids, up_to_id=up_to if isinstance(up_to, int) else None)]
            finally:
                db.session.remove()
        if rows or deleted:
            self.ws.send(render_template("notifications/_sync.html", rows=rows, deleted=deleted,
                                         in_list=self.page_list))

    def send_coop_changed(self, cooperative_id: int, change: str | None = None) -> None:
        """JSON: forward the message. HTML: only to a page showing a coop
        (``coop=members`` the dashboard, ``coop=manage`` the admin screen, in
        the URL), coops/_refresh.html, which makes htmx fetch
        ``/coop/live`` once: every fragment of that page, rendered by the
        partials the page is made of, or a redirect with a message when the
        viewer is no longer in that coop (the page does the DB work, not
        this handler); a "moderation" change is not theirs. To the
        moderation screen (``coop=moderation``), a change of moderation,
        members or a dissolve: moderation/_changed.html, a line offering
        to show the latest (its forms may hold what the moderator is typing,
        so nothing is replaced unasked)."""
        if not self.html:
            message: dict[str, Any] = {"type": realtime.COOP_CHANGED, "cooperative_id": cooperative_id}
            if change:
                message["change"] = change
            self.send_json(message)
        elif self.page_coop == "moderation":
            if change in ("moderation", "membership", "dissolved"):
                self.ws.send(render_template("moderation/_changed.html", change=change))
        elif self.page_coop is not None and change != "moderation":
            self.ws.send(render_template("coops/_refresh.html", manage=self.page_coop == "manage",
                                         coop_id=cooperative_id))

    def send_friend_requests(self, message: dict[str, Any]) -> None:
        """The pending friend request counts changed: JSON forwards
        ``{"type": "friend_requests", "incoming", "outgoing"}``; HTML swaps
        the nav's badge (friends/_badge.html, out of band)."""
        if self.html:
            self.ws.send(render_template("friends/_badge.html", count=message.get("incoming", 0), oob=True))
        else:
            self.send_json({"type": realtime.FRIEND_REQUESTS, "incoming": message.get("incoming", 0),
                            "outgoing": message.get("outgoing", 0)})

    def send_error(self, code: str, message: str) -> None:
        if not self.html:
            self.send_json({"type": "error", "code": code, "message": message})

    def send_json(self, message: dict[str, Any]) -> None:
        """Send one JSON message; a hub ``Push`` as the text (and frame)
        encoded once for every socket it goes to. Raises ConnectionClosed
        once the socket is closed (as ``ws.send``)."""
        ws = self.ws
        if self.raw_frames and ws.connected and ws.ws.state is ConnectionState.OPEN:
            # wsproto would frame the same text again for each socket; the
            # frame is complete (FIN), so wsproto's own state is unaffected.
            frame = message.frame() if isinstance(message, realtime.Push) \
                else realtime.text_frame(json.dumps(message, separators=(",", ":")))
            sent = ws.sock.send(frame)  # one call almost always (sendall would look up the socket's options)
            if sent < len(frame):
                ws.sock.sendall(frame[sent:])
        elif isinstance(message, realtime.Push):
            ws.send(message.text())
        else:
            ws.send(json.dumps(message, separators=(",", ":")))


def _message_id(message: dict[str, Any], key: str) -> int:
    """A notification id in a message: a JSON whole number (``inputs.parse_int``)."""
    value = message.get(key)
    what = "a notification seq" if key == "since_seq" else "a notification id"
    if not isinstance(value, int):  # a string of digits is not a JSON number
        raise ValidationError(f"{key} must be {what} (a whole number).")
    return inputs.parse_int(value, name=key, maximum=notifications.MAX_ID)
