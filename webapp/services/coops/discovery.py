"""Finding and asking to join coops (API.md "Coop governance and
discovery"): the directory of listed coops, the coop's discovery settings,
and join requests that the admin and moderators approve or decline.

A coop is ``private`` (default: reachable only by invite) or ``listed`` (in
``/coops`` and ``GET /api/coops/directory``); its ``join_mode`` is
``invite`` or ``request`` (listed coops may then be asked to join).
Approving a request takes a seat like a join does: the conditional
``UPDATE cooperatives SET member_count = member_count + 1 WHERE … <
20`` under the coop's row lock, and the partial unique index on active
memberships keeps one coop per user, so an approval racing an invite join
for the last seat ends with at most 20 members and a clear 409 for the loser.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ...extensions import db
from ...models import MAX_COOP_MEMBERS, Cooperative, CooperativeMember, CoopJoinRequest, MinerStats, User, utcnow
from ...vocabulary import CoopVisibility, JoinMode, JoinRequestStatus, MemberRole
from ...vocabulary import NotificationSubtype as S
from .. import activity, addresses, moderation, notifications
from ..errors import AlreadyInCoop, Banned, Conflict, CoopFull, Forbidden, NotFound, ValidationError
from ..membership import is_active_coop, is_active_member, is_moderating_member
from .changes import _or_already_in_coop
from .coop_invites import _require_moderator
from .lookups import COOP_LINK, MAX_COOP_ID, _require_admin, active_membership, announce_on_commit, lock_active_coop

SORTS = ("hashrate", "members", "new")
DIRECTORY_PAGE_MAX = 50
QUERY_MAX = 100
REQUEST_MESSAGE_MAX = 280
MANAGE_LINK = "/coop/manage"


class NotListed(Forbidden):
    code, message = "not_accepting_requests", "This cooperative does not take join requests; ask for an invite."


@dataclass(frozen=True)
class DirectoryEntry:
    """One listed coop as the directory shows it (no invite code)."""

    coop: Cooperative
    blocks_found: int

    def to_dict(self) -> dict[str, Any]:
        c = self.coop
        return {
            "id": c.id, "name": c.name, "description": c.description, "member_count": c.member_count,
            "max_members": MAX_COOP_MEMBERS, "has_room": c.member_count < MAX_COOP_MEMBERS,
            "total_hashrate": c.total_hashrate, "blocks_found": self.blocks_found,
            "country_code": c.country_code, "join_mode": c.join_mode, "visibility": c.visibility,
            "created_at": c.created_at.isoformat().replace("+00:00", "Z"),
        }


_ORDER = {
    "hashrate": (Cooperative.total_hashrate, Cooperative.id),
    "members": (Cooperative.member_count, Cooperative.id),
    "new": (Cooperative.created_at, Cooperative.id),
}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def directory(*, q: str | None = None, country: str | None = None, has_room: bool | None = None,
              min_hashrate: float | None = None, max_hashrate: float | None = None, sort: str = "hashrate",
              cursor: int | None = None, limit: int = 20) -> tuple[list[DirectoryEntry], int | None]:
    """One keyset page of listed, active coops.

    ``q`` matches the name (case-insensitive substring, ≤ 100 chars);
    ``country`` an ISO 3166-1 alpha-2 code; ``has_room`` fewer than 20
    members; ``min_hashrate``/``max_hashrate`` bound the combined hashrate
    (H/s, inclusive); ``sort`` ``hashrate`` | ``members`` | ``new`` (all
    descending, then id descending). ``cursor`` is the id of the last coop of
    the previous page (``next_cursor``). Returns (entries, next_cursor or
    None). Private and dissolved coops never appear. Raises ValidationError.
    """
    if sort not in SORTS:
        raise ValidationError(f"sort must be one of {', '.join(SORTS)}.")
    if not 1 <= limit <= DIRECTORY_PAGE_MAX:
        raise ValidationError(f"limit must be 1–{DIRECTORY_PAGE_MAX}.")
    addresses.check_country_code(country)
    query = select(Cooperative).where(is_active_coop(), Cooperative.visibility == CoopVisibility.LISTED.value)
    if q is not None:
        q = q.strip()
        if len(q) > QUERY_MAX:
            raise ValidationError(f"q is at most {QUERY_MAX} characters.")
        if q:
            query = query.where(Cooperative.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
    if country is not None:
        query = query.where(Cooperative.country_code == country)
    if has_room:
        query = query.where(Cooperative.member_count < MAX_COOP_MEMBERS)
    if min_hashrate is not None:
        query = query.where(Cooperative.total_hashrate >= min_hashrate)
    if max_hashrate is not None:
        query = query.where(Cooperative.total_hashrate <= max_hashrate)
    key, tie = _ORDER[sort]
    if cursor is not None:
        last = db.session.scalar(select(key).where(
            Cooperative.id == cursor, is_active_coop(), Cooperative.visibility == CoopVisibility.LISTED.value))
        if last is None:
            raise ValidationError("cursor is not valid; use next_cursor from the previous page.")
        query = query.where(or_(key < last, and_(key == last, tie < cursor)))
    rows = list(db.session.scalars(query.order_by(key.desc(), tie.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    blocks = _blocks_by_coop([c.id for c in rows])
    return [DirectoryEntry(c, blocks.get(c.id, 0)) for c in rows], (rows[-1].id if more else None)


def _blocks_by_coop(coop_ids: list[int]) -> dict[int, int]:
    """Blocks found by each coop's active members (MinerStats.blocks_found)."""
    if not coop_ids:
        return {}
    rows = db.session.execute(
        select(CooperativeMember.cooperative_id, func.coalesce(func.sum(MinerStats.blocks_found), 0))
        .join(MinerStats, MinerStats.user_id == CooperativeMember.user_id)
        .where(CooperativeMember.cooperative_id.in_(coop_ids), is_active_member())
        .group_by(CooperativeMember.cooperative_id)
    ).all()
    return {coop_id: int(total) for coop_id, total in rows}


def update_discovery(user: User, *, coop_id: int, visibility: str | None = None, join_mode: str | None = None,
                     country_code: str | None = None, clear_country: bool = False) -> Cooperative:
    """The admin sets the coop's ``visibility`` (private|listed),
    ``join_mode`` (invite|request) and ``country_code`` (ISO 3166-1 alpha-2;
    ``clear_country`` removes it). Raises ValidationError (400), NotFound
    (404), CoopDissolved (409) or NotAdmin (403)."""
    if visibility is not None and visibility not in set(CoopVisibility):
        raise ValidationError("visibility must be private or listed.")
    if join_mode is not None and join_mode not in set(JoinMode):
        raise ValidationError("join_mode must be invite or request.")
    addresses.check_country_code(country_code)
    coop = lock_active_coop(coop_id)
    _require_admin(coop, user)
    if visibility is not None:
        coop.visibility = visibility
    if join_mode is not None:
        coop.join_mode = join_mode
    if country_code is not None or clear_country:
        coop.country_code = country_code
    announce_on_commit(coop.id, actor=user.user_id)
    db.session.commit()
    return coop


# ---- join requests --------------------------------------------------------------------------


def request_to_join(user: User, *, coop_id: int, message: str | None = None) -> CoopJoinRequest:
    """Ask to join a listed coop whose ``join_mode`` is ``request``; its admin
    and moderators are notified. Returns the pending request (the existing
    one when the user already asked).

    Raises ValidationError (400: message over 280 characters), NotFound (404:
    no such active coop, or a private one — indistinguishable), NotListed
    (403 ``not_accepting_requests``), Banned (403), AlreadyInCoop (409) or
    CoopFull (409).
    """
    message = (message or "").strip()
    if len(message) > REQUEST_MESSAGE_MAX:
        raise ValidationError(f"The message can have at most {REQUEST_MESSAGE_MAX} characters.")
    coop = db.session.get(Cooperative, coop_id) if isinstance(coop_id, int) and 1 <= coop_id <= MAX_COOP_ID else None
    if coop is None or coop.status != "active" or coop.visibility != CoopVisibility.LISTED.value:
        db.session.rollback()
        raise NotFound("No such cooperative.")
    if coop.join_mode != JoinMode.REQUEST.value:
        db.session.rollback()
        raise NotListed()
    if active_membership(user) is not None:
        db.session.rollback()
        raise AlreadyInCoop()
    try:
        moderation.ensure_not_banned(coop.id, user.user_id)
    except Banned:
        db.session.rollback()
        raise
    if coop.member_count >= MAX_COOP_MEMBERS:
        db.session.rollback()
        raise CoopFull()
    existing = _pending(coop.id, user.user_id)
    if existing is not None:
        db.session.rollback()
        return existing
    request = CoopJoinRequest(cooperative_id=coop.id, user_id=user.user_id, message=message)
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError:  # the one-pending index: a concurrent twin won
        db.session.rollback()
        found = _pending(coop.id, user.user_id)
        if found is None:
            raise
        return found
    for moderator_id in db.session.scalars(select(CooperativeMember.user_id).where(
            is_moderating_member(coop.id))):
        notifications.notify_kind(moderator_id, S.COOP_JOIN_REQUEST, link=MANAGE_LINK, commit=False,
                                  data={"cooperative_id": coop.id, "user_id": user.user_id, "request_id": request.id},
                                  member=user.display_name, coop=coop.name)
    db.session.commit()
    return request


def _pending(coop_id: int, user_id: str) -> CoopJoinRequest | None:
    return db.session.scalar(select(CoopJoinRequest).where(
        CoopJoinRequest.cooperative_id == coop_id, CoopJoinRequest.user_id == user_id,
        CoopJoinRequest.status == JoinRequestStatus.PENDING.value))


def list_requests(user: User, *, coop_id: int) -> list[CoopJoinRequest]:
    """Pending requests of the coop, oldest first (admin and moderators).
    Raises NotFound (404), CoopDissolved (409) or NotModerator (403)."""
    coop = lock_active_coop(coop_id)
    _require_moderator(coop, user)
    rows = list(db.session.scalars(select(CoopJoinRequest).where(
        CoopJoinRequest.cooperative_id == coop.id, CoopJoinRequest.status == JoinRequestStatus.PENDING.value)
        .order_by(CoopJoinRequest.created_at, CoopJoinRequest.id)))
    db.session.commit()
    return rows


def _locked_request(user: User, coop_id: int, request_id: int) -> tuple[Cooperative, CoopJoinRequest]:
    coop = lock_active_coop(coop_id)
    _require_moderator(coop, user)
    if not 1 <= request_id <= MAX_COOP_ID:  # beyond the 32-bit column: no such request
        db.session.rollback()
        raise NotFound("No such join request.")
    request = db.session.scalar(select(CoopJoinRequest).where(
        CoopJoinRequest.id == request_id, CoopJoinRequest.cooperative_id == coop.id).with_for_update())
    if request is None:
        db.session.rollback()
        raise NotFound("No such join request.")
    if request.status != JoinRequestStatus.PENDING.value:
        db.session.rollback()
        raise Conflict(f"This request was already {request.status}.")
    return coop, request


def approve_request(user: User, *, coop_id: int, request_id: int) -> CoopJoinRequest:
    """Approve a pending request: the applicant becomes a member (a seat is
    taken like a join: the 20-member cap and one coop per user hold under
    concurrency) and is notified. Raises NotFound (404), CoopDissolved /
    Conflict (409: already decided), NotModerator (403), CoopFull (409) or
    AlreadyInCoop (409: the applicant joined another coop meanwhile; the
    request is then left pending for a decline)."""
    coop, request = _locked_request(user, coop_id, request_id)
    claimed = db.session.execute(
        update(Cooperative)
        .where(Cooperative.id == coop.id, is_active_coop(), Cooperative.member_count < MAX_COOP_MEMBERS)
        .values(member_count=Cooperative.member_count + 1)
        .returning(Cooperative.id)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        db.session.rollback()
        raise CoopFull()
    try:  # under the row lock: a ban committed first is seen here
        moderation.ensure_not_banned(coop.id, request.user_id)
    except Banned:
        db.session.rollback()
        raise
    now = utcnow()
    db.session.add(CooperativeMember(cooperative_id=coop.id, user_id=request.user_id, role=MemberRole.MEMBER))
    request.status, request.decided_at, request.decided_by = JoinRequestStatus.APPROVED.value, now, user.user_id
    _or_already_in_coop(db.session.flush)
    activity.record_activity(request.user_id, "coop_joined", f"Joined {coop.name}",
                             data={"cooperative_id": coop.id, "role": "member", "request_id": request.id},
                             link=COOP_LINK)
    notifications.notify_kind(request.user_id, S.COOP_JOIN_APPROVED, link=COOP_LINK, commit=False,
                              data={"cooperative_id": coop.id, "request_id": request.id}, coop=coop.name)
    announce_on_commit(coop.id, also=[request.user_id], actor=user.user_id)
    _or_already_in_coop()
    return request


def decline_request(user: User, *, coop_id: int, request_id: int) -> CoopJoinRequest:
    """Decline a pending request; the applicant is notified. Raises NotFound
    (404), Conflict (409: already decided) or NotModerator (403)."""
    coop, request = _locked_request(user, coop_id, request_id)
    request.status, request.decided_at, request.decided_by = (
        JoinRequestStatus.DECLINED.value, utcnow(), user.user_id)
    notifications.notify_kind(request.user_id, S.COOP_JOIN_DECLINED, link="/coops", commit=False,
                              data={"cooperative_id": coop.id, "request_id": request.id}, coop=coop.name)
    db.session.commit()
    return request


def my_pending_request(user: User, coop_id: int) -> CoopJoinRequest | None:
    """The user's pending request to the coop, if any (for the directory page)."""
    return _pending(coop_id, user.user_id)
