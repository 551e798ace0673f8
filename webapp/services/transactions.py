"""Work tied to the fate of the current transaction: ``after_commit`` (Django's
``transaction.on_commit``, Zulip's ``send_event_on_commit``) and its twin
``before_commit``.

A socket push, an RQ job or a cache drop must follow a change only once the
change is visible to everyone, and never for a change that was rolled back.
So a service registers the side effect while it writes::

    transactions.after_commit(lambda: realtime.coop_changed(user_ids, coop_id))

and the callback runs right after the **outermost** COMMIT of the session.
A callback registered inside a savepoint (``begin_nested``) is dropped when
that savepoint rolls back (or any savepoint or transaction around it);
releasing a savepoint keeps it waiting for the outer commit. A rollback of
the whole transaction drops every callback. Outside any transaction a
callback runs at once.

Inside an ``after_commit`` callback the session can no longer emit SQL
(SQLAlchemy's ``after_commit`` event): read what the callback needs before,
or in a ``before_commit`` callback, which runs at the outermost commit
while the transaction is still open (after ``sequences.assign_pending`` if
the callback calls it; that is idempotent). A ``before_commit`` callback may
register ``after_commit`` callbacks. An exception in a ``before_commit``
callback fails the commit; one in an ``after_commit`` callback is logged
and the next callbacks still run (the commit stands).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable, event
from sqlalchemy.orm import Session, SessionTransaction

from ..extensions import db

log = logging.getLogger(__name__)

_KEY = "transaction_callbacks"  # session.info: {"before": [...], "after": [...]}


@dataclass
class _Callback:
    func: Callable[[], object]
    savepoint: SessionTransaction | None  # innermost savepoint open when it was registered


def _session(session: Session | None) -> Session:
    return session if session is not None else db.session()


def _register(phase: str, callback: Callable[[], object], session: Session | None) -> None:
    session = _session(session)
    if not session.in_transaction():
        callback()
        return
    queues = session.info.setdefault(_KEY, {"before": [], "after": []})
    queues[phase].append(_Callback(callback, session.get_nested_transaction()))


def after_commit(callback: Callable[[], object], *, session: Session | None = None) -> None:
    """Run ``callback()`` once the outermost transaction of ``session``
    (default: ``db.session``) commits; never if what it belongs to rolls
    back. Callbacks run in registration order. See the module docstring."""
    _register("after", callback, session)


def before_commit(callback: Callable[[], object], *, session: Session | None = None) -> None:
    """Run ``callback()`` at the outermost commit of ``session``, just before
    it (the session can still read and write), unless rolled back first."""
    _register("before", callback, session)


def idle(session: Session | None = None) -> bool:
    """True when ``session`` (default ``db.session``) is on PostgreSQL, has
    not begun a transaction and holds no unflushed change: a write now can
    be a statement of its own in autocommit (``autocommit``) without
    splitting anything the caller meant to commit together."""
    if db.engine.dialect.name != "postgresql":
        return False
    if session is None:
        # No session yet in this request (the common case for a polled read):
        # nothing it could have begun or left pending, and none is created
        # just to ask (building one and removing it at teardown cost ~0.1 ms).
        if not db.session.registry.has():
            return True
        session = db.session()
    return not session.in_transaction() and not (session.new or session.dirty or session.deleted)


@contextmanager
def autocommit() -> Iterator[Connection]:
    """A pooled connection in autocommit: each statement is its own
    transaction, with no BEGIN or COMMIT round trip of its own. For a read
    or a write that is one statement (``read``; ``notifications.notify``
    when ``idle``)."""
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def session_connection() -> tuple[Connection, bool]:
    """``(the session's connection, in autocommit)``: in autocommit when the
    session is ``idle`` (PostgreSQL, nothing begun), for a write that is
    one atomic statement after reads (a coop post): no BEGIN and no COMMIT
    round trip. Unlike ``autocommit``, it stays the session's, so ORM
    writes and ``after_commit`` callbacks go with it; ``begin`` opens a
    transaction on it when more than one statement must commit together.
    Otherwise the session's connection in its transaction, as for any
    write. The isolation level returns to the default with the connection
    (SQLAlchemy resets it at checkin)."""
    if not idle():
        return db.session.connection(), False
    return db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"}), True


def begin(connection: Connection) -> None:
    """Open a transaction on an autocommit ``session_connection``: what
    follows commits or rolls back with the session (the driver sends
    ``COMMIT`` or ``ROLLBACK`` only while a transaction is open)."""
    connection.exec_driver_sql("BEGIN")


def read(statement: Executable, parameters: dict[str, Any] | None = None) -> Sequence[Any]:
    """The rows (``Row`` objects) of ONE read-only Core statement (a polled
    read: the unread count, a page, a profile), fetched.

    When the session has not begun a transaction (nothing read or written
    through it in this request yet) and the database is PostgreSQL, on a
    pooled connection in autocommit: no BEGIN before it and no ROLLBACK
    after it, two round trips fewer (docs/PERFORMANCE.md). Under READ
    COMMITTED a statement sees the same snapshot either way; a statement
    that must agree with another read is one statement (subqueries).
    Otherwise on the session's connection (pending ORM changes flushed
    first, as autoflush would), so it sees what this transaction wrote.
    """
    if not idle():
        session = db.session()
        if session.new or session.dirty or session.deleted:
            session.flush()
        return session.connection().execute(statement, parameters).all()
    with autocommit() as connection:
        return connection.execute(statement, parameters).all()


def pending(session: Session | None = None) -> int:
    """How many callbacks are waiting in ``session`` (both phases)."""
    queues = _session(session).info.get(_KEY) or {}
    return sum(len(v) for v in queues.values())


def _within(tx: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while tx is not None:
        if tx is ancestor:
            return True
        tx = tx.parent
    return False


def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint is being released; the outer transaction decides
    queues = session.info.get(_KEY)
    while queues and queues["before"]:  # a callback may register more
        batch, queues["before"] = queues["before"], []
        for item in batch:
            item.func()


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return
    queues = session.info.pop(_KEY, None)
    for item in (queues or {}).get("after", ()):
        try:
            item.func()
        except Exception:  # noqa: BLE001 - the commit stands; one failure must not stop the rest
            log.exception("after-commit callback %r failed", item.func)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    queues = session.info.get(_KEY)
    if not queues:
        return
    if not previous.nested:
        session.info.pop(_KEY, None)
        return
    for phase in ("before", "after"):  # drop only what the rolled-back savepoint added
        queues[phase] = [c for c in queues[phase] if not _within(c.savepoint, previous)]


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended (a commit already ran them)
        session.info.pop(_KEY, None)


def _install() -> None:
    if not event.contains(db.session, "after_commit", _after_commit):
        event.listen(db.session, "before_commit", _before_commit)
        event.listen(db.session, "after_commit", _after_commit)
        event.listen(db.session, "after_soft_rollback", _after_soft_rollback)
        event.listen(db.session, "after_transaction_end", _after_transaction_end)


_install()
