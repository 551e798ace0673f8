"""Combined coop hashrate: the periodic aggregation, its Redis cache and the
history behind the 24 h chart (DESIGN.md data flow, API.md definitions).

A coop's hashrate is the sum over its active members of their hashrate as
``services.hashrate`` defines it (latest ``hashrate_1h`` of each online
worker), in H/s. ``aggregate_all`` computes every active coop's total with one
grouped query, stores it on ``cooperatives``, appends one
``coop_hashrate_samples`` row per coop and caches each total in Redis for
``COOP_HASHRATE_CACHE_TTL`` seconds. Readers use ``cached_total``, which
computes a single coop on a cache miss.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import delete, extract, func, insert, literal, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from .. import realtime
from ..extensions import db, get_redis, redis_key
from ..models import (
    Cooperative,
    CooperativeMember,
    CoopHashrateSample,
    UTCDateTime,
    WorkerStatus,
    iso,
    utcnow,
)
from .hashrate import ChartRange, bucket_sql, hold, online_condition, time_grid, worker_hashrate
from .membership import active_member_ids, is_active_coop, is_active_member

# Every sample is kept for FULL_DETAIL_KEEP (the 1 h and 24 h charts), then
# only the first of each hour (minute < THIN_MINUTE; one run of the 5-minute
# job) up to HISTORY_KEEP (the 7 d and 30 d charts plot hourly or coarser
# points): ~1,300 rows a coop instead of 8,900. Purged at most hourly.
FULL_DETAIL_KEEP = timedelta(hours=48)
HISTORY_KEEP = timedelta(days=31)
THIN_MINUTE = 5
PURGE_EVERY = 3600  # seconds


@dataclass
class Total:
    """A coop's combined hashrate (H/s), members online, and when computed."""

    total_hashrate: float
    online_count: int
    updated_at: datetime


def cache_key(coop_id: int) -> str:
    """Redis key of a coop's cached total (namespaced)."""
    return redis_key("coop", coop_id, "hashrate")


def _per_user_online(now: datetime):
    """Subquery: hashrate (H/s) per user over their online workers."""
    return (
        select(WorkerStatus.user_id.label("user_id"), func.sum(worker_hashrate()).label("hashrate"))
        .where(online_condition(now))
        .group_by(WorkerStatus.user_id)
        .subquery("online_users")
    )


def _totals_query(now: datetime, coop_id: int | None = None):
    """One grouped query: (coop id, total H/s, members online) for every
    active coop, or for one coop."""
    users = _per_user_online(now)
    stmt = (
        select(
            Cooperative.id,
            func.coalesce(func.sum(users.c.hashrate), 0.0),
            func.count(users.c.user_id),
        )
        .select_from(Cooperative)
        .join(
            CooperativeMember,
            is_active_member(Cooperative.id),
            isouter=True,
        )
        .join(users, users.c.user_id == CooperativeMember.user_id, isouter=True)
        .where(is_active_coop())
        .group_by(Cooperative.id)
    )
    if coop_id is not None:
        stmt = stmt.where(Cooperative.id == coop_id)
    return stmt


def _cache_value(total: float, online: int, updated_at: str) -> str:
    return json.dumps({"total_hashrate": total, "online_count": online, "updated_at": updated_at})


def aggregate_all(now: datetime | None = None) -> int:
    """Recompute every active coop's combined hashrate (the 5-minute job).

    Two set-based statements in one transaction, portable to SQLite:

    1. ``INSERT INTO coop_hashrate_samples ... SELECT <one grouped query>
       RETURNING ...`` — computes every total and records the history point;
    2. ``UPDATE cooperatives SET total_hashrate = (that coop's new sample)``
       — a correlated lookup on the (cooperative_id, computed_at) index;

    then each total is cached in Redis (one pipeline, TTL
    ``COOP_HASHRATE_CACHE_TTL``). Returns the number of coops updated.

    One bad row cannot stop the job: a stored hashrate outside the physical
    range counts as 0 (``hashrate.worker_hashrate``), and if the set-based
    statements fail anyway (anything but a lost connection, which is
    raised), each coop is recomputed on its own in a savepoint; a coop that
    still fails is logged with its id and keeps its previous total, and
    the others are updated.
    """
    now = now or utcnow()
    try:
        rows = _aggregate_together(now)
    except (OperationalError, InterfaceError):
        db.session.rollback()
        raise
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.exception("coop hashrate: the grouped aggregation failed; computing coop by coop")
        rows = _aggregate_one_by_one(now)
    if rows:
        ttl, stamp, prefix = current_app.config["COOP_HASHRATE_CACHE_TTL"], iso(now), redis_key("coop")
        pipe = get_redis().pipeline(transaction=False)
        for cid, total, online in rows:  # cache_key(cid), inlined: 10,000 calls add up
            pipe.set(f"{prefix}:{cid}:hashrate", _cache_value(total, online, stamp), ex=ttl)
        pipe.execute()
        announce_numbers([cid for cid, _, _ in rows])
    return len(rows)


def _new_total(now: datetime):
    """SQL: a coop's sample computed at ``now`` (or NULL)."""
    return (
        select(CoopHashrateSample.total_hashrate)
        .where(CoopHashrateSample.cooperative_id == Cooperative.id, CoopHashrateSample.computed_at == now)
        .scalar_subquery()
    )


def _store(now: datetime, coop_id: int | None = None) -> list[tuple[int, float, int]]:
    """Insert the sample(s) of every active coop (or one) and copy them onto
    ``cooperatives``; returns ``[(coop id, total H/s, members online)]``."""
    totals = _totals_query(now, coop_id).add_columns(literal(now, UTCDateTime()))
    rows = db.session.execute(
        insert(CoopHashrateSample)
        .from_select(["cooperative_id", "total_hashrate", "online_count", "computed_at"], totals)
        .returning(CoopHashrateSample.cooperative_id, CoopHashrateSample.total_hashrate, CoopHashrateSample.online_count)
    ).all()
    stmt = (
        update(Cooperative)
        .where(is_active_coop())
        # A coop created since the INSERT has no sample yet: it keeps its total.
        .values(total_hashrate=func.coalesce(_new_total(now), Cooperative.total_hashrate), hashrate_updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if coop_id is not None:
        stmt = stmt.where(Cooperative.id == coop_id)
    db.session.execute(stmt)
    return [(cid, total, online) for cid, total, online in rows]


def _aggregate_together(now: datetime) -> list[tuple[int, float, int]]:
    rows = _store(now)
    _purge_history(now)
    db.session.commit()
    return rows


def _aggregate_one_by_one(now: datetime) -> list[tuple[int, float, int]]:
    """The fallback of ``aggregate_all``: one savepoint per active coop."""
    rows: list[tuple[int, float, int]] = []
    failed = []
    coop_ids = db.session.scalars(select(Cooperative.id).where(is_active_coop())
                                  .order_by(Cooperative.id)).all()
    for coop_id in coop_ids:
        try:
            with db.session.begin_nested():
                rows += _store(now, coop_id)
        except (OperationalError, InterfaceError):
            db.session.rollback()
            raise
        except SQLAlchemyError:
            failed.append(coop_id)
            current_app.logger.exception("coop hashrate: coop %s failed; it keeps its previous total", coop_id)
    try:
        with db.session.begin_nested():
            _purge_history(now)
    except SQLAlchemyError:
        current_app.logger.exception("coop hashrate: purging old samples failed")
    db.session.commit()
    if failed:
        current_app.logger.error("coop hashrate: %d of %d coops failed: %s", len(failed), len(coop_ids),
                                 ", ".join(map(str, failed[:50])))
    return rows


def _purge_history(now: datetime) -> None:
    """Delete samples older than HISTORY_KEEP, and thin those older than
    FULL_DETAIL_KEEP (the last day of them, so each row is looked at once
    or twice) to one an hour; at most once per PURGE_EVERY seconds across
    all processes (a Redis NX key)."""
    if get_redis().set(redis_key("coop", "history", "purged"), iso(now), nx=True, ex=PURGE_EVERY):
        at = CoopHashrateSample.computed_at
        db.session.execute(delete(CoopHashrateSample).where(at < now - HISTORY_KEEP))
        db.session.execute(delete(CoopHashrateSample).where(
            at < now - FULL_DETAIL_KEEP, at >= now - FULL_DETAIL_KEEP - timedelta(days=1),
            extract("minute", at) >= THIN_MINUTE))


def compute_one(coop_id: int, now: datetime | None = None) -> Total:
    """One coop's combined hashrate computed now (no caching, no writes)."""
    now = now or utcnow()
    row = db.session.execute(_totals_query(now, coop_id)).first()
    total, online = (float(row[1]), int(row[2])) if row else (0.0, 0)
    return Total(total, online, now)


def cached_total(coop_id: int, now: datetime | None = None) -> Total:
    """The cached total of a coop; on a miss (expired, or invalidated by a
    membership change) it is computed for this coop and cached again. With
    Redis unreachable it is computed without the cache."""
    redis = get_redis()
    try:
        raw = redis.get(cache_key(coop_id))
    except RedisError:
        current_app.logger.warning("hashrate cache unreachable; computing coop %s directly", coop_id)
        return compute_one(coop_id, now)
    if raw:
        try:
            data = json.loads(raw)
            return Total(
                float(data["total_hashrate"]),
                int(data["online_count"]),
                datetime.fromisoformat(data["updated_at"].replace("Z", "+00:00")),
            )
        except (ValueError, KeyError, TypeError):
            pass  # unreadable entry: recompute
    total = compute_one(coop_id, now)
    try:
        redis.set(
            cache_key(coop_id),
            _cache_value(total.total_hashrate, total.online_count, iso(total.updated_at)),
            ex=current_app.config["COOP_HASHRATE_CACHE_TTL"],
        )
    except RedisError:
        current_app.logger.warning("could not cache the hashrate of coop %s", coop_id)
    return total


def invalidate(coop_id: int) -> None:
    """Drop a coop's cached total after its membership changed (best effort:
    the entry expires within the TTL anyway)."""
    try:
        get_redis().delete(cache_key(coop_id))
    except RedisError:  # Redis down must not fail a committed change
        current_app.logger.exception("could not drop the hashrate cache of coop %s", coop_id)


def history(coop_id: int, *, hours: int = 24, now: datetime | None = None) -> list[tuple[datetime, float]]:
    """``[(computed_at, total H/s)]`` of a coop over the last ``hours``, oldest first."""
    since = (now or utcnow()) - timedelta(hours=hours)
    rows = db.session.execute(
        select(CoopHashrateSample.computed_at, CoopHashrateSample.total_hashrate)
        .where(CoopHashrateSample.cooperative_id == coop_id, CoopHashrateSample.computed_at >= since)
        .order_by(CoopHashrateSample.computed_at)
    ).all()
    return [(at, float(total)) for at, total in rows]


def combined_values(coop_id: int, rng: ChartRange, now: datetime | None = None) -> list[float | None]:
    """A coop's combined hashrate (H/s) on ``time_grid(rng, now)``: the
    aggregation's samples averaged per point, a sample held until the next
    for up to ``WORKER_OFFLINE_AFTER`` seconds; None where no sample was
    taken (before the coop existed, or while the job did not run)."""
    now = now or utcnow()
    grid = time_grid(rng, now)
    carry = int(current_app.config["WORKER_OFFLINE_AFTER"])
    since = datetime.fromtimestamp(grid[0] - max(carry, rng.step), UTC)
    bucket = bucket_sql(CoopHashrateSample.computed_at, rng.step)
    rows = db.session.execute(
        select(bucket, func.avg(CoopHashrateSample.total_hashrate))
        .where(CoopHashrateSample.cooperative_id == coop_id, CoopHashrateSample.computed_at >= since,
               CoopHashrateSample.computed_at <= now)
        .group_by(bucket)
    ).all()
    return hold({int(index): float(value or 0.0) for index, value in rows}, grid, rng.step, carry)


# ---- live coop pages: "the numbers changed" ------------------------------------------


def coops_of_users(user_ids: Iterable[str]) -> list[int]:
    """The active coops that have any of ``user_ids`` as an active member."""
    ids = list(set(user_ids))
    if not ids:
        return []
    return list(db.session.scalars(
        select(CooperativeMember.cooperative_id).distinct()
        .join(Cooperative, Cooperative.id == CooperativeMember.cooperative_id)
        .where(CooperativeMember.user_id.in_(ids), is_active_member(), is_active_coop())
    ))


def announce_numbers(coop_ids: Iterable[int], *, throttle: int | None = None) -> int:
    """Tell the open pages of every active member of ``coop_ids`` that the
    coop's numbers changed (``coop_changed`` with ``change="numbers"``): the
    5-minute aggregation (unthrottled) and stored mining events (``throttle``
    seconds: a coop announced within that many seconds, by any process, is
    skipped — a Redis NX key — so a stream of shares costs one page refresh
    per coop and interval). Returns how many coops were announced. Call it
    after a commit: it ends the session's (read) transaction. A Redis
    failure is logged, never raised: the numbers are stored and a reload
    shows them."""
    announced = 0
    try:
        redis = get_redis()
        for coop_id in sorted(set(coop_ids)):
            if throttle and not redis.set(redis_key("coop", coop_id, "numbers-pushed"), "1", nx=True, ex=throttle):
                continue
            members = list(db.session.scalars(active_member_ids(coop_id)))
            if members:
                realtime.coop_changed(members, coop_id, "numbers")
                announced += 1
    except RedisError:
        current_app.logger.exception("coop numbers push failed")
    finally:
        db.session.commit()  # hold no read transaction (SQLite: no lock) after this
    return announced


def announce_mining(user_ids: Iterable[str]) -> int:
    """After a committed batch of mining events of ``user_ids``: announce the
    numbers of their coops, at most once per ``COOP_LIVE_PUSH_INTERVAL``
    seconds per coop (``announce_numbers``). Returns the coops announced."""
    coop_ids = coops_of_users(user_ids)
    if not coop_ids:
        db.session.commit()
        return 0
    return announce_numbers(coop_ids, throttle=current_app.config["COOP_LIVE_PUSH_INTERVAL"])
