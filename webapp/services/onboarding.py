"""A new miner's first steps (the home page's "Get started" card): how to
point a miner at the pool, and a checklist that ticks itself as the miner
connects a worker, sets a display name and joins or founds a coop."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import User, WorkerStatus
from . import accounts
from .coops import get_mine


@dataclass(frozen=True)
class Step:
    """One checklist item: ``key`` for tests and anchors, ``done``."""

    key: str
    label: str
    done: bool


@dataclass(frozen=True)
class Onboarding:
    """The card: the pool's stratum URL, the miner's username and an
    example worker name (``<username>.<rig name>``, as the pool reads it),
    and the checklist."""

    stratum_url: str
    username: str
    worker_example: str
    steps: list[Step]

    @property
    def complete(self) -> bool:
        return all(step.done for step in self.steps)


def onboarding(user: User) -> Onboarding:
    """The card for ``user``. "Set a display name" is done once the name is
    no longer the default one registration derives from the address."""
    workers = db.session.scalar(select(func.count()).select_from(WorkerStatus).where(
        WorkerStatus.user_id == user.user_id)) or 0
    named = bool(user.display_name) and user.display_name != accounts.default_display_name(user.user_id)
    steps = [
        Step("connect_worker", "Connect a worker to the pool", workers > 0),
        Step("display_name", "Choose a display name", named),
        Step("coop", "Join or found a cooperative", get_mine(user) is not None),
    ]
    db.session.rollback()
    return Onboarding(current_app.config["POOL_STRATUM_URL"], user.user_id, f"{user.user_id}.bitaxe-1", steps)
