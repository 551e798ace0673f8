"""The one spelling of "active" for coops and their members in queries:
every service filters through these instead of writing the status strings."""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select

from ..models import Cooperative, CooperativeMember
from ..vocabulary import CoopStatus, MemberRole, MemberStatus


def is_active_member(coop_id: Any = None) -> ColumnElement[bool]:
    """WHERE clause: active memberships, of ``coop_id`` when given (an int
    or a column such as ``Cooperative.id`` for a correlated join)."""
    active = CooperativeMember.status == MemberStatus.ACTIVE.value
    return active if coop_id is None else and_(CooperativeMember.cooperative_id == coop_id, active)


def active_member_ids(coop_id: Any) -> Select:
    """``SELECT user_id`` of the coop's active members (a statement: run it
    or use it as an ``IN`` subquery)."""
    return select(CooperativeMember.user_id).where(is_active_member(coop_id))


def is_active_coop() -> ColumnElement[bool]:
    """WHERE clause: coops that are not dissolved."""
    return Cooperative.status == CoopStatus.ACTIVE.value


# Roles that moderate a coop (API.md "Coop governance").
MODERATING_ROLES = (MemberRole.ADMIN.value, MemberRole.MODERATOR.value)


def is_moderating_member(coop_id: Any = None) -> ColumnElement[bool]:
    """WHERE clause: the active admin and moderators of the coop ``coop_id``
    (of any coop when None). ``role = … OR role = …`` rather than ``IN``: a
    literal ``IN`` list is expanded into the SQL on every execution, 2–3 %
    of a chat post's CPU (docs/PERFORMANCE.md)."""
    return and_(is_active_member(coop_id), or_(*(CooperativeMember.role == role for role in MODERATING_ROLES)))
