"""Notification jobs: retention and broadcast fan-out."""
from __future__ import annotations

from .context import app_job


@app_job
def purge_old_notifications() -> None:
    """Delete notifications older than NOTIFICATION_RETENTION_DAYS, in batches."""
