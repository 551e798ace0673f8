"""Friend jobs: pending requests expire after 30 days."""
from __future__ import annotations

from .context import app_job


@app_job
def expire_friend_requests() -> int:
    """Mark pending friend requests older than ``FRIEND_REQUEST_TTL_DAYS``
    expired (``friends.expire_stale``). Returns how many."""
    from webapp.services import friends

    return friends.expire_stale()
