"""Web Push delivery jobs (queue ``push``): one job per notification,
retried by RQ with back-off and re-enqueued by the delivery sweep
(``services/webpush.py``)."""
from __future__ import annotations

from .context import get_app


def send_push(notification_id: int) -> str:
    """Push one notification to its user's browsers (``services.webpush.deliver``),
    in an app context and DB session of its own (inline in the embedded default)."""
    from webapp.services import webpush

    with get_app().app_context():
        return webpush.deliver(notification_id)
