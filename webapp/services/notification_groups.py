"""Grouped notifications (API.md ``GET /api/notifications?grouped=true``;
Mastodon's grouped notifications): rows sharing a ``group_key``
(``<subtype>:<subject>``, given by ``notifications.group_key_for``) show
as one expandable row, "7 miners joined Satoshi's Hunters", "3 new
personal bests".

Groups are ordered by their newest row, newest first; the keyset cursor is
that row's id (the next page holds groups whose newest row is older). A
group that receives a new row between two pages moves to the top of the
first page (it may then appear on both: clients merge by ``group_key``).
Rows stored before grouping existed (no ``group_key``) group by subtype.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, false, func, select

from ..extensions import db
from ..models import Cooperative, Notification
from ..vocabulary import NotificationSubtype as S
from .notifications import check_category

MAX_EXPANDED = 20  # rows shown inside one expanded group


@dataclass
class Group:
    """One group: its key, size, unread count, newest row, and (when asked)
    up to ``MAX_EXPANDED`` of its rows newest first."""

    group_key: str
    count: int
    unread_count: int
    latest: Notification
    items: list[Notification] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """API.md shape: ``{"group_key", "count", "latest", "unread_count"}``."""
        return {"group_key": self.group_key, "count": self.count, "latest": self.latest.to_dict(),
                "unread_count": self.unread_count}


def _key():
    n = Notification
    return func.coalesce(n.group_key, n.subtype + ":" + n.user_id)


def list_groups(user_id: str, *, limit: int, before_id: int | None = None, category: str | None = None,
                unread_only: bool = False, expand: bool = False,
                per_group: int = MAX_EXPANDED) -> tuple[list[Group], int | None]:
    """One page of the user's groups, newest first (see module doc).
    ``before_id``: the cursor (groups whose newest row has a lower id).
    ``unread_only`` keeps unread rows only; ``expand`` loads each group's
    newest ``per_group`` rows (at most ``MAX_EXPANDED``; the bell shows 5).
    Returns (groups, next cursor or None). Raises ValidationError for an
    unknown category."""
    check_category(category)
    n = Notification
    key = _key().label("key")
    newest = func.max(n.id).label("newest")
    query = (select(key, func.count().label("size"), newest,
                    func.sum(case((n.is_read == false(), 1), else_=0)).label("unread"))
             .where(n.user_id == user_id).group_by(key))
    if category:
        query = query.where(n.category == category)
    if unread_only:
        query = query.where(n.is_read == false())
    if before_id is not None:
        query = query.having(func.max(n.id) < before_id)
    rows = db.session.execute(query.order_by(newest.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if expand and rows:
        # The newest rows of each group hold its latest: one query for both.
        by_key = _newest_rows(user_id, [row.key for row in rows], category, unread_only, min(per_group, MAX_EXPANDED))
        latest = {item.id: item for items in by_key.values() for item in items}
    else:
        by_key = {}
        latest = {r.id: r for r in db.session.scalars(select(n).where(n.id.in_([row.newest for row in rows])))}
    groups = []
    for row in rows:
        items = by_key.get(row.key, [])
        # A row committed or deleted since the count: the group's newest row now.
        newest_row = latest.get(row.newest) or (items[0] if items else None)
        if newest_row is not None:
            groups.append(Group(row.key, row.size, int(row.unread or 0), newest_row,
                                (items or [newest_row]) if expand else []))
    return groups, (rows[-1].newest if more else None)


def _newest_rows(user_id: str, keys: list[str], category: str | None, unread_only: bool,
                 per_group: int) -> dict[str, list[Notification]]:
    """The newest ``per_group`` rows of each group of ``keys``, newest first."""
    n = Notification
    key = _key()
    ranked = (select(n.id, func.row_number().over(partition_by=key, order_by=n.id.desc()).label("rank"))
              .where(n.user_id == user_id, key.in_(keys)))
    if category:
        ranked = ranked.where(n.category == category)
    if unread_only:
        ranked = ranked.where(n.is_read == false())
    sub = ranked.subquery()
    ids = select(sub.c.id).where(sub.c.rank <= per_group)
    by_key: dict[str, list[Notification]] = {}
    for row in db.session.scalars(select(n).where(n.id.in_(ids)).order_by(n.id.desc())):
        by_key.setdefault(row.group_key or f"{row.subtype}:{row.user_id}", []).append(row)
    return by_key


def titles(groups: list[Group]) -> dict[str, str]:
    """What each group's row says (``{group_key: title}``): "7 miners
    joined Satoshi's Hunters", "3 new personal bests", "3 worker-offline
    alerts"; a group of one says its row's title."""
    coop_ids = {g.latest.data.get("cooperative_id") for g in groups
                if g.count > 1 and isinstance(g.latest.data, dict) and isinstance(g.latest.data.get("cooperative_id"), int)}
    names = dict(db.session.execute(select(Cooperative.id, Cooperative.name)
                                    .where(Cooperative.id.in_(coop_ids))).all()) if coop_ids else {}
    out = {}
    for g in groups:
        if g.count == 1:
            out[g.group_key] = g.latest.title
            continue
        data = g.latest.data if isinstance(g.latest.data, dict) else {}
        coop = names.get(data["cooperative_id"], "your cooperative") if isinstance(data.get("cooperative_id"), int) \
            else "your cooperative"
        phrases: dict[str, str] = {
            S.COOP_MEMBER_JOINED: f"{g.count} miners joined {coop}",
            S.COOP_MEMBER_LEFT: f"{g.count} miners left {coop}",
            S.PERSONAL_BEST: f"{g.count} new personal bests",
            S.WORKER_OFFLINE: f"{g.count} worker-offline alerts",
            S.WORKER_ONLINE: f"{g.count} workers back online",
            S.BADGE_EARNED: f"{g.count} badges earned",
            S.BLOCK_FOUND_ANY: f"{g.count} blocks found on the pool",
        }
        out[g.group_key] = phrases.get(g.latest.subtype, f"{g.latest.title} and {g.count - 1} more")
    return out
