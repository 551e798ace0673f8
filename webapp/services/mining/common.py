"""What the mining modules share: the batch result, the dialect-neutral
upsert helpers and the registered-user filter.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite

from ...extensions import db
from ...models import User
from .events import MiningEventIn


def profile_link(user_id: str) -> str:
    return f"/miners/{user_id}"


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
