"""Unbound extensions, created once and bound in ``create_app``.

Redis lives in ``app.extensions``: ``redis`` (text responses, for streams,
pub/sub and caches) and ``redis_raw`` (bytes, as RQ requires), each with its
own blocking pool, or one in-process fake server in the embedded default.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import redis as redis_lib
from flask import Flask, current_app, g, has_request_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import RedisStorage
from rq import Queue
from sqlalchemy import CursorResult, Executable, MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names so that migrations can refer to them on
# PostgreSQL and SQLite alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class Base(DeclarativeBase):
    """The SQLAlchemy 2 declarative base ``db.Model`` is built from: its
    metadata (with the naming convention) and registry become ``db.Model``'s."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# Models subclass ``Model``. At run time it is ``db.Model`` (Base's metadata
# and registry plus Flask-SQLAlchemy's bind and query mixins); a type checker
# cannot follow a base class read from an instance attribute, so it sees Base.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()


class OneTripRedisStorage(RedisStorage):
    """Flask-Limiter's Redis storage (``limits``), with the hit and the
    window read for the ``X-RateLimit-*`` headers in ONE round trip.

    The stock storage increments with one script, then reads the count and
    the TTL back for the headers: three round trips per limited request.
    Here the increment script also returns the TTL; ``get`` and
    ``get_expiry`` right after a hit of the same key in the same greenlet
    (the same request: ``RequestLimit.window`` asks once) answer from it, once
    each, within a second. Every other read goes to Redis as before, so the
    counting itself (one INCRBY + EXPIRE in a script) is unchanged. The
    reads a view declared (``piggyback``) go in the hit's round trip when
    the limiter counts on the app's own Redis (``REDIS_URL``).
    Selected by ``RATELIMIT_STORAGE_URI = "webapp+redis://…"`` (config.py).
    """

    STORAGE_SCHEME = ["webapp+redis", "webapp+rediss"]
    SCRIPT_INCR_EXPIRE_TTL = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if tonumber(current) == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""

    def __init__(self, uri: str, **options: Any) -> None:
        self.redis_url = uri.replace("webapp+", "", 1)
        super().__init__(self.redis_url, **options)
        self._last = threading.local()  # per greenlet under gevent (monkey-patched)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_expire_ttl = self.get_connection().register_script(self.SCRIPT_INCR_EXPIRE_TTL.encode())

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        reads = take_piggyback()
        if reads and self.redis_url != current_app.config["REDIS_URL"]:
            reads = []  # the app's reads ride along only on the app's own Redis
        if reads:
            # The view's reads ride along (``piggyback``). EVAL, not EVALSHA:
            # a pipeline would first ask whether the script is loaded.
            pipe = cast(redis_lib.Redis, self.get_connection()).pipeline(transaction=False)
            pipe.eval(self.SCRIPT_INCR_EXPIRE_TTL, 1, self.prefixed_key(key), expiry, amount)
            count, ttl = execute_with(pipe, reads, None)
        else:
            count, ttl = self.lua_incr_expire_ttl([self.prefixed_key(key)], [expiry, amount])
        now = time.time()
        self._last.hit = {"key": key, "count": int(count), "expiry": max(int(ttl), 0) + now, "at": now}
        return int(count)

    def _fresh(self, key: str, field: str) -> Any:
        hit = getattr(self._last, "hit", None)
        if hit is None or hit["key"] != key or field not in hit or time.time() - hit["at"] > 1:
            return None
        return hit.pop(field)

    def get(self, key: str) -> int:
        count = self._fresh(key, "count")
        return count if count is not None else super().get(key)

    def get_expiry(self, key: str) -> float:
        expiry = self._fresh(key, "expiry")
        return expiry if expiry is not None else super().get_expiry(key)


login_manager = LoginManager()
mail = Mail()
sock = Sock()
csrf = CSRFProtect()
class RouteLimiter(Limiter):
    """Flask-Limiter whose before-request pass returns at once when it has
    nothing to check.

    That pass checks the application-wide, default, blueprint and meta
    limits (and the in-memory fallback once the storage failed); a route's
    own limits (``limiter.limit``, ``shared_limit``) are checked by the
    route's wrapper when the view is called. With none of the former
    configured — our case: limits are per route — the stock pass still
    resolves and evaluates an empty list on every request (about 7 % of a
    bearer JSON read, docs/PERFORMANCE.md). The test is made on every
    request from the limiter's own registries, so a default or application
    limit configured later is checked as before (``tests/test_fast_paths.py``).
    """

    def _has_limits_before_the_view(self) -> bool:
        manager = self.limit_manager
        return bool(manager._application_limits or manager._default_limits or manager._blueprint_limits
                    or self._meta_limits or self._storage_dead)

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if in_middleware and not self._has_limits_before_the_view():
            return
        super()._check_request_limit(callable_name, in_middleware)


limiter = RouteLimiter(key_func=get_remote_address, default_limits=[])


@limiter.request_filter
def _limits_off_for_this_app() -> bool:
    """True (exempt) when the serving app has ``RATELIMIT_ENABLED`` off.

    One Limiter object serves every app built in the process (the tests build
    many), and its own ``enabled`` switch is process-wide; each request asks
    its own app instead, so an app with limits on never arms another's.
    """
    return not current_app.config["RATELIMIT_ENABLED"]

# Register, token and login: per client IP, POSTs only (viewing the form is free).
auth_rate_limit = limiter.limit(
    lambda: current_app.config["AUTH_RATE_LIMIT"], methods=["POST"], error_message="Too many attempts; wait a minute."
)
# Public miner profiles: one budget per client IP shared by the JSON routes
# (endpoints 15 and 16) and the /miners/<user_id> page, so the directory
# can't be scraped fast through either door.
public_rate_limit = limiter.shared_limit(
    lambda: current_app.config["PUBLIC_RATE_LIMIT"], scope="public-profiles",
    error_message="Too many profile views from your address.",
)


def execute_dml(statement: Executable) -> int:
    """Run an INSERT/UPDATE/DELETE in the current session and return the rows
    it touched (0 when the driver does not say). DML answers a
    ``CursorResult``; ``Session.execute`` is typed as the plain ``Result``."""
    result = cast("CursorResult[Any]", db.session.execute(statement))
    return result.rowcount or 0


def sqlite_for_threads(app: Flask) -> None:
    """Embedded default (SQLite): write-ahead logging, so pages keep reading
    while the consumer thread stores the demo day, and a 30 s busy timeout,
    so a writer waits for the lock instead of failing at once."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def init_redis(app: Flask) -> None:
    """Bind the Redis clients: real ones for ``REDIS_URL``, else fakeredis —
    the serving process's own, shared on a loopback port, when one runs
    (``embedded_redis``: a CLI command's pushes then reach its sockets), else
    one in this process."""
    url = app.config["REDIS_URL"]
    if not url and not app.testing:
        from . import embedded_redis

        url = embedded_redis.attached_url()
        app.config["EMBEDDED_REDIS_ATTACHED"] = url
    if url:
        # Blocking pools: a burst of work (thousands of sockets opening or
        # closing at once under gevent) waits for a connection instead of
        # failing with MaxConnectionsError.
        size = app.config["REDIS_MAX_CONNECTIONS"]
        raw = redis_lib.Redis(connection_pool=redis_lib.BlockingConnectionPool.from_url(
            url, max_connections=size, timeout=10))
        text = redis_lib.Redis(connection_pool=redis_lib.BlockingConnectionPool.from_url(
            url, max_connections=size, timeout=10, decode_responses=True))
    else:
        import fakeredis

        server = fakeredis.FakeServer()
        app.extensions["fake_redis_server"] = server  # embedded_redis.serve shares it
        raw = fakeredis.FakeRedis(server=server)
        text = fakeredis.FakeRedis(server=server, decode_responses=True)
    app.extensions["redis"] = text
    app.extensions["redis_raw"] = raw


_PIGGYBACK = "redis_piggyback"  # flask.g: reads to send with the request's first Redis round trip


def piggyback(queue: Callable[[Any, str | None], Callable[[Iterator[Any]], None]]) -> None:
    """Send reads with this request's first Redis round trip, whichever
    comes first: the bearer token's revocation check (with the caller's id)
    or the rate-limit hit (``None``). ``queue(pipe, caller_id)`` queues
    them on that round trip's pipeline after the site's own command and
    returns the function that takes their answers from an iterator over the
    pipeline's remaining answers (``services.generation_cache.prefetch``)."""
    g.setdefault(_PIGGYBACK, []).append(queue)


def take_piggyback() -> list[Callable[[Any, str | None], Callable[[Iterator[Any]], None]]]:
    """The reads ``piggyback`` handed over, removed (so sent once); empty
    outside a request."""
    return g.pop(_PIGGYBACK, []) if has_request_context() else []


def execute_with(pipe: Any, reads: list[Callable[[Any, str | None], Callable[[Iterator[Any]], None]]],
                 caller_id: str | None) -> Any:
    """Execute ``pipe`` (one command queued: the site's own) with ``reads``
    (``take_piggyback``) queued after it, hand them their answers, and
    return the answer to the site's own command."""
    keeps = [queue(pipe, caller_id) for queue in reads]
    answers = iter(pipe.execute())
    own = next(answers)
    for keep in keeps:
        keep(answers)
    return own


def get_redis() -> redis_lib.Redis:
    """The app's Redis client with ``str`` responses."""
    return current_app.extensions["redis"]


def redis_key(*parts: object) -> str:
    """A namespaced key or channel name: ``{REDIS_NAMESPACE}:part:part``."""
    ns = current_app.config.get("REDIS_NAMESPACE") or ""
    key = ":".join(str(p) for p in parts)
    return f"{ns}:{key}" if ns else key


def get_queue(name: str = "default") -> Queue:
    """An RQ queue; jobs run inline (synchronously) in the embedded default."""
    return Queue(
        name,
        connection=current_app.extensions["redis_raw"],
        is_async=not current_app.config["EMBEDDED"],
    )
