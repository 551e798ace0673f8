"""Direct and group conversations between friends (API.md "Conversations
and messages": ``POST /api/conversations``; seed 001 §3.1) on the coop
chat's messaging core (``services/conversations.py``, ``services/messages.py``):
the same messages, live events, catch-up, read receipts, typing and
notification batching.

* ``direct``: the caller and one friend. One per pair, held by the
  ``direct_pairs`` primary key: asking again (or both at once) returns the
  existing conversation.
* ``group``: the caller and 2–9 friends of the caller (3–10 members), with a
  title of 1–100 characters.
* ``add_to_group``: the creator adds a friend to their group (up to 10).
* Anyone who is not a friend: 409 ``not_friends`` naming them. A miner who
  blocked the caller is a missing account (404). Two other members with a
  block between them (at the start, or the one added and a member): 409
  ``blocked_participants`` naming the pair without saying who blocked whom.
* A block between two members of an existing group: the blocker's sockets
  no longer get the blocked member's messages (and edits) live (``messages.post``
  leaves them out of the push and of the notifications; the socket's
  catch-up skips them, ``ws_chat.ChatSocket.chat_fill``); the others still
  do, and the history keeps every message.
* Read-only (``post_refusal``): a direct conversation once the two are no
  longer friends or one blocked the other; in a group, a member who is no
  longer the creator's friend. Blocking or unfriending also removes the
  other miner from the groups the actor created, so their open sockets stop
  receiving those conversations at once (``conversations.remove_member``),
  and their direct conversation is announced to both as a ``conversation``
  event ``read_only`` (open pages put the composer away). Friends again
  (a request accepted after an unfriend, or after an unblock): the direct
  conversation is announced ``writable`` to both (``relationship_resumed``)
  and open pages show the composer again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Conversation, ConversationMember, DirectPair, User
from ..vocabulary import ConversationKind
from . import accounts, conversations, inputs, relations, transactions
from .errors import Conflict, Forbidden, NotFound, ValidationError

if TYPE_CHECKING:
    from .messages import PostTarget

GROUP_MIN, GROUP_MAX = 3, 10  # members, the creator included
TITLE_MAX = 100


class NotFriends(Conflict):
    code = "not_friends"
    message = "You can write only to friends: send a friend request first."


class BlockedParticipants(Conflict):
    code = "blocked_participants"
    message = "Some of these miners cannot be in a group together: leave one of each pair out."


class ReadOnly(Conflict):
    code = "read_only"
    message = "This conversation is read-only: you are no longer friends."


def _other_users(creator: User, user_ids: object) -> list[str]:
    if not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids):
        raise ValidationError("user_ids must be a list of user ids.")
    others = [u for u in dict.fromkeys(user_ids) if u != creator.user_id]
    for user_id in others:
        if not accounts.is_user_id(user_id) or db.session.get(User, user_id) is None \
                or relations.hidden_from(creator.user_id, user_id):
            raise NotFound()
    return others


def _require_friends(creator: User, others: list[str]) -> None:
    strangers = [u for u in others
                 if not relations.are_friends(creator.user_id, u) or relations.blocked_between(creator.user_id, u)]
    if strangers:
        names = ", ".join(sorted(strangers))
        raise NotFriends(f"You can write only to friends; not friends yet: {names}. Send a friend request first.",
                         details={"user_ids": strangers})


def _require_no_blocks(creator: User, others: list[str], *, of: str | None = None) -> None:
    """No two of ``others`` may have a block between them (only the pairs
    with ``of`` when given); the creator's own blocks are already refused as
    ``not_friends`` or a missing account. The refusal names each pair, never
    who blocked whom: the creator is outside the pair, and the pair's
    members learn nothing from it."""
    pairs = [p for p in relations.blocked_pairs(others) if of is None or of in p]
    if not pairs:
        return
    names = dict(db.session.execute(select(User.user_id, User.display_name).where(
        User.user_id.in_({u for pair in pairs for u in pair}))).all())
    described = "; ".join(f"{names.get(a, a)} and {names.get(b, b)}" for a, b in pairs)
    raise BlockedParticipants(
        f"These miners cannot be in a group together: {described}. Leave one of each pair out.",
        details={"pairs": [list(pair) for pair in pairs]})


def _existing_direct(a: str, b: str) -> Conversation | None:
    pair = db.session.get(DirectPair, (min(a, b), max(a, b)))
    return db.session.get(Conversation, pair.conversation_id) if pair else None


def start(creator: User, kind: object, user_ids: object, title: object = None) -> tuple[dict[str, Any], bool]:
    """Start a ``direct`` or ``group`` conversation, or return the pair's
    existing direct one. Returns ``(conversation dict as the creator sees
    it, created)``. Raises ValidationError, NotFound, NotFriends (409),
    BlockedParticipants (409: two of the group's other members have a
    block between them)."""
    if kind not in (ConversationKind.DIRECT, ConversationKind.GROUP):
        raise ValidationError("kind must be direct or group.")
    others = _other_users(creator, user_ids)
    me = creator.user_id
    if kind == ConversationKind.DIRECT:
        if len(others) != 1:
            raise ValidationError("A direct conversation is you and one friend: give one other user_id.")
        them = others[0]
        _require_friends(creator, others)
        existing = _existing_direct(me, them)
        if existing is not None:
            return _view(existing, me), False
        conversation = conversations.create(ConversationKind.DIRECT, member_ids=[me, them], created_by=me)
        db.session.add(DirectPair(user_low=min(me, them), user_high=max(me, them), conversation_id=conversation.id))
        try:
            db.session.commit()
        except IntegrityError:  # both started it at once: the other one won
            db.session.rollback()
            existing = _existing_direct(me, them)
            if existing is None:
                raise
            return _view(existing, me), False
        return _view(conversation, me), True
    if not GROUP_MIN <= len(others) + 1 <= GROUP_MAX:
        raise ValidationError(f"A group has {GROUP_MIN} to {GROUP_MAX} members, you included.")
    if not isinstance(title, str):
        raise ValidationError("A group needs a title (1 to 100 characters).")
    inputs.check_text(title, name="title")
    title = title.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise ValidationError("A group needs a title (1 to 100 characters).")
    _require_friends(creator, others)
    _require_no_blocks(creator, others)
    conversation = conversations.create(ConversationKind.GROUP, member_ids=[me, *others], created_by=me, title=title)
    db.session.commit()
    return _view(conversation, me), True


def add_to_group(caller: User, conversation_id: int, user_id: object) -> tuple[dict[str, Any], bool]:
    """The group's creator adds a friend, and commits. Returns ``(the
    conversation as the caller sees it, added)``; someone already in it is
    not added again (``added`` False). Under the conversation's lock, so two
    adds at once cannot pass 10 members. Raises NotFound (no such group, a
    missing miner or one who blocked the caller), NotAMember / Forbidden
    (403: not in it, not its creator), ValidationError (not a group, full),
    NotFriends, BlockedParticipants (409: they and a member have a block
    between them)."""
    conversation = conversations.get(conversation_id)
    if conversation.kind != ConversationKind.GROUP:
        raise ValidationError("Only a group takes new members.")
    conversations.require_member(conversation.id, caller.user_id)
    if conversation.created_by != caller.user_id:
        raise Forbidden("Only the group's creator can add members.")
    others = _other_users(caller, [user_id])
    if not others:
        raise ValidationError("You are already in this group.")
    them = others[0]
    _require_friends(caller, others)
    conversations.lock(conversation.id)
    members = conversations.member_ids(conversation.id)
    if them in members:
        db.session.rollback()
        return _view(conversations.get(conversation.id), caller.user_id), False
    if len(members) + 1 > GROUP_MAX:
        db.session.rollback()
        raise ValidationError(f"A group has at most {GROUP_MAX} members.")
    try:
        _require_no_blocks(caller, [them, *[m for m in members if m != caller.user_id]], of=them)
    except BlockedParticipants:
        db.session.rollback()
        raise
    conversations.add_member(conversation.id, them)
    db.session.commit()
    return _view(conversations.get(conversation.id), caller.user_id), True


def _view(conversation: Conversation, user_id: str) -> dict[str, Any]:
    return conversations.conversation_dict(conversation, conversations.membership(conversation.id, user_id))


def post_refusal(conversation: Conversation | PostTarget, sender_id: str,
                 member_ids: list[str]) -> Conflict | None:
    """Why ``sender_id`` may not post in a direct or group conversation
    now (a ReadOnly error to raise), or None. Coop conversations: None.
    ``conversation``: its ``kind`` and ``created_by`` are read."""
    if conversation.kind == ConversationKind.DIRECT:
        others = [m for m in member_ids if m != sender_id]
        if not others:
            return ReadOnly("The other miner has left: this conversation is read-only.")
        other = others[0]
        if not relations.are_friends(sender_id, other) or relations.blocked_between(sender_id, other):
            return ReadOnly()
    elif conversation.kind == ConversationKind.GROUP:
        creator = conversation.created_by
        if creator is None:
            return ReadOnly("The group's creator has left: this conversation is read-only.")
        if sender_id != creator and (not relations.are_friends(sender_id, creator)
                                     or relations.blocked_between(sender_id, creator)):
            return ReadOnly("You are no longer friends with the group's creator: this conversation is read-only.")
    return None


def relationship_ended(actor_id: str, other_id: str) -> None:
    """Unfriend or block, in the caller's transaction: ``other_id`` leaves
    every group ``actor_id`` created and ``actor_id`` every group
    ``other_id`` created (removed: their sockets drop it after the commit);
    their direct conversation, if any, is announced ``read_only`` to both."""
    rows = db.session.execute(
        select(Conversation.id, ConversationMember.user_id)
        .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
        .where(Conversation.kind == ConversationKind.GROUP, conversations.is_current_member(),
               ((Conversation.created_by == actor_id) & (ConversationMember.user_id == other_id))
               | ((Conversation.created_by == other_id) & (ConversationMember.user_id == actor_id)))
    ).all()
    for conversation_id, user_id in rows:
        conversations.remove_member(conversation_id, user_id, reason=conversations.REMOVED)
    # Their direct conversation stays (history) but turns read-only: both
    # members' open pages hear it after the commit and put the composer away.
    direct = _existing_direct(actor_id, other_id)
    if direct is not None:
        for user_id in conversations.member_ids(direct.id):
            conversations.announce_member_on_commit(direct.id, user_id, conversations.READ_ONLY)


def relationship_resumed(a: str, b: str) -> None:
    """A friendship (re)made, in the caller's transaction: their direct
    conversation, if any, is announced ``writable`` to both members after
    the commit, when neither may be refused posting any more (checked at
    the commit, ``post_refusal``); the read-only switch's counterpart."""
    direct = _existing_direct(a, b)
    if direct is None:
        return
    conversation_id = direct.id

    def prepare() -> None:
        row = conversations.get(conversation_id)
        members = conversations.member_ids(conversation_id)
        if len(members) == 2 and all(post_refusal(row, m, members) is None for m in members):
            for user_id in members:
                conversations.announce_member_on_commit(conversation_id, user_id, conversations.WRITABLE)

    transactions.before_commit(prepare)
