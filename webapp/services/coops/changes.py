"""Cooperatives: every change (found, join, leave, remove, regenerate the
code, edit, dissolve); the rules are in the package docstring."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ...extensions import db
from ...models import MAX_COOP_MEMBERS, Cooperative, CooperativeMember, User, utcnow
from ...vocabulary import CoopStatus, MemberRole, MemberStatus, ModerationAction
from ...vocabulary import NotificationSubtype as S
from .. import activity, conversations, inputs, invites, moderation, notifications
from ..errors import (
    AlreadyInCoop,
    Banned,
    CannotRemoveSelf,
    Conflict,
    CoopFull,
    InviteExpired,
    NotAdmin,
    NotAMember,
    NotFound,
    ValidationError,
)
from ..invites import generate_invite_code, normalise_invite_code
from ..membership import active_member_ids, is_active_coop, is_active_member
from . import coop_invites
from .lookups import (
    COOP_LINK,
    DESCRIPTION_MAX,
    INVITE_CODE_ATTEMPTS,
    NAME_MAX,
    NAME_MIN,
    UQ_ACTIVE_INVITE_CODE,
    UQ_ONE_ACTIVE_PER_USER,
    CodeFactory,
    _membership,
    _require_admin,
    _unknown_code,
    _violates,
    active_membership,
    announce_on_commit,
    lock_active_coop,
)

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
            status=CoopStatus.ACTIVE,
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
            CooperativeMember(cooperative_id=coop.id, user_id=user.user_id, role=MemberRole.ADMIN, joined_at=now)
        )
        _or_already_in_coop(db.session.flush)
        conversations.coop_founded(coop.id, user.user_id)
        activity.record_activity(
            user.user_id, "coop_joined", f"Founded {name}", data={"cooperative_id": coop.id, "role": "admin"},
            link=COOP_LINK,
        )
        _or_already_in_coop()
        return coop
    raise Conflict("Could not pick a free invite code; please try again.")


def join(user: User, *, invite_code: str, ip: str | None = None, invite_key: str | None = None) -> Cooperative:
    """Join the active coop that a code opens, as a ``member`` (endpoint 3):
    the coop's own code or one of its extra invites (``coop_invites``). The
    code is tested by the guarded ``invites.lookup`` (failed lookups counted
    for ``user`` and the client ``ip``; a valid link ``invite_key`` is never
    limited). The admin hears "New member joined"; the member gets a
    ``coop_joined`` activity.

    Raises InvalidInviteCode (400, checked before any lookup), RateLimited
    (429, before any lookup), NotFound (404: unknown code, or one replaced by
    a regeneration or revoked), InviteExpired (410: an extra invite past its
    expiry or uses), Banned (403: ``moderation.ensure_not_banned``),
    AlreadyInCoop (409) or CoopFull (409).
    """
    code, target = invites.lookup(invite_code, find=coop_invites.find_target,
                                  caller=invites.Caller(user.user_id, ip), key=invite_key)
    coop_id = target.coop_id
    if active_membership(user) is not None:
        db.session.rollback()
        raise AlreadyInCoop()
    # The cap, the status and (for the coop's own code) the code, checked on
    # the newest row version under the row lock (see the module docstring).
    seat = update(Cooperative).where(
        Cooperative.id == coop_id, is_active_coop(), Cooperative.member_count < MAX_COOP_MEMBERS)
    if target.invite_id is None:
        seat = seat.where(Cooperative.invite_code == code)
    claimed = db.session.execute(
        seat.values(member_count=Cooperative.member_count + 1)
        .returning(Cooperative.id)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        db.session.rollback()
        current = db.session.execute(
            select(Cooperative.status, Cooperative.invite_code).where(Cooperative.id == coop_id)
        ).first()
        db.session.rollback()
        if current is None or current.status != CoopStatus.ACTIVE or (
                target.invite_id is None and current.invite_code != code):
            raise _unknown_code()
        raise CoopFull()
    # Read under the row lock the UPDATE took: a ban holds the same lock
    # while it commits, so one that won the race is seen here.
    try:
        moderation.ensure_not_banned(coop_id, user.user_id)
    except Banned:
        db.session.rollback()
        raise
    # Under the coop's row lock taken above: uses can't overshoot max_uses.
    if target.invite_id is not None and not coop_invites.claim_use(target.invite_id):
        db.session.rollback()
        raise InviteExpired()
    db.session.add(CooperativeMember(cooperative_id=coop_id, user_id=user.user_id, role=MemberRole.MEMBER))
    _or_already_in_coop(db.session.flush)
    conversations.coop_member_joined(coop_id, user.user_id)
    coop = db.session.get_one(Cooperative, coop_id, populate_existing=True)
    activity.record_activity(
        user.user_id, "coop_joined", f"Joined {coop.name}", data={"cooperative_id": coop.id, "role": "member"},
        link=COOP_LINK,
    )
    if coop.admin_user_id:
        notifications.notify_kind(
            coop.admin_user_id, S.COOP_MEMBER_JOINED, link=COOP_LINK,
            data={"cooperative_id": coop.id, "user_id": user.user_id}, commit=False,
            member=user.display_name, coop=coop.name,
        )
    announce_on_commit(coop_id, actor=user.user_id)
    _or_already_in_coop()
    return coop


def _end_membership(coop: Cooperative, membership: CooperativeMember, status: str) -> int:
    """Mark ``membership`` left/removed and decrement the coop's count, in the
    caller's transaction (coop row locked); the member leaves the coop's
    chat at the same commit. Returns the members remaining."""
    membership.status = status
    membership.left_at = utcnow()
    db.session.flush()  # out of the partial unique indexes before any promotion
    conversations.coop_member_ended(coop.id, membership.user_id, removed=status == MemberStatus.REMOVED)
    coop.member_count = Cooperative.member_count - 1
    db.session.flush()
    return coop.member_count


def _mark_dissolved(coop: Cooperative) -> None:
    """Dissolve in the caller's transaction; the coop's chat is archived."""
    conversations.coop_dissolved(coop.id)
    coop.status = CoopStatus.DISSOLVED
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
    coop = leave_in_transaction(user, coop_id=coop_id)
    db.session.commit()
    return coop


def leave_in_transaction(user: User, *, coop_id: int) -> Cooperative:
    """``leave`` without the commit: the caller's transaction commits it
    (deleting an account leaves its coop by the same rules, atomically)."""
    coop = lock_active_coop(coop_id)
    membership = _membership(coop.id, user.user_id)
    if membership is None:
        db.session.rollback()
        raise NotAMember("You are not a member of this cooperative.")
    remaining = _end_membership(coop, membership, MemberStatus.LEFT)
    activity.record_activity(
        user.user_id, "coop_left", f"Left {coop.name}", data={"cooperative_id": coop.id}, link=COOP_LINK
    )
    if remaining == 0:
        _mark_dissolved(coop)
    elif membership.role == MemberRole.ADMIN:
        successor = db.session.execute(
            select(CooperativeMember)
            .where(is_active_member(coop.id))
            .order_by(CooperativeMember.joined_at, CooperativeMember.id)
            .limit(1)
        ).scalar_one()
        successor.role = MemberRole.ADMIN  # the old admin's row is already out of the one-admin index
        coop.admin_user_id = successor.user_id
        notifications.notify_kind(
            successor.user_id, S.COOP_NEW_ADMIN, link="/coop/manage", data={"cooperative_id": coop.id},
            commit=False, member=user.display_name, coop=coop.name,
        )
    elif coop.admin_user_id:
        notifications.notify_kind(
            coop.admin_user_id, S.COOP_MEMBER_LEFT, link=COOP_LINK,
            data={"cooperative_id": coop.id, "user_id": user.user_id}, commit=False,
            member=user.display_name, coop=coop.name,
        )
    announce_on_commit(coop.id, actor=user.user_id, change="membership" if remaining else "dissolved")
    return coop


def remove_member(user: User, *, coop_id: int, user_id: str) -> CooperativeMember:
    """The admin, or a moderator, removes a member (endpoint 6); the member
    hears "Removed from cooperative" and gets ``coop_left``; the coop's
    audit log records it. Moderators remove plain members only, never the
    admin or another moderator (API.md "Coop governance"). Returns the ended
    membership.

    Raises NotFound (404: no such coop, or ``user_id`` is not an active
    member of it), CoopDissolved (409), NotAdmin (403: neither admin nor
    moderator), CannotRemoveSelf (400: the admin leaves instead) or
    CannotModerate (403: a moderator acting on the admin or a moderator).
    """
    if not isinstance(user_id, str) or inputs.text_problem(user_id):
        raise NotFound("That miner is not a member of this cooperative.")  # no such id can exist
    coop = lock_active_coop(coop_id)
    actor = _membership(coop.id, user.user_id)
    if actor is None or actor.role not in (MemberRole.ADMIN, MemberRole.MODERATOR):
        db.session.rollback()
        raise NotAdmin("Only the cooperative's admin and moderators can remove members.")
    if user_id == user.user_id:
        db.session.rollback()
        raise CannotRemoveSelf()
    membership = _membership(coop.id, user_id)
    if membership is None:
        db.session.rollback()
        raise NotFound("That miner is not a member of this cooperative.")
    moderation.check_can_act_on(actor, membership.role, user_id)
    remove_locked(coop, membership, actor_user_id=user.user_id)
    moderation.record_action(coop.id, user.user_id, ModerationAction.MEMBER_REMOVED, target_user_id=user_id)
    db.session.commit()
    return membership


def remove_locked(coop: Cooperative, membership: CooperativeMember, *, actor_user_id: str | None,
                  banned: bool = False) -> None:
    """End an active membership as a removal, in the caller's transaction
    (``coop`` locked by the caller, who commits): status ``removed``, the
    count, the member's ``coop_left`` activity and "Removed from
    cooperative" notification, and the membership announcement. The one
    path for a removal and a ban, so whatever follows membership follows both."""
    _end_membership(coop, membership, MemberStatus.REMOVED)
    activity.record_activity(
        membership.user_id, "coop_left", f"Removed from {coop.name}",
        data={"cooperative_id": coop.id, "removed": True, **({"banned": True} if banned else {})},
        link=COOP_LINK,
    )
    notifications.notify_kind(
        membership.user_id, S.COOP_REMOVED, link=COOP_LINK, data={"cooperative_id": coop.id}, commit=False,
        coop=coop.name,
    )
    announce_on_commit(coop.id, also=[membership.user_id], actor=actor_user_id)


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
        announce_on_commit(coop.id, actor=user.user_id, change="invite")
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
    announce_on_commit(coop.id, actor=user.user_id, change="details")
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
        coop, subtype=S.COOP_DISSOLVED, values={"member": user.display_name}, skip_user_id=user.user_id,
    )
    announce_on_commit(coop.id, also=former, actor=user.user_id, change="dissolved")
    db.session.commit()
    return coop


def dissolve_locked(
    coop: Cooperative, *, subtype: str, values: dict[str, str] | None = None,
    skip_user_id: str | None = None, activity_data: dict | None = None,
) -> list[str]:
    """End every active membership of ``coop`` (locked by the caller, who
    commits and announces it with ``announce_on_commit``), mark it
    dissolved, record ``coop_left`` for each member and notify each one but
    ``skip_user_id`` with the catalogue kind ``subtype`` (``values`` fill
    its templates beside ``coop``). Shared by the coop admin's and the
    platform admins' dissolve. Returns the former members' ids."""
    member_ids = list(db.session.scalars(active_member_ids(coop.id)))
    db.session.execute(
        update(CooperativeMember)
        .where(is_active_member(coop.id))
        .values(status=MemberStatus.LEFT.value, left_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _mark_dissolved(coop)
    for member_id in member_ids:
        activity.record_activity(
            member_id, "coop_left", f"{coop.name} was dissolved",
            data={"cooperative_id": coop.id, "dissolved": True, **(activity_data or {})}, link=COOP_LINK,
        )
        if member_id != skip_user_id:
            notifications.notify_kind(
                member_id, subtype, link=COOP_LINK, data={"cooperative_id": coop.id}, commit=False,
                coop=coop.name, **(values or {}),
            )
    return member_ids
