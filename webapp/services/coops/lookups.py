"""Cooperatives: constants, lookups and guards shared by the changes and
the views (``services.coops``), and the announcement of membership changes."""
from __future__ import annotations

from collections.abc import Callable

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ... import realtime
from ...extensions import db
from ...models import Cooperative, CooperativeMember, User
from ...vocabulary import CoopStatus, MemberRole
from .. import coop_hashrate, invites, transactions
from ..errors import CoopDissolved, NotAdmin, NotAMember, NotFound
from ..membership import active_member_ids, is_active_member

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
    if coop.status != CoopStatus.ACTIVE:
        db.session.rollback()
        raise CoopDissolved()
    return coop


def _membership(coop_id: int, user_id: str) -> CooperativeMember | None:
    """The active membership of ``user_id`` in ``coop_id`` (fresh), or None."""
    return db.session.execute(
        select(CooperativeMember)
        .where(
            is_active_member(coop_id),
            CooperativeMember.user_id == user_id,
        )
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def active_membership(user: User) -> CooperativeMember | None:
    """The user's active membership in any coop, or None."""
    return db.session.execute(
        select(CooperativeMember)
        .where(CooperativeMember.user_id == user.user_id, is_active_member())
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _require_admin(coop: Cooperative, user: User) -> CooperativeMember:
    membership = _membership(coop.id, user.user_id)
    if membership is None or membership.role != MemberRole.ADMIN:
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
    if coop is None or coop.status != CoopStatus.ACTIVE:
        raise NotFound("No such cooperative.")
    if _membership(coop.id, user.user_id) is None:
        raise NotAMember()
    return coop


def is_admin(user: User, coop: Cooperative) -> bool:
    """Whether ``user`` is the active admin of ``coop``."""
    membership = _membership(coop.id, user.user_id)
    return membership is not None and membership.role == MemberRole.ADMIN


def display_name(user_id: str) -> str:
    """A miner's display name, or the user id itself when unknown."""
    return db.session.scalar(select(User.display_name).where(User.user_id == user_id)) or user_id


_unknown_code = invites.unknown_code


def announce_on_commit(coop_id: int, also: tuple[str, ...] | list[str] = (), actor: str | None = None,
                       change: str = "membership") -> None:
    """Once the caller's transaction, which changes ``coop_id`` (``change``,
    one of ``realtime.COOP_CHANGES``: a join, leave or removal, a rename, a
    new invite code, a dissolve), commits: drop the coop's cached total on a
    membership change and publish ``coop_changed`` to the sockets of its
    active members and of ``also`` (members who were removed, or whose coop
    was dissolved), so their open pages re-fetch every fragment or leave
    (docs/COOPS.md "Live coop pages"). The ``actor`` is skipped: the page
    that acted already shows the result. Nothing happens if the transaction
    rolls back. A Redis failure is logged, never raised: the change is
    committed and a reload shows it."""

    def prepare() -> None:  # at the commit, while the session can still read
        active = db.session.scalars(active_member_ids(coop_id)).all()
        user_ids = [u for u in dict.fromkeys([*active, *also]) if u != actor]
        transactions.after_commit(lambda: _publish_change(coop_id, user_ids, change))

    transactions.before_commit(prepare)


def _publish_change(coop_id: int, user_ids: list[str], change: str) -> None:
    if change in ("membership", "dissolved"):
        coop_hashrate.invalidate(coop_id)
    if not user_ids:
        return
    try:
        realtime.coop_changed(user_ids, coop_id, change)
    except Exception:  # noqa: BLE001 - the change is stored; pages catch up on reload
        current_app.logger.exception("coop_changed push for cooperative %s failed", coop_id)
