"""Extra invites of a coop (API.md "Coop governance and discovery"; Discord's
invite links are the model): besides the coop's own code, its admin and
moderators make any number of invites with an optional expiry (5 min – 30
days) and use limit (1–100), list and revoke them.

A join through an invite claims a use with ``UPDATE coop_invites SET uses =
uses + 1 WHERE … uses < max_uses AND expires_at > now RETURNING`` in the
join's transaction, after the coop's seat (``changes.join``): the seat
UPDATE holds the coop's row lock, so joins of one coop are serialised and
the use count can't overshoot (a CHECK ``uses <= max_uses`` backs it).
Codes come from the same CSPRNG as the coop codes and are never reused
(unique over every invite row); a new code that equals an active coop's own
code is drawn again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ...extensions import db
from ...models import Cooperative, CoopInvite, User, utcnow
from .. import invites
from ..errors import Conflict, InviteExpired, NotFound, NotModerator, ValidationError
from ..invites import generate_invite_code, normalise_invite_code
from ..membership import MODERATING_ROLES, is_active_coop
from .lookups import INVITE_CODE_ATTEMPTS, CodeFactory, _membership, lock_active_coop

EXPIRES_IN_MIN, EXPIRES_IN_MAX = 300, 30 * 24 * 3600  # seconds
MAX_USES_MIN, MAX_USES_MAX = 1, 100
# How many invites a coop may hold that are still live (a bound on rows, not a rule of the API).
LIVE_INVITES_MAX = 50


def _require_moderator(coop: Cooperative, user: User) -> None:
    membership = _membership(coop.id, user.user_id)
    if membership is None or membership.role not in MODERATING_ROLES:
        db.session.rollback()
        raise NotModerator()


def create_invite(user: User, *, coop_id: int, max_uses: int | None = None, expires_in: int | None = None,
                  code_factory: CodeFactory = generate_invite_code, now: datetime | None = None) -> CoopInvite:
    """A new invite of the coop by its admin or a moderator.

    ``max_uses`` 1–100 or None (unlimited); ``expires_in`` seconds
    300–2,592,000 or None (never). Raises ValidationError (400), NotFound
    (404), CoopDissolved (409), NotModerator (403) or Conflict (409: the
    coop already holds ``LIVE_INVITES_MAX`` live invites).
    """
    if max_uses is not None and not MAX_USES_MIN <= max_uses <= MAX_USES_MAX:
        raise ValidationError(f"max_uses must be {MAX_USES_MIN}–{MAX_USES_MAX}.")
    if expires_in is not None and not EXPIRES_IN_MIN <= expires_in <= EXPIRES_IN_MAX:
        raise ValidationError(f"expires_in must be {EXPIRES_IN_MIN}–{EXPIRES_IN_MAX} seconds (5 minutes to 30 days).")
    for _ in range(INVITE_CODE_ATTEMPTS):
        coop = lock_active_coop(coop_id)
        _require_moderator(coop, user)
        now = now or utcnow()
        if len(_live(coop.id, now)) >= LIVE_INVITES_MAX:
            db.session.rollback()
            raise Conflict(f"A cooperative can hold {LIVE_INVITES_MAX} live invites; revoke some first.")
        code = normalise_invite_code(code_factory())
        if db.session.scalar(select(Cooperative.id).where(Cooperative.invite_code == code, is_active_coop())):
            db.session.rollback()
            continue
        invite = CoopInvite(cooperative_id=coop.id, code=code, created_by=user.user_id, created_at=now,
                            max_uses=max_uses, uses=0,
                            expires_at=now + timedelta(seconds=expires_in) if expires_in is not None else None)
        db.session.add(invite)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # the code is taken by another invite, live or not: draw again
            continue
        return invite
    raise Conflict("Could not pick a free invite code; please try again.")


def _live(coop_id: int, now: datetime) -> list[CoopInvite]:
    rows = db.session.scalars(
        select(CoopInvite).where(CoopInvite.cooperative_id == coop_id, CoopInvite.revoked_at.is_(None))
        .order_by(CoopInvite.created_at.desc(), CoopInvite.id.desc())
    ).all()
    return [row for row in rows if row.is_live(now)]


def list_invites(user: User, *, coop_id: int, now: datetime | None = None) -> list[CoopInvite]:
    """The coop's live invites, newest first (admin and moderators).
    Raises NotFound (404), CoopDissolved (409) or NotModerator (403)."""
    coop = lock_active_coop(coop_id)
    _require_moderator(coop, user)
    invites = _live(coop.id, now or utcnow())
    db.session.commit()
    return invites


def revoke_invite(user: User, *, coop_id: int, code: str) -> CoopInvite:
    """Revoke one of the coop's invites; it stops working at the commit.
    Raises NotFound (404: no such invite of this coop, or already revoked),
    CoopDissolved (409) or NotModerator (403)."""
    try:
        code = normalise_invite_code(code)
    except Exception:  # noqa: BLE001 - a malformed code is simply not an invite of this coop
        raise NotFound("No such invite.") from None
    coop = lock_active_coop(coop_id)
    _require_moderator(coop, user)
    invite = db.session.scalar(select(CoopInvite).where(
        CoopInvite.cooperative_id == coop.id, CoopInvite.code == code, CoopInvite.revoked_at.is_(None)))
    if invite is None:
        db.session.rollback()
        raise NotFound("No such invite.")
    invite.revoked_at = utcnow()
    db.session.commit()
    return invite


@dataclass(frozen=True)
class JoinTarget:
    """What a code opens: the coop, and the extra invite when it is one."""

    coop_id: int
    invite_id: int | None = None
    expires_at: datetime | None = None


def find_target(code: str, now: datetime | None = None) -> JoinTarget | None:
    """The active coop ``code`` opens: its own code, or a live extra invite.
    None for an unknown or revoked code (a failed lookup). Raises
    InviteExpired (410) for an invite that is expired or used up: it existed,
    so it is not a guess."""
    coop_id = db.session.scalar(select(Cooperative.id).where(Cooperative.invite_code == code, is_active_coop()))
    if coop_id is not None:
        return JoinTarget(coop_id)
    invite = db.session.scalar(
        select(CoopInvite).join(Cooperative, Cooperative.id == CoopInvite.cooperative_id)
        .where(CoopInvite.code == code, CoopInvite.revoked_at.is_(None), is_active_coop())
    )
    if invite is None:
        db.session.rollback()
        return None
    if not invite.is_live(now or utcnow()):
        db.session.rollback()
        raise InviteExpired()
    return JoinTarget(invite.cooperative_id, invite.id, invite.expires_at)


def preview(*, invite_code: str, caller: invites.Caller | None = None,
            invite_key: str | None = None) -> tuple[Cooperative, JoinTarget]:
    """The active coop a code opens and what opened it, for the invite page
    and ``GET /api/invites/{code}`` (logged-out visitors too), through the
    guarded ``invites.lookup`` (``caller`` is counted, a valid link
    ``invite_key`` is not). Raises InvalidInviteCode (400), RateLimited
    (429), NotFound (404, unknown, old or revoked code) or InviteExpired (410)."""
    _, target = invites.lookup(invite_code, find=find_target, caller=caller, key=invite_key)
    return db.session.get_one(Cooperative, target.coop_id), target


def claim_use(invite_id: int, now: datetime | None = None) -> bool:
    """Count one use of a live invite inside the caller's transaction (after
    the coop's seat, which holds the coop's row lock). False when it is no
    longer live: revoked, expired or used up in the meantime."""
    now = now or utcnow()
    claimed = db.session.execute(
        update(CoopInvite)
        .where(
            CoopInvite.id == invite_id,
            CoopInvite.revoked_at.is_(None),
            (CoopInvite.expires_at.is_(None)) | (CoopInvite.expires_at > now),
            (CoopInvite.max_uses.is_(None)) | (CoopInvite.uses < CoopInvite.max_uses),
        )
        .values(uses=CoopInvite.uses + 1)
        .returning(CoopInvite.id)
        .execution_options(synchronize_session=False)
    ).first()
    return claimed is not None


__all__ = ["EXPIRES_IN_MAX", "EXPIRES_IN_MIN", "LIVE_INVITES_MAX", "MAX_USES_MAX", "MAX_USES_MIN", "JoinTarget",
           "NotModerator", "claim_use", "create_invite", "find_target", "list_invites", "preview", "revoke_invite"]
