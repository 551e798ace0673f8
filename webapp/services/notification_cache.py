"""What clients poll about their notifications, cached in Redis and checked
by generation: the unread count and the newest page of the list.

``GET /api/notifications/unread-count`` and ``GET /api/notifications``
(first page, no filter) are the most polled routes: every open tab, every
frontend timer. Between two changes of a user's notifications their answer
is the same, so it is kept in the hash ``{ns}:notifications:<user_id>`` and
a poll costs one Redis ``HMGET`` instead of a database round trip
(docs/PERFORMANCE.md).

The hash holds:

- ``g``: the generation, a random token every change writes **after its
  commit** (``forget``);
- per cached value (a *slot*: ``count``, ``page:20`` ...): the value under
  the slot's name and, under ``<slot>@``, the generation it was read under.

A reader (``lookup``) takes ``g`` before it reads the database and stores
the value with that generation after (``fill``). A value is served only
while its generation is ``g``. A change that committed after the reader's
statement took its snapshot writes a new ``g`` after that commit, so after
the reader's ``HMGET``: the value it stores never matches. Tokens are random
rather than a counter, so a hash that expired and was written again cannot
bring an old generation back. This is cache-aside with a version check (the
stale-set problem of "Scaling Memcache at Facebook", NSDI 2013, §3.2.1,
solved with a generation instead of a lease).

Every write of the ``notifications`` table must be followed by ``forget``
for the users it touched: ORM inserts, updates and deletes of
``Notification`` objects do it themselves (mapper events, after the
outermost commit); a Core or text statement calls ``forget`` itself
(``notifications._store_alone``, ``mark_all_read``, ``purge_older_than``,
``demo.reset_mining_data``). If a process dies between a commit and its
``forget``, or Redis cannot be written then, an old value can be served
until the hash expires (``NOTIFICATION_CACHE_TTL`` seconds without a
change, default 300). When Redis cannot be read, reads go to the database.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, object_session

from ..extensions import db, get_redis, redis_key
from ..models import Notification

COUNT = "count"  # the unread count (``notifications.cached_unread_count``)
_NO_GENERATION = "-"  # the generation of a hash no change has written ``g`` into yet
_CHANGED = "notification_cache_changed"  # session.info: user ids whose rows this transaction wrote


def _key(user_id: str) -> str:
    return redis_key("notifications", user_id)


def page_slot(limit: int) -> str:
    """The slot of the newest page of ``limit`` items, without filters."""
    return f"page:{limit}"


def lookup(user_id: str, slot: str) -> tuple[str | None, str | None]:
    """``(the cached value, None)`` when it is current, else ``(None,
    generation)``: read the database, then ``fill(user_id, slot,
    generation, value)``. ``(None, None)`` when Redis cannot be read (do
    not fill). One ``HMGET``."""
    try:
        # str: the app's client decodes answers (extensions.get_redis).
        fields: list[str | None] = get_redis().hmget(_key(user_id), ("g", f"{slot}@", slot))  # type: ignore[assignment]
        generation, cached_under, value = fields
    except RedisError:
        current_app.logger.warning("notifications read from the database: Redis cannot be read")
        return None, None
    generation = generation or _NO_GENERATION
    if value is not None and cached_under == generation:
        return value, None
    return None, generation


def fill(user_id: str, slot: str, generation: str, value: str | int) -> None:
    """Cache ``value`` (text), read from the database after ``lookup``
    returned ``generation``. Never raises: what is not cached is read again."""
    key = _key(user_id)
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hset(key, mapping={f"{slot}@": generation, slot: value})
        pipe.expire(key, current_app.config["NOTIFICATION_CACHE_TTL"])
        pipe.execute()
    except RedisError:
        current_app.logger.warning("could not cache the notifications of %s", user_id)


def forget(user_ids: Iterable[str]) -> None:
    """After a commit that changed these users' notifications: a new
    generation for each, so nothing read before the commit is served.
    One round trip. Never raises (logged): the hash expires on its own."""
    ids = set(user_ids)
    if not ids:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        forget_into(pipe, ids)
        pipe.execute()
    except RedisError:
        current_app.logger.exception("could not expire the cached notifications of %s", sorted(ids))


def forget_into(pipe: Any, user_ids: Iterable[str]) -> None:
    """``forget``'s commands queued on ``pipe`` (a Redis pipeline the caller
    executes), to share a round trip with what follows the commit."""
    ttl = current_app.config["NOTIFICATION_CACHE_TTL"]
    for user_id in set(user_ids):
        key = _key(user_id)
        pipe.hset(key, "g", secrets.token_hex(8))
        pipe.expire(key, ttl)


# ---- ORM writes forget by themselves -----------------------------------------------


def _row_changed(_mapper: Any, _connection: Any, target: Notification) -> None:
    session = object_session(target)
    if session is not None:
        session.info.setdefault(_CHANGED, set()).add(target.user_id)


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released; the outer commit decides
    changed = session.info.pop(_CHANGED, None)
    if changed:
        forget(changed)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction rolled back: nothing changed. A rolled-back
    # savepoint keeps its users: forgetting too much only costs a re-read.
    if transaction.parent is None:
        session.info.pop(_CHANGED, None)


def _install() -> None:
    if not event.contains(Notification, "after_insert", _row_changed):
        # before_delete: the row can still be read if user_id was expired.
        for name in ("after_insert", "after_update", "before_delete"):
            event.listen(Notification, name, _row_changed)
        # First among the after-commit listeners: forgotten before any
        # transactions.after_commit callback pushes the change to a socket,
        # whose client may poll at once.
        event.listen(db.session, "after_commit", _after_commit, insert=True)
        event.listen(db.session, "after_transaction_end", _after_transaction_end)


_install()
