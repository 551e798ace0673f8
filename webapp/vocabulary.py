"""The words the product stores: coop and membership states, roles,
notification categories and subtypes, delivery states.

Each enum's values are exactly the strings in the database and the JSON
contract (a ``StrEnum`` member *is* its string: ``CoopStatus.ACTIVE ==
"active"``), so using them changes no stored value and no API body. The
tuples in ``webapp/models.py`` (``COOP_STATUSES`` ...) are derived from them.
What each notification kind means and who may silence it is the catalogue,
``services/catalogue.py``.
"""
from __future__ import annotations

from enum import StrEnum


class CoopStatus(StrEnum):
    """``cooperatives.status``."""

    ACTIVE = "active"
    DISSOLVED = "dissolved"


class MemberRole(StrEnum):
    """``cooperative_members.role``: one active admin per coop; moderators
    (named by the admin) remove, mute and ban members and handle the chat."""

    ADMIN = "admin"
    MODERATOR = "moderator"
    MEMBER = "member"


class CoopVisibility(StrEnum):
    """``cooperatives.visibility``: listed coops appear in the directory."""

    PRIVATE = "private"
    LISTED = "listed"


class JoinMode(StrEnum):
    """``cooperatives.join_mode``: by invite only, or also by a request the
    admin and moderators approve."""

    INVITE = "invite"
    REQUEST = "request"


class JoinRequestStatus(StrEnum):
    """``coop_join_requests.status``."""

    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class MemberStatus(StrEnum):
    """``cooperative_members.status``: ``left`` also when the coop was dissolved."""

    ACTIVE = "active"
    LEFT = "left"
    REMOVED = "removed"


class NotificationCategory(StrEnum):
    """``notifications.category`` (API.md), in the order the settings page lists them."""

    MINING = "mining"
    GAMIFICATION = "gamification"
    COMPETITION = "competition"
    SOCIAL = "social"
    SYSTEM = "system"


class NotificationSubtype(StrEnum):
    """The subtypes the platform itself sends (``notifications.subtype``).
    Other senders (the internal API, ``flask notify``, activities) may use
    any other 1–64 character subtype."""

    PERSONAL_BEST = "personal_best"
    BLOCK_FOUND = "block_found"
    BLOCK_FOUND_ANY = "block_found_any"
    WORKER_OFFLINE = "worker_offline"
    WORKER_ONLINE = "worker_online"
    BADGE_EARNED = "badge_earned"
    COOP_MEMBER_JOINED = "coop_member_joined"
    COOP_MEMBER_LEFT = "coop_member_left"
    COOP_REMOVED = "coop_removed"
    COOP_NEW_ADMIN = "coop_new_admin"
    COOP_DISSOLVED = "coop_dissolved"
    ADMIN_COOP_DISSOLVED = "admin_coop_dissolved"
    ADMIN_COOP_RENAMED = "admin_coop_renamed"
    BROADCAST = "broadcast"
    INVITE_CODE_GUESSING = "invite_code_guessing"
    COOP_JOIN_REQUEST = "coop_join_request"
    COOP_JOIN_APPROVED = "coop_join_approved"
    COOP_JOIN_DECLINED = "coop_join_declined"
    FRIEND_REQUEST_RECEIVED = "friend_request_received"
    FRIEND_REQUEST_ACCEPTED = "friend_request_accepted"
    COOP_ADMIN_TRANSFERRED = "coop_admin_transferred"
    REPORT_RESOLVED = "report_resolved"
    REPORTS_ESCALATED = "reports_escalated"
    MENTION = "mention"
    CHAT_UNREAD = "chat_unread"


class ConversationKind(StrEnum):
    """What a conversation is (API.md "Conversations and messages"): a coop's
    one chat, two friends, or a group of 3–10."""

    COOP = "coop"
    DIRECT = "direct"
    GROUP = "group"


class ConversationRole(StrEnum):
    """A participant's role in a direct or group conversation. A coop
    conversation's moderators are the coop's admin and moderators
    (``membership.is_moderating_member``), never a copy of them here."""

    OWNER = "owner"
    MEMBER = "member"


class PresenceStatus(StrEnum):
    """What others see of a miner's presence (API.md "Socket additions")."""

    ONLINE = "online"
    AWAY = "away"
    DND = "dnd"
    OFFLINE = "offline"


class DeliveryChannel(StrEnum):
    """``notification_deliveries.channel``: e-mail, and Web Push to the
    user's subscribed browsers (``services/webpush.py``)."""

    EMAIL = "email"
    PUSH = "push"


class DeliveryStatus(StrEnum):
    """``notification_deliveries.status``: pending → sending (leased) → sent,
    back to pending after a failed attempt, failed after the last one;
    ``held`` waits for a summary mail (quiet hours, a digest, the hourly
    cap: ``services/summaries.py``) and becomes ``sent`` with it."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    HELD = "held"


# ---- Coop moderation (API.md "Coop governance": bans, mutes, reports, audit) ----


class ModerationAction(StrEnum):
    """``coop_audit_log.action``: every moderation action a coop records."""

    ROLE_CHANGED = "role_changed"
    ADMIN_TRANSFERRED = "admin_transferred"
    MEMBER_REMOVED = "member_removed"
    BANNED = "banned"
    UNBANNED = "unbanned"
    MUTED = "muted"
    UNMUTED = "unmuted"
    MESSAGE_DELETED = "message_deleted"
    SLOW_MODE_CHANGED = "slow_mode_changed"
    FILTERS_CHANGED = "filters_changed"
    REPORT_RESOLVED = "report_resolved"


class ReportTarget(StrEnum):
    """``reports.target_type``."""

    MESSAGE = "message"
    USER = "user"
    COOPERATIVE = "cooperative"


class ReportReason(StrEnum):
    """``reports.reason`` (``flagged``: filed by a coop's ``flag`` keyword filter)."""

    SPAM = "spam"
    ABUSE = "abuse"
    OTHER = "other"
    FLAGGED = "flagged"


class ReportStatus(StrEnum):
    """``reports.status``."""

    OPEN = "open"
    RESOLVED = "resolved"


class ReportResolution(StrEnum):
    """``reports.resolution``: what the moderator did."""

    DISMISS = "dismiss"
    DELETE_MESSAGE = "delete_message"
    MUTE = "mute"
    BAN = "ban"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain string values of ``enum``, in order (for CHECK constraints,
    ``click.Choice`` and error messages)."""
    return tuple(member.value for member in enum)
