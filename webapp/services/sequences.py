"""Per-key sequences in commit order: 1, 2, 3 … per user for notifications
(``notification_sequences.last_seq``), and per conversation for chat
messages (``conversations.last_seq``, DESIGN.md "Community").

Why not ids: an id is taken at INSERT and transactions commit in another
order, so a reader can see id 12 committed while id 11 is still in flight;
a client that resumes "after 12" then never gets 11 (with several writer
processes, 8 % of notifications were lost that way).

The mechanism: one counter row per key, advanced inside the transaction that
inserts the rows, by a conditional write::

    UPDATE conversations SET last_seq = last_seq + 1 WHERE id = :key RETURNING last_seq

The UPDATE takes the counter row's lock and keeps it until COMMIT, so a
second writer for the same key waits there until the first has committed
(or rolled back, giving the numbers back), and only then reads the new
value. Hence, per key: **seq order == commit order**, with no gaps from
rollbacks; once a reader sees seq N committed, every seq below N is
committed too (PostgreSQL makes a commit visible before it releases the
transaction's locks). A cursor "everything after seq N" can therefore never
skip a row. Discourse's MessageBus keeps one backlog id per channel the same
way. On SQLite writers are serialised by the database lock, which gives the
same order.

Deadlocks: a transaction that writes for several keys (an ingest batch, a
broadcast batch of 500 users, a coop fan-out) takes several counter locks.
``take`` always takes them in ascending key order, in one statement, so two
such transactions wait for each other in one direction only. Rows registered
with ``sequenced`` get their numbers at the outermost COMMIT, after a final
flush: their counter locks are the last locks the transaction takes and are
held only for the commit itself, never while the transaction does other work.

Two ways to use it:

- ``take(counter, {key: n})`` inside the inserting transaction, e.g. chat:
  ``seq = take(CONVERSATION_SEQ, {conversation.id: 1})[conversation.id]``
  then insert the message with that seq (the seq is known before COMMIT).
- ``sequenced(Model, counter=..., key="user_id")``: every row of ``Model``
  inserted through the ORM without a seq gets one at the outermost commit
  (notifications: callers such as ingest notify many users in event order,
  and this keeps their locks sorted and short).
"""
from __future__ import annotations

import functools
import importlib
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, bindparam, event, inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db

_PENDING = "sequences_pending"  # session.info: rows waiting for their seq


@dataclass(frozen=True)
class Counter:
    """Where a family of sequences keeps its last value: one row per key.

    ``key`` and ``last`` are columns (or ORM attributes) of one table, e.g.
    ``NotificationSequence.user_id`` / ``NotificationSequence.last_seq`` or
    ``Conversation.id`` / ``Conversation.last_seq``. With
    ``create_missing`` a key without a row gets one (an upsert starting at
    0); without it such a key is simply absent from ``take``'s answer.
    """

    key: Any
    last: Any
    create_missing: bool = False

    @property
    def key_column(self) -> Column:
        return _column(self.key)

    @property
    def last_column(self) -> Column:
        return _column(self.last)


def _column(attr: Any) -> Column:
    prop = getattr(attr, "property", None)
    return prop.columns[0] if prop is not None else attr


def take(counter: Counter, counts: Mapping[Any, int], *, session: Session | None = None) -> dict[Any, int]:
    """Advance each key's counter by ``counts[key]`` (≥ 1) in the caller's
    transaction and return ``{key: last}``: the key's new numbers are
    ``last - n + 1 … last``, in commit order (module doc).

    Locks the counter rows in ascending key order and holds them until the
    transaction ends. Keys without a counter row are absent from the answer
    unless ``counter.create_missing``. Raises ValueError for a count < 1.
    """
    session = session or db.session()
    if any(n < 1 for n in counts.values()):
        raise ValueError("every count must be at least 1")
    if not counts:
        return {}
    keys = sorted(counts)
    key_col, last_col = counter.key_column, counter.last_column
    table = key_col.table
    if counter.create_missing:
        dialect = session.connection().dialect.name
        if len(keys) == 1:  # the common case (one user's notification): a statement built once
            key, last = session.execute(_upsert_one(counter, dialect), {"b_key": keys[0], "b_n": counts[keys[0]]}).one()
            return {key: last}
        # One statement; PostgreSQL inserts (or locks and updates) the VALUES
        # rows in the order given: ascending keys.
        stmt = _dialect_insert(dialect)(table).values(
            [{key_col.name: key, last_col.name: counts[key]} for key in keys])
        stmt = stmt.on_conflict_do_update(
            index_elements=[key_col], set_={last_col.name: last_col + stmt.excluded[last_col.name]}
        ).returning(key_col, last_col)
        return {key: last for key, last in session.execute(stmt)}
    result: dict[Any, int] = {}
    for key in keys:  # one conditional UPDATE per key, in ascending order (chat: one key)
        row = session.execute(
            update(table).where(key_col == key).values({last_col: last_col + counts[key]})
            .returning(key_col, last_col)
        ).first()
        if row is not None:
            result[row[0]] = row[1]
    return result


def _dialect_insert(dialect: str) -> Any:
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - the project runs on these two
        raise NotImplementedError(f"no upsert for {dialect}")
    return importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert  # both: ON CONFLICT


@functools.cache
def _upsert_one(counter: Counter, dialect: str) -> Any:
    """``take``'s upsert for one key (``:b_key`` advanced by ``:b_n``), built
    once: a statement with ``excluded`` is compiled anew each time it is
    built, which cost as much as its round trip."""
    key_col, last_col = counter.key_column, counter.last_column
    stmt = _dialect_insert(dialect)(key_col.table).values(
        {key_col.name: bindparam("b_key"), last_col.name: bindparam("b_n")})
    return stmt.on_conflict_do_update(
        index_elements=[key_col], set_={last_col.name: last_col + stmt.excluded[last_col.name]}
    ).returning(key_col, last_col)


# ---- rows numbered at commit ---------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    counter: Counter
    key: str  # attribute of the row naming its counter key (``user_id``)
    seq: str  # attribute that receives the number (``seq``)


_specs: dict[type, _Spec] = {}


def sequenced(model: type, *, counter: Counter, key: str, seq: str = "seq") -> None:
    """Number every ``model`` row inserted through the ORM with ``seq`` unset:
    at the outermost commit of its session (``assign_pending``), per value
    of its ``key`` attribute, from ``counter``. Idempotent."""
    _specs[model] = _Spec(counter, key, seq)
    if not event.contains(model, "after_insert", _after_insert):
        event.listen(model, "after_insert", _after_insert)
    if not event.contains(db.session, "before_commit", _before_commit):
        event.listen(db.session, "before_commit", _before_commit)
        event.listen(db.session, "after_transaction_end", _after_transaction_end)


def _after_insert(mapper, connection, target) -> None:
    spec = _specs.get(type(target))
    if spec is None or getattr(target, spec.seq) is not None:
        return
    session = inspect(target).session
    if session is not None:
        session.info.setdefault(_PENDING, []).append(target)


def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:  # the outermost commit, not a savepoint release
        assign_pending(session)


def _after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def assign_pending(session: Session | None = None) -> None:
    """Give every row waiting in ``session`` its seq now: flush, take the
    counters (ascending keys, one ``take`` per counter), write the numbers
    and set them on the objects. Rows of a rolled-back savepoint, or deleted
    since, are skipped. Called by the outermost commit; callable earlier
    (idempotent). Raises LookupError for a key without a counter row when
    the counter does not create missing ones."""
    session = session or db.session()
    if not session.info.get(_PENDING):
        return
    session.flush()  # every other write of the transaction happens before the counter locks
    pending = session.info.pop(_PENDING, [])
    groups: dict[_Spec, dict[Hashable, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for obj in pending:
        spec = _specs[type(obj)]
        if inspect(obj).persistent and getattr(obj, spec.seq) is None:
            groups[spec][getattr(obj, spec.key)].append(obj)
    for spec, by_key in groups.items():
        last = take(spec.counter, {key: len(objs) for key, objs in by_key.items()}, session=session)
        mapper = inspect(next(iter(by_key.values()))[0]).mapper
        (pk,) = mapper.primary_key
        numbered: list[tuple[Any, int]] = []
        for key, objs in by_key.items():
            if key not in last:
                raise LookupError(f"no counter row for {key!r} in {spec.counter.key_column.table.name}")
            objs.sort(key=lambda o: getattr(o, pk.key))  # within one commit: insert order
            first = last[key] - len(objs) + 1
            numbered += [(obj, first + i) for i, obj in enumerate(objs)]
        column = mapper.columns[spec.seq]
        session.execute(
            update(mapper.local_table).where(pk == bindparam("b_pk")).values({column: bindparam("b_seq")}),
            [{"b_pk": getattr(obj, pk.key), "b_seq": value} for obj, value in numbered],
        )
        for obj, value in numbered:
            set_committed_value(obj, spec.seq, value)
