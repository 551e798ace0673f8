"""Mining jobs: the offline-worker sweep, raw-event retention and stream trimming."""
from __future__ import annotations

from .context import app_job


@app_job
def sweep_offline_workers() -> int:
    """Mark workers with no sample for WORKER_OFFLINE_AFTER seconds offline
    (``mining.sweep_offline_workers``; the owners hear of it from
    ``alert_offline_workers``). Returns how many were marked."""
    from webapp.services import mining

    return len(mining.sweep_offline_workers())


@app_job
def alert_offline_workers() -> int:
    """Tell owners about workers offline past their threshold
    (``mining.alert_offline_workers``). Returns how many workers were announced."""
    from webapp.services import mining

    return sum(len(w) for w in mining.alert_offline_workers().values())


@app_job
def purge_old_mining_events() -> int:
    """Delete raw mining events older than MINING_EVENT_RETENTION_DAYS, in
    batches (``mining.purge_old_events``). Returns how many were deleted."""
    from webapp.services import mining

    return mining.purge_old_events()


@app_job
def trim_mining_streams() -> int:
    """XTRIM the ``mining:*`` streams by MINID up to what every consumer
    group has acknowledged (``ingest.trim_acknowledged``). Returns how many
    entries were removed."""
    from webapp.services import ingest

    return sum(ingest.trim_acknowledged().values())
