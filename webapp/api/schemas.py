"""Response models of the JSON routes (API.md "Objects"), used to generate
the OpenAPI document. Extra fields are allowed by the contract, so models
list what is promised; optional keys are the ones API.md makes conditional.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, RootModel


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class UserOut(Out):
    user_id: str
    display_name: str
    email: str | None
    country_code: str | None
    avatar_url: str | None
    is_admin: bool
    created_at: str


class RegisterOut(Out):
    user: UserOut
    token: str


class TokenOut(Out):
    token: str
    expires_at: str


class LoggedOutOut(Out):
    status: str
    sessions_ended: int | None = None


class PasswordChangedOut(Out):
    status: str
    token: str
    expires_at: str


class CategoryPrefs(Out):
    enabled: bool
    email: bool


class PrivacyOut(Out):
    publicProfile: bool
    showOnLeaderboard: bool
    showCountryFlag: bool
    showInCoopRankings: bool
    showPresence: bool


class NotificationPrefsOut(Out):
    categories: dict[str, CategoryPrefs]
    email: str | None


class SettingsOut(Out):
    privacy: PrivacyOut
    notifications: NotificationPrefsOut


class KeywordFilterOut(Out):
    phrase: str
    action: Literal["block", "flag"]


class CoopOut(Out):
    """``invite_code``, ``invite_key`` and ``invite_url`` (the invite link)
    are present for active members only."""

    id: int
    name: str
    description: str
    invite_code: str | None = None
    invite_key: str | None = None
    invite_url: str | None = None
    admin_user_id: str | None
    member_count: int
    total_hashrate: float
    status: Literal["active", "dissolved"]
    created_at: str
    slow_mode_seconds: int | None = None
    keyword_filters: list[KeywordFilterOut] | None = None


class MineOut(Out):
    cooperative: CoopOut | None


class LeaveOut(Out):
    status: Literal["left"]
    cooperative: CoopOut | None


class MemberOut(Out):
    """``hashrate`` and ``is_online`` are null and ``display_name`` is "a
    member" when the member hides from coop rankings (``hidden``)."""

    user_id: str
    display_name: str
    role: Literal["admin", "moderator", "member"]
    joined_at: str
    hashrate: float | None
    is_online: bool | None


class MembersOut(Out):
    members: list[MemberOut]


class StatusOut(Out):
    status: str


class InviteCodeOut(Out):
    invite_code: str
    invite_key: str
    invite_url: str


class InviteOut(Out):
    """An extra invite (API.md "Coop governance and discovery")."""

    code: str
    uses: int
    max_uses: int | None
    expires_at: str | None
    created_by: str | None
    invite_key: str
    invite_url: str


class InvitesOut(Out):
    invites: list[InviteOut]


class InvitePreviewCoop(Out):
    id: int
    name: str
    description: str
    member_count: int
    total_hashrate: float


class InvitePreviewOut(Out):
    cooperative: InvitePreviewCoop
    expires_at: str | None


class DirectoryCoopOut(Out):
    id: int
    name: str
    description: str
    member_count: int
    max_members: int
    has_room: bool
    total_hashrate: float
    blocks_found: int
    country_code: str | None
    join_mode: Literal["invite", "request"]
    created_at: str


class DirectoryOut(Out):
    cooperatives: list[DirectoryCoopOut]
    next_cursor: str | None


class JoinRequestOut(Out):
    id: int
    cooperative_id: int
    user_id: str
    message: str
    status: Literal["pending", "approved", "declined", "cancelled"]
    created_at: str
    decided_at: str | None
    decided_by: str | None


class JoinRequestsOut(Out):
    requests: list[JoinRequestOut]


class MemberHashrate(Out):
    """A member hidden from coop rankings: ``user_id`` and ``hashrate`` null, ``display_name`` "a member"."""

    user_id: str | None
    display_name: str
    hashrate: float | None


class CoopHashrateOut(Out):
    cooperative_id: int
    total_hashrate: float
    members: list[MemberHashrate]
    updated_at: str | None


class CoopStatsOut(Out):
    cooperative_id: int
    member_count: int
    online_count: int
    total_hashrate: float
    shares_24h: int
    best_difficulty: float
    blocks_found: int
    created_at: str


class NotificationOut(Out):
    id: int
    # The user's sequence in commit order (docs/NOTIFICATIONS.md); an extra field.
    seq: int | None = None
    category: Literal["mining", "gamification", "competition", "social", "system"]
    subtype: str
    title: str
    body: str
    link: str | None
    data: dict[str, Any] | None
    is_read: bool
    read_at: str | None
    created_at: str


class NotificationPageOut(Out):
    notifications: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class NotificationGroupOut(Out):
    """One group of ``?grouped=true``: rows sharing a ``group_key``."""

    group_key: str
    count: int
    latest: NotificationOut
    unread_count: int


class NotificationGroupsOut(Out):
    groups: list[NotificationGroupOut]
    next_cursor: str | None
    unread_count: int


class NotificationListOut(RootModel[NotificationPageOut | NotificationGroupsOut]):
    """``GET /api/notifications``: the flat page, or with ``grouped=true`` the groups."""


class PushKeyOut(Out):
    public_key: str


class PushSubscriptionOut(Out):
    id: int
    endpoint: str
    user_agent: str | None
    created_at: str
    last_success_at: str | None


class UpdatedOut(Out):
    updated: int


class CountOut(Out):
    count: int


class ActivityOut(Out):
    id: int
    activity_type: str
    title: str
    description: str
    data: dict[str, Any] | None
    link: str | None
    created_at: str


class ActivityPageOut(Out):
    activities: list[ActivityOut]
    next_cursor: str | None


class PublicProfileOut(Out):
    """``country_code`` only when showCountryFlag; ``leaderboard_rank`` only
    when showOnLeaderboard (absent, not null, otherwise)."""

    user_id: str
    display_name: str
    avatar_url: str | None
    joined_at: str
    country_code: str | None = None
    leaderboard_rank: int | None = None


class PublicStatsOut(Out):
    user_id: str
    total_shares: int
    best_difficulty: float
    blocks_found: int
    hashrate_1h: float
    workers_online: int
    last_share_at: str | None


# ---- Coop moderation (API.md "Coop governance") ----


class RoleOut(Out):
    user_id: str
    role: Literal["admin", "moderator", "member"]


class BanOut(Out):
    user_id: str
    display_name: str
    reason: str
    banned_by: str | None
    created_at: str


class BansOut(Out):
    bans: list[BanOut]


class MuteOut(Out):
    user_id: str
    until: str


class MutesOut(Out):
    mutes: list[MuteOut]


class AuditEntryOut(Out):
    id: int
    cooperative_id: int
    actor_user_id: str | None
    actor_display_name: str | None
    action: str
    target_user_id: str | None
    target_display_name: str | None
    target_id: str | None
    data: dict[str, Any] | None
    created_at: str


class AuditPageOut(Out):
    entries: list[AuditEntryOut]
    next_cursor: str | None


class ReportOut(Out):
    id: int
    reporter_user_id: str | None
    cooperative_id: int | None
    target_type: Literal["message", "user", "cooperative"]
    target_id: str
    target_user_id: str | None
    reason: Literal["spam", "abuse", "other", "flagged"]
    details: str
    reported_body: str | None
    status: Literal["open", "resolved"]
    resolution: Literal["dismiss", "delete_message", "mute", "ban"] | None
    note: str
    resolved_by: str | None
    resolved_at: str | None
    escalated: bool
    escalated_at: str | None
    created_at: str


class ReportPageOut(Out):
    reports: list[ReportOut]
    next_cursor: str | None


class ChartSeriesOut(Out):
    key: str  # "total", "worker:<name>", "combined", "member:<user_id>", "member-<n>", "best"
    label: str
    values: list[float | None]  # aligned with timestamps; null where nothing is known


class ChartOut(Out):
    """A time series chart (docs/API.md "Charts")."""

    range: Literal["1h", "24h", "7d", "30d"]
    start: str  # ISO 8601 UTC: the range is start..end (end = now)
    end: str
    unit: str  # "H/s" for hashrates, "" for share difficulty
    scale: Literal["linear", "log"]
    step: int | None  # seconds between points; null: one point per record
    timestamps: list[int]  # Unix seconds (UTC)
    series: list[ChartSeriesOut]


# ---- Rankings (API.md "Coop governance and discovery") ----


class LeaderboardEntryOut(Out):
    rank: int | None  # null, like user_id and value, for a member who hides from coop rankings
    user_id: str | None
    display_name: str
    value: float | None
    me: bool


class CoopLeaderboardOut(Out):
    metric: Literal["hashrate", "best_difficulty", "shares_24h"]
    entries: list[LeaderboardEntryOut]


class LeaderboardOut(Out):
    metric: Literal["best_difficulty"]
    period: Literal["all", "week"]
    total: int
    entries: list[LeaderboardEntryOut]
    next_cursor: str | None


class TimelineEntryOut(Out):
    at: str
    kind: Literal["joined", "left", "removed", "role_changed", "admin_transferred", "invite_created",
                  "personal_best", "block_found"]
    user_id: str | None
    text: str


class TimelineOut(Out):
    entries: list[TimelineEntryOut]
    next_cursor: str | None
