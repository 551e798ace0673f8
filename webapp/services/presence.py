"""Presence: online, away, do not disturb, offline, and last activity (API.md
"Socket additions"; seed 004's PresenceService).

Kept in Redis only, with expiry, so a crashed process cannot leave anyone
online for ever:

- ``presence:sockets:<user>``: a sorted set of the user's open sockets, each
  scored by when it expires (``SOCKET_TTL`` seconds after its last sign of
  life; a socket refreshes it every ``REFRESH_EVERY`` seconds).
- ``presence:active:<user>``: the same for those of them that have not
  said "away" (a socket enters it when it opens or says "online", and
  leaves it when it says "away" or closes). "away" is a socket's word, not
  the miner's: it ends with that socket, and another socket of theirs (a
  second tab in view) keeps them online.
- ``presence:state:<user>``: a hash — ``choice`` ("dnd" while the miner
  chose do not disturb; "online" once they said so), ``last_active_at``
  (ISO time of the last client activity: opening a socket, sending,
  typing, reading, saying online) and ``published`` (the status last
  announced). Expires after ``STATE_TTL``. A ``choice`` of "away" stored
  before away was per socket means nothing.

The status: offline without a live socket; else dnd when chosen; else away
when every live socket said "away", or after ``IDLE_AWAY`` seconds without
activity; else online. A change is published as ``{"type": "presence", "user_id",
"status", "last_active_at"}`` to the miner's audience — coop-mates and
friends (``audience``) — and only while the
miner's ``privacy.showPresence`` is true; otherwise others see offline.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from .. import realtime
from ..extensions import db, get_redis, redis_key
from ..models import CooperativeMember, UserSettings, iso
from ..vocabulary import PresenceStatus
from . import preferences, relations
from .errors import ValidationError
from .membership import is_active_member

SOCKET_TTL = 90  # seconds a socket counts as open without a refresh
REFRESH_EVERY = 30  # seconds between a socket's refreshes (ws.py)
IDLE_AWAY = 300  # seconds without activity before "away"
STATE_TTL = 30 * 24 * 3600  # last activity is remembered this long
CHOICES = (PresenceStatus.ONLINE.value, PresenceStatus.AWAY.value, PresenceStatus.DND.value)
PRESENCE = "presence"


def _sockets_key(user_id: str) -> str:
    return redis_key("presence", "sockets", user_id)


def _active_key(user_id: str) -> str:
    return redis_key("presence", "active", user_id)


def _state_key(user_id: str) -> str:
    return redis_key("presence", "state", user_id)


# ---- socket life -------------------------------------------------------------------


def socket_opened(user_id: str, socket_id: str) -> None:
    """A socket of ``user_id`` opened: count it and note activity."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for key in (_sockets_key(user_id), _active_key(user_id)):
        pipe.zadd(key, {socket_id: now + SOCKET_TTL})
        pipe.expire(key, SOCKET_TTL * 2)
    pipe.hset(_state_key(user_id), "last_active_at", _iso(now))
    pipe.expire(_state_key(user_id), STATE_TTL)
    pipe.execute()
    announce_if_changed(user_id)


def socket_alive(user_id: str, socket_id: str) -> None:
    """The periodic refresh of an open socket (and the idle → away check)."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    pipe.zadd(_sockets_key(user_id), {socket_id: now + SOCKET_TTL})
    pipe.zadd(_active_key(user_id), {socket_id: now + SOCKET_TTL}, xx=True)  # unless it said "away"
    for key in (_sockets_key(user_id), _active_key(user_id)):
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.expire(key, SOCKET_TTL * 2)
    pipe.execute()
    announce_if_changed(user_id)


def socket_closed(user_id: str, socket_id: str) -> None:
    """A socket closed; the last one makes the user offline."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.zrem(_sockets_key(user_id), socket_id)
    pipe.zrem(_active_key(user_id), socket_id)
    pipe.execute()
    announce_if_changed(user_id)


def touch(user_id: str) -> None:
    """Client activity (send, typing, read): ``last_active_at`` is now; an
    idle "away" becomes online again. One round trip when the status stays."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    pipe.hset(_state_key(user_id), "last_active_at", _iso(now))
    pipe.expire(_state_key(user_id), STATE_TTL)
    _queue_state(pipe, user_id, now)
    _announce(user_id, *_read_state(pipe.execute()[2:], now))


def touch_and_connected(user_id: str, others: list[str]) -> tuple[set[str], tuple[dict[str, Any], str | None]]:
    """``touch`` (without the announce) and ``connected(others)`` in one
    round trip, for a post: returns those of ``others`` with a socket open
    and the user's state for ``announce_touched``, to call once the post's
    transaction ended."""
    online, states = touch_many_and_connected([user_id], others)
    return online, states[user_id]


def touch_many_and_connected(user_ids: list[str], others: list[str]
                             ) -> tuple[set[str], dict[str, tuple[dict[str, Any], str | None]]]:
    """``touch_and_connected`` for several posters at once (messages.post_together):
    returns those of ``others`` with a socket open and each poster's state
    for ``announce_touched``, in one round trip."""
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hset(_state_key(user_id), "last_active_at", _iso(now))
        pipe.expire(_state_key(user_id), STATE_TTL)
        _queue_state(pipe, user_id, now)
    for other in others:
        pipe.zcount(_sockets_key(other), now, "+inf")
    replies = pipe.execute()
    each = 2 + STATE_REPLIES
    states = {u: _read_state(replies[i * each + 2:(i + 1) * each], now) for i, u in enumerate(user_ids)}
    online = {u for u, live in zip(others, replies[len(user_ids) * each:], strict=True) if live}
    return online, states


def announce_touched(user_id: str, state: tuple[dict[str, Any], str | None]) -> str:
    """``announce_if_changed`` with the state ``touch_and_connected`` read."""
    return _announce(user_id, *state)


def set_status(user_id: str, socket_id: str, status: object) -> str:
    """What the client of socket ``socket_id`` says (``{"type":
    "presence"}``): "away" — this socket is away (a hidden tab), until it
    says "online" or closes; "online" — this socket is back, and the miner
    is no longer on do not disturb; "dnd" — the miner is on do not disturb,
    on every socket, until a socket says "online". Returns the resulting
    status. Raises ValidationError for another word."""
    if status not in CHOICES:
        raise ValidationError(f"status must be one of {', '.join(CHOICES)}.")
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    if status == PresenceStatus.AWAY:
        pipe.zrem(_active_key(user_id), socket_id)
    else:
        pipe.hset(_state_key(user_id), "choice", str(status))
        pipe.expire(_state_key(user_id), STATE_TTL)
    if status == PresenceStatus.ONLINE:
        # The socket that says so is open (its message arrived): present again.
        pipe.zadd(_active_key(user_id), {socket_id: now + SOCKET_TTL})
        pipe.expire(_active_key(user_id), SOCKET_TTL * 2)
        pipe.hset(_state_key(user_id), "last_active_at", _iso(now))
    pipe.execute()
    return announce_if_changed(user_id)


# ---- reading -----------------------------------------------------------------------


def _iso(ts: float) -> str:
    return iso(datetime.fromtimestamp(ts, UTC))


def raw_status(user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``{user_id: {"status", "last_active_at"}}`` as Redis says, without
    privacy (``STATE_REPLIES`` commands per user, one round trip)."""
    if not user_ids:
        return {}
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for user_id in user_ids:
        _queue_state(pipe, user_id, now)
    replies = pipe.execute()
    found: dict[str, dict[str, Any]] = {}
    for i, user_id in enumerate(user_ids):
        found[user_id] = _read_state(replies[STATE_REPLIES * i:STATE_REPLIES * (i + 1)], now)[0]
    return found


def _status(live: int, active: int, choice: str | None, last_active: str | None, now: float) -> str:
    """``live``/``active``: how many of the user's sockets are open / have
    not said "away"."""
    if not live:
        return PresenceStatus.OFFLINE.value
    if choice == PresenceStatus.DND:
        return PresenceStatus.DND.value
    if not active:
        return PresenceStatus.AWAY.value
    if last_active:
        try:
            idle = now - datetime.fromisoformat(last_active.replace("Z", "+00:00")).timestamp()
        except ValueError:
            idle = 0.0
        if idle >= IDLE_AWAY:
            return PresenceStatus.AWAY.value
    return PresenceStatus.ONLINE.value


def connected(user_ids: list[str]) -> set[str]:
    """Those of ``user_ids`` with at least one open socket (any process)."""
    if not user_ids:
        return set()
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    for user_id in user_ids:
        pipe.zcount(_sockets_key(user_id), now, "+inf")
    return {u for u, live in zip(user_ids, pipe.execute(), strict=True) if live}


def shows_presence(user_ids: list[str]) -> set[str]:
    """Those of ``user_ids`` whose ``privacy.showPresence`` is true (default)."""
    stored: dict[str, Any] = dict(db.session.execute(
        select(UserSettings.user_id, UserSettings.privacy).where(UserSettings.user_id.in_(user_ids))
    ).all()) if user_ids else {}
    return {u for u in user_ids if preferences.merged_privacy(stored.get(u)).get("showPresence", True)}


def coop_mates(user_id: str) -> list[str]:
    """The other active members of ``user_id``'s coop."""
    mine = select(CooperativeMember.cooperative_id).where(CooperativeMember.user_id == user_id, is_active_member())
    return [u for u in db.session.scalars(
        select(CooperativeMember.user_id).where(is_active_member(), CooperativeMember.cooperative_id.in_(mine))
    ) if u != user_id]


def audience(user_id: str) -> list[str]:
    """Who may see ``user_id``'s presence: their active coop-mates and their
    friends (``relations.friend_ids``)."""
    return list(dict.fromkeys([*coop_mates(user_id), *relations.friend_ids(user_id)]))


def visible(viewer_id: str, user_ids: list[str], *, viewer_here: bool = False) -> dict[str, dict[str, Any]]:
    """Presence of ``user_ids`` as ``viewer_id`` may see it: the viewer
    themself, and those in whose ``audience`` the viewer is with
    ``showPresence`` on; anyone else is offline with no last activity.
    ``viewer_here``: a page being rendered for the viewer, whose socket
    opens once it loads: their own "offline" shows as online."""
    allowed = set(shows_presence(user_ids)) & set(audience(viewer_id))
    allowed.add(viewer_id)
    raw = raw_status([u for u in user_ids if u in allowed])
    hidden = {"status": PresenceStatus.OFFLINE.value, "last_active_at": None}
    seen = {u: raw.get(u, hidden) for u in user_ids}
    if viewer_here and viewer_id in seen and seen[viewer_id]["status"] == PresenceStatus.OFFLINE:
        seen[viewer_id] = {**seen[viewer_id], "status": PresenceStatus.ONLINE.value}
    return seen


def announce_if_changed(user_id: str) -> str:
    """Publish the user's status to their audience (not to themself) when it
    differs from the last one announced. Returns the current status.

    Called outside any transaction (socket life, and after a post's, read's
    or typing's own transaction ended): each read below is its own short
    transaction, so a socket closing while a migration or TRUNCATE waits
    for its tables never holds one table's lock while waiting for another's.
    """
    now = time.time()
    pipe = get_redis().pipeline(transaction=False)
    _queue_state(pipe, user_id, now)
    return _announce(user_id, *_read_state(pipe.execute(), now))


STATE_REPLIES = 3  # replies of one ``_queue_state``


def _queue_state(pipe, user_id: str, now: float) -> None:
    """Queue the reads of the user's status and last announced one
    (``STATE_REPLIES`` replies)."""
    pipe.zcount(_sockets_key(user_id), now, "+inf")
    pipe.zcount(_active_key(user_id), now, "+inf")
    pipe.hmget(_state_key(user_id), "choice", "last_active_at", "published")


def _read_state(replies: list[Any], now: float) -> tuple[dict[str, Any], str | None]:
    """``({"status", "last_active_at"}, published)`` from ``_queue_state``'s replies."""
    live, active, (choice, last_active, published) = replies
    return {"status": _status(live, active, choice, last_active, now), "last_active_at": last_active}, published


def _announce(user_id: str, current: dict[str, Any], previous: str | None) -> str:
    """``announce_if_changed`` once the state is read."""
    if previous == current["status"]:
        return current["status"]
    get_redis().hset(_state_key(user_id), "published", current["status"])
    shown = user_id in shows_presence([user_id])
    db.session.commit()
    if not shown:
        return current["status"]
    people = coop_mates(user_id)
    db.session.commit()
    people += relations.friend_ids(user_id)
    db.session.commit()
    realtime.publish_many(list(dict.fromkeys(people)), {
        "type": PRESENCE, "user_id": user_id, "status": current["status"],
        "last_active_at": current["last_active_at"],
    })
    return current["status"]
