"""Reads of the stored mining data used by profiles and the demo.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ...extensions import db
from ...models import MiningEvent, WorkerStatus


def workers_of(user_id: str) -> list[WorkerStatus]:
    """The miner's workers, online ones first, then by name."""
    rows = db.session.scalars(select(WorkerStatus).where(WorkerStatus.user_id == user_id)).all()
    return sorted(rows, key=lambda w: (not w.is_online, w.worker))


Record = tuple[datetime, dict[str, Any], str | None]


def alltime_records(user_id: str, window: int = 500) -> list[Record]:
    """``(ts, data, worker)`` of the miner's ``share_best_diff`` events of
    the ``alltime`` timeframe among the newest ``window``, oldest first,
    keeping only records (``Record``): a "new best" below an earlier one is not one (a
    replayed or reordered stream; ``alerts._raise_event_notifications``
    raises nothing for it either), so the list and its chart only go up."""
    rows = db.session.execute(
        select(MiningEvent.ts, MiningEvent.data, MiningEvent.worker)
        .where(MiningEvent.user_id == user_id, MiningEvent.event == "share_best_diff")
        .order_by(MiningEvent.ts.desc())
        .limit(window)
    ).all()
    records, best = [], 0.0
    for ts, data, worker in reversed(rows):
        if (data or {}).get("timeframe", "alltime") != "alltime" or not data.get("new_best"):
            continue
        value = float(data["new_best"])
        if value >= best:
            best = value
            records.append((ts, data, worker))
    return records


def recent_personal_bests(user_id: str, limit: int = 10, *, records: list[Record] | None = None
                          ) -> list[dict[str, Any]]:
    """The miner's latest all-time bests from the stored ``share_best_diff``
    events (records only: ``alltime_records``, or ``records`` read by the
    caller), newest first: ``[{"at", "difficulty", "previous_best", "worker"}]``."""
    records = alltime_records(user_id) if records is None else records
    return [{"at": ts, "difficulty": data.get("new_best"), "previous_best": data.get("prev_best"), "worker": worker}
            for ts, data, worker in reversed(records[-limit:])]


def personal_best_history(user_id: str, limit: int = 500, *, records: list[Record] | None = None
                          ) -> list[tuple[datetime, float]]:
    """The miner's all-time bests over time, oldest first: ``[(at, difficulty)]``
    from the stored ``share_best_diff`` events (records among the newest
    ``limit``: ``alltime_records``, or ``records`` read by the caller)."""
    records = alltime_records(user_id, limit) if records is None else records
    return [(ts, float(data["new_best"])) for ts, data, _ in records]


def has_events() -> bool:
    """Whether any mining event is stored."""
    return db.session.execute(select(MiningEvent.id).limit(1)).first() is not None
