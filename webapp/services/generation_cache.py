"""Cache-aside in Redis with a generation check: answers that are polled far
more often than they change, kept per *owner* (a user id) and served only
while nothing that feeds them has committed since they were read.

A ``GenerationCache`` named ``name`` keeps one hash per owner,
``{ns}:<name>:<owner>``, holding:

- ``g``: the owner's generation, a random token every change writes **after
  its commit** (``forget``);
- per cached value (a *slot*): the value under the slot's name and, under
  ``<slot>@``, the generation it was read under.

A cache may also have a *shared* generation, one string key for every
owner (``{ns}:<shared>``), for facts that feed every owner's answer at once
(a leaderboard rank): a value is then read under the pair of the owner's
and the shared generation, and ``forget(..., shared=True)`` outdates every
owner's value at once. The shared key has no expiry, so a Redis that evicts
only keys with one (``volatile-*`` policies, or ``noeviction``) never drops
it alone.

A reader (``lookup``) takes the generation before it reads the database and
stores the value with that generation after (``fill``). A value is served
only while its generation is current. A change that committed after the
reader's statement took its snapshot writes a new generation after that
commit, so after the reader's ``HMGET``: the value it stores never matches.
Tokens are random rather than a counter, so a hash that expired and was
written again cannot bring an old generation back (the owner's ``g`` and
its values live and expire in the same hash). This is the stale-set problem
of "Scaling Memcache at Facebook" (NSDI 2013, §3.2.1), solved with a
generation instead of a lease.

Every write of what feeds a cache must be followed by ``forget``: ORM
inserts, updates and deletes of the models passed to ``track`` do it
themselves (mapper events, after the outermost commit, before any other
after-commit listener, so before a push); a Core or text statement inside
a transaction calls ``changed`` (forgotten at its commit), or ``forget``
after its own commit. If a process dies between a commit and its forget,
or Redis cannot be written then, an old value can be served until the hash
expires (the cache's TTL setting: seconds without a change). When Redis
cannot be read, reads go to the database.
"""
from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from flask import current_app, g, has_app_context
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, object_session

from ..extensions import db, get_redis, piggyback, redis_key

_NONE = "-"  # the generation of a hash (or shared key) no change has written yet
_SHARED = object()  # in a transaction's set of changed owners: the shared generation too
_PREFETCHED = "generation_cache_prefetched"  # flask.g: answers read in the request's first round trip


class GenerationCache:
    """Values of one kind, cached per owner and checked by generation (see
    the module). ``name``: the key prefix and the logger's word for it;
    ``ttl_setting``: the config key giving seconds a hash lives after its
    last write; ``shared``: the key of a generation every owner shares, or
    None."""

    def __init__(self, name: str, ttl_setting: str, *, shared: str | None = None) -> None:
        self.name = name
        self.ttl_setting = ttl_setting
        self.shared = shared
        self._info_key = f"generation_cache:{name}"  # session.info: what this transaction changed
        self._installed = False
        self._tracked: set[type] = set()

    def key(self, owner: str) -> str:
        """The owner's Redis hash."""
        return redis_key(self.name, owner)

    def _ttl(self) -> int:
        return int(current_app.config[self.ttl_setting])

    # ---- reading ---------------------------------------------------------------------

    def lookup(self, owner: str, slot: str) -> tuple[str | None, str | None]:
        """``(the cached value, None)`` when it is current, else ``(None,
        generation)``: read the database, then ``fill(owner, slot,
        generation, value)``. ``(None, None)`` when Redis cannot be read (do
        not fill). One round trip (``HMGET``, with the shared key's ``GET``
        in the same pipeline when there is one), or none when the request's
        first round trip already read it (``prefetch``)."""
        done = g.get(_PREFETCHED) if has_app_context() else None
        if done and (self.name, owner, slot) in done:
            return done.pop((self.name, owner, slot))
        try:
            if self.shared is None:
                # str: the app's client decodes answers (extensions.get_redis).
                return self._answer([get_redis().hmget(self.key(owner), self._fields(slot))])
            pipe = get_redis().pipeline(transaction=False)
            self._queue(pipe, owner, slot)
            return self._answer(pipe.execute())
        except RedisError:
            current_app.logger.warning("%s read from the database: Redis cannot be read", self.name)
            return None, None

    @staticmethod
    def _fields(slot: str) -> tuple[str, str, str]:
        return f"{slot}@", slot, "g"

    def _queue(self, pipe: Any, owner: str, slot: str) -> int:
        """Queue ``lookup``'s reads on ``pipe``; returns how many answers they take."""
        pipe.hmget(self.key(owner), self._fields(slot))
        if self.shared is None:
            return 1
        pipe.get(redis_key(self.shared))
        return 2

    def _answer(self, answers: list[Any]) -> tuple[str | None, str | None]:
        """``lookup``'s result from the answers of ``_queue``'s reads."""
        cached_under, value, generation = answers[0]
        if self.shared is not None:
            generation = f"{generation or _NONE}/{answers[1] or _NONE}"
        generation = generation or _NONE
        if value is not None and cached_under == generation:
            return value, None
        return None, generation

    def fill(self, owner: str, slot: str, generation: str, value: str | int) -> None:
        """Cache ``value`` (text or integer), read from the database after
        ``lookup`` returned ``generation``. Never raises: what is not cached
        is read again. Nothing is stored while this request's transaction
        has written what the cache reads: it may yet roll back."""
        if db.session.registry.has() and db.session.info.get(self._info_key):
            return
        key = self.key(owner)
        try:
            pipe = get_redis().pipeline(transaction=False)
            pipe.hset(key, mapping={f"{slot}@": generation, slot: value})
            pipe.expire(key, self._ttl())
            pipe.execute()
        except RedisError:
            current_app.logger.warning("could not cache the %s of %s", self.name, owner)

    # ---- forgetting ------------------------------------------------------------------

    def forget(self, owners: Iterable[str], *, shared: bool = False) -> None:
        """After a commit that changed what these owners' values read (and,
        with ``shared``, what every owner's values read): a new generation,
        so nothing read before the commit is served. One round trip. Never
        raises (logged): the hash expires on its own."""
        ids = set(owners)
        if not ids and not shared:
            return
        try:
            pipe = get_redis().pipeline(transaction=False)
            self.forget_into(pipe, ids, shared=shared)
            pipe.execute()
        except RedisError:
            current_app.logger.exception("could not expire the cached %s of %s", self.name, sorted(ids))

    def forget_into(self, pipe: Any, owners: Iterable[str], *, shared: bool = False) -> None:
        """``forget``'s commands queued on ``pipe`` (a Redis pipeline the
        caller executes), to share a round trip with what follows the commit."""
        ttl = self._ttl()
        for owner in set(owners):
            key = self.key(owner)
            pipe.hset(key, "g", secrets.token_hex(8))
            pipe.expire(key, ttl)
        if shared:
            if self.shared is None:
                raise ValueError(f"the {self.name} cache has no shared generation")
            pipe.set(redis_key(self.shared), secrets.token_hex(8))

    def changed(self, owners: Iterable[str] = (), *, shared: bool = False) -> None:
        """Inside a transaction of ``db.session``, for a Core or text
        statement: forget these owners (and the shared generation) after
        the outermost commit, as the ORM events do; nothing when it rolls back."""
        pending = db.session.info.setdefault(self._info_key, set())
        pending.update(owners)
        if shared:
            pending.add(_SHARED)

    # ---- ORM writes forget by themselves ---------------------------------------------

    def track(self, model: type, owner_of: Callable[[Any], str | None], *,
              shared_on: Collection[str] = ()) -> None:
        """Forget ``owner_of(row)`` after the commit of any ORM insert,
        update or delete of a ``model`` row, and the shared generation too
        when the event is in ``shared_on`` (``"insert"``, ``"update"``,
        ``"delete"``). Idempotent per model."""
        if model in self._tracked:
            return
        self._tracked.add(model)
        for name in ("insert", "update", "delete"):
            # before_delete: the row can still be read if its columns were expired.
            when = "before_delete" if name == "delete" else f"after_{name}"
            also_shared = name in shared_on

            def row_changed(_mapper: Any, _connection: Any, target: Any, also_shared: bool = also_shared) -> None:
                session = object_session(target)
                if session is None:
                    return
                pending = session.info.setdefault(self._info_key, set())
                owner = owner_of(target)
                if owner is not None:
                    pending.add(owner)
                if also_shared:
                    pending.add(_SHARED)

            event.listen(model, when, row_changed)
        if not self._installed:
            self._installed = True
            # First among the after-commit listeners: forgotten before any
            # transactions.after_commit callback pushes the change to a
            # socket, whose client may read at once.
            event.listen(db.session, "after_commit", self._after_commit, insert=True)
            event.listen(db.session, "after_transaction_end", self._after_transaction_end)

    def _after_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a savepoint was released; the outer commit decides
        pending = session.info.pop(self._info_key, None)
        if pending:
            shared = _SHARED in pending
            pending.discard(_SHARED)
            self.forget(pending, shared=shared)

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        # The outermost transaction rolled back: nothing changed. A rolled-back
        # savepoint keeps its owners: forgetting too much only costs a re-read.
        if transaction.parent is None:
            session.info.pop(self._info_key, None)


# ---- read in the request's first Redis round trip ---------------------------------


def prefetch(cache: GenerationCache, slot: str, *, owner: str | None = None) -> Callable[[Callable], Callable]:
    """View decorator (put it right under the route's): ``cache.lookup(owner,
    slot)`` is read in the request's first Redis round trip, the bearer
    token's revocation check (``accounts.verify_token``) or the rate-limit
    hit (``extensions.OneTripRedisStorage``), and the view's own ``lookup``
    then takes that answer instead of asking Redis again. ``owner``: None
    for the bearer caller's own value; else the name of the view argument
    that names the owner, for what an anonymous request reads (the public
    answer; not read in a bearer caller's round trip: their answer is their own).
    A request with neither round trip reads as usual."""
    def decorate(view: Callable) -> Callable:
        view.prefetch = (*getattr(view, "prefetch", ()), (cache, slot, owner))  # type: ignore[attr-defined]
        return view
    return decorate


def piggyback_view_reads(view: Callable | None, view_args: dict[str, Any] | None) -> None:
    """before_request: hand the view's ``prefetch`` reads to the request's
    first Redis round trip (``extensions.piggyback``)."""
    wanted = getattr(view, "prefetch", ())
    if wanted:
        piggyback(functools.partial(_queue_reads, wanted, view_args or {}))


def _queue_reads(wanted: Iterable[tuple[GenerationCache, str, str | None]], view_args: dict[str, Any],
                 pipe: Any, caller_id: str | None) -> Callable[[Iterator[Any]], None]:
    """Queue ``wanted``'s reads on ``pipe``; returns the function that takes
    their answers from the pipe's (the iterator is at the first of them)
    and keeps them for this request's ``lookup``."""
    queued = []
    for cache, slot, arg in wanted:
        if arg is not None and caller_id is not None:
            continue  # the public answer; a logged-in caller's is their own
        owner = caller_id if arg is None else view_args.get(arg)
        if isinstance(owner, str):
            queued.append((cache, owner, slot, cache._queue(pipe, owner, slot)))

    def keep(answers: Iterator[Any]) -> None:
        done = g.setdefault(_PREFETCHED, {})
        for cache, owner, slot, taken in queued:
            done[(cache.name, owner, slot)] = cache._answer(_text([next(answers) for _ in range(taken)]))
    return keep


def _text(value: Any) -> Any:
    # The rate limiter's client answers bytes; the app's answers str.
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_text(item) for item in value]
    return value
