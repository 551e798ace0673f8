"""Messages: post, edit, delete, react, read, history and catch-up, the
caller's conversations (API.md "Conversations and messages"). Every route,
socket message and page is a thin adapter over these functions.

Numbering: a post takes its ``seq`` with ``UPDATE conversations SET
last_seq = last_seq + 1 … RETURNING`` in its own transaction; the row lock
is held to the commit, so seqs follow commit order with no gaps (a rollback
gives the number back). The same lock serialises posts with membership
changes (``services/conversations.py``), and the member list a post
publishes to is read after it, so a removed member never receives a
message committed after their removal.

Pushes go out after the commit (``transactions.after_commit``), ONE PUBLISH
per message addressed to the member list read under the lock
(``realtime.publish_many``), which every web process's hub routes to its
own sockets of those members.

``post_together`` stores several coop posts with one statement under the
same rules (the socket's lane under load, ``webapp/post_lane.py``).

Coop conversations ask the moderation service before a post or an edit
(``moderation.screen_message``: mute, slow mode for posts, keyword block)
and after it (``moderation.file_flag_report``); ``muted_until`` fills the
conversation's field.

Notifications: an ``@user_id`` of a member is a ``mention`` (catalogue,
toggle ``chatMentions``); a member with no socket open gets one
``chat_unread`` per conversation until they read it (``unread_notified``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, cast

from flask import current_app
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    column,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError, OperationalError

from .. import realtime
from ..extensions import db, execute_dml, get_redis, redis_key
from ..models import (
    MAX_MESSAGE_LENGTH,
    REACTION_EMOJI,
    Conversation,
    ConversationMember,
    Cooperative,
    CooperativeMember,
    Message,
    MessageReaction,
    User,
    utcnow,
)
from ..vocabulary import ConversationKind
from ..vocabulary import NotificationSubtype as S
from . import (
    conversations,
    direct_messages,
    inputs,
    markup,
    moderation,
    notifications,
    presence,
    relations,
    transactions,
)
from .conversations import MESSAGE, MESSAGE_UPDATED, READ, TYPING
from .errors import DomainError, Forbidden, NotAMember, NotFound, ValidationError
from .membership import is_moderating_member
from .message_history import (  # noqa: F401 - re-exported: the read side of this module's API
    PAGE_DEFAULT,
    PAGE_MAX,
    after_seq,
    conversation_for_coop,
    get_conversation,
    history,
    list_conversations,
)

MAX_CLIENT_ID = 64
TYPING_TTL = 6  # seconds a typing line shows (API.md)
TYPING_THROTTLE = 3  # seconds between two typing pushes of one member
EXCERPT = 140  # characters of a mention notification's body


# ---- checks ------------------------------------------------------------------------


def clean_body(body: object) -> str:
    """1–2,000 characters, not only white space, no control characters
    (``inputs.MULTILINE``); a form's CRLF line breaks become LF first, so a
    line break counts one character whichever client sent it. Raises
    ValidationError (400)."""
    if isinstance(body, str):
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not isinstance(body, str) or not body.strip():
        raise ValidationError("body must be 1 to 2000 characters.")
    if len(body) > MAX_MESSAGE_LENGTH:
        raise ValidationError(f"body can have at most {MAX_MESSAGE_LENGTH} characters.")
    return inputs.check_text(body, name="body", kind=inputs.MULTILINE)


def clean_client_id(client_id: object) -> str | None:
    """None, or 1–64 characters of one line. Raises ValidationError (400)."""
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_ID:
        raise ValidationError(f"client_id must be 1 to {MAX_CLIENT_ID} characters.")
    return inputs.check_text(client_id, name="client_id")


def clean_emoji(emoji: object) -> str:
    """One of ``REACTION_EMOJI`` (a trailing U+FE0F is ignored)."""
    if isinstance(emoji, str) and emoji.replace("\ufe0f", "") in REACTION_EMOJI:
        return emoji.replace("\ufe0f", "")
    raise ValidationError(f"emoji must be one of {' '.join(REACTION_EMOJI)}.")


def _message(message_id: object) -> Message:
    if not isinstance(message_id, int) or isinstance(message_id, bool) \
            or not 1 <= message_id <= conversations.MAX_MESSAGE_ID:
        raise NotFound("No such message.")
    row = db.session.get(Message, message_id, populate_existing=True)
    if row is None:
        raise NotFound("No such message.")
    return row


def _member_message(user_id: str, message_id: object) -> tuple[Conversation, Message]:
    """A message of a conversation ``user_id`` is in: NotFound (404) or
    NotAMember (403)."""
    row = _message(message_id)
    conversation, _ = conversations.require_member(row.conversation_id, user_id)
    return conversation, row


def get_message(user_id: str, message_id: object) -> dict[str, Any]:
    """One message as a member of its conversation sees it (API.md
    "message"). Raises NotFound (404), NotAMember (403)."""
    _, row = _member_message(user_id, message_id)
    return conversations.message_dicts([row], user_id)[0]


def can_moderate(conversation: Conversation, user_id: str) -> bool:
    """Whether ``user_id`` moderates ``conversation``: the coop's active
    admin or a moderator (``membership.is_moderating_member``)."""
    if conversation.cooperative_id is None:
        return False
    return (db.session.scalar(
        select(func.count()).select_from(CooperativeMember)
        .where(is_moderating_member(conversation.cooperative_id), CooperativeMember.user_id == user_id)
    ) or 0) > 0


# ---- post --------------------------------------------------------------------------


def _by_client_id(user_id: str, client_id: str) -> Message | None:
    return db.session.execute(
        select(Message).where(Message.sender_id == user_id, Message.client_id == client_id)
    ).scalar_one_or_none()


def _repeat(user_id: str, conversation_id: int, first: Message) -> tuple[dict[str, Any], bool]:
    if first.conversation_id != conversation_id:
        db.session.rollback()
        raise ValidationError("client_id was already used for a message in another conversation.")
    data = conversations.message_dicts([first], user_id)[0]
    db.session.rollback()
    return data, False


# The statements of a post, built once: building SQLAlchemy expressions
# costs more CPU than running them (profiled: docs/PERFORMANCE.md "Coop chat").


@dataclass(frozen=True, slots=True)
class PostTarget:
    """The conversation a post goes to, as ``_post_facts`` read it: plain
    values, not an ORM entity (loading one cost a post ~10 % of its CPU,
    docs/PERFORMANCE.md). ``members_version``: ``Conversation.members_version``."""

    id: int
    kind: str
    cooperative_id: int | None
    created_by: str | None
    title: str | None
    members_version: int


_TARGET_COLUMNS = ("id", "kind", "cooperative_id", "created_by", "title", "members_version")


def _facts_columns(user_id: Any, client_id: Any) -> list[Any]:
    """The columns of ``_post_facts`` for the poster ``user_id`` and
    ``client_id`` (bound parameters, or the columns of ``post_together``'s
    list of posts), correlated to ``Conversation``."""
    is_member = exists(select(ConversationMember.user_id).where(
        ConversationMember.conversation_id == Conversation.id, ConversationMember.user_id == user_id,
        conversations.is_current_member()))
    # A NULL client_id matches nothing (``= NULL``): no earlier post.
    first = select(Message.id).where(Message.sender_id == user_id,
                                     Message.client_id == client_id).scalar_subquery()
    return [
        *(getattr(Conversation, name) for name in _TARGET_COLUMNS),
        is_member.label("is_member"), first.label("first_id"),
        select(User.display_name).where(User.user_id == user_id).scalar_subquery().label("sender_name"),
        select(Cooperative.name).where(Cooperative.id == Conversation.cooperative_id).scalar_subquery()
        .label("coop_name"),
        # One string (string_agg / group_concat: user ids hold no comma), on both databases.
        select(func.aggregate_strings(ConversationMember.user_id, ",")).where(
            ConversationMember.conversation_id == Conversation.id, conversations.is_current_member())
        .scalar_subquery().label("member_ids"),
        *moderation.screen_columns(Conversation.cooperative_id, user_id),
    ]


@functools.cache
def _post_facts_statement() -> Select:
    """See ``_post_facts``; parameters ``cid``, ``uid``, ``client_id``."""
    return select(*_facts_columns(bindparam("uid", type_=String), bindparam("client_id", type_=String))) \
        .where(Conversation.id == bindparam("cid", type_=Integer))


def _post_facts(connection: Any, conversation_id: int, user_id: str, client_id: str | None) -> Any:
    """One query before a post, on the session's ``connection`` (Core: no
    ORM entity to load): the conversation's ``PostTarget`` columns, whether the caller
    is a current member, the members (for the presence read before the
    lock; the list a post uses is read under it), their display name, the coop's name, the message
    an earlier post with ``client_id`` stored (its id), and the moderation
    screen's facts (``moderation.screen_columns``). None: no such
    conversation."""
    return connection.execute(_post_facts_statement(),
                              {"cid": conversation_id, "uid": user_id, "client_id": client_id}).first()


@functools.cache
def _number_statement() -> Any:
    """Take the next seq of conversation ``cid`` (its row lock, to the commit)."""
    table = cast(Table, Conversation.__table__)
    return (update(table)
            .where(table.c.id == bindparam("cid", type_=Integer), table.c.archived_at.is_(None))
            .values(last_seq=table.c.last_seq + 1, last_message_at=bindparam("now", type_=table.c.last_message_at.type))
            .returning(table.c.last_seq))


@functools.cache
def _read_position_statement() -> Any:
    """Move the sender's read position to the new message (``p_cid``,
    ``p_uid``, ``p_seq``)."""
    members = cast(Table, ConversationMember.__table__)
    return (update(members)
            .where(members.c.conversation_id == bindparam("p_cid", type_=Integer),
                   members.c.user_id == bindparam("p_uid", type_=String))
            .values(last_read_seq=bindparam("p_seq", type_=BigInteger), unread_notified=False))


@functools.cache
def _insert_statement(with_read_position: bool = True) -> Any:
    """Insert the message (returns its id) and, on PostgreSQL, move the
    sender's read position to it in the same statement (a data-modifying
    CTE; SQLite has none: ``_read_position_statement`` follows there).
    Parameters ``p_<column>`` (a parameter may not take a column's own name)."""
    table = cast(Table, Message.__table__)
    statement = (
        insert(table)
        .values(conversation_id=bindparam("p_cid"), seq=bindparam("p_seq"), sender_id=bindparam("p_uid"),
                body=bindparam("p_body", type_=table.c.body.type),
                mentions=bindparam("p_mentions", type_=table.c.mentions.type),
                reply_to=bindparam("p_reply_to", type_=table.c.reply_to.type),
                client_id=bindparam("p_client_id", type_=String),
                created_at=bindparam("p_now", type_=table.c.created_at.type))
        .returning(table.c.id)
    )
    return statement.add_cte(_read_position_statement().cte("read_position")) if with_read_position else statement


@functools.cache
def _post_statement() -> Any:
    """PostgreSQL, one statement: if conversation ``p_cid`` is live and its
    ``members_version`` is still ``p_version``, take its next seq (its row
    lock, to the commit), insert the message with it and move the sender's
    read position to it. Returns one row ``(seq, id)``, or none when the
    version moved or the conversation was archived or is gone: then nothing
    was taken. Atomic on its own, so it may run in autocommit. Parameters
    ``p_cid``, ``p_uid``, ``p_body``, ``p_mentions``, ``p_reply_to``,
    ``p_client_id``, ``p_now``, ``p_version``. The casts type the
    parameters of the ``INSERT … SELECT``, which PostgreSQL would otherwise
    read as text."""
    messages_table = cast(Table, Message.__table__)
    conversations_table = cast(Table, Conversation.__table__)
    return text("""
        WITH numbered AS (
            UPDATE conversations SET last_seq = last_seq + 1, last_message_at = :p_now
            WHERE id = :p_cid AND archived_at IS NULL AND members_version = :p_version
            RETURNING last_seq
        ), inserted AS (
            INSERT INTO messages (conversation_id, seq, sender_id, body, mentions, reply_to, client_id, created_at)
            SELECT CAST(:p_cid AS integer), last_seq, CAST(:p_uid AS varchar), CAST(:p_body AS text),
                   CAST(:p_mentions AS jsonb), CAST(:p_reply_to AS bigint), CAST(:p_client_id AS varchar),
                   CAST(:p_now AS timestamptz)
            FROM numbered
            RETURNING id, seq
        ), read_position AS (
            UPDATE conversation_members SET last_read_seq = inserted.seq, unread_notified = false
            FROM inserted
            WHERE conversation_members.conversation_id = :p_cid AND conversation_members.user_id = :p_uid
        )
        SELECT seq, id FROM inserted
    """).bindparams(
        bindparam("p_cid", type_=Integer), bindparam("p_uid", type_=String), bindparam("p_body", type_=Text),
        bindparam("p_mentions", type_=messages_table.c.mentions.type),
        bindparam("p_reply_to", type_=BigInteger), bindparam("p_client_id", type_=String),
        bindparam("p_now", type_=conversations_table.c.last_message_at.type),
        bindparam("p_version", type_=BigInteger),
    )


def post(user_id: str, conversation_id: int, body: object, *, reply_to: object = None,
         client_id: object = None) -> tuple[dict[str, Any], bool]:
    """Store a message and push it to every member's sockets after the commit.

    Returns ``(message dict, created)``: ``created`` is False when
    ``client_id`` repeats an earlier post of this sender (that message,
    unchanged — API.md: 200 instead of 201). Raises ValidationError (400:
    body, client_id, reply_to), NotFound (404), NotAMember (403
    ``not_a_member``), and for coop conversations the moderation errors
    (403 ``muted``, 429 ``slow_mode``, 400 ``message_blocked``).

    Round trips of a coop post on PostgreSQL: one query for every check
    before the number (``_post_facts``), one Redis pipeline (who has a
    socket open, the sender's activity), one statement that numbers and
    inserts (``_post_statement``), one PUBLISH (``realtime.publish_many``).
    With no notification due (no mention, every other member has a socket
    open) and no transaction open before, that is all: the reads and the
    statement run in autocommit. Otherwise ``BEGIN`` and ``COMMIT`` are
    added; mentions, absent members, a membership change since the checks
    and a presence change add theirs.
    """
    body = clean_body(body)
    client_id = clean_client_id(client_id)
    conversation_id = conversations.check_id(conversation_id)
    connection, autocommit = transactions.session_connection()
    facts = _post_facts(connection, conversation_id, user_id, client_id)
    # A retry returns the first message, whatever changed since (as before
    # the membership and moderation checks); an unknown conversation with a
    # client_id may still be a retry's (its id used in another conversation).
    if (facts is not None and facts.first_id is not None) or (facts is None and client_id is not None):
        first = _by_client_id(user_id, client_id) if client_id is not None else None
        if first is not None:
            return _repeat(user_id, conversation_id, first)
    if facts is None:
        raise NotFound("No such conversation.")
    if not facts.is_member:
        raise NotAMember("Only members of this conversation can do that.")
    conversation = PostTarget(*(getattr(facts, name) for name in _TARGET_COLUMNS))
    coop_id = conversation.cooperative_id
    flagged = moderation.screen_message(coop_id, user_id, body, moderation.screen_facts(facts)) \
        if coop_id is not None else []
    reply_id = None
    if reply_to is not None:
        if not isinstance(reply_to, int) or isinstance(reply_to, bool):
            raise ValidationError("reply_to must be a message id (a whole number).")
        reply_id = inputs.parse_int(reply_to, name="reply_to", maximum=conversations.MAX_MESSAGE_ID)
        parent = db.session.scalar(select(Message.conversation_id).where(Message.id == reply_id))
        if parent != conversation_id:
            raise ValidationError("reply_to must be a message of this conversation.")
    facts_members = [m for m in (facts.member_ids or "").split(",") if m]
    online, asked, presence_state = _online_before_lock(facts_members, user_id)
    # Nobody to notify unless mentioned: the post may write the message alone.
    everyone_online = online is not None and asked <= online
    now = utcnow()
    params = {"p_cid": conversation_id, "p_uid": user_id, "p_body": body, "p_reply_to": reply_id,
              "p_client_id": client_id, "p_now": now}
    try:
        seq, row_id, members, mentioned = _number_and_insert(
            connection, conversation, user_id, body, facts_members, params,
            autocommit=autocommit, everyone_online=everyone_online)
    except IntegrityError:
        db.session.rollback()  # the same client_id won a race: its number goes back too
        first = _by_client_id(user_id, client_id) if client_id is not None else None
        if first is None:
            raise
        return _repeat(user_id, conversation_id, first)
    row = Message(id=row_id, conversation_id=conversation_id, seq=seq, sender_id=user_id, body=body,
                  mentions=mentioned or None, reply_to=reply_id, client_id=client_id, created_at=now)
    sender_name = facts.sender_name or user_id
    title = (facts.coop_name if coop_id is not None else conversation.title) or "a conversation"
    # In a group, members who blocked the sender hear nothing of it live
    # (neither push nor notification); the history keeps it.
    recipients = members
    if conversation.kind == ConversationKind.GROUP:
        blockers = relations.blockers_of(user_id, members)
        recipients = [m for m in members if m not in blockers]
    _notify(conversation, row, sender_name, title, recipients, [m for m in mentioned if m in recipients],
            online, asked)
    data = conversations.message_dict(row, {user_id: sender_name}, None, None)
    message = {"type": MESSAGE, "data": data}
    transactions.after_commit(lambda: conversations.publish_many(recipients, message))
    db.session.commit()
    if flagged and coop_id is not None:
        moderation.file_flag_report(coop_id, data["id"], flagged, author_user_id=user_id)
    presence_touch(user_id, presence_state)
    return data, True


def _number_and_insert(connection: Any, conversation: PostTarget, user_id: str, body: str,
                       facts_members: list[str], params: dict[str, Any], *, autocommit: bool = False,
                       everyone_online: bool = False) -> tuple[int, int, list[str], list[str]]:
    """Take the conversation's next seq, insert the message and move the
    sender's read position; returns ``(seq, message id, the members, the
    mentioned members)``, the members being the list as of the number (the
    ones to publish to). Raises NotAMember (403: not a member any more, or
    an archived conversation), the direct/group refusals (409), and
    IntegrityError for a ``client_id`` that a concurrent post stored.

    PostgreSQL, coop conversation: one statement (``_post_statement``) when
    the conversation's ``members_version`` is still the one ``_post_facts``
    read with ``facts_members`` (no membership write committed since, and
    none can before this commit: the number holds the row's lock), so that
    list is the current one. On an ``autocommit`` connection
    (``transactions.session_connection``) that statement commits on its own
    when nothing else is due: no mention, ``everyone_online``; else a
    transaction is opened first. Otherwise (the version moved, an archived
    conversation, another kind, SQLite): in a transaction, the number, then
    the member list read under the lock, then the insert."""
    conversation_id = conversation.id
    candidates = markup.mentions(body)
    postgresql = connection.dialect.name == "postgresql"
    if postgresql and conversation.kind == ConversationKind.COOP:
        known = set(facts_members)
        mentioned = [m for m in candidates if m in known and m != user_id]
        if autocommit and (mentioned or not everyone_online):
            transactions.begin(connection)  # notification rows commit with the message
            autocommit = False
        result = connection.execute(_post_statement(), {**params, "p_mentions": mentioned or None,
                                                        "p_version": conversation.members_version}).first()
        if result is not None:
            return result.seq, result.id, facts_members, mentioned
        # The members changed since ``_post_facts`` (or the conversation was
        # archived): nothing was taken; the number and the members below.
    if autocommit:
        transactions.begin(connection)
    seq = connection.execute(_number_statement(),
                             {"cid": conversation_id, "now": params["p_now"]}).scalar_one_or_none()
    # Under the conversation's lock: the membership and member list as of now
    # (a statement of its own: READ COMMITTED reads after the lock wait).
    members = conversations.member_ids(conversation_id)
    if seq is None or user_id not in members:
        db.session.rollback()
        raise NotAMember("Only members of this conversation can post in it.")
    if conversation.kind != ConversationKind.COOP:
        refusal = direct_messages.post_refusal(conversation, user_id, members)  # 409 read_only
        if refusal is not None:
            db.session.rollback()
            raise refusal
    mentioned = [m for m in candidates if m in members and m != user_id]
    params = {**params, "p_seq": seq, "p_mentions": mentioned or None}
    row_id = connection.execute(_insert_statement(postgresql), params).scalar_one()
    if not postgresql:
        connection.execute(_read_position_statement(), params)
    return seq, row_id, members, mentioned


def _online_before_lock(members: list[str], sender_id: str) -> tuple[set[str] | None, set[str], Any]:
    """``(those with a socket open, those asked, the sender's presence
    state)`` of the members but the sender, read (and the sender's activity
    noted) in one Redis round trip before the post takes its number, so
    none happens under the conversation's lock. ``None`` for the first and
    last when Redis failed. Members with a socket open in this process are
    online without a question to Redis."""
    asked = {m for m in members if m != sender_id}
    local = realtime.users_with_local_sockets(asked)
    try:
        online, state = presence.touch_and_connected(sender_id, [m for m in asked if m not in local])
    except Exception:  # noqa: BLE001 - reported by _notify
        return None, asked, None
    return online | local, asked, state


def _notify(conversation: PostTarget, row: Message, sender_name: str, title: str, members: list[str],
            mentioned: list[str], online: set[str] | None, asked: set[str]) -> None:
    """Mentions, and one "new messages" per absent member until they read.
    ``online``/``asked``: ``_online_before_lock``."""
    link = chat_link(conversation)
    excerpt = (row.body or "")[:EXCERPT]
    for user_id in mentioned:
        notifications.notify_kind(
            user_id, S.MENTION, link=link, commit=False,
            data={"conversation_id": conversation.id, "message_id": row.id, "seq": row.seq},
            member=sender_name, conversation=title, excerpt=excerpt,
        )
    others = [m for m in members if m != row.sender_id and m not in mentioned]
    try:
        if online is None:
            raise ConnectionError("presence was not read before the lock")
        # Members who joined while the post waited for the number: asked now.
        unknown = [m for m in others if m not in asked]
        if unknown:
            online = online | presence.connected(unknown)
    except Exception:  # noqa: BLE001 - Redis down: the message still stands, nobody is told
        current_app.logger.warning("presence unavailable; no chat_unread notifications for message %s", row.id)
        return
    absent = [m for m in others if m not in online]
    if not absent and not mentioned:
        return
    # A mention counts as the member's notice too: no "new messages" after it.
    newly = db.session.scalars(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation.id,
               ConversationMember.user_id.in_([*absent, *mentioned]),
               ConversationMember.unread_notified.is_(False), conversations.is_current_member())
        .values(unread_notified=True)
        .returning(ConversationMember.user_id)
        .execution_options(synchronize_session=False)
    ).all()
    for user_id in (u for u in newly if u not in mentioned):
        notifications.notify_kind(
            user_id, S.CHAT_UNREAD, link=link, commit=False, data={"conversation_id": conversation.id},
            member=sender_name, conversation=title,
        )


# ---- posts together (the socket's lane) --------------------------------------------


@dataclass(frozen=True, slots=True)
class PostRequest:
    """One post for ``post_together``: the arguments of ``post``."""

    user_id: str
    conversation_id: object
    body: object
    reply_to: object = None
    client_id: object = None


# What ``post_together`` gives for one request: ``post``'s result, its
# refusal, or None: not taken, to be posted on its own (``post``).
PostOutcome = tuple[dict[str, Any], bool] | DomainError | None


@functools.cache
def _together_facts_statement() -> Select:
    """``_post_facts`` of several posts in one query (PostgreSQL): parameters
    ``cids``, ``uids``, ``client_ids`` (arrays, one entry per post); each
    row has ``ord``, the post's place in them (from 1)."""
    posts = func.unnest(
        bindparam("cids", type_=ARRAY(Integer)), bindparam("uids", type_=ARRAY(String)),
        bindparam("client_ids", type_=ARRAY(String)),
    ).table_valued(column("cid", Integer), column("uid", String), column("client_id", String),
                   with_ordinality="ord").render_derived(name="posts")
    return select(posts.c.ord, *_facts_columns(posts.c.uid, posts.c.client_id)) \
        .select_from(posts).join(Conversation, Conversation.id == posts.c.cid)


# ``_post_statement`` for several posts, atomic on its own: each
# conversation whose ``members_version`` is still the one the checks read
# takes as many numbers as it has posts (in ``ord`` order), the messages
# are inserted with them and each sender's read position moves to their
# newest. Returns ``(id, conversation_id, seq)`` per stored message; a
# conversation whose version moved (or was archived) takes nothing. The
# rows are locked in id order first (``locked``: the UPDATE meets a row only
# through it), so two calls, or a call and a single post, never wait for
# each other in a cycle.
_POST_TOGETHER = text("""
    WITH posts AS (
        SELECT * FROM unnest(CAST(:cids AS integer[]), CAST(:uids AS varchar[]), CAST(:bodies AS text[]),
                             CAST(:mentions AS text[]), CAST(:client_ids AS varchar[]),
                             CAST(:versions AS bigint[]))
            WITH ORDINALITY AS p(cid, uid, body, mentions, client_id, version, ord)
    ), wanted AS (
        SELECT cid, min(version) AS version, count(*) AS n FROM posts GROUP BY cid
    ), locked AS (
        SELECT id FROM conversations WHERE id IN (SELECT cid FROM wanted) ORDER BY id FOR UPDATE
    ), numbered AS (
        UPDATE conversations SET last_seq = last_seq + wanted.n, last_message_at = :p_now
        FROM locked JOIN wanted ON wanted.cid = locked.id
        WHERE conversations.id = locked.id AND archived_at IS NULL AND members_version = wanted.version
        RETURNING conversations.id, last_seq - wanted.n AS base
    ), inserted AS (
        INSERT INTO messages (conversation_id, seq, sender_id, body, mentions, reply_to, client_id, created_at)
        SELECT p.cid, numbered.base + row_number() OVER (PARTITION BY p.cid ORDER BY p.ord), p.uid, p.body,
               CAST(p.mentions AS jsonb), NULL, p.client_id, CAST(:p_now AS timestamptz)
        FROM posts p JOIN numbered ON numbered.id = p.cid
        RETURNING id, conversation_id, seq, sender_id
    ), read_position AS (
        UPDATE conversation_members SET last_read_seq = newest.seq, unread_notified = false
        FROM (SELECT conversation_id, sender_id, max(seq) AS seq FROM inserted GROUP BY 1, 2) AS newest
        WHERE conversation_members.conversation_id = newest.conversation_id
          AND conversation_members.user_id = newest.sender_id
    )
    SELECT id, conversation_id, seq FROM inserted
""").bindparams(
    bindparam("cids", type_=ARRAY(Integer)), bindparam("uids", type_=ARRAY(String)),
    bindparam("bodies", type_=ARRAY(Text)), bindparam("mentions", type_=ARRAY(Text)),
    bindparam("client_ids", type_=ARRAY(String)), bindparam("versions", type_=ARRAY(BigInteger)),
    bindparam("p_now", type_=Message.__table__.c.created_at.type),
)


@dataclass(slots=True)
class _Taken:
    """A post of ``post_together`` past its checks."""

    index: int  # in the requests
    user_id: str
    body: str
    client_id: str | None
    conversation: PostTarget
    facts: Any
    members: list[str]
    mentioned: list[str]
    id: int = 0
    seq: int = 0


def post_together(requests: list[PostRequest]) -> list[PostOutcome]:
    """Store several coop posts at once: one query for all their checks, one
    Redis round trip for presence, one statement that numbers and inserts
    them all (in autocommit when no notification is due, as ``post``), one
    round trip of PUBLISHes after the commit.

    Returns one outcome per request, in order: what ``post`` gives
    (``(message dict, True)``), the ``DomainError`` it would raise (400
    body or client_id, 403 ``muted``, 400 ``message_blocked``), or None:
    not taken here, store it with ``post`` (not PostgreSQL, a conversation
    that is not a coop's, a reply, a ``client_id`` seen before or twice in
    the list, slow mode, a ``flag`` filter, not a member or no such
    conversation, the membership changed since the checks, or the
    statement failed: e.g. a concurrent post with the same ``client_id``).

    Seqs stay gap-free and in commit order: the numbers are taken under the
    conversations' row locks (taken in id order, ``_POST_TOGETHER``) and
    commit with the messages; the posts of one conversation are numbered
    in list order. Mentions and "new messages" notifications are written
    in the same transaction, as by ``post``. The socket's lane
    (``webapp/post_lane.py``) gathers the posts that arrive while its
    previous call runs; docs/PERFORMANCE.md "Coop chat" gives what it saves."""
    outcomes: list[PostOutcome] = [None] * len(requests)
    if not requests or db.engine.dialect.name != "postgresql":
        return outcomes
    wanted: list[tuple[int, str, int, str, str | None]] = []
    for index, request in enumerate(requests):
        if request.reply_to is not None:
            continue
        try:
            body = clean_body(request.body)
            client_id = clean_client_id(request.client_id)
            conversation_id = conversations.check_id(request.conversation_id)
        except DomainError as exc:
            outcomes[index] = exc
            continue
        wanted.append((index, request.user_id, conversation_id, body, client_id))
    if not wanted:
        return outcomes
    connection, autocommit = transactions.session_connection()
    facts_rows = {row.ord: row for row in connection.execute(_together_facts_statement(), {
        "cids": [w[2] for w in wanted], "uids": [w[1] for w in wanted], "client_ids": [w[4] for w in wanted]})}
    taken: list[_Taken] = []
    retries: set[tuple[str, str]] = set()  # a retry before its first was answered: ``post`` says which
    for number, (index, user_id, _, body, client_id) in enumerate(wanted, start=1):
        facts = facts_rows.get(number)
        if facts is None or facts.first_id is not None or not facts.is_member \
                or facts.kind != ConversationKind.COOP or (user_id, client_id) in retries:
            continue
        if client_id is not None:
            retries.add((user_id, client_id))
        screen = moderation.screen_facts(facts)
        if screen.slow_mode_seconds and not screen.is_moderator:
            continue  # the slow-mode slot is claimed by ``post``
        try:
            if moderation.screen_message(facts.cooperative_id, user_id, body, screen, slow_mode=False):
                continue  # a flag report follows the post: ``post``
        except DomainError as exc:
            outcomes[index] = exc
            continue
        members = [m for m in (facts.member_ids or "").split(",") if m]
        others = set(members) - {user_id}
        mentioned = [m for m in markup.mentions(body) if m in others]
        taken.append(_Taken(index, user_id, body, client_id,
                             PostTarget(*(getattr(facts, name) for name in _TARGET_COLUMNS)), facts, members,
                             mentioned))
    if not taken:
        db.session.rollback()
        return outcomes
    local = realtime.users_with_local_sockets({m for t in taken for m in t.members})
    try:
        online, states = presence.touch_many_and_connected(
            list(dict.fromkeys(t.user_id for t in taken)),
            list({m for t in taken for m in t.members if m not in local}))
        online |= local
    except Exception:  # noqa: BLE001 - reported by _notify, as for ``post``
        online, states = None, {}
    now = utcnow()
    # With no notification due, the statement commits on its own (autocommit).
    quiet = online is not None and all(not t.mentioned and set(t.members) <= online | {t.user_id} for t in taken)
    try:
        if autocommit and not quiet:
            transactions.begin(connection)
        stored = connection.execute(_POST_TOGETHER, {
            "cids": [t.conversation.id for t in taken], "uids": [t.user_id for t in taken],
            "bodies": [t.body for t in taken],
            "mentions": [json.dumps(t.mentioned) if t.mentioned else None for t in taken],
            "client_ids": [t.client_id for t in taken], "versions": [t.conversation.members_version for t in taken],
            "p_now": now,
        }).all()
    except (IntegrityError, OperationalError):  # a client_id's race, a deadlock: each on its own
        db.session.rollback()
        return outcomes
    numbers: dict[int, list[tuple[int, int]]] = {}
    for result in stored:
        numbers.setdefault(result.conversation_id, []).append((result.seq, result.id))
    done: list[_Taken] = []
    for cid, rows in numbers.items():
        mine = [t for t in taken if t.conversation.id == cid]  # in request order, as numbered
        for t, (seq, row_id) in zip(mine, sorted(rows), strict=True):
            t.seq, t.id = seq, row_id
            done.append(t)
    pushes: list[tuple[list[str], dict[str, Any]]] = []
    for t in sorted(done, key=lambda t: t.index):
        row = Message(id=t.id, conversation_id=t.conversation.id, seq=t.seq, sender_id=t.user_id, body=t.body,
                      mentions=t.mentioned or None, reply_to=None, client_id=t.client_id, created_at=now)
        sender_name = t.facts.sender_name or t.user_id
        asked = set(t.members) - {t.user_id}
        _notify(t.conversation, row, sender_name, t.facts.coop_name or "a conversation", t.members, t.mentioned,
                online, asked)
        data = conversations.message_dict(row, {t.user_id: sender_name}, None, None)
        pushes.append((t.members, {"type": MESSAGE, "data": data}))
        outcomes[t.index] = (data, True)
    transactions.after_commit(lambda: conversations.publish_groups(pushes))
    db.session.commit()
    for user_id in dict.fromkeys(t.user_id for t in done):
        presence_touch(user_id, states.get(user_id))
    return outcomes


def chat_link(conversation: Conversation | PostTarget) -> str:
    """Where a notification about ``conversation`` leads."""
    return "/coop/chat" if conversation.kind == ConversationKind.COOP else f"/conversations/{conversation.id}"


def presence_touch(user_id: str, state: Any = None) -> None:
    """Activity for presence; a Redis failure never fails a post. ``state``:
    the activity was noted already (``presence.touch_and_connected``), only
    a changed status is left to announce."""
    try:
        if state is not None:
            presence.announce_touched(user_id, state)
        else:
            presence.touch(user_id)
    except Exception:  # noqa: BLE001
        current_app.logger.warning("presence update failed for %s", user_id)


# ---- edit, delete, reactions -------------------------------------------------------


def _publish_updated(row: Message, *, new_words: bool = False) -> None:
    """After the commit, ``message_updated`` to every member (``me`` of the
    reactions per member). ``new_words`` (an edit): in a group, not to the
    members who blocked the author, as for a new message (``post``)."""
    members = conversations.member_ids(row.conversation_id)
    if new_words and row.sender_id:
        conversation = db.session.get(Conversation, row.conversation_id)
        if conversation is not None and conversation.kind == ConversationKind.GROUP:
            blockers = relations.blockers_of(row.sender_id, members)
            members = [m for m in members if m not in blockers]
    names = {}
    if row.sender_id:
        names[row.sender_id] = db.session.scalar(select(User.display_name).where(User.user_id == row.sender_id)) or ""
    reactors = conversations.reactions_of([row.id]).get(row.id)
    pairs = [(m, {"type": MESSAGE_UPDATED, "data": conversations.message_dict(row, names, reactors, m)})
             for m in members]
    transactions.after_commit(lambda: _publish_pairs(pairs))


def _publish_pairs(pairs: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        realtime.publish_each(pairs)
    except Exception:  # noqa: BLE001 - stored; a reload shows it
        current_app.logger.exception("message_updated push failed")


def edit(user_id: str, message_id: int, body: object) -> dict[str, Any]:
    """The author edits the body (``edited_at`` set; mentions re-read, not
    re-notified). In a coop conversation the new body is screened as a post
    is (``moderation.screen_message``): a muted author or a ``block``
    filter's phrase refuses the edit, a ``flag`` filter's phrase files a
    report after the commit (``moderation.file_flag_report``). Slow mode
    paces new messages only: an edit neither waits for nor takes the slot.
    Raises ValidationError (400), NotFound (404), NotAMember (403),
    Forbidden (403: not the author, or a deleted message), Muted (403
    ``muted``), MessageBlocked (400 ``message_blocked``)."""
    body = clean_body(body)
    conversation, row = _member_message(user_id, message_id)
    if row.sender_id != user_id:
        raise Forbidden("Only the author can edit a message.")
    if row.deleted_at is not None:
        raise Forbidden("A deleted message cannot be edited.")
    coop_id = conversation.cooperative_id
    flagged = moderation.screen_message(coop_id, user_id, body, slow_mode=False) if coop_id is not None else []
    members = conversations.member_ids(conversation.id)
    row.body = body
    row.mentions = [m for m in markup.mentions(body) if m in members and m != user_id] or None
    row.edited_at = utcnow()
    db.session.flush()
    _publish_updated(row, new_words=True)
    data = conversations.message_dicts([row], user_id)[0]
    db.session.commit()
    if flagged and coop_id is not None:
        moderation.file_flag_report(coop_id, row.id, flagged, author_user_id=user_id, edited=True)
    return data


def delete(user_id: str, message_id: int) -> dict[str, Any]:
    """The author, or the coop's admin or a moderator, deletes a message: it
    stays as a tombstone (``body`` null, ``deleted_at`` set, reactions gone).
    A moderator's delete of someone else's message is in the coop's audit
    log. Idempotent. Raises NotFound (404), NotAMember (403), Forbidden (403)."""
    conversation, row = _member_message(user_id, message_id)
    if row.sender_id != user_id and not can_moderate(conversation, user_id):
        raise Forbidden("Only the author or the cooperative's moderators can delete a message.")
    if row.deleted_at is None and conversation.cooperative_id is not None:
        moderation.record_message_deleted(conversation.cooperative_id, user_id, row.id, row.sender_id)
    tombstone(row)
    data = conversations.message_dicts([row], user_id)[0]
    db.session.commit()
    return data


def tombstone(row: Message) -> None:
    """Make ``row`` a tombstone in the caller's transaction (the caller
    checked who may, and commits) and push ``message_updated`` after the
    commit; nothing when it already is one. Shared by ``delete`` and a
    report's ``delete_message`` resolution (``services/reports.py``)."""
    if row.deleted_at is None:
        row.body, row.mentions, row.deleted_at = None, None, utcnow()
        db.session.execute(sql_delete(MessageReaction).where(MessageReaction.message_id == row.id))
        db.session.flush()
        _publish_updated(row)


def message_for_update(message_id: int) -> Message | None:
    """The message row, locked for the caller's transaction, or None."""
    if not isinstance(message_id, int) or not 1 <= message_id <= conversations.MAX_MESSAGE_ID:
        return None
    return db.session.execute(
        select(Message).where(Message.id == message_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def react(user_id: str, message_id: int, emoji: object, *, on: bool) -> list[dict[str, Any]]:
    """Add (``on``) or take back a reaction; idempotent either way. Returns
    the message's reactions as the caller sees them. Raises ValidationError
    (400: emoji outside the set), NotFound (404), NotAMember (403),
    Forbidden (403: a deleted message)."""
    emoji = clean_emoji(emoji)
    _, row = _member_message(user_id, message_id)
    if row.deleted_at is not None:
        raise Forbidden("A deleted message takes no reactions.")
    key = (row.id, user_id, emoji)
    existing = db.session.get(MessageReaction, key)
    changed = False
    if on and existing is None:
        db.session.add(MessageReaction(message_id=row.id, user_id=user_id, emoji=emoji, created_at=utcnow()))
        try:
            db.session.flush()
            changed = True
        except IntegrityError:  # a concurrent identical reaction: same result
            db.session.rollback()
            _, row = _member_message(user_id, message_id)
    elif not on and existing is not None:
        db.session.delete(existing)
        db.session.flush()
        changed = True
    if changed:
        _publish_updated(row)
    reactions = conversations.reaction_list(conversations.reactions_of([row.id]).get(row.id), user_id)
    db.session.commit()
    return reactions


# ---- reading -----------------------------------------------------------------------


def mark_read(user_id: str, conversation_id: int, seq: object) -> dict[str, int]:
    """Move the caller's read position to ``seq`` (at most the last seq;
    never backwards), clear the "new messages" notification mark, and tell
    the members ``read``. Returns ``{"last_read_seq", "unread_count"}``.
    Raises ValidationError (400), NotFound (404), NotAMember (403)."""
    seq = inputs.parse_int(seq, name="seq", maximum=conversations.MAX_MESSAGE_ID)
    conversation, _ = conversations.require_member(conversation_id, user_id)
    target = min(seq, conversation.last_seq)
    moved = execute_dml(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation.id, ConversationMember.user_id == user_id,
               ConversationMember.last_read_seq < target)
        .values(last_read_seq=target, unread_notified=False)
        .execution_options(synchronize_session=False)
    )
    row = conversations.membership(conversation.id, user_id)
    last_read = row.last_read_seq if row is not None else target
    result = {"last_read_seq": last_read, "unread_count": max(0, conversation.last_seq - last_read)}
    if moved:
        members = conversations.member_ids(conversation.id)
        event = {"type": READ, "conversation_id": conversation.id, "user_id": user_id, "last_read_seq": last_read}
        transactions.after_commit(lambda: conversations.publish_many(members, event))
    db.session.commit()
    presence_touch(user_id)
    return result


# ---- typing ------------------------------------------------------------------------


def typing(user_id: str, conversation_id: int) -> bool:
    """A member is typing: at most one push per ``TYPING_THROTTLE`` seconds
    (a Redis ``SET NX EX``), ``{"type": "typing", "conversation_id",
    "user_id", "expires_in": 6}`` to the other members. No database write.
    Returns whether a push went out. Raises NotFound (404), NotAMember (403)."""
    members = conversations.member_ids(conversation_id)  # one query when the caller is a member
    if user_id not in members:
        conversations.require_member(conversation_id, user_id)  # raises NotFound or NotAMember
    db.session.rollback()
    members = [m for m in members if m != user_id]
    key = redis_key("chat", "typing", conversation_id, user_id)
    if not get_redis().set(key, "1", nx=True, ex=TYPING_THROTTLE):
        return False
    conversations.publish_many(members, {"type": TYPING, "conversation_id": conversation_id, "user_id": user_id,
                                         "expires_in": TYPING_TTL})
    presence_touch(user_id)
    return True
