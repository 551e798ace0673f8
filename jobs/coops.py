"""Cooperative jobs: combined hashrate every COOP_HASHRATE_INTERVAL seconds."""
from __future__ import annotations

from .context import app_job


@app_job
def aggregate_coop_hashrate() -> None:
    """Recompute every active coop's combined hashrate."""
