"""Cooperatives: teams of at most 20 miners joined by an invite code
(seed 000 §7.3, API.md "Coop rules").

Every rule holds under concurrent requests because the database enforces it:

- the member cap is a conditional ``UPDATE cooperatives SET member_count =
  member_count + 1 WHERE id = :id AND status = 'active' AND invite_code =
  :code AND member_count < 20 RETURNING ...`` in the same transaction as the
  membership insert. The UPDATE takes the coop's row lock, so concurrent joins
  of one coop queue up, and under READ COMMITTED each re-evaluates its WHERE
  on the newest row version once the lock is free: the 21st join matches no
  row. Re-checking ``invite_code`` in the same WHERE means a join with the old
  code can never succeed once a regeneration has committed;
- one active coop per user and one active admin per coop are partial unique
  indexes on ``cooperative_members``; a violation becomes 409
  ``already_in_coop``, never a 500;
- invite codes are unique among active coops by a partial unique index; a
  collision retries with a fresh code;
- every other change to a coop (leave, remove, regenerate, edit, dissolve)
  first locks the coop row (``SELECT ... FOR UPDATE``), so member counts,
  admin hand-over and dissolution are decided on current data.

Services take the acting user and keyword arguments, commit their own
transaction, return models and raise ``services.errors`` domain errors.
Reads of a dissolved coop answer 404 ``not_found``; actions on one answer 409
``coop_dissolved`` (docs/COOPS.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .. import realtime
from ..extensions import db
from ..models import (
    MAX_COOP_MEMBERS,
    Cooperative,
    CooperativeMember,
    MinerStats,
    MiningEvent,
    User,
    iso,
    utcnow,
)
from . import activity, coop_hashrate, inputs, invites, notifications, transactions
from .errors import (
    AlreadyInCoop,
    CannotRemoveSelf,
    Conflict,
    CoopDissolved,
    CoopFull,
    NotAdmin,
    NotAMember,
    NotFound,
    ValidationError,
)
from .bounds import MAX_DIFFICULTY, usable_sql
from .hashrate import hashrate_by_user
from .invites import INVITE_CODE_LENGTH, generate_invite_code, normalise_invite_code  # noqa: F401 - re-exported

# 36^8 ≈ 2.8e12 codes: a collision is rare, five in a row means something is wrong.
INVITE_CODE_ATTEMPTS = 5
NAME_MIN, NAME_MAX, DESCRIPTION_MAX = 3, 100, 500
MAX_COOP_ID = 2**31 - 1  # the column is a 32-bit integer; larger path ids are simply not found
COOP_LINK = "/coop"

# Names of the constraints a service maps to domain errors (webapp/models.py),
# with the text SQLite puts in its message for the same violation.
UQ_ONE_ACTIVE_PER_USER = ("uq_cooperative_members_one_active_per_user", "cooperative_members.user_id")
UQ_ONE_ADMIN_PER_COOP = ("uq_cooperative_members_one_admin_per_coop", "cooperative_members.cooperative_id")
UQ_ACTIVE_INVITE_CODE = ("uq_cooperatives_active_invite_code", "cooperatives.invite_code")

CodeFactory = Callable[[], str]


def _violates(exc: IntegrityError, constraint: tuple[str, str]) -> bool:
    """Whether ``exc`` is a violation of ``constraint`` (PostgreSQL names the
    index in the diagnostics; SQLite names the column in the message)."""
    name, sqlite_text = constraint
    diag = getattr(exc.orig, "diag", None)
    found = getattr(diag, "constraint_name", None)
    if found:
        return found == name
    return sqlite_text in str(exc.orig)


# ---- lookups --------------------------------------------------------------------


def _check_id(coop_id: object) -> int:
    if not isinstance(coop_id, int) or isinstance(coop_id, bool) or not 1 <= coop_id <= MAX_COOP_ID:
        raise NotFound("No such cooperative.")
    return coop_id


def lock_active_coop(coop_id: int) -> Cooperative:
    """The coop row, locked for this transaction with fresh values.
    Raises NotFound (404) or CoopDissolved (409)."""
    coop = db.session.execute(
        select(Cooperative)
        .where(Cooperative.id == _check_id(coop_id))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if coop is None:
        db.session.rollback()
        raise NotFound("No such cooperative.")
    if coop.status != "active":
        db.session.rollback()
        raise CoopDissolved()
    return coop


def _membership(coop_id: int, user_id: str) -> CooperativeMember | None:
    """The active membership of ``user_id`` in ``coop_id`` (fresh), or None."""
    return db.session.execute(
        select(CooperativeMember)
        .where(
            CooperativeMember.cooperative_id == coop_id,
            CooperativeMember.user_id == user_id,
            CooperativeMember.status == "active",
        )
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def active_membership(user: User) -> CooperativeMember | None:
    """The user's active membership in any coop, or None."""
    return db.session.execute(
        select(CooperativeMember)
        .where(CooperativeMember.user_id == user.user_id, CooperativeMember.status == "active")
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _require_admin(coop: Cooperative, user: User) -> CooperativeMember:
    membership = _membership(coop.id, user.user_id)
    if membership is None or membership.role != "admin":
        db.session.rollback()
        raise NotAdmin()
    return membership


def get_mine(user: User) -> Cooperative | None:
    """The active coop the user is an active member of, or None (endpoint 2)."""
    membership = active_membership(user)
    if membership is None:
        return None
    return db.session.get(Cooperative, membership.cooperative_id, populate_existing=True)


def get_for_member(user: User, *, coop_id: int) -> Cooperative:
    """A coop as its active members see it (``GET /api/coops/{id}``, and the
    guard of endpoints 5, 8, 9). Raises NotFound (404: no such coop, or
    dissolved) or NotAMember (403)."""
    coop = db.session.get(Cooperative, _check_id(coop_id), populate_existing=True)
    if coop is None or coop.status != "active":
        raise NotFound("No such cooperative.")
    if _membership(coop.id, user.user_id) is None:
        raise NotAMember()
    return coop


def is_admin(user: User, coop: Cooperative) -> bool:
    """Whether ``user`` is the active admin of ``coop``."""
    membership = _membership(coop.id, user.user_id)
    return membership is not None and membership.role == "admin"


def _active_coop_by_code(code: str) -> Cooperative | None:
    return db.session.execute(
        select(Cooperative).where(Cooperative.invite_code == code, Cooperative.status == "active")
    ).scalar_one_or_none()


def preview(*, invite_code: str, caller: invites.Caller | None = None, invite_key: str | None = None) -> Cooperative:
    """The active coop an invite code opens, for the join page preview,
    through the guarded ``invites.lookup`` (``caller`` is counted, a valid
    link ``invite_key`` is not). Raises InvalidInviteCode (400), RateLimited
    (429) or NotFound (404, unknown or old code)."""
    return invites.lookup(invite_code, find=_active_coop_by_code, caller=caller, key=invite_key)[1]


def display_name(user_id: str) -> str:
    """A miner's display name, or the user id itself when unknown."""
    return db.session.scalar(select(User.display_name).where(User.user_id == user_id)) or user_id


_unknown_code = invites.unknown_code


def announce_on_commit(coop_id: int, also: tuple[str, ...] | list[str] = (), actor: str | None = None) -> None:
    """Once the caller's transaction, which changes ``coop_id``'s membership
    (join, leave, remove, dissolve), commits: drop the coop's cached total
    and publish ``coop_changed`` to the sockets of its active members and of
    ``also`` (members who were removed, or whose coop was dissolved), so
    their open pages re-fetch the members table (docs/COOPS.md "Live members
    table"). The ``actor`` is skipped: the page that acted already shows the
    result. Nothing happens if the transaction rolls back. A Redis failure is
    logged, never raised: the change is committed and a reload shows it."""

    def prepare() -> None:  # at the commit, while the session can still read
        active = db.session.scalars(
            select(CooperativeMember.user_id).where(
                CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active"
            )
        ).all()
        user_ids = [u for u in dict.fromkeys([*active, *also]) if u != actor]
        transactions.after_commit(lambda: _publish_change(coop_id, user_ids))

    transactions.before_commit(prepare)


def _publish_change(coop_id: int, user_ids: list[str]) -> None:
    coop_hashrate.invalidate(coop_id)
    if not user_ids:
        return
    try:
        realtime.coop_changed(user_ids, coop_id)
    except Exception:  # noqa: BLE001 - the change is stored; pages catch up on reload
        current_app.logger.exception("coop_changed push for cooperative %s failed", coop_id)


# ---- changes ----------------------------------------------------------------------


def _clean_name(name: object) -> str:
    """One line of text (``inputs.LINE``), 3–100 characters after trimming."""
    if not isinstance(name, str) or not NAME_MIN <= len(name.strip()) <= NAME_MAX:
        raise ValidationError(f"The name must be {NAME_MIN} to {NAME_MAX} characters.")
    return inputs.check_text(name.strip(), name="The name")


def _clean_description(description: object) -> str:
    """Free text (``inputs.MULTILINE``), at most 500 characters after trimming."""
    if description is None:
        return ""
    if not isinstance(description, str) or len(description.strip()) > DESCRIPTION_MAX:
        raise ValidationError(f"The description can have at most {DESCRIPTION_MAX} characters.")
    return inputs.check_text(description.strip(), name="The description", kind=inputs.MULTILINE)


def _or_already_in_coop(step=None) -> None:
    """Run ``step`` (``db.session.flush`` or, by default, ``commit``); a lost
    race on "one active coop per user" rolls back (also undoing a
    member_count increment) and becomes 409 AlreadyInCoop."""
    try:
        (step or db.session.commit)()
    except IntegrityError as exc:
        db.session.rollback()
        if _violates(exc, UQ_ONE_ACTIVE_PER_USER):
            raise AlreadyInCoop() from None
        raise


def create(
    user: User,
    *,
    name: str,
    description: str | None = "",
    code_factory: CodeFactory = generate_invite_code,
) -> Cooperative:
    """Found a coop; the founder is its admin and first member (endpoint 1).

    ``name`` 3–100 characters, ``description`` at most 500 (both trimmed).
    ``code_factory`` makes invite codes (injectable so a test can force a
    collision, which is retried). Raises ValidationError (400) or
    AlreadyInCoop (409, also when a concurrent join or create wins the race).
    """
    name, description = _clean_name(name), _clean_description(description)
    for _ in range(INVITE_CODE_ATTEMPTS):
        if active_membership(user) is not None:
            db.session.rollback()
            raise AlreadyInCoop()
        now = utcnow()
        coop = Cooperative(
            name=name,
            description=description,
            invite_code=normalise_invite_code(code_factory()),
            admin_user_id=user.user_id,
            member_count=1,
            status="active",
            created_at=now,
        )
        db.session.add(coop)
        try:
            db.session.flush()
        except IntegrityError as exc:
            db.session.rollback()
            if _violates(exc, UQ_ACTIVE_INVITE_CODE):
                continue  # another active coop holds this code: draw again
            raise
        db.session.add(
            CooperativeMember(cooperative_id=coop.id, user_id=user.user_id, role="admin", joined_at=now)
        )
        _or_already_in_coop(db.session.flush)
        activity.record_activity(
            user.user_id, "coop_joined", f"Founded {name}", data={"cooperative_id": coop.id, "role": "admin"},
            link=COOP_LINK,
        )
        _or_already_in_coop()
        return coop
    raise Conflict("Could not pick a free invite code; please try again.")


def _active_coop_id_by_code(code: str) -> int | None:
    coop_id = db.session.scalar(
        select(Cooperative.id).where(Cooperative.invite_code == code, Cooperative.status == "active")
    )
    if coop_id is None:
        db.session.rollback()
    return coop_id


def join(user: User, *, invite_code: str, ip: str | None = None, invite_key: str | None = None) -> Cooperative:
    """Join the active coop whose invite code matches, as a ``member``
    (endpoint 3). The code is tested by the guarded ``invites.lookup``
    (failed lookups counted for ``user`` and the client ``ip``; a valid link
    ``invite_key`` is never limited). The admin hears "New member joined";
    the member gets a ``coop_joined`` activity.

    Raises InvalidInviteCode (400, checked before any lookup), RateLimited
    (429, before any lookup), NotFound (404: unknown code, or one replaced by
    a regeneration), AlreadyInCoop (409) or CoopFull (409).
    """
    code, coop_id = invites.lookup(invite_code, find=_active_coop_id_by_code,
                                   caller=invites.Caller(user.user_id, ip), key=invite_key)
    if active_membership(user) is not None:
        db.session.rollback()
        raise AlreadyInCoop()
    # The cap, the status and the code, checked on the newest row version
    # under the row lock (see the module docstring).
    claimed = db.session.execute(
        update(Cooperative)
        .where(
            Cooperative.id == coop_id,
            Cooperative.status == "active",
            Cooperative.invite_code == code,
            Cooperative.member_count < MAX_COOP_MEMBERS,
        )
        .values(member_count=Cooperative.member_count + 1)
        .returning(Cooperative.id)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        db.session.rollback()
        current = db.session.execute(
            select(Cooperative.status, Cooperative.invite_code).where(Cooperative.id == coop_id)
        ).first()
        db.session.rollback()
        if current is None or current.status != "active" or current.invite_code != code:
            raise _unknown_code()
        raise CoopFull()
    db.session.add(CooperativeMember(cooperative_id=coop_id, user_id=user.user_id, role="member"))
    _or_already_in_coop(db.session.flush)
    coop = db.session.get(Cooperative, coop_id, populate_existing=True)
    activity.record_activity(
        user.user_id, "coop_joined", f"Joined {coop.name}", data={"cooperative_id": coop.id, "role": "member"},
        link=COOP_LINK,
    )
    if coop.admin_user_id:
        notifications.notify(
            coop.admin_user_id, "social", "coop_member_joined", "New member joined",
            body=f"{user.display_name} joined {coop.name}.", link=COOP_LINK,
            data={"cooperative_id": coop.id, "user_id": user.user_id}, commit=False,
        )
    announce_on_commit(coop_id, actor=user.user_id)
    _or_already_in_coop()
    return coop


def _end_membership(coop: Cooperative, membership: CooperativeMember, status: str) -> int:
    """Mark ``membership`` left/removed and decrement the coop's count, in the
    caller's transaction (coop row locked). Returns the members remaining."""
    membership.status = status
    membership.left_at = utcnow()
    db.session.flush()  # out of the partial unique indexes before any promotion
    coop.member_count = Cooperative.member_count - 1
    db.session.flush()
    return coop.member_count


def _mark_dissolved(coop: Cooperative) -> None:
    coop.status = "dissolved"
    coop.member_count = 0
    coop.dissolved_at = utcnow()


def leave(user: User, *, coop_id: int) -> Cooperative:
    """Leave a coop (endpoint 4). When the admin leaves, the longest-standing
    remaining member becomes admin (and hears "You're the new admin"); when
    the last member leaves, the coop is dissolved. Otherwise the admin hears
    that the member left. Records ``coop_left`` for the leaver.

    Returns the coop as it is afterwards (``status`` tells whether it was
    dissolved). Raises NotFound (404), CoopDissolved (409) or NotAMember (403).
    """
    coop = lock_active_coop(coop_id)
    membership = _membership(coop.id, user.user_id)
    if membership is None:
        db.session.rollback()
        raise NotAMember("You are not a member of this cooperative.")
    remaining = _end_membership(coop, membership, "left")
    activity.record_activity(
        user.user_id, "coop_left", f"Left {coop.name}", data={"cooperative_id": coop.id}, link=COOP_LINK
    )
    if remaining == 0:
        _mark_dissolved(coop)
    elif membership.role == "admin":
        successor = db.session.execute(
            select(CooperativeMember)
            .where(CooperativeMember.cooperative_id == coop.id, CooperativeMember.status == "active")
            .order_by(CooperativeMember.joined_at, CooperativeMember.id)
            .limit(1)
        ).scalar_one()
        successor.role = "admin"  # the old admin's row is already out of the one-admin index
        coop.admin_user_id = successor.user_id
        notifications.notify(
            successor.user_id, "social", "coop_new_admin", "You're the new admin",
            body=f"{user.display_name} left {coop.name}; you now manage it.", link="/coop/manage",
            data={"cooperative_id": coop.id}, commit=False,
        )
    elif coop.admin_user_id:
        notifications.notify(
            coop.admin_user_id, "social", "coop_member_left", "Member left",
            body=f"{user.display_name} left {coop.name}.", link=COOP_LINK,
            data={"cooperative_id": coop.id, "user_id": user.user_id}, commit=False,
        )
    announce_on_commit(coop.id, actor=user.user_id)
    db.session.commit()
    return coop


def remove_member(user: User, *, coop_id: int, user_id: str) -> CooperativeMember:
    """The admin removes a member (endpoint 6); the member hears "Removed from
    cooperative" and gets ``coop_left``. Returns the ended membership.

    Raises NotFound (404: no such coop, or ``user_id`` is not an active
    member of it), CoopDissolved (409), NotAdmin (403) or CannotRemoveSelf
    (400: the admin leaves instead).
    """
    if not isinstance(user_id, str) or inputs.text_problem(user_id):
        raise NotFound("That miner is not a member of this cooperative.")  # no such id can exist
    coop = lock_active_coop(coop_id)
    _require_admin(coop, user)
    if user_id == user.user_id:
        db.session.rollback()
        raise CannotRemoveSelf()
    membership = _membership(coop.id, user_id)
    if membership is None:
        db.session.rollback()
        raise NotFound("That miner is not a member of this cooperative.")
    _end_membership(coop, membership, "removed")
    activity.record_activity(
        user_id, "coop_left", f"Removed from {coop.name}", data={"cooperative_id": coop.id, "removed": True},
        link=COOP_LINK,
    )
    notifications.notify(
        user_id, "social", "coop_removed", "Removed from cooperative",
        body=f"The admin of {coop.name} removed you from the cooperative.", link=COOP_LINK,
        data={"cooperative_id": coop.id}, commit=False,
    )
    announce_on_commit(coop.id, also=[user_id], actor=user.user_id)
    db.session.commit()
    return membership


def regenerate_code(user: User, *, coop_id: int, code_factory: CodeFactory = generate_invite_code) -> Cooperative:
    """The admin replaces the invite code (endpoint 7); the old one stops
    working the moment this commits (joins re-check the code under the row
    lock). A collision with another active coop's code is retried.

    Raises NotFound (404), CoopDissolved (409) or NotAdmin (403).
    """
    for _ in range(INVITE_CODE_ATTEMPTS):
        coop = lock_active_coop(coop_id)
        _require_admin(coop, user)
        code = normalise_invite_code(code_factory())
        if code == coop.invite_code:
            db.session.rollback()
            continue
        coop.invite_code = code
        try:
            db.session.commit()
        except IntegrityError as exc:
            db.session.rollback()
            if _violates(exc, UQ_ACTIVE_INVITE_CODE):
                continue
            raise
        return coop
    raise Conflict("Could not pick a free invite code; please try again.")


_UNSET: Any = object()


def update_details(user: User, *, coop_id: int, name: str = _UNSET, description: str | None = _UNSET) -> Cooperative:
    """The admin edits the name (3–100) and/or description (≤ 500; None
    clears it). Omitted fields stay. Raises ValidationError (400), NotFound
    (404), CoopDissolved (409) or NotAdmin (403)."""
    clean_name = _clean_name(name) if name is not _UNSET else None
    clean_description = _clean_description(description) if description is not _UNSET else None
    coop = lock_active_coop(coop_id)
    _require_admin(coop, user)
    if clean_name is not None:
        coop.name = clean_name
    if clean_description is not None:
        coop.description = clean_description
    db.session.commit()
    return coop


def dissolve(user: User, *, coop_id: int) -> Cooperative:
    """The admin dissolves the coop: every active membership ends (``left``),
    each member gets ``coop_left`` and the others hear "Cooperative
    dissolved"; the invite code is freed. Raises NotFound (404),
    CoopDissolved (409) or NotAdmin (403)."""
    coop = lock_active_coop(coop_id)
    _require_admin(coop, user)
    former = dissolve_locked(
        coop, category="social", subtype="coop_dissolved",
        body=f"{user.display_name} dissolved {coop.name}.", skip_user_id=user.user_id,
    )
    announce_on_commit(coop.id, also=former, actor=user.user_id)
    db.session.commit()
    return coop


def dissolve_locked(
    coop: Cooperative, *, category: str, subtype: str, body: str,
    skip_user_id: str | None = None, activity_data: dict | None = None,
) -> list[str]:
    """End every active membership of ``coop`` (locked by the caller, who
    commits), mark it dissolved,
    record ``coop_left`` for each member and notify each one but
    ``skip_user_id``. Shared by the coop admin's and the platform admins'
    dissolve (the caller announces it with ``announce_on_commit``). Returns the former members' ids."""
    member_ids = list(
        db.session.scalars(
            select(CooperativeMember.user_id).where(
                CooperativeMember.cooperative_id == coop.id, CooperativeMember.status == "active"
            )
        )
    )
    db.session.execute(
        update(CooperativeMember)
        .where(CooperativeMember.cooperative_id == coop.id, CooperativeMember.status == "active")
        .values(status="left", left_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _mark_dissolved(coop)
    for member_id in member_ids:
        activity.record_activity(
            member_id, "coop_left", f"{coop.name} was dissolved",
            data={"cooperative_id": coop.id, "dissolved": True, **(activity_data or {})}, link=COOP_LINK,
        )
        if member_id != skip_user_id:
            notifications.notify(
                member_id, category, subtype, "Cooperative dissolved", body=body, link=COOP_LINK,
                data={"cooperative_id": coop.id}, commit=False,
            )
    return member_ids


# ---- views for members --------------------------------------------------------------


@dataclass
class MemberInfo:
    """An active member with live hashrate (API.md member object)."""

    user_id: str
    display_name: str
    role: str
    joined_at: datetime
    hashrate: float  # H/s, sum of the latest hashrate_1h of online workers
    is_online: bool  # at least one worker online
    workers_online: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "role": self.role,
            "joined_at": iso(self.joined_at),
            "hashrate": self.hashrate,
            "is_online": self.is_online,
            "workers_online": self.workers_online,
        }


def members_of(coop_id: int, now: datetime | None = None) -> list[MemberInfo]:
    """Active members of a coop, longest-standing first, with live hashrate
    (no access check: callers have done it, or are the CLI)."""
    rows = db.session.execute(
        select(CooperativeMember, User.display_name)
        .join(User, User.user_id == CooperativeMember.user_id)
        .where(CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active")
        .order_by(CooperativeMember.joined_at, CooperativeMember.id)
    ).all()
    rates = hashrate_by_user([m.user_id for m, _ in rows], now)
    return [
        MemberInfo(
            user_id=m.user_id,
            display_name=name,
            role=m.role,
            joined_at=m.joined_at,
            hashrate=rates[m.user_id][0],
            is_online=rates[m.user_id][1] > 0,
            workers_online=rates[m.user_id][1],
        )
        for m, name in rows
    ]


def list_members(user: User, *, coop_id: int) -> list[MemberInfo]:
    """Active members, longest-standing first (endpoint 5). Raises NotFound
    (404) or NotAMember (403)."""
    coop = get_for_member(user, coop_id=coop_id)
    return members_of(coop.id)


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
            "members": [
                {"user_id": m.user_id, "display_name": m.display_name, "hashrate": m.hashrate, "is_online": m.is_online}
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
    return CoopHashrate(coop.id, total.total_hashrate, total.online_count, total.updated_at, members_of(coop.id))


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
    active_ids = select(CooperativeMember.user_id).where(
        CooperativeMember.cooperative_id == coop.id, CooperativeMember.status == "active"
    )
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
    return coop, _stats(coop, now), members_of(coop.id, now)


# ---- demo world -----------------------------------------------------------------------

DEMO_MINERS = Path(__file__).resolve().parent.parent / "demo" / "miners.json"
SATOSHI_HUNTER = "bc1p4czy33sddxh00ttyyqn38egknrrxad770sgh276u5ph73xx2vqyqc0mtt3"
# (name, description, indexes into miners.json; the first present miner is the
# admin). Only miners 0-19 have display names; they are spread over the three.
DEMO_COOPS = (
    ("Satoshi's Hunters", "SatoshiHunter's crew: home miners chasing one lucky block together.",
     (0, 3, 7, 13, 17, 20, 21)),
    ("Bitaxe Brigade", "Twenty Bitaxes on shelves across the world. We're full, but say hi!",
     (2, 4, 5, 6, 8, 10, 11, 14, 16, 18, 19, 22, 23, 24, 25, 26, 27, 28, 29, 30)),
    ("Lisbon Lightning", "A small crew from Lisbon and friends.", (9, 1, 12, 15)),
)


def form_demo_coops() -> list[Cooperative]:
    """Demo world: form three coops among the demo miners of
    ``webapp/demo/miners.json`` — SatoshiHunter's (he is admin), one full at
    20 and one with a few members — through the same rules as everyone else.

    Idempotent: a coop whose name already exists (active) is left alone,
    miners already in a coop stay where they are, and miners who are not
    registered users are skipped. The chart history of the coops formed now is
    drawn from the stored mining events (``coop_hashrate.backfill_history``);
    the demo command runs the aggregation afterwards. Returns the coops formed.
    """
    miners = json.loads(DEMO_MINERS.read_text())
    formed = []
    for name, description, indexes in DEMO_COOPS:
        exists = db.session.scalar(
            select(Cooperative.id).where(Cooperative.name == name, Cooperative.status == "active")
        )
        if exists is not None:
            continue
        users = [db.session.get(User, miners[i]["user_id"]) for i in indexes if i < len(miners)]
        users = [u for u in users if u is not None and active_membership(u) is None]
        if not users:
            continue
        coop = create(users[0], name=name, description=description)
        for member in users[1:]:
            try:
                join(member, invite_code=coop.invite_code)
            except (AlreadyInCoop, CoopFull):
                continue
        formed.append(coop)
    if formed:
        coop_hashrate.backfill_history([c.id for c in formed])
    current_app.logger.info("demo: formed %d cooperative(s)", len(formed))
    return formed
