"""Mining events in: parsing and validation, storage, rollups, worker state,
and the notifications and activities they raise.

The pool publishes each event to the Redis Stream ``mining:{event}`` with the
fields ``event``, ``ts`` (unix seconds as text), ``source`` and ``data`` (JSON
text; API.md "Mining events in"). ``webapp.services.ingest`` reads the
streams; this module decides what an entry means:

* ``parse_entry`` turns one stream entry into a ``MiningEventIn`` or raises
  ``MalformedEvent`` (the caller dead-letters it).
* ``ingest_batch`` stores a batch once (``ON CONFLICT (stream, entry_id) DO
  NOTHING RETURNING``) and applies the rollups, worker transitions,
  notifications and activities of the rows actually inserted, so a
  redelivered entry changes nothing. One transaction, one commit.
* ``sweep_offline_workers`` marks workers silent for ``WORKER_OFFLINE_AFTER``
  seconds offline (run every minute by the scheduler).

Rollup definitions (API.md public stats): ``total_shares`` counts accepted
shares, ``best_difficulty`` is the highest ``sdiff`` of an accepted share,
``last_share_at`` is the time of the latest accepted share. Every rollup write
is a single SQL upsert whose arithmetic runs in the database (``+``, greatest,
least), and worker rows are locked for the transaction, so several consumers
may run at once.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from flask import current_app
from sqlalchemy import Text, bindparam, case, delete, or_, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..formatting import block_display, display_hash, format_difficulty, format_hashrate, worker_label  # noqa: F401
from ..formatting import format_duration as _duration
from ..models import MinerStats, MiningEvent, Notification, User, UserActivity, WorkerStatus, iso, utcnow
from . import activity as activity_service
from . import bounds, inputs
from . import notifications as notification_service

log = logging.getLogger("webapp.mining")

# API.md: the seven upstream events, one stream each.
EVENTS = (
    "share_submitted",
    "block_found",
    "miner_connected",
    "miner_disconnected",
    "hashrate_update",
    "share_best_diff",
    "new_block_network",
)
STREAM_PREFIX = "mining:"
STREAMS = tuple(f"{STREAM_PREFIX}{event}" for event in EVENTS)
# Not "mining:..." so that nothing reading mining:* mistakes it for an event stream.
DEAD_LETTER_STREAM = "mining-dead-letter"

# Bounds that keep every stored value inside its column (a value the database
# would refuse must be dead-lettered here, never block a batch).
MAX_ENTRY_ID = 32  # mining_events.entry_id; Redis ids can reach 41 characters
MAX_USER = 128
MAX_WORKER = 255
MAX_SOURCE = 64
MAX_DATA_CHARS = 64 * 1024  # characters of the data JSON text
MAX_USERAGENT = 255
MIN_TS = bounds.MIN_TS  # 2009-01-01, before the first Bitcoin block
MAX_FUTURE_SECONDS = bounds.MAX_FUTURE_SECONDS  # a clock a day ahead is a bad entry, not a time


def stream_name(event: str) -> str:
    """The stream of one event type: ``mining:{event}``."""
    return f"{STREAM_PREFIX}{event}"


class MalformedEvent(ValueError):
    """A stream entry that can never be stored: the message says why."""


@dataclass(slots=True)
class MiningEventIn:
    """One validated stream entry. ``ts`` is aware UTC; ``data`` is the parsed
    JSON object; ``user``/``worker``/``accepted`` are lifted from it."""

    stream: str
    entry_id: str
    event: str
    ts: datetime
    source: str | None
    data: dict[str, Any]
    user: str | None = None
    worker: str | None = None
    accepted: bool | None = None
    raw_data: str | None = None  # the JSON text as read

    @property
    def key(self) -> tuple[str, str]:
        return self.stream, self.entry_id


# ---- parsing ------------------------------------------------------------------

_STR, _NUM, _INT, _BOOL = "string", "number", "integer", "boolean"
_H, _D = bounds.MAX_HASHRATE, bounds.MAX_DIFFICULTY
# Per event: data field -> (type, required, upper bound of a number, unit).
# Every number is also finite and >= 0; the bounds and their sources are in
# services/bounds.py. ``None``: no upper bound beyond a finite float (see
# block_found). Extra fields are kept as they are.
_SPECS: dict[str, dict[str, tuple[str, bool, float | None, str]]] = {
    "share_submitted": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "sdiff": (_NUM, True, _D, ""),
        "accepted": (_BOOL, True, None, ""), "diff": (_NUM, False, _D, ""), "reject_reason": (_STR, False, None, ""),
    },
    "share_best_diff": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "new_best": (_NUM, True, _D, ""),
        "prev_best": (_NUM, False, _D, ""), "timeframe": (_STR, False, None, ""),
    },
    "hashrate_update": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "hashrate_1h": (_NUM, True, _H, " H/s"),
        "hashrate_1m": (_NUM, False, _H, " H/s"), "hashrate_5m": (_NUM, False, _H, " H/s"),
        "hashrate_1d": (_NUM, False, _H, " H/s"),
    },
    "miner_connected": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "useragent": (_STR, False, None, ""),
        "ip": (_STR, False, None, ""), "initial_diff": (_NUM, False, _D, ""),
    },
    "miner_disconnected": {
        # The upper bound of session_duration depends on ts (parse_entry).
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "ip": (_STR, False, None, ""),
        "session_duration": (_NUM, False, None, " s"),
    },
    # Not in the shared day; tolerant: only the finder is required. What the
    # pool said about a block is the record: a height, hash or difficulty no
    # chain could have is stored as sent and left out of the notification
    # (``block_display``), never a reason to lose the block.
    "block_found": {
        "user": (_STR, True, None, ""), "worker": (_STR, False, None, ""), "height": (_INT, False, None, ""),
        "hash": (_STR, False, None, ""), "diff": (_NUM, False, None, ""), "sdiff": (_NUM, False, None, ""),
    },
    "new_block_network": {
        "height": (_INT, False, bounds.MAX_HEIGHT, ""), "hash": (_STR, False, None, ""),
        "diff": (_NUM, False, _D, ""),
    },
}


def _reject_constant(name: str) -> None:
    raise MalformedEvent(f"data contains {name}, which is not a JSON number")


# One decoder, built once: passing options to json.loads builds one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _is_str(value: Any) -> bool:
    return type(value) is str and value != ""


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _number_upto(upper: float):
    """JSON numbers decode to exactly int or float; bool is neither. An int
    compares exactly with the float bound, however large it is."""
    def check(value: Any) -> bool:
        return (type(value) is float or type(value) is int) and 0 <= value <= upper
    return check


def _integer_upto(upper: float | None):
    if upper is None:
        return lambda value: type(value) is int and value >= 0
    return lambda value: type(value) is int and 0 <= value <= upper


_FLOAT_MAX = sys.float_info.max  # an integer beyond it cannot become a float column


def _check(kind: str, upper: float | None):
    if kind == _NUM:
        return _number_upto(_FLOAT_MAX if upper is None else upper)
    if kind == _INT:
        return _integer_upto(upper)
    return _is_str if kind == _STR else _is_bool


# (field, check, required, kind, upper, unit) per event, for the hot loop.
_RULES = {
    event: tuple((name, _check(kind, upper), required, kind, upper, unit)
                 for name, (kind, required, upper, unit) in spec.items())
    for event, spec in _SPECS.items()
}


def _bad_value(name: str, value: Any, kind: str, upper: float | None, unit: str) -> MalformedEvent:
    """The reason for a value that failed its check: its type, or its range."""
    article = "an" if kind == _INT else "a"
    typed = {_NUM: _number_upto(_FLOAT_MAX), _INT: _integer_upto(None)}.get(kind)
    if typed is not None and upper is not None and typed(value):
        shown = f"{upper:,.0f}" if upper < 1e12 else f"{upper:.4g}"
        return MalformedEvent(f"data.{name} must be {article} {kind} from 0 to {shown}{unit} "
                              f"(the physically possible range), got {value!r:.60}")
    return MalformedEvent(f"data.{name} must be {article} {'non-empty ' if kind == _STR else ''}"
                          f"{kind}{' >= 0' if kind in (_NUM, _INT) else ''}, got {value!r:.60}")


def _fields(fields: Mapping[Any, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(event, ts, source, data) decoded from a bytes- or str-keyed mapping."""
    get = fields.get
    if fields and isinstance(next(iter(fields)), bytes):
        raw = (get(b"event"), get(b"ts"), get(b"source"), get(b"data"))
    else:
        raw = (get("event"), get("ts"), get("source"), get("data"))
    try:
        return tuple(v.decode("utf-8") if type(v) is bytes else (None if v is None else str(v))  # type: ignore
                     for v in raw)
    except UnicodeDecodeError:
        raise MalformedEvent("a field is not valid UTF-8") from None


def parse_entry(stream: str, entry_id: str, fields: Mapping[Any, Any], *, now: float | None = None) -> MiningEventIn:
    """Validate one stream entry (``fields`` as read, ``bytes`` or ``str``).

    Rules: ``event`` is one of ``EVENTS`` and names this stream; ``ts`` is
    unix seconds between 2009 and a day from now; ``source`` (optional) at
    most 64 characters; ``data`` a JSON object of at most 64 Ki characters
    with the typed fields of ``_SPECS`` (numbers finite and >= 0, strings
    non-empty, ``user`` <= 128 and ``worker`` <= 255 characters, no NUL
    characters). Each number also lies in its physically possible range
    (``services/bounds.py``: hashrates <= 1e21 H/s, difficulties <= the
    difficulty-1 target ~2.7e67, network heights <= 10,000,000, a session no
    longer than since 2009), except the display-only numbers of
    ``block_found`` (stored whole, clamped when shown). A JSON ``true`` is
    not a number, nor is ``"5"``. Other fields of the entry and of ``data``
    are allowed. Raises MalformedEvent with the reason.
    """
    if len(entry_id) > MAX_ENTRY_ID:
        raise MalformedEvent(f"entry id longer than {MAX_ENTRY_ID} characters")
    event, raw_ts, source, data_text = _fields(fields)
    rules = _RULES.get(event)  # type: ignore[arg-type]
    if rules is None:
        raise MalformedEvent(f"unknown or missing event {event!r:.60}")
    if stream != STREAM_PREFIX + event:  # type: ignore[operator]
        raise MalformedEvent(f"event {event!r} does not belong on stream {stream!r}")

    try:
        ts = float(raw_ts) if raw_ts is not None else math.nan
    except ValueError:
        ts = math.nan
    now = time.time() if now is None else now
    if not (MIN_TS <= ts <= now + MAX_FUTURE_SECONDS):  # also false for NaN
        raise MalformedEvent(f"ts must be unix seconds between 2009 and now, got {raw_ts!r:.40}")

    if source is not None and (len(source) > MAX_SOURCE or "\x00" in source):
        raise MalformedEvent("source is longer than 64 characters or contains NUL")

    if data_text is None:
        raise MalformedEvent("the data field is missing")
    if len(data_text) > MAX_DATA_CHARS:
        raise MalformedEvent("data is larger than 64 KiB")
    try:
        data = _DECODER.decode(data_text)
    except MalformedEvent:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"data is not valid JSON: {exc}"[:200]) from None
    if type(data) is not dict:
        raise MalformedEvent("data must be a JSON object")
    if "\\u" in data_text:
        # Escapes may hide NUL or lone surrogates, which PostgreSQL refuses.
        if "\\u0000" in data_text:
            raise MalformedEvent("data contains a NUL character")
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedEvent("data contains an invalid Unicode escape") from None

    for name, check, required, kind, upper, unit in rules:
        value = data.get(name)
        if value is None:
            if name in data:
                raise _bad_value(name, value, kind, upper, unit)
            if required:
                raise MalformedEvent(f"data.{name} is missing")
        elif not check(value):
            raise _bad_value(name, value, kind, upper, unit)
    if event == "miner_disconnected" and data.get("session_duration", 0) > ts - MIN_TS:
        # No session started before the network existed (services/bounds.py).
        raise _bad_value("session_duration", data["session_duration"], _NUM, ts - MIN_TS, " s")
    user, worker = data.get("user"), data.get("worker")
    if user is not None and len(user) > MAX_USER:
        raise MalformedEvent(f"data.user is longer than {MAX_USER} characters")
    if worker is not None and len(worker) > MAX_WORKER:
        raise MalformedEvent(f"data.worker is longer than {MAX_WORKER} characters")
    for name, value in (("user", user), ("worker", worker)):  # they end up in titles and page text
        problem = value is not None and inputs.text_problem(value)
        if problem:
            raise MalformedEvent(f"data.{name} {problem}")
    return MiningEventIn(stream, entry_id, event, datetime.fromtimestamp(ts, timezone.utc), source, data, user,  # type: ignore[arg-type]
                         worker, data.get("accepted") if event == "share_submitted" else None, data_text)



# ---- links ------------------------------------------------------------------------


def profile_link(user_id: str) -> str:
    return f"/miners/{user_id}"


# ---- storing a batch ------------------------------------------------------------


@dataclass
class BatchResult:
    """What one ``ingest_batch`` call did."""

    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    notifications: int = 0
    activities: int = 0


def _insert(table):
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _greatest(old, new):
    """greatest() that ignores NULLs, on PostgreSQL and SQLite alike."""
    return case((new.is_(None), old), (old.is_(None), new), (new > old, new), else_=old)


def _least(old, new):
    return case((new.is_(None), old), (old.is_(None), new), (new < old, new), else_=old)


def ingest_batch(events: Iterable[MiningEventIn], *, now: datetime | None = None) -> BatchResult:
    """Store ``events`` once and apply what the newly stored ones mean.

    In one transaction: insert into ``mining_events`` skipping entries already
    stored (same stream and entry id), upsert ``miner_stats`` and
    ``worker_status`` from the inserted ones only, and raise notifications and
    activities (registered users only). Commits once; the caller acknowledges
    the entries after this returns. Database errors propagate after a
    rollback.
    """
    now = now or utcnow()
    unique: dict[tuple[str, str], MiningEventIn] = {}
    for ev in events:
        unique.setdefault(ev.key, ev)
    result = BatchResult(received=len(unique))
    if not unique:
        return result
    try:
        inserted = _store_events(list(unique.values()), now)
        result.inserted = len(inserted)
        result.duplicates = result.received - result.inserted
        if inserted:
            miners, workers, notable = _aggregate(inserted, now)
            registered = _registered(miners)
            _upsert_miner_stats(miners)
            _apply_workers(workers, registered, result)
            _raise_event_notifications(notable, registered, result)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


# PostgreSQL: one statement per batch with one array per column (unnest),
# sent in binary (%b) so that nothing is escaped, with the JSON as the text
# that was read (parse_entry validated it). Measured in docs/PERFORMANCE.md.
_PG_INSERT_EVENTS = """
    INSERT INTO mining_events (stream, entry_id, event, ts, source, user_id, worker, accepted, data, received_at)
    SELECT x.stream, x.entry_id, x.event, x.ts, x.source, x.user_id, x.worker, x.accepted, x.data::jsonb, %b
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[],
                %b::boolean[], %b::text[])
         AS x(stream, entry_id, event, ts, source, user_id, worker, accepted, data)
    ON CONFLICT (stream, entry_id) DO NOTHING
    RETURNING stream, entry_id
"""


def _store_events(events: list[MiningEventIn], now: datetime) -> list[MiningEventIn]:
    by_key = {ev.key: ev for ev in events}
    connection = db.session.connection()  # the session's transaction
    if connection.dialect.name == "postgresql":
        params = (
            now,
            [ev.stream for ev in events],
            [ev.entry_id for ev in events],
            [ev.event for ev in events],
            [ev.ts for ev in events],
            [ev.source for ev in events],
            [ev.user for ev in events],
            [ev.worker for ev in events],
            [ev.accepted for ev in events],
            [ev.raw_data if ev.raw_data is not None else json.dumps(ev.data) for ev in events],
        )
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.execute(_PG_INSERT_EVENTS, params)
            return [by_key[(stream, entry_id)] for stream, entry_id in cursor.fetchall()]
    # SQLite (embedded default): SQLAlchemy's multi-row insert, with the JSON
    # text as read (SQLite's JSON is text) instead of encoding it again.
    rows = [
        {
            "stream": ev.stream,
            "entry_id": ev.entry_id,
            "event": ev.event,
            "ts": ev.ts,
            "source": ev.source,
            "user_id": ev.user,
            "worker": ev.worker,
            "accepted": ev.accepted,
            "data": ev.raw_data if ev.raw_data is not None else json.dumps(ev.data),
            "received_at": now,
        }
        for ev in events
    ]
    stmt = (
        _insert(_SQLITE_EVENTS)
        .on_conflict_do_nothing(index_elements=["stream", "entry_id"])
        .returning(_SQLITE_EVENTS.c.stream, _SQLITE_EVENTS.c.entry_id)
    )
    return [by_key[(stream, entry_id)] for stream, entry_id in connection.execute(stmt, rows)]


_SQLITE_EVENTS = sa_table(
    "mining_events",
    *(sa_column(c.name, c.type) for c in MiningEvent.__table__.c if c.name not in ("id", "data")),
    sa_column("data", Text()),
)


def _registered(user_ids: Iterable[str]) -> set[str]:
    ids = set(user_ids)
    if not ids:
        return set()
    return set(db.session.scalars(select(User.user_id).where(User.user_id.in_(ids))))


@dataclass(slots=True)
class _WorkerBatch:
    """One worker's part of a batch: share aggregates and its state events."""

    user: str | None
    last_seen: datetime
    last_share: datetime | None = None
    state_events: list[MiningEventIn] = field(default_factory=list)


_STATE_EVENTS = frozenset({"hashrate_update", "miner_connected", "miner_disconnected"})
_NOTABLE_EVENTS = frozenset({"share_best_diff", "block_found"})


def _aggregate(events: list[MiningEventIn], now: datetime):
    """One pass over the inserted events: per-miner rollup deltas, per-worker
    share aggregates and state events, and the events that notify."""
    miners: dict[str, dict[str, Any]] = {}
    workers: dict[str, _WorkerBatch] = {}
    notable: list[MiningEventIn] = []
    for ev in events:
        event, ts, user = ev.event, ev.ts, ev.user
        if user is not None:
            row = miners.get(user)
            if row is None:
                row = miners[user] = {
                    "user_id": user, "total_shares": 0, "rejected_shares": 0, "best_difficulty": 0.0,
                    "best_difficulty_at": None, "blocks_found": 0, "last_share_at": None,
                    "first_seen_at": ts, "updated_at": now,
                }
            elif ts < row["first_seen_at"]:
                row["first_seen_at"] = ts
            if event == "share_submitted":
                if ev.accepted:
                    row["total_shares"] += 1
                    sdiff = ev.data["sdiff"]
                    if sdiff > row["best_difficulty"]:
                        row["best_difficulty"], row["best_difficulty_at"] = float(sdiff), ts
                    if row["last_share_at"] is None or ts > row["last_share_at"]:
                        row["last_share_at"] = ts
                else:
                    row["rejected_shares"] += 1
            elif event == "block_found":
                row["blocks_found"] += 1
        worker = ev.worker
        if worker is not None and (event == "share_submitted" or event in _STATE_EVENTS):
            agg = workers.get(worker)
            if agg is None:
                agg = workers[worker] = _WorkerBatch(user, ts)
            elif ts > agg.last_seen:
                agg.last_seen = ts
            if event == "share_submitted":
                if ev.accepted and (agg.last_share is None or ts > agg.last_share):
                    agg.last_share = ts
            else:
                agg.state_events.append(ev)
        if event in _NOTABLE_EVENTS:
            notable.append(ev)
    notable.sort(key=lambda ev: ev.ts)
    return miners, workers, notable


def _upsert_miner_stats(miners: dict[str, dict[str, Any]]) -> None:
    """One upsert for the batch; the arithmetic runs in the database, so
    concurrent consumers add up correctly."""
    if not miners:
        return
    table = MinerStats.__table__
    stmt = _insert(table)
    new = stmt.excluded
    better = new.best_difficulty > table.c.best_difficulty
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "total_shares": table.c.total_shares + new.total_shares,
            "rejected_shares": table.c.rejected_shares + new.rejected_shares,
            "best_difficulty": case((better, new.best_difficulty), else_=table.c.best_difficulty),
            "best_difficulty_at": case((better, new.best_difficulty_at), else_=table.c.best_difficulty_at),
            "blocks_found": table.c.blocks_found + new.blocks_found,
            "last_share_at": _greatest(table.c.last_share_at, new.last_share_at),
            "first_seen_at": _least(table.c.first_seen_at, new.first_seen_at),
            "updated_at": new.updated_at,
        },
    )
    # Sorted, so that concurrent consumers lock rows in the same order.
    db.session.connection().execute(stmt, [miners[key] for key in sorted(miners)])


_STATE_FIELDS = (
    "user_id", "is_online", "state_changed_at", "connected_at", "last_seen_at", "last_sample_at",
    "hashrate_1m", "hashrate_5m", "hashrate_1h", "hashrate_1d", "last_share_at", "useragent",
)


def _apply_workers(workers: dict[str, _WorkerBatch], registered: set[str], result: BatchResult) -> None:
    """Worker state machine over the batch's state events in time order.

    Streams are read out of order (one stream can run hours ahead of
    another), so an online/offline transition only applies when its event is
    at or after ``state_changed_at``, and a hashrate sample only replaces the
    latest one when it is newer. Transitions: connect → online; disconnect →
    offline; a sample newer than the last transition brings an offline
    worker back online. A worker's first event ever raises no notification;
    a new worker seen only through shares starts online.
    """
    if not workers:
        return
    table = WorkerStatus.__table__
    # Make every row exist and lock it, in one sorted statement (a no-op
    # update on conflict returns and locks the existing row).
    stmt = _insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["worker"], set_={"worker": stmt.excluded.worker}).returning(
        *table.c
    )
    placeholders = [{"worker": w, "user_id": workers[w].user, "is_online": False} for w in sorted(workers)]
    current = {row.worker: dict(row._mapping) for row in db.session.connection().execute(stmt, placeholders)}

    updates = []
    for worker, agg in workers.items():
        state = current[worker]
        before = {k: state[k] for k in _STATE_FIELDS}
        # A row never processed before has no last_seen_at: its state is unknown.
        known = state["last_seen_at"] is not None
        if agg.user:
            state["user_id"] = agg.user
        agg.state_events.sort(key=lambda ev: ev.ts)
        for ev in agg.state_events:
            _apply_worker_event(state, ev, known, registered, result)
            known = True
        if not known:
            state["is_online"] = True  # seen only through shares: it is connected
        if state["last_seen_at"] is None or agg.last_seen > state["last_seen_at"]:
            state["last_seen_at"] = agg.last_seen
        if agg.last_share is not None and (state["last_share_at"] is None or agg.last_share > state["last_share_at"]):
            state["last_share_at"] = agg.last_share
        if any(state[k] != before[k] for k in _STATE_FIELDS):
            updates.append({"b_worker": worker, **{k: state[k] for k in _STATE_FIELDS}})
    if updates:
        stmt = update(table).where(table.c.worker == bindparam("b_worker")).values(
            {k: bindparam(k) for k in _STATE_FIELDS}
        )
        db.session.connection().execute(stmt, updates)


def _later(a: datetime | None, b: datetime) -> bool:
    return a is None or b >= a


def _apply_worker_event(state: dict, ev: MiningEventIn, known: bool, registered: set[str],
                        result: BatchResult) -> None:
    ts = ev.ts
    if ev.event == "hashrate_update":
        if state["last_sample_at"] is None or ts > state["last_sample_at"]:
            state["last_sample_at"] = ts
            for name in ("hashrate_1m", "hashrate_5m", "hashrate_1h", "hashrate_1d"):
                if name in ev.data:
                    state[name] = float(ev.data[name])
        if not known:
            state["is_online"] = True
        elif not state["is_online"] and (state["state_changed_at"] is None or ts > state["state_changed_at"]):
            _transition(state, ev, True, "sample", known, registered, result)
    elif ev.event == "miner_connected":
        if _later(state["connected_at"], ts):
            state["connected_at"] = ts
            if "useragent" in ev.data:
                state["useragent"] = ev.data["useragent"][:MAX_USERAGENT]
        if _later(state["state_changed_at"], ts):
            if not state["is_online"]:
                _transition(state, ev, True, "connected", known, registered, result)
            state["is_online"], state["state_changed_at"] = True, ts
    elif ev.event == "miner_disconnected":
        if _later(state["state_changed_at"], ts):
            if state["is_online"] or not known:
                _transition(state, ev, False, "disconnected", known, registered, result)
            state["state_changed_at"] = ts


def _transition(state: dict, ev: MiningEventIn, online: bool, reason: str, known: bool,
                registered: set[str], result: BatchResult) -> None:
    state["is_online"] = online
    state["state_changed_at"] = ev.ts
    if not known:
        return
    if state["user_id"] in registered:
        if _notify_worker(state["user_id"], ev.worker or "", online, reason, ev.ts, ev.data):
            result.notifications += 1


def _notify_worker(user_id: str, worker: str, online: bool, reason: str, at: datetime,
                   data: dict | None = None) -> Notification | None:
    label = worker_label(worker)
    if online:
        title = f"{label} is back online"
        body = {"connected": f"{label} reconnected to the pool.",
                "sample": f"{label} is hashing again."}.get(reason, f"{label} is back.")
        subtype = "worker_online"
    else:
        title = f"{label} went offline"
        if reason == "disconnected":
            duration = (data or {}).get("session_duration")
            body = f"{label} disconnected from the pool" + (
                f" after {_duration(float(duration))}." if isinstance(duration, (int, float)) else ".")
        else:
            minutes = current_app.config["WORKER_OFFLINE_AFTER"] // 60
            body = f"No hashrate from {label} for {minutes} minutes."
        subtype = "worker_offline"
    row = notification_service.notify(
        user_id, "mining", subtype, title[:200], body, link=profile_link(user_id),
        data={"worker": worker, "reason": reason, "at": iso(at)}, commit=False,
    )
    return row


def _raise_event_notifications(events: list[MiningEventIn], registered: set[str], result: BatchResult) -> None:
    """Personal bests and blocks found: a notification (subject to the user's
    preferences) and an activity, for registered users only. Only
    ``share_best_diff`` with the ``alltime`` timeframe (or none) is a personal
    best; other timeframes are stored but raise nothing."""
    for ev in events:
        if ev.user not in registered:
            continue
        if ev.event == "share_best_diff" and ev.data.get("timeframe", "alltime") == "alltime":
            _personal_best(ev, result)
        elif ev.event == "block_found":
            _block_found(ev, result)


def _personal_best(ev: MiningEventIn, result: BatchResult) -> None:
    best = float(ev.data["new_best"])
    previous = ev.data.get("prev_best")
    label = worker_label(ev.worker)
    title = f"New personal best: {format_difficulty(best)}"
    body = f"{label} found a share of difficulty {format_difficulty(best)}" + (
        f", beating your previous best of {format_difficulty(previous)}." if previous else ".")
    data = {"difficulty": best, "previous_best": previous, "worker": ev.worker, "at": iso(ev.ts)}
    row = notification_service.notify(ev.user, "mining", "personal_best", title, body,
                                      link=profile_link(ev.user), data=data, commit=False)
    if row is not None:
        result.notifications += 1
    act = activity_service.record_activity(
        ev.user, "share_submitted", title, description=body,
        data={"personal_best": True, **data}, link=profile_link(ev.user),
    )
    act.created_at = ev.ts
    result.activities += 1



def _block_found(ev: MiningEventIn, result: BatchResult) -> None:
    data = block_display(ev)
    height = data.get("height")
    label = worker_label(ev.worker) if ev.worker else "Your miner"
    title = f"You found block {height:,}!" if height is not None else "You found a block!"
    body = f"{label} solved " + (f"block {height:,}" if height is not None else "a block") + \
        " for the network. Congratulations!"
    data["at"] = iso(ev.ts)
    row = notification_service.notify(ev.user, "mining", "block_found", title, body,
                                      link=profile_link(ev.user), data=data, commit=False)
    if row is not None:
        result.notifications += 1
    act = activity_service.record_activity(ev.user, "block_found", title, description=body, data=data,
                                           link=profile_link(ev.user))
    act.created_at = ev.ts
    result.activities += 1


# ---- periodic jobs ------------------------------------------------------------


def sweep_offline_workers(now: datetime | None = None) -> list[str]:
    """Mark online workers with no sign of life for ``WORKER_OFFLINE_AFTER``
    seconds offline and notify their owners (``mining``/``worker_offline``,
    once: the worker stays offline until a connect or a fresh sample).

    A sign of life is a hashrate sample or a (re)connect: a worker that just
    reconnected gets the full 15 minutes to send its first sample. The
    transition is dated when the silence crossed the limit. Rows locked by a
    running consumer are skipped (next sweep). Commits; returns the workers
    marked offline.
    """
    now = now or utcnow()
    limit = timedelta(seconds=current_app.config["WORKER_OFFLINE_AFTER"])
    cutoff = now - limit
    ws = WorkerStatus
    rows = db.session.execute(
        select(ws)
        .where(
            ws.is_online.is_(True),
            or_(ws.last_sample_at.is_(None), ws.last_sample_at < cutoff),
            or_(ws.connected_at.is_(None), ws.connected_at < cutoff),
        )
        .order_by(ws.worker)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    marked = []
    try:
        registered = _registered(row.user_id for row in rows)
        for row in rows:
            signs = [t for t in (row.last_sample_at, row.connected_at) if t is not None]
            last = max(signs) if signs else (row.last_seen_at or now - limit)
            if last >= cutoff:
                continue
            row.is_online = False
            row.state_changed_at = min(last + limit, now)
            marked.append(row.worker)
            if row.user_id in registered:
                _notify_worker(row.user_id, row.worker, False, "no_samples", row.state_changed_at)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if marked:
        log.info("sweep: %d worker(s) marked offline", len(marked))
    return marked


def purge_old_events(now: datetime | None = None, batch: int = 10_000) -> int:
    """Delete raw mining events whose event time is older than
    ``MINING_EVENT_RETENTION_DAYS`` (DESIGN.md retention), ``batch`` rows per
    transaction so that locks stay short. Rollups are kept. Returns the count."""
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["MINING_EVENT_RETENTION_DAYS"])
    total = 0
    while True:
        ids = select(MiningEvent.id).where(MiningEvent.ts < cutoff).limit(batch).scalar_subquery()
        deleted = db.session.execute(delete(MiningEvent).where(MiningEvent.id.in_(ids))).rowcount
        db.session.commit()
        total += deleted or 0
        if not deleted or deleted < batch:
            return total


# ---- reads used by profiles and the demo ----------------------------------------


def workers_of(user_id: str) -> list[WorkerStatus]:
    """The miner's workers, online ones first, then by name."""
    rows = db.session.scalars(select(WorkerStatus).where(WorkerStatus.user_id == user_id)).all()
    return sorted(rows, key=lambda w: (not w.is_online, w.worker))


def recent_personal_bests(user_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The miner's latest all-time bests from the stored ``share_best_diff``
    events, newest first: ``[{"at", "difficulty", "previous_best", "worker"}]``."""
    rows = db.session.execute(
        select(MiningEvent.ts, MiningEvent.data, MiningEvent.worker)
        .where(MiningEvent.user_id == user_id, MiningEvent.event == "share_best_diff")
        .order_by(MiningEvent.ts.desc())
        .limit(limit * 2)
    ).all()
    out = []
    for ts, data, worker in rows:
        if (data or {}).get("timeframe", "alltime") != "alltime":
            continue
        out.append({"at": ts, "difficulty": data.get("new_best"), "previous_best": data.get("prev_best"),
                    "worker": worker})
    return out[:limit]


def personal_best_history(user_id: str, limit: int = 500) -> list[tuple[datetime, float]]:
    """The miner's all-time bests over time, oldest first: ``[(at, difficulty)]``
    from the stored ``share_best_diff`` events (the newest ``limit``)."""
    rows = db.session.execute(
        select(MiningEvent.ts, MiningEvent.data)
        .where(MiningEvent.user_id == user_id, MiningEvent.event == "share_best_diff")
        .order_by(MiningEvent.ts.desc())
        .limit(limit)
    ).all()
    return [(ts, float(data["new_best"])) for ts, data in reversed(rows)
            if (data or {}).get("timeframe", "alltime") == "alltime" and data.get("new_best")]


def has_events() -> bool:
    """Whether any mining event is stored."""
    return db.session.execute(select(MiningEvent.id).limit(1)).first() is not None


def reset_mining_data() -> None:
    """Delete every stored mining event, rollup and worker state, and the
    mining notifications and mining activities they raised (``flask demo
    --reset``; development only). Commits."""
    db.session.execute(delete(MiningEvent))
    db.session.execute(delete(MinerStats))
    db.session.execute(delete(WorkerStatus))
    db.session.execute(delete(Notification).where(Notification.category == "mining"))
    db.session.execute(
        delete(UserActivity).where(UserActivity.activity_type.in_(("share_submitted", "block_found")))
    )
    db.session.commit()

