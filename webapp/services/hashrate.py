"""Hashrate and "online" as API.md defines them.

A worker is online when it is connected (``worker_status.is_online``) and has
sent a hashrate sample within ``WORKER_OFFLINE_AFTER`` seconds (15 minutes).
A miner's hashrate is the sum of the latest ``hashrate_1h`` sample (H/s) of
each online worker; a coop's is the sum over its active members. A stored
sample outside the physical range (``services/bounds.py``: 0 to 1e21 H/s;
NaN, infinities) counts as 0 in every sum (``worker_hashrate``), so one bad
row never overflows ``SUM()`` nor puts a non-number into an answer.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import extract, func, literal_column, select

from ..extensions import db, get_redis, redis_key
from ..models import MiningEvent, WorkerStatus, iso, utcnow
from .bounds import MAX_HASHRATE, usable_sql
from .errors import ValidationError


def online_cutoff(now: datetime | None = None) -> datetime:
    """Samples at or after this instant count as fresh."""
    return (now or utcnow()) - timedelta(seconds=current_app.config["WORKER_OFFLINE_AFTER"])


def online_condition(now: datetime | None = None):
    """SQL condition on ``WorkerStatus`` rows that are online now."""
    return (WorkerStatus.is_online.is_(True)) & (WorkerStatus.last_sample_at >= online_cutoff(now))


def worker_hashrate():
    """SQL: a worker's ``hashrate_1h`` in H/s, 0 when outside 0..1e21."""
    return usable_sql(WorkerStatus.hashrate_1h, MAX_HASHRATE)


def hashrate_by_user(user_ids: Iterable[str], now: datetime | None = None) -> dict[str, tuple[float, int]]:
    """``{user_id: (hashrate_1h in H/s, workers online)}`` for the given users,
    in one grouped query; users with no online worker map to ``(0.0, 0)``."""
    ids = list(set(user_ids))
    result = {user_id: (0.0, 0) for user_id in ids}
    if not ids:
        return result
    rows = db.session.execute(
        select(WorkerStatus.user_id, func.sum(worker_hashrate()), func.count())
        .where(WorkerStatus.user_id.in_(ids), online_condition(now))
        .group_by(WorkerStatus.user_id)
    )
    for user_id, total, count in rows:
        result[user_id] = (float(total or 0.0), int(count))
    return result


# ---- history for the charts (profile and coop dashboard) -------------------------

@dataclass(frozen=True)
class ChartRange:
    """A chart's time span and the width of one point (``step``, seconds):
    about 60–300 points whatever the span."""

    name: str
    span: timedelta
    step: int


RANGES: dict[str, ChartRange] = {r.name: r for r in (
    ChartRange("1h", timedelta(hours=1), 60),
    ChartRange("24h", timedelta(hours=24), 300),
    ChartRange("7d", timedelta(days=7), 3600),
    ChartRange("30d", timedelta(days=30), 6 * 3600),
)}
DEFAULT_RANGE = "24h"


def chart_range(name: str | None) -> ChartRange:
    """The range named ``name`` (``1h``, ``24h``, ``7d``, ``30d``; None is
    ``24h``). Raises ValidationError (400) naming the choices otherwise."""
    if name is None:
        return RANGES[DEFAULT_RANGE]
    if name not in RANGES:
        raise ValidationError("range must be one of " + ", ".join(RANGES) + ".",
                              details=[{"field": "range", "message": "must be one of " + ", ".join(RANGES)}])
    return RANGES[name]


@dataclass
class Series:
    """One line of a chart: ``values`` aligned with the chart's timestamps
    (None where nothing is known)."""

    key: str
    label: str
    values: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "values": self.values}

    def summary(self) -> dict[str, float | None]:
        """``{"last", "mean", "peak"}`` over the known values (None when none)."""
        known = [v for v in self.values if v is not None]
        if not known:
            return {"last": None, "mean": None, "peak": None}
        return {"last": known[-1], "mean": sum(known) / len(known), "peak": max(known)}


@dataclass
class Chart:
    """A time series chart: points every ``step`` seconds (or at each record
    when ``step`` is None) from ``start`` to ``end``; ``unit`` is ``"H/s"``
    for hashrates, ``""`` for share difficulty; ``scale`` ``linear`` or ``log``."""

    range: ChartRange
    start: datetime
    end: datetime
    unit: str
    scale: str
    step: int | None
    timestamps: list[int]  # Unix seconds, UTC
    series: list[Series]

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the chart endpoints (docs/API.md "Charts")."""
        return {
            "range": self.range.name, "start": iso(self.start), "end": iso(self.end), "unit": self.unit,
            "scale": self.scale, "step": self.step, "timestamps": self.timestamps,
            "series": [s.to_dict() for s in self.series],
        }


def time_grid(rng: ChartRange, now: datetime) -> list[int]:
    """The chart's points: multiples of ``rng.step`` (Unix seconds) covering
    the last ``rng.span`` up to the one holding ``now``."""
    last = int(now.timestamp()) // rng.step * rng.step
    count = int(rng.span.total_seconds()) // rng.step
    return [last - i * rng.step for i in range(count, -1, -1)]


def bucket_sql(column, step: int):
    """SQL: the index of the ``step``-second bucket holding a UTC time column
    (Unix seconds // step), on PostgreSQL and SQLite."""
    seconds = extract("epoch", column)
    if db.session.get_bind().dialect.name == "sqlite":
        return (seconds / literal_column(str(int(step)))).label("bucket")  # integer division
    return func.floor(seconds / literal_column(str(int(step)))).label("bucket")


def hold(buckets: dict[int, float], grid: list[int], step: int, carry: int) -> list[float | None]:
    """Values on ``grid`` from per-bucket values: a bucket's own value, or the
    latest earlier one for up to ``carry`` seconds (a sample stands until
    the next, as "online" does), else None."""
    out: list[float | None] = []
    last_bucket, last_value = None, None
    known = sorted(buckets)
    i = 0
    for point in grid:
        bucket = point // step
        while i < len(known) and known[i] <= bucket:
            last_bucket, last_value = known[i], buckets[known[i]]
            i += 1
        if last_bucket is not None and (bucket - last_bucket) * step <= carry:
            out.append(last_value)
        else:
            out.append(None)
    return out


# Each miner's per-point history is cached in Redis for the current point
# (the key names the grid's last point, so it rolls over at each step) and
# at most CACHE_TTL seconds: a profile view, its range switches and every
# coop dashboard that shows the miner share one computation. A month of
# minute samples is a six-figure row scan (docs/PERFORMANCE.md "Charts").
CACHE_TTL = 300


def _cache_key(user_id: str, rng: ChartRange, last_point: int) -> str:
    return redis_key("chart", "hashrate", rng.name, last_point, user_id)


def worker_history(user_ids: Iterable[str], rng: ChartRange, now: datetime | None = None
                   ) -> dict[str, dict[str, list[float | None]]]:
    """``{user_id: {worker: values}}``: each worker's ``hashrate_1h`` (H/s)
    from the stored ``hashrate_update`` events, averaged per point of
    ``time_grid(rng, now)`` and held up to ``WORKER_OFFLINE_AFTER`` seconds
    while no sample comes (None afterwards: offline). Read from the Redis
    cache (``CACHE_TTL``), the misses computed with one grouped query on the
    (user_id, event, ts) index; a value outside 0..1e21 counts as 0. With
    Redis unreachable everything is computed."""
    now = now or utcnow()
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    grid = time_grid(rng, now)
    keys = [_cache_key(user_id, rng, grid[-1]) for user_id in ids]
    redis = get_redis()
    try:
        cached = redis.mget(keys)
    except RedisError:
        cached = [None] * len(ids)
    result: dict[str, dict[str, list[float | None]]] = {}
    for user_id, raw in zip(ids, cached, strict=True):
        if raw:
            try:
                result[user_id] = json.loads(raw)
            except ValueError:
                pass
    misses = [user_id for user_id in ids if user_id not in result]
    if misses:
        computed = _query_history(misses, rng, now, grid)
        result.update(computed)
        try:
            pipe = redis.pipeline(transaction=False)
            for user_id in misses:
                pipe.set(_cache_key(user_id, rng, grid[-1]), json.dumps(computed[user_id]),
                         ex=min(CACHE_TTL, rng.step))
            pipe.execute()
        except RedisError:
            current_app.logger.warning("could not cache chart history")
    return result


def _query_history(ids: list[str], rng: ChartRange, now: datetime, grid: list[int]
                   ) -> dict[str, dict[str, list[float | None]]]:
    result: dict[str, dict[str, list[float | None]]] = {user_id: {} for user_id in ids}
    carry = int(current_app.config["WORKER_OFFLINE_AFTER"])
    since = datetime.fromtimestamp(grid[0] - max(carry, rng.step), UTC)
    bucket = bucket_sql(MiningEvent.ts, rng.step)
    rate = usable_sql(MiningEvent.data["hashrate_1h"].as_float(), MAX_HASHRATE)
    rows = db.session.execute(
        select(MiningEvent.user_id, MiningEvent.worker, bucket, func.avg(rate))
        .where(MiningEvent.user_id.in_(ids), MiningEvent.event == "hashrate_update",
               MiningEvent.ts >= since, MiningEvent.ts <= now)
        .group_by(MiningEvent.user_id, MiningEvent.worker, bucket)
    ).all()
    buckets: dict[tuple[str, str], dict[int, float]] = {}
    for user_id, worker, index, value in rows:
        buckets.setdefault((user_id, worker or ""), {})[int(index)] = float(value or 0.0)
    for (user_id, worker), values in sorted(buckets.items()):
        result[user_id][worker] = hold(values, grid, rng.step, carry)
    return result


def sum_series(lines: Iterable[list[float | None]], length: int) -> list[float | None]:
    """Point-by-point sum of aligned lines, None read as 0 (an offline worker
    adds nothing); all zeros when there is no line."""
    total = [0.0] * length
    for line in lines:
        for i, value in enumerate(line):
            if value is not None:
                total[i] += value
    return list(total)


def miner_chart(user_id: str, rng: ChartRange, now: datetime | None = None) -> Chart:
    """A miner's hashrate chart: ``total`` (the sum over their workers, as
    the profile's "Hashrate (1 h)" sums online workers) and one series per
    worker (key ``worker:<full name>``, label the rig part)."""
    now = now or utcnow()
    grid = time_grid(rng, now)
    workers = worker_history([user_id], rng, now).get(user_id, {})
    series = [Series("total", "All workers", sum_series(workers.values(), len(grid)))]
    series += [Series(f"worker:{worker}", worker.split(".", 1)[1] if "." in worker else worker, values)
               for worker, values in workers.items()]
    return Chart(rng, now - rng.span, now, "H/s", "linear", rng.step, grid, series)
