"""Live pushes across processes.

``publish`` is a Redis PUBLISH on the user's channel and works from any
process (web, RQ worker, ingest), always after the DB commit. Each web
process runs ONE listener (``Hub``, a thread — a greenlet under gevent) that
owns one pub/sub connection, subscribes to the channels of the users who have
a socket open in this process, and copies every message into those sockets'
inboxes (the CTFd pattern). Socket handlers only wait on their inbox.

A message for many users (a chat message to its conversation's members,
typing, presence, a coop change) is ONE PUBLISH on the fan-out channel
(``publish_many``: ``{"to": [user ids], "m": message}``), which every hub
subscribes to before it serves a socket and routes to its own sockets of
the users in ``to`` — the recipients are chosen by the publisher (e.g. the
member list read under the conversation's lock), never by the hub. A hub
decodes each message once and hands the same ``Push`` to every local
socket, which sends the same JSON text (encoded once) to each.

Redis pub/sub is at-most-once, and pushes from different processes can
overtake each other: the notification row is the record, and a socket sends
rows in their ``seq`` order (the user's numbering in commit order), filling
from the database any number a push skipped (ws.py). A socket is attached
(its channel subscribed, confirmed by Redis) before it reads its snapshot and
catch-up rows, so nothing committed after that read can be missed.

The per-user socket limit spans all processes: each open socket is a member
of a Redis sorted set scored by its opening time; opening one too many
removes the oldest members and publishes a control message on the user's
channel, which the process holding that socket turns into a 4002 close.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from flask import Flask, current_app

from .extensions import get_redis, redis_key

log = logging.getLogger(__name__)

# Internal message types on a user's channel; never forwarded to clients.
EVICT = "_evict"  # {"type": "_evict", "sockets": [socket ids]}
# Put in every local inbox when the listener lost Redis: the socket must close
# (1012) so the client reconnects with ``since`` and loses nothing.
RESTART = {"type": "_restart"}
# Credentials were revoked: {"type": "_revoked", "everything": bool,
# "keep_session": id|None, "session": id|None, "token": id|None}; the socket
# opened with a revoked session or token closes (4001).
REVOKED = "_revoked"
SOCKET_SET_TTL = 7 * 24 * 3600  # seconds; a crashed process's entries age out


class Inbox(Protocol):
    """What the hub needs of a socket's inbox."""

    def put(self, item: dict[str, Any]) -> None: ...


def user_channel(user_id: str) -> str:
    """The pub/sub channel of one user."""
    return redis_key("user", user_id)


def publish(user_id: str, message: dict[str, Any], *, client: Any = None) -> None:
    """Publish ``message`` (JSON-serialisable) to every socket of ``user_id``
    (on ``client``, e.g. a pipeline that sends it with other commands; by
    default the app's Redis)."""
    (client or get_redis()).publish(user_channel(user_id), json.dumps(message, separators=(",", ":")))


def fanout_channel() -> str:
    """The channel of messages for many users (``publish_many``), which
    every web process's hub subscribes to."""
    return redis_key("ws", "fanout")


def fanout_text(user_ids: list[str], message: dict[str, Any]) -> str:
    """What ``publish_many`` publishes: ``{"to": [user ids], "m": message}``."""
    return json.dumps({"to": user_ids, "m": message}, separators=(",", ":"))


def publish_many(user_ids: list[str], message: dict[str, Any]) -> None:
    """Publish one ``message`` to every socket of each of ``user_ids``: one
    PUBLISH on the fan-out channel, whatever the number of users."""
    ids = list(dict.fromkeys(user_ids))
    if ids:
        get_redis().publish(fanout_channel(), fanout_text(ids, message))


def publish_groups(groups: list[tuple[list[str], dict[str, Any]]]) -> None:
    """``publish_many`` of each ``(user_ids, message)``, every PUBLISH in
    one round trip."""
    if not groups:
        return
    pipe = get_redis().pipeline(transaction=False)
    channel = fanout_channel()
    for user_ids, message in groups:
        pipe.publish(channel, fanout_text(list(dict.fromkeys(user_ids)), message))
    pipe.execute()


def publish_each(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish ``(user_id, message)`` pairs in one round trip (a message may
    differ per recipient, e.g. a reaction's ``me``): one fan-out PUBLISH
    per distinct message object."""
    if not messages:
        return
    groups: dict[int, tuple[list[str], dict[str, Any]]] = {}
    for user_id, message in messages:
        groups.setdefault(id(message), ([], message))[0].append(user_id)
    publish_groups(list(groups.values()))


def notification_created(user_id: str, notification: dict[str, Any], *, client: Any = None) -> None:
    """Push a committed notification (``Notification.to_dict()``, with its
    ``seq``): a socket forwards the next seq with no DB query and counts it
    as one more unread. ``client``: as ``publish``."""
    publish(user_id, {"type": "notification", "data": notification}, client=client)


def unread_count_changed(user_id: str, count: int, *, read: list[int] | None = None,
                         read_up_to: int | None = None, deleted: list[int] | None = None) -> None:
    """Tell every socket of the user that the unread count changed (cross-tab
    sync). Sockets re-read the count with their watermark rather than trust
    ``count``: changes published by different processes can arrive out of
    order. What changed rides along for pages (HTML mode) to show it in
    every tab: ``read`` (ids marked read), ``read_up_to`` (mark all read:
    every id up to it) and ``deleted`` (ids)."""
    message: dict[str, Any] = {"type": "unread_count", "count": count}
    if read:
        message["read"] = read
    if read_up_to is not None:
        message["read_up_to"] = read_up_to
    if deleted:
        message["deleted"] = deleted
    publish(user_id, message)


def auth_revoked(user_id: str, *, everything: bool = False, keep_session: str | None = None,
                 session: str | None = None, token: str | None = None) -> None:
    """Tell every socket of ``user_id`` which credentials were revoked (after
    the commit): ``everything`` (all sessions but ``keep_session``, a stored
    session id, and all bearer tokens), or one ``session`` (stored id) or one
    bearer ``token`` (its id). See ``is_revoked``."""
    publish(user_id, {"type": REVOKED, "everything": everything, "keep_session": keep_session,
                      "session": session, "token": token})


def is_revoked(message: dict[str, Any], *, session: str | None, token: str | None) -> bool:
    """Whether a ``_revoked`` message ends a socket opened with the stored
    session id ``session`` or the bearer token id ``token``."""
    if message.get("everything"):
        return session is None or session != message.get("keep_session")
    return (session is not None and session == message.get("session")) or (
        token is not None and token == message.get("token"))


COOP_CHANGED = "coop_changed"
# {"type": "friend_requests", "incoming": n, "outgoing": m}: pending friend
# request counts after a change (services/friends.py), forwarded as is.
FRIEND_REQUESTS = "friend_requests"

# What changed (the ``change`` field): who is in it, its name or description,
# its invite code, its numbers (the 5-minute hashrate job, mining events),
# it was dissolved, or (to its admin and moderators only) its moderation: a
# report or an audit log entry. Coop pages refresh every fragment whatever
# the reason but "moderation"; the moderation screen offers to show the latest.
COOP_CHANGES = ("membership", "details", "invite", "numbers", "dissolved", "moderation")


def coop_changed(user_ids: list[str], cooperative_id: int, change: str = "membership") -> None:
    """Tell every socket of ``user_ids`` that ``cooperative_id`` changed
    (``{"type": "coop_changed", "cooperative_id": N, "change": one of
    COOP_CHANGES}``); open coop pages re-fetch their fragments. One PUBLISH
    for all users (``publish_many``)."""
    publish_many(list(user_ids), {"type": COOP_CHANGED, "cooperative_id": cooperative_id, "change": change})


# ---- the per-user socket limit (all processes) ---------------------------------------


def _sockets_key(user_id: str) -> str:
    return redis_key("ws", "sockets", user_id)


def register_socket(user_id: str, socket_id: str, limit: int) -> list[str]:
    """Count a newly opened socket against the user's limit.

    Returns the ids of the oldest sockets beyond ``limit`` (removed from the
    set in the same transaction) after asking their processes to close them.
    """
    key = _sockets_key(user_id)
    pipe = get_redis().pipeline(transaction=True)
    pipe.zadd(key, {socket_id: time.time()})
    pipe.zrange(key, 0, -(limit + 1))
    pipe.zremrangebyrank(key, 0, -(limit + 1))
    pipe.expire(key, SOCKET_SET_TTL)
    _, evicted, _, _ = pipe.execute()
    if evicted:
        message = json.dumps({"type": EVICT, "sockets": list(evicted)})
        get_redis().publish(user_channel(user_id), message)
    return list(evicted)


def unregister_socket(user_id: str, socket_id: str) -> None:
    """Forget a closed socket."""
    get_redis().zrem(_sockets_key(user_id), socket_id)


# ---- the per-process listener ------------------------------------------------------


class Hub:
    """One per web process: one pub/sub connection, one listener thread.

    ``attach`` subscribes the user's channel (if this process is not already
    subscribed) and returns once Redis has confirmed it. Only the listener
    thread touches the pub/sub connection; other threads ask it to
    (un)subscribe and wake it with a message on this process's own control
    channel. Channels without sockets are unsubscribed lazily.
    """

    def __init__(self, redis_client, control_channel: str, fanout: str = "", user_prefix: str = "") -> None:
        self._redis = redis_client
        self._control = control_channel
        # The fan-out channel (module docstring) and the prefix of a user's
        # channel name (``user_channel`` is it plus the user id): the
        # listener has no app context to compute them.
        self._fanout = fanout
        self._user_prefix = user_prefix
        self._lock = threading.Lock()
        self._inboxes: dict[str, dict[str, Inbox]] = {}  # channel -> socket id -> inbox
        self._subscribed: set[str] = set()  # confirmed by Redis
        self._requested: set[str] = set()  # SUBSCRIBE sent, not yet confirmed
        self._wanted: set[str] = set()  # to SUBSCRIBE on the next turn
        self._waiters: dict[str, list[threading.Event]] = {}
        # A channel may have lost its last socket: look for idle channels on
        # the next turn (not on every message: a scan of every subscription).
        self._maybe_idle = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- called by socket handlers --

    def start(self, timeout: float = 5.0) -> None:
        """Start the listener thread (idempotent) and wait until it listens."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notification-hub", daemon=True)
                self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the notification listener did not connect to Redis")

    def attach(self, channel: str, socket_id: str, inbox: Inbox, timeout: float = 5.0) -> None:
        """Route ``channel``'s messages to ``inbox``; return once subscribed.
        Raises TimeoutError when Redis does not confirm in time."""
        self.start(timeout)
        with self._lock:
            self._inboxes.setdefault(channel, {})[socket_id] = inbox
            if channel in self._subscribed:
                return
            subscribed = threading.Event()
            self._waiters.setdefault(channel, []).append(subscribed)
            self._wanted.add(channel)
        self._redis.publish(self._control, "wake")
        if not subscribed.wait(timeout):
            self.detach(channel, socket_id)
            raise TimeoutError(f"no subscription to {channel} within {timeout} s")

    def detach(self, channel: str, socket_id: str) -> None:
        """Stop routing to a socket's inbox."""
        with self._lock:
            sockets = self._inboxes.get(channel)
            if sockets is not None:
                sockets.pop(socket_id, None)
                if not sockets:
                    del self._inboxes[channel]
                    self._maybe_idle = True

    def local_socket_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._inboxes.values())

    def users_with_sockets(self, user_ids: Iterable[str]) -> set[str]:
        """Those of ``user_ids`` with a socket attached to this hub."""
        prefix = self._user_prefix
        with self._lock:
            return {u for u in user_ids if prefix + u in self._inboxes}

    # -- the listener thread --

    def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                self._listen()
            except Exception:  # noqa: BLE001 - Redis went away: restart sockets, retry
                log.exception("notification listener lost Redis; reconnecting in %.1f s", delay)
            self._ready.clear()
            self._restart_all()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            # The fan-out channel is confirmed before the control channel
            # (Redis answers in order), so ``_ready`` means both.
            pubsub.subscribe(*([self._fanout] if self._fanout else []), self._control)
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._handle(message)
                self._apply_changes(pubsub)
        finally:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001
                pass

    def _restart_all(self) -> None:
        with self._lock:
            inboxes = [inbox for sockets in self._inboxes.values() for inbox in sockets.values()]
            self._inboxes.clear()
            self._subscribed.clear()
            self._requested.clear()
            self._wanted.clear()
            waiters = [w for ws in self._waiters.values() for w in ws]
            self._waiters.clear()
        for inbox in inboxes:
            inbox.put(RESTART)
        for waiter in waiters:  # their attach() times out or sees the restart
            waiter.set()

    def _apply_changes(self, pubsub) -> None:
        with self._lock:
            to_subscribe = self._wanted - self._requested - self._subscribed
            self._requested |= to_subscribe
            self._wanted.clear()
            idle = [c for c in self._subscribed if c not in self._inboxes] if self._maybe_idle else []
            self._maybe_idle = False
            self._subscribed.difference_update(idle)
        if to_subscribe:
            pubsub.subscribe(*to_subscribe)
        if idle:
            pubsub.unsubscribe(*idle)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if kind == "subscribe":
            if channel == self._control:
                self._ready.set()
                return
            if channel == self._fanout:  # for the process's life: never among the idle user channels
                return
            with self._lock:
                self._requested.discard(channel)
                self._subscribed.add(channel)
                if channel not in self._inboxes:  # its sockets left before Redis confirmed
                    self._maybe_idle = True
                waiters = self._waiters.pop(channel, [])
            for waiter in waiters:
                waiter.set()
            return
        if kind != "message" or channel == self._control:
            return
        try:
            data = json.loads(message["data"])
        except (TypeError, ValueError):
            log.warning("dropping a malformed message on %s", channel)
            return
        if not isinstance(data, dict):
            log.warning("dropping a malformed message on %s", channel)
            return
        if channel == self._fanout:
            to, inner = data.get("to"), data.get("m")
            if not isinstance(to, list) or not isinstance(inner, dict):
                log.warning("dropping a malformed fan-out message")
                return
            push = Push(inner)
            prefix = self._user_prefix
            with self._lock:
                inboxes = self._inboxes
                targets = [inbox for user_id in to if isinstance(user_id, str)
                           for inbox in (inboxes.get(prefix + user_id) or {}).values()]
            for inbox in targets:
                inbox.put(push)
            return
        with self._lock:
            sockets = dict(self._inboxes.get(channel) or {})
        if data.get("type") == EVICT:
            targets = [sockets[s] for s in data.get("sockets", []) if s in sockets]
        else:
            targets = list(sockets.values())
        push = Push(data)
        for inbox in targets:
            inbox.put(push)


class Push(dict):
    """A message from Redis as the hub hands it to every local socket it
    goes to: the same object for all of them, so read-only; ``text()`` is
    its JSON, encoded once for all (``ws.SocketSession.send_json``)."""

    __slots__ = ("_text", "_frame")

    def text(self) -> str:
        """The compact JSON of this message (cached)."""
        try:
            return self._text
        except AttributeError:
            self._text: str = json.dumps(self, separators=(",", ":"))
            return self._text

    def frame(self) -> bytes:
        """``text()`` as one WebSocket text frame from the server (cached):
        the same bytes for every socket it goes to (``text_frame``)."""
        try:
            return self._frame
        except AttributeError:
            self._frame: bytes = text_frame(self.text())
            return self._frame


def text_frame(text: str) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 §5.2) of
    ``text``: what a server sends on a connection without extensions, so
    the bytes do not depend on the connection."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


_hub_lock = threading.Lock()


def get_hub(app: Flask | None = None) -> Hub:
    """This process's hub for ``app`` (created on first use; a forked child
    gets its own, since threads and connections do not survive a fork)."""
    # The app itself, not the proxy (it outlives this context); Flask types
    # ``current_app`` as a Flask, hiding the proxy's method.
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _hub_lock:
        entry = app.extensions.get("notification_hub")
        if entry is None or entry[0] != os.getpid():
            namespace = app.config.get("REDIS_NAMESPACE") or ""
            control = f"{namespace}:ws:hub:{uuid.uuid4().hex}" if namespace else f"ws:hub:{uuid.uuid4().hex}"
            prefix = f"{namespace}:" if namespace else ""
            entry = (os.getpid(), Hub(app.extensions["redis"], control, fanout=f"{prefix}ws:fanout",
                                      user_prefix=f"{prefix}user:"))
            app.extensions["notification_hub"] = entry
        return entry[1]


def users_with_local_sockets(user_ids: Iterable[str]) -> set[str]:
    """Those of ``user_ids`` with a socket open in this process (attached
    to its hub; none when this process serves no socket): online without
    asking Redis."""
    entry = current_app.extensions.get("notification_hub")
    if entry is None or entry[0] != os.getpid():
        return set()
    return entry[1].users_with_sockets(user_ids)


class SocketInbox:
    """A socket's inbox, also used as simple-websocket's ``event_class``.

    simple-websocket's reader thread calls ``set()`` when a client message
    arrives or the connection closes; the hub calls ``put()`` with messages
    from Redis. Either wakes the one ``wait()`` of the socket handler, which
    then drains ``items`` and the socket's received messages.
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self.items: deque[dict[str, Any]] = deque()

    def put(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        self._flag.set()

    def set(self) -> None:
        self._flag.set()

    def clear(self) -> None:
        self._flag.clear()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._flag.wait(timeout)


def reader_thread(*, target: Callable[[], None]) -> threading.Thread:
    """simple-websocket's ``thread_class``: the socket's reader thread, which
    sets the socket's event once more when it ends.

    Closing a connection over a too-big message (1009), simple-websocket
    1.1.0 sets the event before it marks the connection closed
    (``Base._handle_events``); a handler that woke in between saw the socket
    still open and slept until its next presence refresh (up to 30 s),
    showing the user online meanwhile. Under gevent the reader yields before
    the handler runs, so the race needs OS threads (werkzeug's threaded
    server)."""
    ws = getattr(target, "__self__")  # noqa: B009 - the bound ``Base._thread``; mypy knows no __self__

    def run() -> None:
        try:
            target()
        finally:
            ws.event.set()

    return threading.Thread(target=run)
