"""Typed SQLAlchemy models for every table in DESIGN.md.

Models never commit; services own transactions. Every invariant the product
promises is also a constraint here (and so in the migration): CHECKs on
category, role and status, ``member_count`` in 0..20, one active membership
per user, one active admin per coop, unique invite codes among active coops,
one ``mining_events`` row per stream entry.

Timestamps are timezone-aware UTC on the way out of every column, on
PostgreSQL and SQLite alike (see ``UTCDateTime``).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from .extensions import Model
from .vocabulary import (
    ConversationKind,
    ConversationRole,
    CoopStatus,
    CoopVisibility,
    DeliveryChannel,
    DeliveryStatus,
    JoinMode,
    JoinRequestStatus,
    MemberRole,
    MemberStatus,
    NotificationCategory,
    ReportReason,
    ReportResolution,
    ReportStatus,
    ReportTarget,
    values,
)
from .vocabulary import ModerationAction as _ModerationAction

MAX_COOP_MEMBERS = 20
NOTIFICATION_CATEGORIES = values(NotificationCategory)
# Seed 000 §7.5.1: the only activity types the feed accepts.
ACTIVITY_TYPES = (
    "share_submitted",
    "block_found",
    "badge_earned",
    "level_up",
    "streak_milestone",
    "game_played",
    "lottery_rank",
    "coop_joined",
    "coop_left",
    "competition_registered",
    "match_completed",
    "lesson_completed",
    "track_completed",
    "settings_updated",
)
COOP_STATUSES = values(CoopStatus)
MEMBER_ROLES = values(MemberRole)
MEMBER_STATUSES = values(MemberStatus)
COOP_VISIBILITIES = values(CoopVisibility)
JOIN_MODES = values(JoinMode)
JOIN_REQUEST_STATUSES = values(JoinRequestStatus)
DELIVERY_CHANNELS = values(DeliveryChannel)
DELIVERY_STATUSES = values(DeliveryStatus)
CONVERSATION_KINDS = values(ConversationKind)
CONVERSATION_ROLES = values(ConversationRole)
MAX_MESSAGE_LENGTH = 2000  # characters (API.md "Conversations and messages")
# The reactions a message accepts (API.md: "emoji from a fixed set the API
# documents"): single code points, so no variation selector can make two
# spellings of one reaction.
REACTION_EMOJI = ("👍", "😂", "😮", "😢", "🎉", "🔥", "🚀", "💎")
SLOW_MODE_MAX = 3600  # seconds (API.md "Coop governance")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix (API.md conventions), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that stores UTC and always returns aware UTC datetimes.

    SQLite keeps no zone, so naive values read back are tagged UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL, JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigID = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(UserMixin, Model):
    """A miner. ``user_id`` is the mining username (the Bitcoin address the
    pool sees in ``data.user``), at most 128 characters (API.md)."""

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    country_code: Mapped[str | None] = mapped_column(String(2))
    avatar_url: Mapped[str | None] = mapped_column(String(512))
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped by "log out everywhere" and a password change: a bearer token
    # carries the epoch it was issued in and dies when they differ.
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # The login session this object was loaded through (set by
    # ``services.sessions``; not a column). Flask-Login's ``get_id`` returns
    # its secret, so the session cookie and the remember cookie name a
    # revocable server-side session, never the bare user id.
    auth_session_secret: str | None = None
    # Lets the ORM pass over that plain annotation instead of refusing it;
    # every column of this class is still declared with ``Mapped[...]``.
    __allow_unmapped__ = True

    def get_id(self) -> str:  # Flask-Login ("alternative tokens")
        if not self.auth_session_secret:
            raise RuntimeError("log in through webapp.auth.log_in, which opens a server-side session")
        return self.auth_session_secret

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "email": self.email,
            "country_code": self.country_code,
            "avatar_url": self.avatar_url,
            "is_admin": self.is_admin,
            "created_at": iso(self.created_at),
        }


class UserSession(Model):
    """One login session of the pages (a browser), referenced by the session
    cookie and the remember cookie. ``id`` is the SHA-256 of the secret the
    cookies carry, so the table alone does not let anyone log in. Dead when
    revoked (logout, log out everywhere, password change), idle too long or
    too old (``services.sessions``)."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RevokedToken(Model):
    """A bearer token ended on its own (``POST /api/auth/logout``), by the
    random id it carries; kept until the token would have expired anyway.
    All of a user's tokens end together through ``users.auth_epoch``."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserSettings(Model):
    """Privacy and notification preferences as JSON documents (API.md
    ``/api/settings``); the e-mail address itself lives on ``users``."""

    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    privacy: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    notifications: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Cooperative(Model):
    """A team of at most 20 miners joined by an 8-character invite code."""

    __tablename__ = "cooperatives"
    __table_args__ = (
        CheckConstraint(
            f"member_count >= 0 AND member_count <= {MAX_COOP_MEMBERS}", name="member_count_range"
        ),
        CheckConstraint(_in("status", COOP_STATUSES), name="status"),
        CheckConstraint(
            "length(invite_code) = 8 AND invite_code = upper(invite_code)", name="invite_code_format"
        ),
        Index(
            "uq_cooperatives_active_invite_code",
            "invite_code",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_cooperatives_status_name", "status", "name"),
        # Coop moderation: slow mode (seconds between a member's messages).
        CheckConstraint(f"slow_mode_seconds >= 0 AND slow_mode_seconds <= {SLOW_MODE_MAX}", name="slow_mode_range"),
        CheckConstraint(_in("visibility", COOP_VISIBILITIES), name="visibility"),
        CheckConstraint(_in("join_mode", JOIN_MODES), name="join_mode"),
        # The directory's default order (combined hashrate), listed coops only.
        Index(
            "ix_cooperatives_listed_hashrate",
            "total_hashrate",
            "id",
            postgresql_where=text("status = 'active' AND visibility = 'listed'"),
            sqlite_where=text("status = 'active' AND visibility = 'listed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    invite_code: Mapped[str] = mapped_column(String(8))
    admin_user_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="SET NULL")
    )
    member_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_hashrate: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    hashrate_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dissolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Coop moderation (services/moderation.py): 0 is off; filters are
    # ``[{"phrase", "action": "block"|"flag"}]``, None when there are none.
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    keyword_filters: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    # Discovery (migration 0009): listed coops appear in the directory.
    visibility: Mapped[str] = mapped_column(String(16), default="private", server_default="private")
    join_mode: Mapped[str] = mapped_column(String(16), default="invite", server_default="invite")
    country_code: Mapped[str | None] = mapped_column(String(2))

    def to_dict(self, *, include_invite_code: bool = False) -> dict[str, Any]:
        data = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "admin_user_id": self.admin_user_id,
            "member_count": self.member_count,
            "total_hashrate": self.total_hashrate,
            "hashrate_updated_at": iso(self.hashrate_updated_at),
            "status": self.status,
            "created_at": iso(self.created_at),
            "visibility": self.visibility,
            "join_mode": self.join_mode,
            "country_code": self.country_code,
        }
        if include_invite_code:
            data["invite_code"] = self.invite_code
        return data


class CooperativeMember(Model):
    """A membership; rows are kept after leaving (status ``left``/``removed``)."""

    __tablename__ = "cooperative_members"
    __table_args__ = (
        CheckConstraint(_in("role", MEMBER_ROLES), name="role"),
        CheckConstraint(_in("status", MEMBER_STATUSES), name="status"),
        # One active coop per user.
        Index(
            "uq_cooperative_members_one_active_per_user",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        # One active admin per coop.
        Index(
            "uq_cooperative_members_one_admin_per_coop",
            "cooperative_id",
            unique=True,
            postgresql_where=text("status = 'active' AND role = 'admin'"),
            sqlite_where=text("status = 'active' AND role = 'admin'"),
        ),
        Index("ix_cooperative_members_coop_status_joined", "cooperative_id", "status", "joined_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cooperatives.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CoopHashrateSample(Model):
    """One point per active coop per aggregation run, for the 24 h chart."""

    __tablename__ = "coop_hashrate_samples"
    __table_args__ = (Index("ix_coop_hashrate_samples_coop_time", "cooperative_id", "computed_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cooperatives.id", ondelete="CASCADE")
    )
    total_hashrate: Mapped[float] = mapped_column(Float)  # H/s
    online_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationSequence(Model):
    """The last notification ``seq`` given to a user (services/sequences.py).

    A row of its own rather than a column of ``users``: every notification
    commit updates it (ingest and fan-outs thousands of times a minute), and
    its row lock is held until that commit, so it must not contend with
    profile, password or session changes of ``users``, nor rewrite the wide
    user row. Created by the first notification (an upsert)."""

    __tablename__ = "notification_sequences"
    __table_args__ = (CheckConstraint("last_seq >= 0", name="last_seq_not_negative"),)

    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Notification(Model):
    """An in-app notification. Keyset pages use ``id``; socket catch-up
    uses ``seq``, the user's sequence in commit order (1, 2, 3 …; a deleted
    row leaves a gap), given at the commit of the inserting transaction
    (services/sequences.py) — NULL only inside that transaction.
    ``seq_floor`` is the user's last seq committed before this row was
    inserted: every row with a seq up to it committed earlier, which maps a
    deleted ``since`` id to a safe cursor (services/notifications.py)."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(_in("category", NOTIFICATION_CATEGORIES), name="category"),
        # Catch-up: WHERE user_id = ? AND seq > ? ORDER BY seq.
        UniqueConstraint("user_id", "seq", name="uq_notifications_user_seq"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_user_category_id", "user_id", "category", "id"),
        # The unread count is an index-only count over this partial index.
        Index(
            "ix_notifications_unread",
            "user_id",
            "id",
            postgresql_where=text("is_read = false"),
            sqlite_where=text("is_read = 0"),
        ),
        Index("ix_notifications_created_at", "created_at"),
        # Grouped listing (API.md ``?grouped=true``): per user, per group, newest first.
        Index("ix_notifications_user_group_id", "user_id", "group_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(16))
    subtype: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="", server_default="")
    link: Mapped[str | None] = mapped_column(String(512))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    is_read: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    seq_floor: Mapped[int | None] = mapped_column(BigInteger)
    # ``<subtype>:<subject>`` (``coop_member_joined:12``, ``personal_best:<user>``):
    # rows with one key show as one expandable group (``notifications.group_key_for``).
    group_key: Mapped[str | None] = mapped_column(String(200))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "category": self.category,
            "subtype": self.subtype,
            "title": self.title,
            "body": self.body,
            "link": self.link,
            "data": self.data,
            "is_read": self.is_read,
            "read_at": iso(self.read_at),
            "created_at": iso(self.created_at),
            "group_key": self.group_key,
        }


class NotificationDelivery(Model):
    """One row per notification and outside channel, leased to one sender
    at a time by a conditional update (``services/email.py``).

    ``pending`` (waiting for a job) → ``sending`` (leased until
    ``lease_expires_at``) → ``sent`` or ``failed`` (final). A ``pending``
    row's ``lease_expires_at`` is when the sweep may re-enqueue it if no job
    has claimed it by then. ``message_id`` is fixed at the first claim and
    sent on every attempt."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint(_in("channel", DELIVERY_CHANNELS), name="channel"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        UniqueConstraint("notification_id", "channel", name="uq_notification_deliveries_notification_channel"),
        # The sweep reads only unfinished rows; sent and failed ones (nearly all) stay out of this index.
        Index(
            "ix_notification_deliveries_open",
            "status",
            "lease_expires_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
        # Mail waiting for a summary (quiet hours, digest, hourly cap).
        Index("ix_notification_deliveries_held", "notification_id",
              postgresql_where=text("status = 'held'"), sqlite_where=text("status = 'held'")),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notifications.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(255))
    # The summary mail (digest or held mail) that carried this notification.
    summary_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("email_summaries.id", ondelete="SET NULL")
    )


class IdempotencyKey(Model):
    """An ``Idempotency-Key`` a service caller sent, with the response it got.

    Written in the transaction of what the request created, so the unique
    (scope, key) makes two concurrent retries create one row; purged after
    ``IDEMPOTENCY_KEY_TTL`` by the retention job."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))  # the caller and the route
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the canonical request body
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # What the request created; no foreign key: the record outlives a deleted
    # notification (a retry still gets the first answer) and must not slow its delete.
    notification_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserActivity(Model):
    """An entry of a miner's own timeline (seed 000 §7.5.1 types only)."""

    __tablename__ = "user_activity"
    __table_args__ = (
        CheckConstraint(_in("activity_type", ACTIVITY_TYPES), name="activity_type"),
        # The feed is newest first by when it happened: keyset on (created_at, id)
        # per user and per user and type; (user_id, id) serves the live poll.
        Index("ix_user_activity_user_id_id", "user_id", "id"),
        Index("ix_user_activity_user_created_id", "user_id", "created_at", "id"),
        Index("ix_user_activity_user_type_created_id", "user_id", "activity_type", "created_at", "id"),
        Index("ix_user_activity_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    activity_type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    link: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "activity_type": self.activity_type,
            "title": self.title,
            "description": self.description,
            "data": self.data,
            "link": self.link,
            "created_at": iso(self.created_at),
        }


class MiningEvent(Model):
    """A raw mining event, stored once per stream entry.

    Entry ids are unique within one stream only, hence (stream, entry_id).
    ``user_id`` has no foreign key: the pool reports miners who have not
    registered here (yet).
    """

    __tablename__ = "mining_events"
    __table_args__ = (
        UniqueConstraint("stream", "entry_id", name="uq_mining_events_stream_entry"),
        Index("ix_mining_events_user_event_ts", "user_id", "event", "ts"),
        Index("ix_mining_events_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    stream: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(128))
    worker: Mapped[str | None] = mapped_column(String(255))
    accepted: Mapped[bool | None] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MinerStats(Model):
    """Per-miner rollup kept by ingest (API.md public stats definitions).

    ``total_shares`` counts accepted shares; ``best_difficulty`` is the highest
    ``sdiff`` of an accepted share. Hashrate and workers online are derived from
    ``worker_status`` at read time, since "online" depends on the clock.
    """

    __tablename__ = "miner_stats"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    total_shares: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    rejected_shares: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    best_difficulty: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    best_difficulty_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blocks_found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_share_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerStatus(Model):
    """Latest known state of one worker (``user.workername``)."""

    __tablename__ = "worker_status"
    __table_args__ = (Index("ix_worker_status_user_online", "user_id", "is_online"),)

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    is_online: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Event time of the last online/offline transition; older events never
    # override a newer transition (streams are read out of order).
    state_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sample_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hashrate_1m: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    hashrate_5m: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    hashrate_1h: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    hashrate_1d: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    last_share_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    useragent: Mapped[str | None] = mapped_column(String(255))
    # When the owner was last told this worker went offline (services/mining/
    # offline_alerts.py): at most one notice an hour, and "back online" only
    # after an outage that was announced.
    offline_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditLog(Model):
    """A platform-admin action, shown on ``/admin``."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    actor_user_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actor_user_id": self.actor_user_id,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "reason": self.reason,
            "data": self.data,
            "created_at": iso(self.created_at),
        }


class Broadcast(Model):
    """A platform-wide ``system`` notification, fanned out in batches by a job."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(_in("status", ("queued", "running", "done", "failed")), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_user_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="", server_default="")
    link: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Resuming: the last user_id whose notification committed (the fan-out
    # walks users in user_id order), and when a fan-out last showed life.
    cursor: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "link": self.link,
            "status": self.status,
            "total": self.total,
            "sent": self.sent,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
        }


# ---- Chat: conversations, members, messages, reactions -------------------------------
# services/conversations.py (membership, coop sync), services/messages.py.


class Conversation(Model):
    """A conversation: a coop's one chat (``cooperative_id``), two friends
    (``direct``) or a group. ``last_seq`` is the seq of its newest message:
    a post takes the next number with ``UPDATE … SET last_seq = last_seq + 1
    RETURNING`` in its own transaction, so numbers follow commit order with
    no gaps (the row lock is held to the commit). A dissolved coop's chat is
    archived (``archived_at``), which frees the one-per-coop index."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint(_in("kind", CONVERSATION_KINDS), name="kind"),
        CheckConstraint("(kind = 'coop') = (cooperative_id IS NOT NULL)", name="coop_kind_has_coop"),
        CheckConstraint("last_seq >= 0", name="last_seq_not_negative"),
        # One live conversation per coop.
        Index(
            "uq_conversations_active_coop",
            "cooperative_id",
            unique=True,
            postgresql_where=text("cooperative_id IS NOT NULL AND archived_at IS NULL"),
            sqlite_where=text("cooperative_id IS NOT NULL AND archived_at IS NULL"),
        ),
        # The daily purge of archived conversations (services/chat_retention.py).
        Index(
            "ix_conversations_archived_at",
            "archived_at",
            postgresql_where=text("archived_at IS NOT NULL"),
            sqlite_where=text("archived_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str | None] = mapped_column(String(100))
    cooperative_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("cooperatives.id", ondelete="CASCADE")
    )
    created_by: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every membership write as it locks the row
    # (``conversations.lock``): a post that read the members before taking
    # its number knows from it whether that list is still the current one.
    members_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ConversationMember(Model):
    """A participant; the row stays after leaving (``left_at``) and is
    reopened on rejoining. ``last_read_seq`` never moves backwards;
    ``unread_notified`` is set when the "new messages" notification went
    out and cleared by a read, so an absent member gets one per conversation
    until they read it."""

    __tablename__ = "conversation_members"
    __table_args__ = (
        CheckConstraint(_in("role", CONVERSATION_ROLES), name="role"),
        CheckConstraint("last_read_seq >= 0", name="last_read_seq_not_negative"),
        # "My conversations": the active rows of one user.
        Index(
            "ix_conversation_members_user_active",
            "user_id",
            postgresql_where=text("left_at IS NULL"),
            sqlite_where=text("left_at IS NULL"),
        ),
    )

    conversation_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    unread_notified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Message(Model):
    """One message. ``seq`` numbers a conversation's messages 1, 2, 3 … in
    commit order; (conversation_id, seq) is unique and is the paging index.
    A delete keeps the row as a tombstone (``body`` NULL, ``deleted_at``
    set) so the numbering has no holes. ``client_id`` (the sender's retry
    key) is unique per sender. ``sender_id`` is NULL once the account is
    gone ("deleted miner")."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint(f"body IS NULL OR length(body) BETWEEN 1 AND {MAX_MESSAGE_LENGTH}", name="body_length"),
        CheckConstraint("(body IS NULL) = (deleted_at IS NOT NULL)", name="tombstone_has_no_body"),
        Index(
            "uq_messages_sender_client_id",
            "sender_id",
            "client_id",
            unique=True,
            postgresql_where=text("client_id IS NOT NULL"),
            sqlite_where=text("client_id IS NOT NULL"),
        ),
        # The ON DELETE SET NULL of reply_to looks replies up here when a
        # purge deletes messages (without it: a scan of the table per row).
        Index(
            "ix_messages_reply_to",
            "reply_to",
            postgresql_where=text("reply_to IS NOT NULL"),
            sqlite_where=text("reply_to IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sender_id: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    body: Mapped[str | None] = mapped_column(Text)
    mentions: Mapped[list[str] | None] = mapped_column(JSONType)
    reply_to: Mapped[int | None] = mapped_column(BigID, ForeignKey("messages.id", ondelete="SET NULL"))
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageReaction(Model):
    """One member's reaction (an emoji of ``REACTION_EMOJI``) to a message."""

    __tablename__ = "message_reactions"
    __table_args__ = (CheckConstraint(_in("emoji", REACTION_EMOJI), name="emoji"),)

    message_id: Mapped[int] = mapped_column(BigID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(8), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---- Coop moderation: bans, mutes, reports and the coop audit log ----------------------
# (API.md "Coop governance"; services/moderation.py, services/coop_moderation.py,
# services/reports.py; migration 0010_moderation)

MODERATION_ACTIONS = values(_ModerationAction)
REPORT_TARGETS = values(ReportTarget)
REPORT_REASONS = values(ReportReason)
REPORT_STATUSES = values(ReportStatus)
REPORT_RESOLUTIONS = values(ReportResolution)


class CoopBan(Model):
    """A user banned from a coop: their join (code, invite or request) is
    403 ``banned`` until an admin or moderator lifts the ban (row deleted)."""

    __tablename__ = "coop_bans"
    __table_args__ = (UniqueConstraint("cooperative_id", "user_id", name="uq_coop_bans_coop_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(Integer, ForeignKey("cooperatives.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    banned_by: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoopMute(Model):
    """A member muted in a coop's chat until ``until`` (UTC); a later mute
    replaces the row, an unmute deletes it, an expired row means nothing."""

    __tablename__ = "coop_mutes"
    __table_args__ = (UniqueConstraint("cooperative_id", "user_id", name="uq_coop_mutes_coop_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(Integer, ForeignKey("cooperatives.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    muted_by: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Model):
    """A report on a message, a user or a coop. ``cooperative_id`` is the
    coop whose admin and moderators triage it (a message of its chat, a
    member reported by a coop-mate), None when only platform admins do.
    ``target_id`` has no foreign key: messages live in the chat tables and
    a report outlives what it names. ``reporter_user_id`` is None for
    reports filed by a ``flag`` keyword filter (reason ``flagged``).
    ``reported_body``: a message report's words as they stood when it was
    filed (a flag report: when it was filed or opened again), so a later
    edit or delete cannot change what the moderators read; None for other
    targets and for reports filed before it was kept."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(_in("target_type", REPORT_TARGETS), name="target_type"),
        CheckConstraint(_in("reason", REPORT_REASONS), name="reason"),
        CheckConstraint(_in("status", REPORT_STATUSES), name="status"),
        CheckConstraint(f"resolution IS NULL OR {_in('resolution', REPORT_RESOLUTIONS)}", name="resolution"),
        CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name="resolved_when_closed"),
        # One open report per reporter and target; one filter report per message.
        Index("uq_reports_open_per_reporter", "reporter_user_id", "target_type", "target_id", unique=True,
              postgresql_where=text("status = 'open' AND reporter_user_id IS NOT NULL"),
              sqlite_where=text("status = 'open' AND reporter_user_id IS NOT NULL")),
        Index("uq_reports_flag_per_target", "target_type", "target_id", unique=True,
              postgresql_where=text("reason = 'flagged'"), sqlite_where=text("reason = 'flagged'")),
        Index("ix_reports_coop_status_id", "cooperative_id", "status", "id"),
        Index("ix_reports_status_id", "status", "id"),
        # The escalation sweep: open reports not yet escalated, oldest first.
        Index("ix_reports_unescalated", "created_at",
              postgresql_where=text("status = 'open' AND escalated_at IS NULL"),
              sqlite_where=text("status = 'open' AND escalated_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    reporter_user_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    cooperative_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("cooperatives.id", ondelete="CASCADE"))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(128))
    target_user_id: Mapped[str | None] = mapped_column(String(128))  # whom it is about, when known
    reason: Mapped[str] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    reported_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    resolved_by: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reporter_user_id": self.reporter_user_id,
            "cooperative_id": self.cooperative_id,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_user_id": self.target_user_id,
            "reason": self.reason,
            "details": self.details,
            "reported_body": self.reported_body,
            "status": self.status,
            "resolution": self.resolution,
            "note": self.note,
            "resolved_by": self.resolved_by,
            "resolved_at": iso(self.resolved_at),
            "escalated": self.escalated_at is not None,
            "escalated_at": iso(self.escalated_at),
            "created_at": iso(self.created_at),
        }


class CoopAuditEntry(Model):
    """One moderation action in a coop's audit log (``GET
    /api/coops/{id}/audit``), newest first by ``id``."""

    __tablename__ = "coop_audit_log"
    __table_args__ = (
        CheckConstraint(_in("action", MODERATION_ACTIONS), name="action"),
        Index("ix_coop_audit_log_coop_id", "cooperative_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(Integer, ForeignKey("cooperatives.id", ondelete="CASCADE"))
    actor_user_id: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    target_user_id: Mapped[str | None] = mapped_column(String(128))
    target_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cooperative_id": self.cooperative_id,
            "actor_user_id": self.actor_user_id,
            "action": self.action,
            "target_user_id": self.target_user_id,
            "target_id": self.target_id,
            "data": self.data,
            "created_at": iso(self.created_at),
        }


# ---- Notification engine: Web Push subscriptions, delivery attempts, summary mails ----

ATTEMPT_STATUSES = ("sent", "failed")
SUMMARY_KINDS = ("held", "digest")
SUMMARY_STATUSES = ("sending", "sent", "failed")


class PushSubscription(Model):
    """One browser's Web Push subscription (a W3C ``PushSubscription``):
    the push service ``endpoint`` and the keys the payload is encrypted to
    (RFC 8291). One row per endpoint; a 404/410 from the push service
    deletes it (``services/webpush.py``)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (
        UniqueConstraint("endpoint", name="uq_push_subscriptions_endpoint"),
        Index("ix_push_subscriptions_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(1024))
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "user_agent": self.user_agent,
                "created_at": iso(self.created_at), "last_success_at": iso(self.last_success_at)}


class DeliveryAttempt(Model):
    """One attempt to deliver a notification on one channel: what happened
    and when (the miner's "e-mailed 10:31", the admin's failures)."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        CheckConstraint(_in("channel", DELIVERY_CHANNELS), name="channel"),
        CheckConstraint(_in("status", ATTEMPT_STATUSES), name="status"),
        Index("ix_delivery_attempts_delivery_id", "delivery_id"),
        Index("ix_delivery_attempts_channel_status_created", "channel", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notification_deliveries.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailSummary(Model):
    """One summary mail: the held mail of quiet hours or the hourly cap
    (``held``), or a daily/weekly ``digest``. The deliveries it carries
    point at it (``notification_deliveries.summary_id``)."""

    __tablename__ = "email_summaries"
    __table_args__ = (
        CheckConstraint(_in("kind", SUMMARY_KINDS), name="kind"),
        CheckConstraint(_in("status", SUMMARY_STATUSES), name="status"),
        Index("ix_email_summaries_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="sending", server_default="sending")
    item_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---- Friends, blocks and profiles a miner owns (migration 0008) -----------------------------

FRIEND_REQUEST_STATUSES = ("pending", "accepted", "declined", "cancelled", "expired")
VISIBILITY_LEVELS = ("public", "connections", "private")


class FriendRequest(Model):
    """A friend request (API.md "Friends and blocks").

    ``user_low`` / ``user_high`` are the two ids in sorted order, so the
    database holds at most one pending request per unordered pair: two
    miners asking each other at the same moment cannot both insert one (the
    second insert fails and is turned into accepting the first;
    ``services/friends.py``)."""

    __tablename__ = "friend_requests"
    __table_args__ = (
        CheckConstraint(_in("status", FRIEND_REQUEST_STATUSES), name="status"),
        CheckConstraint("requester_id <> recipient_id", name="not_self"),
        CheckConstraint(
            "user_low < user_high AND ((requester_id = user_low AND recipient_id = user_high)"
            " OR (requester_id = user_high AND recipient_id = user_low))",
            name="pair_ordered",
        ),
        Index(
            "uq_friend_requests_pending",
            "requester_id",
            "recipient_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "uq_friend_requests_pending_pair",
            "user_low",
            "user_high",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_friend_requests_recipient_status_id", "recipient_id", "status", "id"),
        Index("ix_friend_requests_requester_created", "requester_id", "created_at"),
        Index("ix_friend_requests_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    recipient_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    user_low: Mapped[str] = mapped_column(String(128))
    user_high: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    message: Mapped[str | None] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requester": self.requester_id,
            "recipient": self.recipient_id,
            "status": self.status,
            "message": self.message,
            "created_at": iso(self.created_at),
            "responded_at": iso(self.responded_at),
        }


class Friendship(Model):
    """One direction of a friendship; accepting a request writes both rows
    in one transaction and unfriending deletes both."""

    __tablename__ = "friendships"
    __table_args__ = (
        CheckConstraint("user_id <> friend_id", name="not_self"),
        Index("ix_friendships_friend_id", "friend_id"),
    )

    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    friend_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Block(Model):
    """``blocker_id`` blocked ``blocked_id``: to the blocked miner the
    blocker looks like a missing account."""

    __tablename__ = "blocks"
    __table_args__ = (
        CheckConstraint("blocker_id <> blocked_id", name="not_self"),
        Index("ix_blocks_blocked_id", "blocked_id"),
    )

    blocker_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    blocked_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserProfile(Model):
    """The profile fields a miner edits beyond ``users`` (API.md
    "Profiles"): bio, pronouns, location, the stored avatar and banner
    images, and each field's visibility. ``name_key`` is the display name
    folded to what it looks like (NFKC, confusables mapped to Latin,
    casefolded): the search key and the impersonation check
    (``services/profile_fields.py``); pg_trgm indexes it on PostgreSQL."""

    __tablename__ = "user_profiles"
    __table_args__ = (
        Index("ix_user_profiles_name_key", "name_key"),
        Index(
            "ix_user_profiles_name_key_trgm",
            "name_key",
            postgresql_using="gin",
            postgresql_ops={"name_key": "gin_trgm_ops"},
        ),
    )

    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    name_key: Mapped[str] = mapped_column(String(160), default="", server_default="")
    bio: Mapped[str] = mapped_column(String(280), default="", server_default="")
    pronouns: Mapped[str] = mapped_column(String(30), default="", server_default="")
    location: Mapped[str] = mapped_column(String(60), default="", server_default="")
    avatar_key: Mapped[str | None] = mapped_column(String(160))
    banner_key: Mapped[str | None] = mapped_column(String(160))
    visibility: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DirectPair(Model):
    """The one ``direct`` conversation of two miners (ids in sorted order):
    the primary key makes two concurrent "start a conversation" calls end
    with one conversation (``services/direct_messages.py``)."""

    __tablename__ = "direct_pairs"
    __table_args__ = (
        CheckConstraint("user_low < user_high", name="pair_ordered"),
        UniqueConstraint("conversation_id", name="uq_direct_pairs_conversation_id"),
    )

    user_low: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    user_high: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"))


# ---- coop invites, directory and join requests (migration 0009) --------------------------


class CoopInvite(Model):
    """An extra invite of a coop besides its own code (API.md "Coop
    governance and discovery"): optional expiry and use limit, counted
    atomically by the join that uses it, revocable. Codes are never reused."""

    __tablename__ = "coop_invites"
    __table_args__ = (
        CheckConstraint("length(code) = 8 AND code = upper(code)", name="code_format"),
        CheckConstraint("max_uses IS NULL OR (max_uses >= 1 AND max_uses <= 100)", name="max_uses_range"),
        CheckConstraint("uses >= 0 AND (max_uses IS NULL OR uses <= max_uses)", name="uses_range"),
        Index("ix_coop_invites_coop_created", "cooperative_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(Integer, ForeignKey("cooperatives.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(8), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def is_live(self, now: datetime) -> bool:
        """Not revoked, not expired at ``now``, not used up."""
        return (self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
                and (self.max_uses is None or self.uses < self.max_uses))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "uses": self.uses,
            "max_uses": self.max_uses,
            "expires_at": iso(self.expires_at),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "revoked": self.revoked_at is not None,
        }


class CoopJoinRequest(Model):
    """A miner's request to join a listed coop whose ``join_mode`` is
    ``request``; the admin or a moderator approves or declines it. One
    pending request per (coop, user), held by a partial unique index."""

    __tablename__ = "coop_join_requests"
    __table_args__ = (
        CheckConstraint(_in("status", JOIN_REQUEST_STATUSES), name="status"),
        CheckConstraint("length(message) <= 280", name="message_length"),
        Index(
            "uq_coop_join_requests_one_pending",
            "cooperative_id",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_coop_join_requests_coop_status_created", "cooperative_id", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(Integer, ForeignKey("cooperatives.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(String(280), default="", server_default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128), ForeignKey("users.user_id", ondelete="SET NULL"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cooperative_id": self.cooperative_id,
            "user_id": self.user_id,
            "message": self.message,
            "status": self.status,
            "created_at": iso(self.created_at),
            "decided_at": iso(self.decided_at),
            "decided_by": self.decided_by,
        }
