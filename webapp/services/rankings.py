"""Rankings (API.md "Coop governance and discovery" → Rankings): a coop's
own leaderboard for its members, and the public leaderboard of miners.

Ranks are standard competition ranking ("1224"): 1 + the number of entries
with a strictly higher value, so ties share a rank.

Privacy: the coop leaderboard names a member whose ``showInCoopRankings``
is false as "a member" to the others (no user id; the viewer always sees
their own row); the public leaderboard lists only miners whose
``showOnLeaderboard`` is true and whose profile is public.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, true

from ..extensions import db
from ..models import MinerStats, MiningEvent, User, UserSettings, utcnow
from . import bounds
from .coops import ANONYMOUS_MEMBER, MemberInfo, get_for_member, members_of
from .errors import ValidationError

COOP_METRICS = ("hashrate", "best_difficulty", "shares_24h")
PUBLIC_METRICS = ("best_difficulty",)
PERIODS = ("all", "week")
PAGE_MAX = 100


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: ``value`` in the metric's unit (H/s, share
    difficulty, or a count). A hidden member has ``user_id``, ``rank`` and
    ``value`` None: neither name nor figure reaches the others."""

    rank: int | None
    user_id: str | None
    display_name: str
    value: float | None
    me: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "user_id": self.user_id, "display_name": self.display_name,
                "value": self.value, "me": self.me}


def _ranked(values: list[tuple[Any, float]]) -> list[tuple[int, Any, float]]:
    """(rank, key, value) in descending value order, ties sharing a rank."""
    ordered = sorted(values, key=lambda kv: -kv[1])
    out: list[tuple[int, Any, float]] = []
    rank = 0
    for position, (key, value) in enumerate(ordered, 1):
        if position == 1 or value < out[-1][2]:
            rank = position
        out.append((rank, key, value))
    return out


def coop_leaderboard(user: User, *, coop_id: int, metric: str = "hashrate",
                     now: datetime | None = None, members: list[MemberInfo] | None = None) -> list[Entry]:
    """The coop's active members ranked by ``metric``: ``hashrate`` (H/s,
    live), ``best_difficulty`` (all-time best share difficulty) or
    ``shares_24h`` (accepted shares in the last 24 h). Members whose
    ``showInCoopRankings`` is false come last as "a member" with no rank
    and no value (API.md v2 privacy); the viewer always sees their own row. Raises
    ValidationError (400: unknown metric), NotFound (404) or NotAMember (403).
    ``members``: ``members_of(coop_id, now, viewer_id=user.user_id)`` read
    by a caller that has checked the membership already (the dashboard
    page), so neither is read again."""
    if metric not in COOP_METRICS:
        raise ValidationError(f"metric must be one of {', '.join(COOP_METRICS)}.")
    now = now or utcnow()
    if members is None:
        members = members_of(get_for_member(user, coop_id=coop_id).id, now, viewer_id=user.user_id)
    ids = [m.user_id for m in members]
    if metric == "hashrate":
        values = {m.user_id: m.hashrate for m in members}
    elif metric == "best_difficulty":
        best = bounds.usable_sql(MinerStats.best_difficulty, bounds.MAX_DIFFICULTY)
        values = dict(db.session.execute(select(MinerStats.user_id, best).where(MinerStats.user_id.in_(ids))).all())
    else:
        values = dict(db.session.execute(  # type: ignore[arg-type]
            select(MiningEvent.user_id, func.count()).where(
                MiningEvent.user_id.in_(ids), MiningEvent.event == "share_submitted",
                MiningEvent.ts >= now - timedelta(hours=24), MiningEvent.accepted.is_(True))
            .group_by(MiningEvent.user_id)).all())
    # members_of with the viewer: those hiding from rankings are ``hidden``, never the viewer.
    names = {m.user_id: m.display_name for m in members}
    entries = []
    shown = [m.user_id for m in members if not m.hidden]
    for rank, user_id, value in _ranked([(uid, float(values.get(uid) or 0.0)) for uid in shown]):
        entries.append(Entry(rank, user_id, names[user_id], value, user_id == user.user_id))
    # Hidden members are counted ("a member") but neither ranked nor measured:
    # a rank or a figure would name them in a small coop.
    entries += [Entry(None, None, ANONYMOUS_MEMBER, None) for uid in ids if uid not in shown]
    return entries


def _shown_publicly():
    settings = UserSettings.privacy
    return and_(func.coalesce(settings["showOnLeaderboard"].as_boolean(), true()),
                func.coalesce(settings["publicProfile"].as_boolean(), true()))


def _value_column(period: str, now: datetime):
    """(select of user_id and value, the value expression) for the period."""
    if period == "all":
        value = bounds.usable_sql(MinerStats.best_difficulty, bounds.MAX_DIFFICULTY)
        return select(MinerStats.user_id.label("user_id"), value.label("value")).where(value > 0)
    sdiff = MiningEvent.data["sdiff"].as_float()
    usable = bounds.usable_sql(sdiff, bounds.MAX_DIFFICULTY)
    return (select(MiningEvent.user_id.label("user_id"), func.max(usable).label("value"))
            .where(MiningEvent.event == "share_submitted", MiningEvent.accepted.is_(True),
                   MiningEvent.ts >= now - timedelta(days=7))
            .group_by(MiningEvent.user_id).having(func.max(usable) > 0))


def encode_cursor(value: float, user_id: str) -> str:
    """An opaque cursor: the last row's (value, user_id)."""
    return base64.urlsafe_b64encode(json.dumps([value, user_id]).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[float, str] | None:
    """Back from ``encode_cursor``; None for none. Raises ValidationError."""
    if not raw:
        return None
    try:
        value, user_id = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(value, int | float) or not isinstance(user_id, str) or len(user_id) > 128:
            raise ValueError
        return float(value), user_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not valid; use next_cursor from the previous page.") from None


def public_leaderboard(*, metric: str = "best_difficulty", period: str = "all", cursor: str | None = None,
                       limit: int = 50, viewer_id: str | None = None,
                       now: datetime | None = None) -> tuple[list[Entry], str | None, int]:
    """Miners shown on the leaderboard by best share difficulty, all time
    or over the last 7 days (``period``), keyset pages (descending value,
    then user id). Returns (entries, next_cursor or None, total ranked).
    Raises ValidationError (400)."""
    if metric not in PUBLIC_METRICS:
        raise ValidationError(f"metric must be one of {', '.join(PUBLIC_METRICS)}.")
    if period not in PERIODS:
        raise ValidationError(f"period must be one of {', '.join(PERIODS)}.")
    if not 1 <= limit <= PAGE_MAX:
        raise ValidationError(f"limit must be 1–{PAGE_MAX}.")
    after = decode_cursor(cursor)
    now = now or utcnow()
    values = _value_column(period, now).subquery()
    base = (select(values.c.user_id, values.c.value, User.display_name)
            .join(User, User.user_id == values.c.user_id)
            .outerjoin(UserSettings, UserSettings.user_id == User.user_id)
            .where(_shown_publicly()))
    ranked = base.subquery()
    total = db.session.scalar(select(func.count()).select_from(ranked)) or 0
    query = select(ranked)
    if after is not None:
        query = query.where(or_(ranked.c.value < after[0],
                                and_(ranked.c.value == after[0], ranked.c.user_id > after[1])))
    rows = db.session.execute(query.order_by(ranked.c.value.desc(), ranked.c.user_id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    entries: list[Entry] = []
    for user_id, value, name in rows:
        value = float(value)
        if entries and value == entries[-1].value:
            rank = entries[-1].rank
        else:
            rank = 1 + (db.session.scalar(select(func.count()).select_from(ranked).where(ranked.c.value > value))
                        or 0)
        entries.append(Entry(rank, user_id, name, value, user_id == viewer_id))
    next_cursor = encode_cursor(entries[-1].value or 0.0, entries[-1].user_id or "") if more and entries else None
    return entries, next_cursor, int(total)


def viewer_rank(viewer_id: str, *, period: str = "all", now: datetime | None = None) -> int | None:
    """The viewer's rank on the public leaderboard ("Rank #5 of 42"), or
    None when they are not on it (hidden, or no accepted share yet)."""
    now = now or utcnow()
    values = _value_column(period, now).subquery()
    shown = (select(values.c.user_id, values.c.value)
             .join(User, User.user_id == values.c.user_id)
             .outerjoin(UserSettings, UserSettings.user_id == User.user_id)
             .where(_shown_publicly())).subquery()
    mine = db.session.scalar(select(shown.c.value).where(shown.c.user_id == viewer_id))
    if mine is None:
        return None
    return 1 + int(db.session.scalar(select(func.count()).select_from(shown).where(shown.c.value > mine)) or 0)
