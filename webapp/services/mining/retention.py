"""Retention of the raw mining events (DESIGN.md)."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from ...extensions import db, execute_dml
from ...models import MiningEvent, utcnow


def purge_old_events(now: datetime | None = None, batch: int = 10_000) -> int:
    """Delete raw mining events whose event time is older than
    ``MINING_EVENT_RETENTION_DAYS`` (DESIGN.md retention), ``batch`` rows per
    transaction so that locks stay short. Rollups are kept. Returns the count."""
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["MINING_EVENT_RETENTION_DAYS"])
    total = 0
    while True:
        ids = select(MiningEvent.id).where(MiningEvent.ts < cutoff).limit(batch).scalar_subquery()
        deleted = execute_dml(delete(MiningEvent).where(MiningEvent.id.in_(ids)))
        db.session.commit()
        total += deleted or 0
        if not deleted or deleted < batch:
            return total
