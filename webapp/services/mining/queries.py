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
