"""The catalogue of notification kinds: for every category its label and
whether it may be e-mailed, for every preference toggle its label and
default, for every kind the platform sends its category, subtype, the
toggle that silences it and its title/body templates.

The settings page (``pages/settings.py``) and the preference defaults and
checks (``services/preferences.py``) are derived from it, so a new kind is
one entry here. Templates are ``str.format`` strings filled by
``Kind.render``; None means the sender writes that text itself (a broadcast,
an activity, the mining messages built from pool data).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..vocabulary import NotificationCategory as C
from ..vocabulary import NotificationSubtype as S


@dataclass(frozen=True)
class Category:
    """A notification category as the settings page shows it."""

    name: C
    label: str
    help: str
    emailable: bool  # DESIGN.md: only these may be e-mailed, when the user opts in


@dataclass(frozen=True)
class Toggle:
    """A frontend preference toggle (``notifications.<key>`` in the settings
    document): off silences its kinds (no row, no push, no mail)."""

    key: str
    label: str
    category: C
    default: bool


@dataclass(frozen=True)
class Kind:
    """One kind of notification the platform sends."""

    category: C
    subtype: S
    toggle: str | None  # Toggle.key that silences it, or None
    title: str | None  # str.format template, or None: the sender writes it
    body: str | None = None

    @property
    def email(self) -> bool:
        """Whether this kind may be e-mailed (its category is)."""
        return CATEGORY[self.category].emailable

    def render(self, **values: Any) -> tuple[str, str]:
        """``(title, body)`` with ``values`` filled in. Raises KeyError for a
        missing value, ValueError when the sender must write the title."""
        if self.title is None:
            raise ValueError(f"{self.subtype} has no title template: the sender writes it")
        return self.title.format(**values), (self.body or "").format(**values)


CATEGORIES: tuple[Category, ...] = (
    Category(C.MINING, "Mining", "Blocks, personal bests, workers going offline", True),
    Category(C.GAMIFICATION, "Gamification", "Badges, levels, streaks", False),
    Category(C.COMPETITION, "Competitions", "Registrations, matches, results", True),
    Category(C.SOCIAL, "Social", "Your cooperative's members and changes", False),
    Category(C.SYSTEM, "System", "Announcements from the platform", True),
)
CATEGORY: dict[str, Category] = {c.name: c for c in CATEGORIES}

TOGGLES: tuple[Toggle, ...] = (
    Toggle("personalBest", "A new personal best difficulty", C.MINING, True),
    Toggle("blockFoundAny", "Any block found on the pool (not only yours)", C.MINING, False),
    Toggle("workerStatus", "A worker going offline or coming back", C.MINING, True),
    Toggle("badgeEarned", "A badge earned", C.GAMIFICATION, True),
    Toggle("coopActivity", "Members joining or leaving my cooperative, admin changes", C.SOCIAL, True),
    Toggle("chatMentions", "Someone mentions me in a chat", C.SOCIAL, True),
    Toggle("chatUnread", "New chat messages while I am not connected (one per conversation until I read it)",
           C.SOCIAL, True),
    # A mail of its own, not a notification kind (services/coop_digest.py).
    Toggle("coopDigest", "A weekly e-mail about the cooperative I run: new members, top miners, open reports, "
           "hashrate trend", C.SOCIAL, True),
)
# Toggles that govern a mail of their own rather than notification kinds; the
# unsubscribe link of that mail turns the toggle off (``email.unsubscribe_token``).
MAIL_TOGGLES: tuple[str, ...] = ("coopDigest",)

KINDS: tuple[Kind, ...] = (
    Kind(C.MINING, S.PERSONAL_BEST, "personalBest", "New personal best: {difficulty}"),
    Kind(C.MINING, S.BLOCK_FOUND, None, "You found block {height:,}!"),
    Kind(C.MINING, S.BLOCK_FOUND_ANY, "blockFoundAny", None),
    Kind(C.MINING, S.WORKER_OFFLINE, "workerStatus", "{worker} went offline"),
    Kind(C.MINING, S.WORKER_ONLINE, "workerStatus", "{worker} is back online"),
    Kind(C.GAMIFICATION, S.BADGE_EARNED, "badgeEarned", None),
    Kind(C.SOCIAL, S.COOP_MEMBER_JOINED, "coopActivity", "New member joined", "{member} joined {coop}."),
    Kind(C.SOCIAL, S.COOP_MEMBER_LEFT, "coopActivity", "Member left", "{member} left {coop}."),
    Kind(C.SOCIAL, S.COOP_REMOVED, "coopActivity", "Removed from cooperative",
         "The admin of {coop} removed you from the cooperative."),
    Kind(C.SOCIAL, S.COOP_NEW_ADMIN, "coopActivity", "You're the new admin",
         "{member} left {coop}; you now manage it."),
    Kind(C.SOCIAL, S.COOP_DISSOLVED, "coopActivity", "Cooperative dissolved", "{member} dissolved {coop}."),
    Kind(C.SOCIAL, S.MENTION, "chatMentions", "{member} mentioned you in {conversation}", "{excerpt}"),
    Kind(C.SOCIAL, S.CHAT_UNREAD, "chatUnread", "New messages in {conversation}",
         "{member} and others wrote while you were away."),
    Kind(C.SOCIAL, S.COOP_JOIN_REQUEST, "coopActivity", "Request to join",
         "{member} asks to join {coop}."),
    Kind(C.SOCIAL, S.COOP_JOIN_APPROVED, None, "Welcome aboard", "Your request to join {coop} was approved."),
    Kind(C.SOCIAL, S.COOP_JOIN_DECLINED, None, "Request declined", "Your request to join {coop} was declined."),
    Kind(C.SYSTEM, S.ADMIN_COOP_DISSOLVED, None, "Cooperative dissolved",
         "The platform admins dissolved {coop}."),
    Kind(C.SYSTEM, S.ADMIN_COOP_RENAMED, None, "Cooperative renamed",
         "The platform admins renamed {old} to {new}."),
    Kind(C.SYSTEM, S.BROADCAST, None, None),
    Kind(C.SYSTEM, S.INVITE_CODE_GUESSING, None, "Invite codes are being guessed"),
    # Coop moderation (services/coop_moderation.py, services/reports.py).
    Kind(C.SOCIAL, S.COOP_ADMIN_TRANSFERRED, None, "You're the new admin", "{member} handed {coop} over to you."),
    Kind(C.SOCIAL, S.REPORT_RESOLVED, None, "Your report was handled", "{outcome}"),
    Kind(C.SYSTEM, S.REPORTS_ESCALATED, None, "Reports wait for the platform admins",
         "{count} report(s) went unhandled for 24 hours."),
    Kind(C.SOCIAL, S.FRIEND_REQUEST_RECEIVED, None, "Friend request from {member}", "{message}"),
    Kind(C.SOCIAL, S.FRIEND_REQUEST_ACCEPTED, None, "{member} accepted your friend request",
         "You and {member} are now friends."),
)
KIND: dict[str, Kind] = {k.subtype: k for k in KINDS}

EMAIL_CATEGORIES: tuple[str, ...] = tuple(c.name.value for c in CATEGORIES if c.emailable)


def toggle_subtypes() -> dict[str, tuple[C, tuple[str, ...], bool]]:
    """``{toggle key: (category, subtypes it silences, default)}`` in
    ``TOGGLES`` order (``preferences.SUBTYPE_TOGGLES``)."""
    return {
        t.key: (t.category, tuple(k.subtype.value for k in KINDS if k.toggle == t.key), t.default)
        for t in TOGGLES
    }
