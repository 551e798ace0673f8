"""Live pushes across processes: Redis PUBLISH on a per-user channel after the
DB commit; each web process runs one listener feeding its sockets' queues.

Redis pub/sub is at-most-once: the notification row is the record and a
socket recovers anything missed with ``since`` catch-up.
"""
from __future__ import annotations

import json
from typing import Any

from .extensions import get_redis, redis_key


def user_channel(user_id: str) -> str:
    """The pub/sub channel of one user."""
    return redis_key("user", user_id)


def publish(user_id: str, message: dict[str, Any]) -> None:
    """Publish ``message`` (JSON-serialisable) to every socket of ``user_id``."""
    get_redis().publish(user_channel(user_id), json.dumps(message))


def notification_created(user_id: str, notification_id: int) -> None:
    """Poke the user's sockets: a committed notification exists."""
    publish(user_id, {"type": "notification_created", "id": notification_id})
