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

from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import WorkerStatus, utcnow
from .bounds import MAX_HASHRATE, usable_sql


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
