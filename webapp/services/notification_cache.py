"""What clients poll about their notifications, cached in Redis and checked
by generation: the unread count and the newest page of the list.

``GET /api/notifications/unread-count`` and ``GET /api/notifications``
(first page, no filter) are the most polled routes: every open tab, every
frontend timer. Between two changes of a user's notifications their answer
is the same, so it is kept in the hash ``{ns}:notifications:<user_id>`` and
a poll costs one Redis ``HMGET`` instead of a database round trip
(docs/PERFORMANCE.md).

The hash holds the user's generation ``g`` and the slots ``count`` and
``page:<limit>``, each with the generation it was read under
(``services/generation_cache.py`` says how, and why a value read before a
change and stored after it is never served).

Every write of the ``notifications`` table must be followed by ``forget``
for the users it touched: ORM inserts, updates and deletes of
``Notification`` objects do it themselves (mapper events, after the
outermost commit); a Core or text statement calls ``forget`` itself
(``notifications._store_alone``, ``mark_all_read``, ``purge_older_than``,
``demo.reset_mining_data``). If a process dies between a commit and its
``forget``, or Redis cannot be written then, an old value can be served
until the hash expires (``NOTIFICATION_CACHE_TTL`` seconds without a
change, default 300). When Redis cannot be read, reads go to the database.
"""
from __future__ import annotations

from ..models import Notification
from .generation_cache import GenerationCache

COUNT = "count"  # the unread count (``notifications.cached_unread_count``)

CACHE = GenerationCache("notifications", "NOTIFICATION_CACHE_TTL")
CACHE.track(Notification, lambda row: row.user_id)

lookup = CACHE.lookup
fill = CACHE.fill
forget = CACHE.forget
forget_into = CACHE.forget_into


def page_slot(limit: int) -> str:
    """The slot of the newest page of ``limit`` items, without filters."""
    return f"page:{limit}"
