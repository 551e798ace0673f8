"""Who is whose friend and who blocked whom: the read side of friends and
blocks (API.md "Friends and blocks"), used by profiles, search, friends and
the messaging rules. No writes here (``services/friends.py`` writes).

* A friendship is two mirrored ``friendships`` rows; one is enough to read.
* ``hidden_from(viewer, user)``: ``user`` blocked ``viewer``, so to the
  viewer ``user`` is a missing account (404 with the missing-account body).
* ``blocked_between(a, b)``: a block either way (search hides both sides).
"""
from __future__ import annotations

from typing import Literal

from sqlalchemy import exists, or_, select

from ..extensions import db
from ..models import Block, FriendRequest, Friendship

Relation = Literal["self", "friend", "stranger"]
FriendshipState = Literal["none", "friends", "pending_outgoing", "pending_incoming"]


def are_friends(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are friends (one indexed lookup)."""
    return db.session.get(Friendship, (a, b)) is not None


def relation(viewer_id: str | None, user_id: str) -> Relation:
    """How ``viewer_id`` stands to ``user_id`` for per-field visibility:
    ``self``, ``friend`` (a ``connections`` field shows) or ``stranger``
    (anonymous viewers too)."""
    if viewer_id is None:
        return "stranger"
    if viewer_id == user_id:
        return "self"
    return "friend" if are_friends(viewer_id, user_id) else "stranger"


def has_blocked(blocker_id: str, blocked_id: str) -> bool:
    """Whether ``blocker_id`` blocked ``blocked_id``."""
    return db.session.get(Block, (blocker_id, blocked_id)) is not None


def hidden_from(viewer_id: str | None, user_id: str) -> bool:
    """Whether ``user_id`` must look missing to ``viewer_id`` (they blocked the viewer)."""
    return viewer_id is not None and viewer_id != user_id and has_blocked(user_id, viewer_id)


def blocked_between(a: str, b: str) -> bool:
    """A block in either direction."""
    return bool(db.session.scalar(select(exists().where(or_(
        (Block.blocker_id == a) & (Block.blocked_id == b),
        (Block.blocker_id == b) & (Block.blocked_id == a),
    )))))


def blockers_of(user_id: str, among: list[str]) -> set[str]:
    """Those of ``among`` who blocked ``user_id`` (a group's live pushes skip them)."""
    if not among:
        return set()
    return set(db.session.scalars(
        select(Block.blocker_id).where(Block.blocked_id == user_id, Block.blocker_id.in_(among))))


def blocked_ids(user_id: str) -> set[str]:
    """The ids of the miners ``user_id`` blocked."""
    return set(db.session.scalars(select(Block.blocked_id).where(Block.blocker_id == user_id)))


def blocked_pairs(user_ids: list[str]) -> list[tuple[str, str]]:
    """The pairs of ``user_ids`` with a block either way, each as
    ``(lower id, higher id)`` (no direction), sorted."""
    if len(user_ids) < 2:
        return []
    rows = db.session.execute(
        select(Block.blocker_id, Block.blocked_id)
        .where(Block.blocker_id.in_(user_ids), Block.blocked_id.in_(user_ids))
    ).all()
    return sorted({(min(a, b), max(a, b)) for a, b in rows})


def blocked_either_way_sql(viewer_id: str, column):
    """SQL: ``column`` (a user id column) names someone the viewer blocked
    or who blocked the viewer (for filtering lists and search)."""
    return or_(
        exists().where(Block.blocker_id == viewer_id, Block.blocked_id == column),
        exists().where(Block.blocker_id == column, Block.blocked_id == viewer_id),
    )


def friendship_state(viewer_id: str, user_id: str) -> FriendshipState:
    """API.md ``friendship`` of ``GET /api/public/miners/{user_id}`` for a logged-in viewer."""
    if viewer_id == user_id:
        return "none"
    if are_friends(viewer_id, user_id):
        return "friends"
    pending = db.session.scalars(
        select(FriendRequest.requester_id).where(
            FriendRequest.status == "pending",
            FriendRequest.user_low == min(viewer_id, user_id),
            FriendRequest.user_high == max(viewer_id, user_id),
        )
    ).first()
    if pending is None:
        return "none"
    return "pending_outgoing" if pending == viewer_id else "pending_incoming"


def friend_ids(user_id: str) -> list[str]:
    """The ids of ``user_id``'s friends."""
    return list(db.session.scalars(select(Friendship.friend_id).where(Friendship.user_id == user_id)))
