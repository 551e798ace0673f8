"""Storing a batch once and the rollups of the rows actually inserted
(``ingest_batch``): events, ``miner_stats`` upserts, then worker state and
notifications.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, case, func, select
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table

from ...extensions import db
from ...models import MinerStats, MiningEvent, utcnow
from .. import profile_cache
from .alerts import _raise_event_notifications
from .common import BatchResult, _greatest, _insert, _least, _registered, _WorkerBatch
from .events import MiningEventIn
from .workers import _apply_workers


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
        bests = _stored_bests(list(unique.values()))  # before this batch's rows are in
        inserted = _store_events(list(unique.values()), now)
        result.inserted = len(inserted)
        result.duplicates = result.received - result.inserted
        if inserted:
            miners, workers, notable = _aggregate(inserted, now)
            registered = _registered(miners)
            _upsert_miner_stats(miners, registered)
            _apply_workers(workers, registered, result)
            _raise_event_notifications(notable, registered, result, bests)
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
        driver = connection.connection.driver_connection
        assert driver is not None  # a checked-out connection has its driver's
        with driver.cursor() as cursor:
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


def _stored_bests(events: list[MiningEventIn]) -> dict[str, float]:
    """The best difficulty known before this batch of each miner with a
    ``share_best_diff`` in it (``{user_id: difficulty}``; none known:
    absent): the higher of ``miner_stats.best_difficulty`` (accepted shares)
    and the highest ``new_best`` already stored. Two indexed reads, and only
    for a batch that has one (rare); call it before the batch is stored."""
    users = sorted({ev.user for ev in events if ev.event == "share_best_diff" and ev.user})
    if not users:
        return {}
    bests: dict[str, float] = {}
    shares = select(MinerStats.user_id, MinerStats.best_difficulty).where(MinerStats.user_id.in_(users))
    announced = (select(MiningEvent.user_id, func.max(MiningEvent.data["new_best"].as_float()))
                 .where(MiningEvent.user_id.in_(users), MiningEvent.event == "share_best_diff")
                 .group_by(MiningEvent.user_id))
    for statement in (shares, announced):
        for user, best in db.session.execute(statement):
            bests[user] = max(bests.get(user, 0.0), float(best or 0))
    return bests


def _upsert_miner_stats(miners: dict[str, dict[str, Any]], registered: set[str]) -> None:
    """One upsert for the batch; the arithmetic runs in the database, so
    concurrent consumers add up correctly. A registered miner's best that
    this batch raised moves leaderboard ranks: the cached public profiles
    are forgotten at the commit (``profile_cache``)."""
    if not miners:
        return
    table = cast(Table, MinerStats.__table__)
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
    rows = db.session.connection().execute(
        stmt.returning(table.c.user_id, table.c.best_difficulty), [miners[key] for key in sorted(miners)])
    # The stored best equals the batch's only where the batch set it (or tied it).
    if any(user in registered and best > 0 and best == miners[user]["best_difficulty"] for user, best in rows):
        profile_cache.CACHE.changed(shared=True)
