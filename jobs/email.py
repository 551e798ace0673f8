"""E-mail delivery jobs (queue ``email``) and the sweep that reclaims lost ones.

Retries: ``Retry(max=3, interval=EMAIL_RETRY_INTERVALS)`` — three retries
with back-off after the first attempt; RQ schedules them, so the worker runs
with its scheduler (``flask worker`` does). Beyond RQ, every delivery row is
leased (``services/email.py``): ``sweep_email_deliveries`` (periodic, see
``jobs/schedule.py``) re-enqueues a delivery whose sender died or whose job
was lost, up to ``EMAIL_MAX_ATTEMPTS`` in all.
"""
from __future__ import annotations

from flask import current_app

from webapp.services.email import JOB_TIMEOUT, MAX_RETRIES, QUEUE  # noqa: F401 - re-exported

from .context import app_job, get_app


def enqueue_email(notification_id: int) -> None:
    """Enqueue delivery of one notification by e-mail (``services.email.enqueue_delivery``)."""
    from webapp.services import email

    email.enqueue_delivery(notification_id)


def send_notification_email(notification_id: int) -> str:
    """Deliver one notification's e-mail (``services.email.deliver``).

    Always in an app context of its own, hence its own DB session: the
    embedded default runs this inline from the dispatcher's after-commit
    hook, where the caller's session cannot emit SQL.
    """
    from webapp.services import email

    with get_app().app_context():
        return email.deliver(notification_id)


@app_job
def sweep_email_deliveries() -> dict[str, int]:
    """Reclaim expired e-mail leases and lost jobs (``services.email.sweep``),
    the same for push deliveries (``services.webpush.sweep``), and resume
    broadcasts whose fan-out stopped half-way (``services.broadcasts.resume_stalled``).
    Returns ``{"requeued": n, "gave_up": n, "push_requeued": n, "broadcasts_resumed": n}``."""
    from webapp.services import broadcasts, email, webpush

    result = email.sweep()
    if result.requeued or result.gave_up:
        current_app.logger.info("e-mail sweep: re-enqueued %d, gave up on %d",
                                len(result.requeued), len(result.gave_up))
    pushes = webpush.sweep()
    resumed = broadcasts.resume_stalled()
    return {"requeued": len(result.requeued), "gave_up": len(result.gave_up), "push_requeued": len(pushes),
            "broadcasts_resumed": len(resumed)}


@app_job
def send_email_summaries() -> int:
    """Send the summary mails that are due: held mail after quiet hours or
    the hourly cap, daily and weekly digests (``services.summaries.send_due``).
    Returns how many were sent."""
    from webapp.services import summaries

    return len(summaries.send_due())
