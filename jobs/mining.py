"""Mining jobs: the offline-worker sweep and raw-event retention."""
from __future__ import annotations

from .context import app_job


@app_job
def sweep_offline_workers() -> None:
    """Mark workers with no sample for WORKER_OFFLINE_AFTER seconds offline."""


@app_job
def purge_old_mining_events() -> None:
    """Delete raw mining events older than MINING_EVENT_RETENTION_DAYS, in batches."""
