"""E-mail delivery jobs."""
from __future__ import annotations


def enqueue_email(notification_id: int) -> None:
    """Enqueue delivery of one notification by e-mail."""
