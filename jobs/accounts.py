"""Account jobs: retention of ended login sessions and revoked tokens."""
from __future__ import annotations

from .context import app_job


@app_job
def purge_dead_sessions() -> int:
    """Delete ended login sessions and expired denylisted bearer tokens
    (``sessions.purge_dead``). Returns how many rows were deleted."""
    from webapp.services import sessions

    return sessions.purge_dead()
