"""E-mail delivery jobs (queue ``email``).

Retries: ``Retry(max=3, interval=EMAIL_RETRY_INTERVALS)`` — three retries
with back-off after the first attempt; RQ schedules them, so the worker runs
with its scheduler (``flask worker`` does).
"""
from __future__ import annotations

from flask import current_app
from rq import Retry

from webapp.extensions import get_queue

from .context import get_app

QUEUE = "email"
MAX_RETRIES = 3
JOB_TIMEOUT = 60  # seconds; smtplib has no timeout of its own


def enqueue_email(notification_id: int) -> None:
    """Enqueue delivery of one notification by e-mail (after its commit)."""
    get_queue(QUEUE).enqueue(
        send_notification_email,
        notification_id,
        retry=Retry(max=MAX_RETRIES, interval=list(current_app.config["EMAIL_RETRY_INTERVALS"])),
        job_timeout=JOB_TIMEOUT,
        description=f"e-mail notification {notification_id}",
    )


def send_notification_email(notification_id: int) -> str:
    """Deliver one notification's e-mail (``services.email.deliver``).

    Always in an app context of its own, hence its own DB session: the
    embedded default runs this inline from the dispatcher's after-commit
    hook, where the caller's session cannot emit SQL.
    """
    from webapp.services import email

    with get_app().app_context():
        return email.deliver(notification_id)
