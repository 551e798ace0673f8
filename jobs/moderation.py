"""Moderation jobs: escalate reports left open for 24 hours."""
from __future__ import annotations

from .context import app_job


@app_job
def escalate_reports() -> int:
    """Escalate overdue reports to the platform admins
    (``reports.escalate_overdue``). Returns how many were escalated."""
    from webapp.services import reports

    return reports.escalate_overdue()
