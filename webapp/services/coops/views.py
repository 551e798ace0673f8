"""Cooperatives as their members see them: members with live hashrate,
the combined hashrate (endpoint 8), the stats (endpoint 9), the dashboard."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, true

from ...extensions import db
from ...models import Cooperative, CooperativeMember, MinerStats, MiningEvent, User, UserSettings, iso, utcnow
from ...vocabulary import CoopStatus, MemberStatus
from .. import coop_hashrate
from ..bounds import MAX_DIFFICULTY, usable_sql
from ..hashrate import Chart, ChartRange, Series, hashrate_by_user, sum_series, time_grid, worker_history
from ..membership import active_member_ids, is_active_member
from .lookups import get_for_member

# ---- views for members --------------------------------------------------------------

ANONYMOUS_MEMBER = "a member"  # how a member with showInCoopRankings false is named to others


HIDDEN_MEMBER_NAME = ANONYMOUS_MEMBER  # API.md: a miner hidden from rankings appears as "a member"


@dataclass
class MemberInfo:
    """An active member with live hashrate (API.md member object).

    ``hidden``: the member turned ``showInCoopRankings`` off and the viewer
    is someone else: the name reads "a member" and the hashrate, online
    state and worker count are None (the coop's total still counts them).
    ``linked``: their profile page may be linked (``publicProfile`` on)."""

    user_id: str
    display_name: str
    role: str
    joined_at: datetime
    hashrate: float | None  # H/s, sum of the latest hashrate_1h of online workers; None when hidden
    is_online: bool | None  # at least one worker online; None when hidden
    workers_online: int | None
    hidden: bool = False
    linked: bool = True
    counted_hashrate: float = 0.0  # H/s, hidden or not: only for the coop's combined figure


    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "role": self.role,
            "joined_at": iso(self.joined_at),
            "hashrate": self.hashrate,
            "is_online": self.is_online,
            "workers_online": self.workers_online,
            "hidden": self.hidden,
        }


def _flag(name: str):
    """SQL: a privacy switch of the member, true when unset (the default)."""
    return func.coalesce(UserSettings.privacy[name].as_boolean(), true())


def members_of(coop_id: int, now: datetime | None = None, *, viewer_id: str | None = None) -> list[MemberInfo]:
    """Active members of a coop, longest-standing first, with live hashrate
    (no access check: callers have done it, or are the CLI). With a
    ``viewer_id``, members who hide from coop rankings are ``hidden`` to
    everyone but themselves; without one (the CLI) nothing is hidden."""
    rows = db.session.execute(
        select(CooperativeMember, User.display_name, _flag("showInCoopRankings"), _flag("publicProfile"))
        .join(User, User.user_id == CooperativeMember.user_id)
        .outerjoin(UserSettings, UserSettings.user_id == CooperativeMember.user_id)
        .where(is_active_member(coop_id))
        .order_by(CooperativeMember.joined_at, CooperativeMember.id)
    ).all()
    rates = hashrate_by_user([m.user_id for m, *_ in rows], now)
    members = []
    for m, name, in_rankings, public in rows:
        hidden = viewer_id is not None and not in_rankings and m.user_id != viewer_id
        rate, online = rates[m.user_id]
        members.append(MemberInfo(
            user_id=m.user_id,
            display_name=HIDDEN_MEMBER_NAME if hidden else name,
            role=m.role,
            joined_at=m.joined_at,
            hashrate=None if hidden else rate,
            is_online=None if hidden else online > 0,
            workers_online=None if hidden else online,
            hidden=hidden,
            linked=bool(public) and not hidden,
            counted_hashrate=rate,
        ))
    return members


def list_members(user: User, *, coop_id: int) -> list[MemberInfo]:
    """Active members, longest-standing first (endpoint 5), as ``user``
    may see them (``members_of``). Raises NotFound (404) or NotAMember (403)."""
    coop = get_for_member(user, coop_id=coop_id)
    return members_of(coop.id, viewer_id=user.user_id)


@dataclass
class CoopHashrate:
    """Endpoint 8: the coop's combined hashrate and each member's."""

    cooperative_id: int
    total_hashrate: float  # H/s, from the last aggregation (cached ≤ 300 s) or computed now
    online_count: int
    updated_at: datetime
    members: list[MemberInfo]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cooperative_id": self.cooperative_id,
            "total_hashrate": self.total_hashrate,
            "online_count": self.online_count,
            # A member hidden from rankings: no id, no name, no hashrate (API.md "a member").
            "members": [
                {"user_id": None if m.hidden else m.user_id, "display_name": m.display_name,
                 "hashrate": m.hashrate, "is_online": m.is_online}
                for m in self.members
            ],
            "updated_at": iso(self.updated_at),
        }


def hashrate(user: User, *, coop_id: int) -> CoopHashrate:
    """Endpoint 8. The total comes from the Redis cache the aggregation job
    fills (TTL ``COOP_HASHRATE_CACHE_TTL``), computed for this coop on a miss;
    members' hashrates are live. Raises NotFound (404) or NotAMember (403)."""
    coop = get_for_member(user, coop_id=coop_id)
    total = coop_hashrate.cached_total(coop.id)
    return CoopHashrate(coop.id, total.total_hashrate, total.online_count, total.updated_at,
                        members_of(coop.id, viewer_id=user.user_id))


@dataclass
class CoopStats:
    """Endpoint 9 (definitions: API.md public stats, over active members)."""

    cooperative_id: int
    member_count: int
    online_count: int  # members with at least one online worker
    total_hashrate: float  # H/s, as endpoint 8
    shares_24h: int  # accepted shares of active members in the last 24 h
    best_difficulty: float  # highest accepted share difficulty of any active member
    blocks_found: int  # sum over active members
    created_at: datetime
    hashrate_updated_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cooperative_id": self.cooperative_id,
            "member_count": self.member_count,
            "online_count": self.online_count,
            "total_hashrate": self.total_hashrate,
            "shares_24h": self.shares_24h,
            "best_difficulty": self.best_difficulty,
            "blocks_found": self.blocks_found,
            "created_at": iso(self.created_at),
            "hashrate_updated_at": iso(self.hashrate_updated_at),
        }


def stats(user: User, *, coop_id: int, now: datetime | None = None) -> CoopStats:
    """Endpoint 9. ``shares_24h`` counts accepted ``share_submitted`` events
    of the active members since ``now - 24 h`` (index on user_id, event, ts);
    best difficulty and blocks come from the members' ``miner_stats``
    rollups. Raises NotFound (404) or NotAMember (403)."""
    coop = get_for_member(user, coop_id=coop_id)
    return _stats(coop, now or utcnow())


def _stats(coop: Cooperative, now: datetime) -> CoopStats:
    active_ids = active_member_ids(coop.id)
    shares = db.session.scalar(
        select(func.count()).select_from(MiningEvent).where(
            MiningEvent.user_id.in_(active_ids),
            MiningEvent.event == "share_submitted",
            MiningEvent.ts >= now - timedelta(hours=24),
            MiningEvent.accepted.is_(True),
        )
    )
    best, blocks = db.session.execute(
        select(func.coalesce(func.max(usable_sql(MinerStats.best_difficulty, MAX_DIFFICULTY)), 0.0),
               func.coalesce(func.sum(MinerStats.blocks_found), 0))
        .where(MinerStats.user_id.in_(active_ids))
    ).one()
    total = coop_hashrate.cached_total(coop.id, now)
    return CoopStats(
        cooperative_id=coop.id,
        member_count=coop.member_count,
        online_count=total.online_count,
        total_hashrate=total.total_hashrate,
        shares_24h=int(shares or 0),
        best_difficulty=float(best or 0.0),
        blocks_found=int(blocks or 0),
        created_at=coop.created_at,
        hashrate_updated_at=total.updated_at,
    )


def dashboard(user: User, *, coop_id: int) -> tuple[Cooperative, CoopStats, list[MemberInfo]]:
    """Everything the ``/coop`` page shows, for an active member."""
    coop = get_for_member(user, coop_id=coop_id)
    now = utcnow()
    return coop, _stats(coop, now), members_of(coop.id, now, viewer_id=user.user_id)


def hashrate_chart(user: User, *, coop_id: int, rng: ChartRange, now: datetime | None = None,
                   members: list[MemberInfo] | None = None) -> Chart:
    """The coop's hashrate chart (``GET /api/coops/{id}/hashrate/history``):
    ``combined`` from the aggregation's samples (``coop_hashrate.
    combined_values``; None before any sample) and one series per active
    member, their workers summed (``hashrate.worker_history``).

    Privacy (API.md v2): a member whose ``showInCoopRankings`` is false is
    shown to the others as "a member" (key ``member-<n>``), listed after the
    named members by peak hashrate so neither name nor join order leaks; the
    viewer always sees their own name. Raises NotFound (404) or NotAMember (403).
    ``members``: ``members_of(coop_id, now, viewer_id=user.user_id)`` read
    by a caller that has checked the membership already (the dashboard
    page), so neither is read again.
    """
    now = now or utcnow()
    if members is None:
        members = members_of(get_for_member(user, coop_id=coop_id).id, now, viewer_id=user.user_id)
    grid = time_grid(rng, now)
    history = worker_history([m.user_id for m in members], rng, now)
    named, hidden = [], []
    for member in members:  # with the viewer: ``hidden`` hides from rankings, never the viewer
        values = sum_series(history.get(member.user_id, {}).values(), len(grid))
        if not member.hidden:
            named.append(Series(f"member:{member.user_id}", member.display_name, values))
        else:
            hidden.append(values)
    hidden.sort(key=lambda values: max((v or 0.0) for v in values) if values else 0.0, reverse=True)
    series = [Series("combined", "Coop combined", coop_hashrate.combined_values(coop_id, rng, now))]
    series += named
    series += [Series(f"member-{i}", ANONYMOUS_MEMBER, values) for i, values in enumerate(hidden, 1)]
    return Chart(rng, now - rng.span, now, "H/s", "linear", rng.step, grid, series)


def departure(user: User, *, coop_id: int) -> str:
    """Why ``user`` no longer sees ``coop_id`` (they are not an active member
    of it), as a sentence for the page they had open: the coop was
    dissolved, they were removed, they left (in another tab), or they were
    never in it."""
    coop = db.session.get(Cooperative, coop_id) if isinstance(coop_id, int) else None
    if coop is None:
        return "That cooperative no longer exists."
    if coop.status != CoopStatus.ACTIVE:
        return f"{coop.name} was dissolved."
    last = db.session.scalar(
        select(CooperativeMember.status)
        .where(CooperativeMember.cooperative_id == coop.id, CooperativeMember.user_id == user.user_id)
        .order_by(CooperativeMember.id.desc()).limit(1)
    )
    if last == MemberStatus.REMOVED:
        return f"You were removed from {coop.name}."
    if last == MemberStatus.LEFT:
        return f"You left {coop.name}."
    return f"You are not a member of {coop.name}."
