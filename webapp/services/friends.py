"""Friend requests, friendships and blocks (API.md "Friends and blocks";
seed 001 §1.2, seed 002 §2.1). Every write commits its own transaction.

Rules, and where they hold:

* One pending request per ordered pair and per unordered pair: partial
  unique indexes of ``friend_requests`` (the database). Two miners asking
  each other at the same moment: the second insert fails on the pair index,
  and ``send_request`` turns it into accepting the first request, so the
  race ends in one friendship.
* Accepting is a conditional UPDATE (``status = 'pending'``) plus both
  mirrored ``friendships`` rows in one transaction: of two concurrent
  answers exactly one wins.
* A requester may send ``FRIEND_REQUEST_DAILY_CAP`` requests (config,
  default 50) in any 24 hours; past it 429 ``rate_limited`` with
  ``Retry-After``.
* Pending requests expire after ``FRIEND_REQUEST_TTL_DAYS`` (30) by the
  periodic job ``jobs.friends.expire_friend_requests``.
* A miner who blocked the caller looks missing: 404 ``not_found`` with the
  body of a missing account (``relations.hidden_from``).
* After every change the pending counts of both miners are published on
  their sockets: ``{"type": "friend_requests", "incoming": n, "outgoing": m}``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .. import realtime
from ..extensions import db, execute_dml
from ..models import Block, FriendRequest, Friendship, User, iso, utcnow
from ..vocabulary import NotificationSubtype
from . import accounts, direct_messages, inputs, notifications, relations, transactions
from .errors import (
    AlreadyFriends,
    NotFound,
    RateLimited,
    RequestNotPending,
    RequestPending,
    ValidationError,
    YouBlocked,
)

MESSAGE_MAX = 140
PENDING = "pending"
FRIEND_REQUESTS = realtime.FRIEND_REQUESTS  # the socket message type of the pending counts


def _user_visible_to(viewer_id: str, user_id: object) -> User:
    """The user ``user_id`` as the viewer may address them: NotFound when
    missing, malformed or when they blocked the viewer (identical bodies)."""
    if not accounts.is_user_id(user_id):
        raise NotFound()
    assert isinstance(user_id, str)
    user = db.session.get(User, user_id)
    if user is None or relations.hidden_from(viewer_id, user_id):
        raise NotFound()
    return user


def _check_message(message: str | None) -> str | None:
    if message is None:
        return None
    inputs.check_text(message, name="message")
    message = message.strip()
    if len(message) > MESSAGE_MAX:
        raise ValidationError(f"message must be at most {MESSAGE_MAX} characters.")
    return message or None


def _pending_between(a: str, b: str) -> FriendRequest | None:
    return db.session.scalars(
        select(FriendRequest).where(
            FriendRequest.status == PENDING,
            FriendRequest.user_low == min(a, b),
            FriendRequest.user_high == max(a, b),
        )
    ).first()


def _check_daily_cap(requester_id: str, now: datetime) -> None:
    cap = int(current_app.config.get("FRIEND_REQUEST_DAILY_CAP", 50))
    since = now - timedelta(days=1)
    recent = db.session.scalars(
        select(FriendRequest.created_at)
        .where(FriendRequest.requester_id == requester_id, FriendRequest.created_at > since)
        .order_by(FriendRequest.created_at)
    ).all()
    if len(recent) >= cap:
        # The window frees a slot when the oldest request of the last cap leaves it.
        retry = (recent[len(recent) - cap] + timedelta(days=1) - now).total_seconds()
        raise RateLimited(f"You can send {cap} friend requests a day; try again later.", retry_after=retry)


def send_request(requester: User, recipient_id: object, message: str | None = None) -> tuple[FriendRequest, bool]:
    """Ask ``recipient_id`` to be friends, and commit.

    Returns ``(request, created)``: a new pending request (``created``), or,
    when the recipient had already asked the requester, their request now
    accepted (``created`` False). Raises NotFound (missing recipient, or one
    who blocked the requester), ValidationError (self, message over 140),
    YouBlocked (the requester blocked them), AlreadyFriends,
    RequestPending, RateLimited (daily cap).
    """
    message = _check_message(message)
    recipient = _user_visible_to(requester.user_id, recipient_id)
    me, them = requester.user_id, recipient.user_id
    if me == them:
        raise ValidationError("You cannot send a friend request to yourself.")
    for attempt in range(2):
        if relations.has_blocked(me, them):
            raise YouBlocked()
        if relations.are_friends(me, them):
            raise AlreadyFriends()
        pending = _pending_between(me, them)
        if pending is not None:
            if pending.requester_id == me:
                raise RequestPending()
            return _accept(pending, actor=requester), False
        now = utcnow()
        _check_daily_cap(me, now)
        row = FriendRequest(requester_id=me, recipient_id=them, user_low=min(me, them), user_high=max(me, them),
                            status=PENDING, message=message, created_at=now)
        db.session.add(row)
        try:
            db.session.flush()
        except IntegrityError:
            # The other miner's request (or a twin of ours) committed first: read it again.
            db.session.rollback()
            if attempt:
                raise
            continue
        notifications.notify_kind(
            them, NotificationSubtype.FRIEND_REQUEST_RECEIVED, commit=False, link="/friends",
            data={"request_id": row.id, "user_id": me},
            member=requester.display_name, message=message or "They would like to be your friend.",
        )
        publish_counts_on_commit(me, them)
        db.session.commit()
        return row, True
    raise AssertionError("unreachable")  # pragma: no cover


def _accept(row: FriendRequest, *, actor: User) -> FriendRequest:
    """Accept the pending ``row`` (the actor is its recipient) and commit:
    the conditional update wins once, then both friendship rows."""
    now = utcnow()
    won = execute_dml(
        update(FriendRequest)
        .where(FriendRequest.id == row.id, FriendRequest.status == PENDING)
        .values(status="accepted", responded_at=now)
        .execution_options(synchronize_session=False)
    )
    if not won:
        db.session.rollback()
        raise RequestNotPending()
    db.session.add_all([
        Friendship(user_id=row.requester_id, friend_id=row.recipient_id, created_at=now),
        Friendship(user_id=row.recipient_id, friend_id=row.requester_id, created_at=now),
    ])
    notifications.notify_kind(
        row.requester_id, NotificationSubtype.FRIEND_REQUEST_ACCEPTED, commit=False,
        link=f"/miners/{actor.user_id}", data={"request_id": row.id, "user_id": actor.user_id},
        member=actor.display_name,
    )
    publish_counts_on_commit(row.requester_id, row.recipient_id)
    direct_messages.relationship_resumed(row.requester_id, row.recipient_id)  # their direct chat is writable again
    try:
        db.session.commit()
    except IntegrityError:  # already friends through another path
        db.session.rollback()
        raise AlreadyFriends() from None
    db.session.refresh(row)
    return row


def _own_request(user_id: str, request_id: int, *, side: str) -> FriendRequest:
    """The request ``request_id`` if ``user_id`` is its ``side``
    (``recipient`` or ``requester``); NotFound otherwise, as for a missing one."""
    row = db.session.get(FriendRequest, request_id)
    if row is None or getattr(row, f"{side}_id") != user_id:
        raise NotFound()
    return row


def accept(user: User, request_id: int) -> FriendRequest:
    """The recipient accepts. Raises NotFound, RequestNotPending."""
    row = _own_request(user.user_id, request_id, side="recipient")
    if row.status != PENDING:
        raise RequestNotPending()
    return _accept(row, actor=user)


def _close(row: FriendRequest, status: str) -> FriendRequest:
    won = execute_dml(
        update(FriendRequest)
        .where(FriendRequest.id == row.id, FriendRequest.status == PENDING)
        .values(status=status, responded_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not won:
        db.session.rollback()
        raise RequestNotPending()
    publish_counts_on_commit(row.requester_id, row.recipient_id)
    db.session.commit()
    db.session.refresh(row)
    return row


def decline(user: User, request_id: int) -> FriendRequest:
    """The recipient declines (the requester is not told). Raises NotFound, RequestNotPending."""
    return _close(_own_request(user.user_id, request_id, side="recipient"), "declined")


def cancel(user: User, request_id: int) -> FriendRequest:
    """The requester withdraws. Raises NotFound, RequestNotPending."""
    return _close(_own_request(user.user_id, request_id, side="requester"), "cancelled")


def unfriend(user: User, friend_id: object) -> None:
    """End a friendship (both rows) and commit. Raises NotFound when they are not friends."""
    if not accounts.is_user_id(friend_id):
        raise NotFound()
    gone = execute_dml(
        delete(Friendship).where(or_(
            and_(Friendship.user_id == user.user_id, Friendship.friend_id == friend_id),
            and_(Friendship.user_id == friend_id, Friendship.friend_id == user.user_id),
        )).execution_options(synchronize_session=False)
    )
    if not gone:
        db.session.rollback()
        raise NotFound()
    direct_messages.relationship_ended(user.user_id, str(friend_id))  # their direct chat turns read-only
    db.session.commit()


def expire_stale(now: datetime | None = None) -> int:
    """Mark pending requests older than ``FRIEND_REQUEST_TTL_DAYS`` expired
    and commit; returns how many (the periodic job)."""
    now = now or utcnow()
    days = int(current_app.config.get("FRIEND_REQUEST_TTL_DAYS", 30))
    cutoff = now - timedelta(days=days)
    stale = db.session.execute(
        select(FriendRequest.requester_id, FriendRequest.recipient_id)
        .where(FriendRequest.status == PENDING, FriendRequest.created_at < cutoff)
    ).all()
    if not stale:
        return 0
    count = execute_dml(
        update(FriendRequest)
        .where(FriendRequest.status == PENDING, FriendRequest.created_at < cutoff)
        .values(status="expired", responded_at=now)
        .execution_options(synchronize_session=False)
    )
    publish_counts_on_commit(*{u for pair in stale for u in pair})
    db.session.commit()
    return count


# ---- reading ----------------------------------------------------------------------------


def pending_counts(user_id: str) -> dict[str, int]:
    """``{"incoming": n, "outgoing": m}`` pending requests of ``user_id``,
    in one statement (the nav of every page asks)."""
    request = FriendRequest
    incoming, outgoing = db.session.execute(
        select(func.count().filter(request.recipient_id == user_id), func.count().filter(request.requester_id == user_id))
        .where(request.status == PENDING, or_(request.recipient_id == user_id, request.requester_id == user_id))
    ).one()
    return {"incoming": int(incoming or 0), "outgoing": int(outgoing or 0)}


def list_requests(user_id: str, *, direction: str, limit: int, before_id: int | None) -> tuple[list[FriendRequest], int | None]:
    """Pending requests to (``incoming``) or from (``outgoing``) the user,
    newest first, keyset on id. Returns ``(rows, next_id)``. Raises ValidationError."""
    if direction not in ("incoming", "outgoing"):
        raise ValidationError("direction must be incoming or outgoing.")
    column = FriendRequest.recipient_id if direction == "incoming" else FriendRequest.requester_id
    query = select(FriendRequest).where(column == user_id, FriendRequest.status == PENDING)
    if before_id is not None:
        query = query.where(FriendRequest.id < before_id)
    rows = list(db.session.scalars(query.order_by(FriendRequest.id.desc()).limit(limit + 1)))
    next_id = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_id


def request_dict(row: FriendRequest, viewer_id: str) -> dict[str, Any]:
    """API.md request object plus the other miner's name as the viewer may
    see it (``other``: ``{"user_id", "display_name"}``)."""
    other_id = row.recipient_id if row.requester_id == viewer_id else row.requester_id
    other = db.session.get(User, other_id)
    return row.to_dict() | {"other": {"user_id": other_id, "display_name": other.display_name if other else None}}


def list_friends(user_id: str, *, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Friends ordered by user id (keyset on it): ``[{"user_id",
    "display_name", "since", "mutual_count"}]`` and the next key or None."""
    mine = select(Friendship.friend_id).where(Friendship.user_id == user_id).scalar_subquery()
    other = Friendship.__table__.alias("theirs")
    mutual = (
        select(func.count()).select_from(other)
        .where(other.c.user_id == Friendship.friend_id, other.c.friend_id.in_(mine))
        .scalar_subquery()
    )
    query = (
        select(Friendship.friend_id, User.display_name, Friendship.created_at, mutual)
        .join(User, User.user_id == Friendship.friend_id)
        .where(Friendship.user_id == user_id)
    )
    if after is not None:
        query = query.where(Friendship.friend_id > after)
    rows = db.session.execute(query.order_by(Friendship.friend_id).limit(limit + 1)).all()
    items = [{"user_id": f, "display_name": name, "since": iso(since), "mutual_count": int(m or 0)}
             for f, name, since, m in rows[:limit]]
    return items, (rows[limit - 1][0] if len(rows) > limit else None)


# ---- blocks -----------------------------------------------------------------------------


def block(user: User, target_id: object) -> Block:
    """Block ``target_id`` and commit: their friendship ends (both rows),
    pending requests either way are cancelled, and from now on they cannot
    ask, write to or find the blocker, to whom the blocker looks missing.
    Idempotent. Raises NotFound (missing, or they blocked the caller),
    ValidationError (self)."""
    target = _user_visible_to(user.user_id, target_id)
    me, them = user.user_id, target.user_id
    if me == them:
        raise ValidationError("You cannot block yourself.")
    existing = db.session.get(Block, (me, them))
    if existing is not None:
        return existing
    row = Block(blocker_id=me, blocked_id=them)
    db.session.add(row)
    db.session.execute(delete(Friendship).where(or_(
        and_(Friendship.user_id == me, Friendship.friend_id == them),
        and_(Friendship.user_id == them, Friendship.friend_id == me),
    )).execution_options(synchronize_session=False))
    execute_dml(
        update(FriendRequest)
        .where(FriendRequest.status == PENDING, FriendRequest.user_low == min(me, them),
               FriendRequest.user_high == max(me, them))
        .values(status="cancelled", responded_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    direct_messages.relationship_ended(me, them)
    publish_counts_on_commit(me, them)
    try:
        db.session.commit()
    except IntegrityError:  # blocked twice at once
        db.session.rollback()
        found = db.session.get(Block, (me, them))
        if found is None:
            raise
        return found
    return row


def unblock(user: User, target_id: object) -> None:
    """Lift a block and commit. Raises NotFound when there is none."""
    if not accounts.is_user_id(target_id):
        raise NotFound()
    gone = execute_dml(
        delete(Block).where(Block.blocker_id == user.user_id, Block.blocked_id == target_id)
        .execution_options(synchronize_session=False)
    )
    if not gone:
        db.session.rollback()
        raise NotFound()
    db.session.commit()


def list_blocks(user_id: str) -> list[dict[str, Any]]:
    """The miners ``user_id`` blocked, newest first: ``[{"user_id", "display_name", "created_at"}]``."""
    rows = db.session.execute(
        select(Block.blocked_id, User.display_name, Block.created_at)
        .join(User, User.user_id == Block.blocked_id)
        .where(Block.blocker_id == user_id)
        .order_by(Block.created_at.desc())
    ).all()
    return [{"user_id": b, "display_name": name, "created_at": iso(at)} for b, name, at in rows]


# ---- live counts --------------------------------------------------------------------------


def publish_counts_on_commit(*user_ids: str) -> None:
    """After the commit, publish each user's pending counts on their
    sockets (read in a before-commit hook, while the session can query)."""
    counts: dict[str, dict[str, int]] = {}

    def read() -> None:
        for user_id in user_ids:
            counts[user_id] = pending_counts(user_id)
        transactions.after_commit(publish)

    def publish() -> None:
        for user_id, count in counts.items():
            try:
                realtime.publish(user_id, {"type": FRIEND_REQUESTS, **count})
            except Exception:  # noqa: BLE001 - Redis down: the page shows the count on its next load
                current_app.logger.exception("could not publish friend request counts for %s", user_id)

    transactions.before_commit(read)
