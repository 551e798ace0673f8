"""Notification jobs: retention and broadcast fan-out."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app

from .context import app_job, get_app

PURGE_BATCH = 5000  # ids per DELETE statement


@app_job
def purge_old_notifications() -> int:
    """Delete notifications older than NOTIFICATION_RETENTION_DAYS, in
    batches of PURGE_BATCH ids (their delivery rows go by ON DELETE CASCADE),
    and Idempotency-Keys older than IDEMPOTENCY_KEY_TTL.
    Returns how many notifications were deleted."""
    from webapp.models import utcnow
    from webapp.services import idempotency, notifications

    cutoff = utcnow() - timedelta(days=current_app.config["NOTIFICATION_RETENTION_DAYS"])
    deleted = notifications.purge_older_than(cutoff, batch_size=PURGE_BATCH)
    current_app.logger.info("purged %d notifications older than %s", deleted, cutoff.isoformat())
    keys = idempotency.purge_expired()
    current_app.logger.info("purged %d expired idempotency keys", keys)
    return deleted


def fan_out_broadcast(broadcast_id: int) -> None:
    """Send a broadcast to every user (``services.broadcasts.fan_out``), in
    an app context and DB session of its own (inline in the embedded default)."""
    from webapp.services import broadcasts

    with get_app().app_context():
        broadcasts.fan_out(broadcast_id)
