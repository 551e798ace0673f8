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

Each socket: attach to this process's hub (subscribe first), count against
the per-user limit, send the catch-up rows newer than ``since`` and the
unread count, release the DB session, then wait on one inbox that the hub
(Redis messages) and the socket's reader thread (client messages, close)
both wake.
"""
from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, render_template, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from . import realtime
from .extensions import db, sock
from .models import NOTIFICATION_CATEGORIES
from .services import accounts, inputs, notifications
from .services.errors import DomainError, Forbidden, Unauthorized, ValidationError

bp = Blueprint("ws", __name__)

CLOSE_UNAUTHORIZED = 4001
CLOSE_REPLACED = 4002  # the user opened more sockets than WS_MAX_SOCKETS_PER_USER
CLOSE_RESTART = 1012  # this process lost Redis: reconnect with since
CLOSE_TRY_AGAIN = 1013
CLOSE_INTERNAL_ERROR = 1011


def init_app(app: Flask) -> None:
    """Register the socket route and its server options. This process's
    Redis listener starts with the first socket."""
    options = app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.setdefault("ping_interval", app.config["WS_PING_INTERVAL"])
    options.setdefault("max_message_size", app.config["WS_MAX_MESSAGE_SIZE"])
    options["event_class"] = realtime.SocketInbox
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
    g.ws_user_id = None
    g.ws_format = request.args.get("format", "json")
    if g.ws_format not in ("json", "html"):
        raise ValidationError("format must be json or html.")
    g.ws_since = _int_arg("since")
    token = request.args.get("token")
    if token:
        try:
            g.ws_user_id = accounts.user_from_token(token).user_id
        except Unauthorized:
            pass
        return
    if g.get("auth_mode") == "bearer":  # Authorization header, for non-browser clients
        g.ws_user_id = g.user.user_id
        return
    origin = request.headers.get("Origin")
    if origin is not None and _origin(origin) not in allowed_origins():
        raise Forbidden("This socket only accepts pages of this site.")
    if current_user.is_authenticated:
        if origin is None:
            raise Forbidden("A cookie-authenticated socket must send its Origin.")
        g.ws_user_id = current_user.user_id


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
        html=g.ws_format == "html",
        since=g.ws_since,
        # HTML mode: does the page show #notification-list (for which category)?
        page_list=request.args.get("list") == "1",
        page_category=list_category if list_category in NOTIFICATION_CATEGORIES else None,
        # HTML mode: does the page show a coop members table (#coop-refresh: dashboard or admin screen)?
        page_coop=request.args.get("coop") if request.args.get("coop") in ("members", "manage") else None,
    ).run()


class SocketSession:
    """One open socket of one user (JSON or HTML mode)."""

    def __init__(self, ws, user_id: str, *, html: bool, since: int | None,
                 page_list: bool = False, page_category: str | None = None, page_coop: str | None = None) -> None:
        self.ws = ws
        self.user_id = user_id
        self.html = html
        self.since = since
        self.page_list = page_list
        self.page_category = page_category
        self.page_coop = page_coop
        self.socket_id = uuid.uuid4().hex
        self.inbox: realtime.SocketInbox = ws.event
        self.caught_up: set[int] = set()  # ids sent by catch-up; a live copy is a duplicate
        # The unread count as this socket knows it: exact on open and after each
        # read anywhere (published counts), plus one per pushed notification.
        self.count = 0

    def run(self) -> None:
        app = current_app._get_current_object()
        hub = realtime.get_hub(app)
        channel = realtime.user_channel(self.user_id)
        try:
            hub.attach(channel, self.socket_id, self.inbox)
        except TimeoutError:
            db.session.remove()
            self.ws.close(CLOSE_TRY_AGAIN, "Try again later.")
            return
        try:
            realtime.register_socket(self.user_id, self.socket_id, app.config["WS_MAX_SOCKETS_PER_USER"])
            if self.since is not None:
                self.catch_up(self.since)
            self.send_count(notifications.unread_count(self.user_id))
            db.session.remove()  # hold no DB connection while waiting
            self.loop()
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - e.g. Redis or the DB went away: tell the client to retry
            app.logger.exception("socket %s of %s failed", self.socket_id, self.user_id)
            try:
                self.ws.close(CLOSE_INTERNAL_ERROR, "Server error; reconnect with since.")
            except ConnectionClosed:
                pass
        finally:
            hub.detach(channel, self.socket_id)
            try:
                realtime.unregister_socket(self.user_id, self.socket_id)
            except Exception as exc:  # noqa: BLE001 - Redis down; the entry ages out
                app.logger.warning("could not unregister socket %s: %r", self.socket_id, exc)
            db.session.remove()

    def loop(self) -> None:
        inbox = self.inbox
        while True:
            inbox.wait()
            inbox.clear()
            while True:
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
            if not self.ws.connected:
                return

    # -- from Redis --

    def on_push(self, message: dict[str, Any]) -> bool:
        """Forward one hub message. Returns False when the socket must end."""
        kind = message.get("type")
        if kind == realtime.EVICT:
            self.ws.close(CLOSE_REPLACED, "Too many open sockets; this, the oldest, was closed.")
            return False
        if kind == realtime.RESTART["type"]:
            self.ws.close(CLOSE_RESTART, "Reconnect with since.")
            return False
        if kind == "notification":
            data = message["data"]
            if data["id"] in self.caught_up:
                return True
            self.count += 1
            self.send_notification(data, self.count)
        elif kind == "unread_count":
            self.send_count(message["count"])
        elif kind == realtime.COOP_CHANGED:
            self.send_coop_changed(message["cooperative_id"])
        return True

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
            elif kind == "resume":
                self.catch_up(_message_id(message, "since"))
            else:
                self.send_error("validation_error", "type must be ping, mark_read or resume.")
        except DomainError as exc:
            self.send_error(exc.code, exc.message)
        finally:
            db.session.remove()

    # -- sending --

    def catch_up(self, since: int) -> None:
        """Send every notification newer than ``since``, oldest first."""
        after = since
        while True:
            rows = notifications.newer_than(self.user_id, after, limit=200)
            for row in rows:
                self.caught_up.add(row.id)
                self.send_notification(row.to_dict(), None)
            if len(rows) < 200:
                return
            after = rows[-1].id

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

    def send_coop_changed(self, cooperative_id: int) -> None:
        """JSON: forward the message. HTML: only to a page showing a coop's
        members table (``coop=`` in the URL), coops/_refresh.html, which makes
        htmx re-fetch that table (the page does the DB work, not this handler)."""
        if not self.html:
            self.send_json({"type": realtime.COOP_CHANGED, "cooperative_id": cooperative_id})
        elif self.page_coop is not None:
            self.ws.send(render_template("coops/_refresh.html", manage=self.page_coop == "manage"))

    def send_error(self, code: str, message: str) -> None:
        if not self.html:
            self.send_json({"type": "error", "code": code, "message": message})

    def send_json(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message, separators=(",", ":")))


def _message_id(message: dict[str, Any], key: str) -> int:
    """A notification id in a message: a JSON whole number (``inputs.parse_int``)."""
    value = message.get(key)
    if not isinstance(value, int):  # a string of digits is not a JSON number
        raise ValidationError(f"{key} must be a notification id (a whole number).")
    return inputs.parse_int(value, name=key, maximum=notifications.MAX_ID)
