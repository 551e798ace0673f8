"""Cooperative jobs: combined hashrate every COOP_HASHRATE_INTERVAL seconds.

Scheduled by ``flask scheduler`` (RQ cron, exactly one active scheduler; see
``jobs/schedule.py``) and run by ``flask worker``.
"""
from __future__ import annotations

from .context import app_job


@app_job
def aggregate_coop_hashrate() -> int:
    """Recompute every active coop's combined hashrate, store it, record one
    history sample per coop and cache it in Redis. Returns the coops updated
    (``webapp.services.coop_hashrate.aggregate_all``)."""
    from webapp.services import coop_hashrate

    return coop_hashrate.aggregate_all()


@app_job
def send_coop_digests() -> int:
    """Send the weekly e-mails to coop admins that are due, once per coop
    and ISO week (``webapp.services.coop_digest.send_weekly``). Returns how
    many were sent."""
    from webapp.services import coop_digest

    return len(coop_digest.send_weekly())
