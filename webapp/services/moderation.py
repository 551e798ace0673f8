"""Coop moderation: mutes, bans, slow mode, keyword filters, reports and the
audit log (API.md "Coop governance"; issue "Coop chat, presence and
moderation", item 5). This module holds the checks the other services call;
the moderators' own actions (roles, transfer, bans, mutes, settings) are in
``services/coop_moderation.py`` and reports in ``services/reports.py``.

The messaging core (``services/messages.py``) asks this module before it
stores a coop message or an edit of one and after, so the rules live in one
place:

- ``screen_message`` before the insert or the edit: raises ``Muted`` (403 ``muted``,
  ``details.until``), ``MessageBlocked`` (400 ``message_blocked``) or
  ``SlowMode`` (429 ``slow_mode`` with ``Retry-After``; new messages only),
  in that order; returns the phrases of ``flag`` keyword filters the body
  matched.
- ``file_flag_report`` after the message's commit, for those phrases.
- ``muted_until`` for the conversation object's ``muted_until``.

``services/coops`` calls ``ensure_not_banned`` in a join, after it holds the
coop's row lock, so a ban committed while the join waited is seen (a ban
takes the same lock first).

Nothing here imports ``services.coops``: coops imports this module.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from .. import realtime
from ..extensions import db, get_redis, redis_key
from ..models import (
    CoopAuditEntry,
    CoopBan,
    Cooperative,
    CooperativeMember,
    CoopMute,
    Message,
    Report,
    iso,
    utcnow,
)
from ..vocabulary import MemberRole, ModerationAction, ReportReason, ReportStatus, ReportTarget
from . import transactions
from .errors import Banned, CannotModerate, MessageBlocked, Muted, NotModerator, SlowMode, ValidationError
from .membership import is_active_member, is_moderating_member

log = logging.getLogger(__name__)

# Keyword filters (API.md ``keyword_filters``): at most this many per coop,
# each phrase 1–60 characters after trimming, with at least one letter or
# digit, distinct case-insensitively. Matching is case-insensitive and by
# whole words: "ass" matches "Ass!" but not "class"; a space in a phrase
# matches any run of white space.
FILTERS_MAX = 50
PHRASE_MAX = 60
FILTER_ACTIONS = ("block", "flag")
MUTE_MINUTES = (1, 10080)  # 1 minute to 7 days
REASON_MAX = 500


# ---- who may moderate whom ------------------------------------------------------------------


def membership_of(coop_id: int, user_id: str) -> CooperativeMember | None:
    """The active membership of ``user_id`` in ``coop_id`` (fresh), or None."""
    return db.session.execute(
        select(CooperativeMember)
        .where(is_active_member(coop_id), CooperativeMember.user_id == user_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def is_moderator(coop_id: int, user_id: str) -> bool:
    """Whether ``user_id`` is the active admin or a moderator of ``coop_id``."""
    return db.session.scalar(
        select(CooperativeMember.id).where(is_moderating_member(coop_id), CooperativeMember.user_id == user_id)
    ) is not None


def require_moderator(coop_id: int, user_id: str) -> CooperativeMember:
    """The actor's membership when they moderate ``coop_id``. Raises NotModerator (403)."""
    membership = membership_of(coop_id, user_id)
    if membership is None or membership.role not in (MemberRole.ADMIN, MemberRole.MODERATOR):
        db.session.rollback()
        raise NotModerator()
    return membership


def may_act_on(actor_role: str, actor_user_id: str, target_role: str | None, target_user_id: str) -> bool:
    """Moderators act on plain members; the admin on anyone but themself
    (API.md: "not the admin or each other"). ``target_role`` is None for
    someone who is not an active member (a ban of an outsider)."""
    if target_user_id == actor_user_id or target_role == MemberRole.ADMIN:
        return False
    return not (actor_role == MemberRole.MODERATOR and target_role == MemberRole.MODERATOR)


def check_can_act_on(actor: CooperativeMember, target_role: str | None, target_user_id: str) -> None:
    """``may_act_on`` as a check. Raises CannotModerate (403)."""
    if not may_act_on(actor.role, actor.user_id, target_role, target_user_id):
        db.session.rollback()
        raise CannotModerate()


def record_action(coop_id: int, actor_user_id: str | None, action: ModerationAction, *,
                  target_user_id: str | None = None, target_id: str | None = None,
                  data: dict[str, Any] | None = None) -> CoopAuditEntry:
    """Add an entry to the coop's audit log in the caller's transaction
    (the caller commits it with the action, so neither exists without the
    other); the coop's other moderators hear of it once it commits
    (``moderators_changed``)."""
    entry = CoopAuditEntry(cooperative_id=coop_id, actor_user_id=actor_user_id, action=action.value,
                           target_user_id=target_user_id, target_id=target_id, data=data)
    db.session.add(entry)
    moderators_changed(coop_id, actor_user_id)
    return entry


def moderators_changed(coop_id: int, actor_user_id: str | None = None) -> None:
    """Once the current transaction commits, tell the coop's admin and
    moderators but ``actor_user_id`` (who sees their own action's outcome)
    that its moderation changed: a report filed, resolved or reopened, an
    action in the audit log (``{"type": "coop_changed", "cooperative_id",
    "change": "moderation"}``; an open moderation screen offers to show
    the latest, pages/moderation.py). The moderators are read at the
    commit, the push goes after it; nothing if the transaction rolls back.
    Once per coop and transaction (a report resolved with a mute is two
    audit entries, one push)."""
    session = db.session()
    root = session.get_transaction()
    if root is not None and session.get_nested_transaction() is None:
        told: tuple[Any, set[int]] | None = session.info.get("moderators_changed")
        if told is None or told[0] is not root:
            told = session.info["moderators_changed"] = (root, set())
        if coop_id in told[1]:
            return
        told[1].add(coop_id)

    def read() -> None:
        user_ids = [u for u in db.session.scalars(select(CooperativeMember.user_id).where(
            is_moderating_member(coop_id))) if u != actor_user_id]
        if user_ids:
            transactions.after_commit(lambda: _publish_moderation(coop_id, user_ids))

    transactions.before_commit(read)


def _publish_moderation(coop_id: int, user_ids: list[str]) -> None:
    try:
        realtime.coop_changed(user_ids, coop_id, "moderation")
    except Exception:  # noqa: BLE001 - stored; a reload of the screen shows it
        log.exception("moderation push for cooperative %s failed", coop_id)


def record_message_deleted(coop_id: int, actor_user_id: str, message_id: int, author_user_id: str | None) -> None:
    """Audit a coop message deleted by its admin or a moderator (not by its
    author), in the deleting transaction (the messaging core's delete)."""
    if actor_user_id != author_user_id:
        record_action(coop_id, actor_user_id, ModerationAction.MESSAGE_DELETED, target_user_id=author_user_id,
                      target_id=str(message_id))


# ---- bans and mutes, as the other services read them -----------------------------------------


def is_banned(coop_id: int, user_id: str) -> bool:
    """Whether ``user_id`` is banned from ``coop_id``."""
    return db.session.scalar(
        select(CoopBan.id).where(CoopBan.cooperative_id == coop_id, CoopBan.user_id == user_id)
    ) is not None


def ensure_not_banned(coop_id: int, user_id: str) -> None:
    """Refuse a banned user's join, invite or join request. Call it after
    taking the coop's row lock (``coops.join`` does), so a ban that
    committed meanwhile is read. Raises Banned (403 ``banned``); the caller
    rolls back."""
    if is_banned(coop_id, user_id):
        raise Banned()


def muted_until(coop_id: int, user_id: str) -> datetime | None:
    """When the member's mute in the coop ends (UTC), None when not muted
    (no row, or one that has run out)."""
    until = db.session.scalar(
        select(CoopMute.until).where(CoopMute.cooperative_id == coop_id, CoopMute.user_id == user_id)
    )
    return until if until is not None and until > utcnow() else None


# ---- keyword filters ---------------------------------------------------------------------------


def clean_filters(raw: object) -> list[dict[str, str]]:
    """Validate ``[{"phrase", "action": "block"|"flag"}]`` (limits above);
    phrases are trimmed, inner white space collapsed. Raises ValidationError."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError("keyword_filters must be a list.")
    if len(raw) > FILTERS_MAX:
        raise ValidationError(f"At most {FILTERS_MAX} keyword filters.")
    cleaned: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"phrase", "action"}:
            raise ValidationError('Each keyword filter is {"phrase", "action"}.')
        phrase, action = item["phrase"], item["action"]
        if action not in FILTER_ACTIONS:
            raise ValidationError('A filter\'s action is "block" or "flag".')
        if not isinstance(phrase, str):
            raise ValidationError("A filter's phrase is text.")
        phrase = " ".join(phrase.split())
        if not 1 <= len(phrase) <= PHRASE_MAX or not any(ch.isalnum() for ch in phrase):
            raise ValidationError(f"A filter's phrase has 1 to {PHRASE_MAX} characters, with a letter or digit.")
        if phrase.casefold() in seen:
            raise ValidationError(f"The phrase {phrase!r} is listed twice.")
        seen.add(phrase.casefold())
        cleaned.append({"phrase": phrase, "action": action})
    return cleaned


@lru_cache(maxsize=512)
def _pattern(phrase: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(word) for word in phrase.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


def matching_filters(filters: list[dict[str, str]] | None, body: str) -> list[dict[str, str]]:
    """The filters whose phrase occurs in ``body`` as whole words, any case."""
    return [f for f in filters or [] if _pattern(f["phrase"]).search(body)]


# ---- screening a message -----------------------------------------------------------------------


def _claim_slow_mode(coop_id: int, user_id: str, seconds: int) -> None:
    """Take the member's slot for ``seconds``: ``SET key NX EX`` is atomic,
    so of two concurrent posts exactly one gets it. Raises SlowMode with the
    slot's remaining time as ``Retry-After``."""
    redis = get_redis()
    key = redis_key("slowmode", coop_id, user_id)
    if redis.set(key, utcnow().timestamp(), nx=True, ex=seconds):
        return
    left_ms = redis.pttl(key)
    raise SlowMode(retry_after=max(left_ms, 1) / 1000 if left_ms and left_ms > 0 else 1)


def clear_slow_mode(coop_id: int, user_ids: list[str]) -> None:
    """Forget the members' running slow-mode windows (after the setting
    changed). A Redis failure is logged by the caller's hook, never raised."""
    if user_ids:
        get_redis().delete(*[redis_key("slowmode", coop_id, uid) for uid in user_ids])


@dataclass(frozen=True)
class ScreenFacts:
    """What ``screen_message`` decides on, read in one query
    (``screen_columns``, which a caller may add to a query of its own)."""

    mute_until: datetime | None  # the mute row's end, even if it has run out
    coop_found: bool
    slow_mode_seconds: int | None
    keyword_filters: list[dict[str, str]] | None
    is_moderator: bool


SCREEN_LABELS = ("screen_mute_until", "screen_coop_found", "screen_slow_mode", "screen_filters", "screen_moderator")


def screen_columns(coop_id: Any, user_id: Any) -> list[Any]:
    """Labelled scalar subqueries for ``ScreenFacts`` of ``user_id`` in the
    coop ``coop_id`` (an int, or a column such as
    ``Conversation.cooperative_id`` of the caller's query) — ``user_id`` a
    string or a bound parameter; read them back
    with ``screen_facts``."""
    coop = select(Cooperative.id, Cooperative.slow_mode_seconds, Cooperative.keyword_filters) \
        .where(Cooperative.id == coop_id)
    return [
        select(CoopMute.until).where(CoopMute.cooperative_id == coop_id, CoopMute.user_id == user_id)
        .scalar_subquery().label(SCREEN_LABELS[0]),
        exists(coop.with_only_columns(Cooperative.id)).label(SCREEN_LABELS[1]),
        coop.with_only_columns(Cooperative.slow_mode_seconds).scalar_subquery().label(SCREEN_LABELS[2]),
        coop.with_only_columns(Cooperative.keyword_filters).scalar_subquery().label(SCREEN_LABELS[3]),
        exists(select(CooperativeMember.id).where(is_moderating_member(coop_id), CooperativeMember.user_id == user_id))
        .label(SCREEN_LABELS[4]),
    ]


def screen_facts(row: Any) -> ScreenFacts:
    """The ``ScreenFacts`` of a result row that has the ``screen_columns``."""
    m = row._mapping
    return ScreenFacts(mute_until=m[SCREEN_LABELS[0]], coop_found=bool(m[SCREEN_LABELS[1]]),
                       slow_mode_seconds=m[SCREEN_LABELS[2]], keyword_filters=m[SCREEN_LABELS[3]],
                       is_moderator=bool(m[SCREEN_LABELS[4]]))


def screen_message(coop_id: int, user_id: str, body: str, facts: ScreenFacts | None = None, *,
                   slow_mode: bool = True) -> list[str]:
    """Check a coop chat message before it is stored: a new message, or the
    new body of an edited one (``slow_mode=False``: an edit is screened by
    the same mute and filters, but slow mode paces new messages only).

    Returns the ``flag`` filter phrases ``body`` matched (empty: nothing to
    report). Raises, in this order: Muted (403 ``muted``, ``details.until``),
    MessageBlocked (400 ``message_blocked``, ``details.phrases``) or SlowMode
    (429 ``slow_mode``, ``Retry-After``). A refused message does not take the
    slow-mode slot; the admin and moderators are exempt from slow mode (not
    from mutes, which cannot reach them, nor from filters).

    ``facts``: the caller read them already in its own query
    (``screen_columns``, messages.post); otherwise one query reads them.
    """
    if facts is None:
        facts = screen_facts(db.session.execute(select(*screen_columns(coop_id, user_id))).one())
    until = facts.mute_until
    if until is not None and until > utcnow():
        raise Muted(iso(until), seconds_left=(until - utcnow()).total_seconds())
    if not facts.coop_found:
        return []
    matched = matching_filters(facts.keyword_filters, body)
    blocked = [f["phrase"] for f in matched if f["action"] == "block"]
    if blocked:
        raise MessageBlocked(details={"phrases": blocked})
    if slow_mode and facts.slow_mode_seconds and not facts.is_moderator:
        _claim_slow_mode(coop_id, user_id, facts.slow_mode_seconds)
    return [f["phrase"] for f in matched if f["action"] == "flag"]


def file_flag_report(coop_id: int, message_id: int, phrases: list[str], author_user_id: str | None = None,
                     *, edited: bool = False) -> None:
    """File a system report (reason ``flagged``, no reporter) on a stored
    message that matched ``flag`` filters, for the coop's moderators.
    Commits its own transaction: call it after the message's commit.

    A message has one filter report (``uq_reports_flag_per_target``): while
    it is open, a second call files nothing. After an edit (``edited``)
    whose new body matched, a report the moderators already closed is
    opened again with the new phrases, so an edit cannot slip a flagged
    phrase past them once the first report was dismissed."""
    if not phrases:
        return
    stored = db.session.execute(select(Message.sender_id, Message.body).where(Message.id == message_id)).first()
    body = stored.body if stored is not None else None  # the words that matched (an edit after this: another)
    if author_user_id is None and stored is not None:
        author_user_id = stored.sender_id
    details = ("Matched after an edit: " if edited else "Matched: ") + ", ".join(phrases)
    try:
        with db.session.begin_nested():
            db.session.add(Report(
                cooperative_id=coop_id, target_type=ReportTarget.MESSAGE.value, target_id=str(message_id),
                target_user_id=author_user_id, reason=ReportReason.FLAGGED.value, details=details[:1000],
                reported_body=body,
            ))
        moderators_changed(coop_id)
    except IntegrityError:  # already flagged once
        if edited:
            _reopen_flag_report(message_id, details[:1000], body)
            moderators_changed(coop_id)
    db.session.commit()


def _reopen_flag_report(message_id: int, details: str, body: str | None) -> None:
    """Open the message's closed filter report again (a new filing as far
    as triage and the 24-hour escalation go: ``created_at`` is now)."""
    report = db.session.execute(
        select(Report).where(Report.target_type == ReportTarget.MESSAGE.value, Report.target_id == str(message_id),
                             Report.reason == ReportReason.FLAGGED.value).with_for_update()
    ).scalar_one_or_none()
    if report is None or report.status == ReportStatus.OPEN.value:
        return
    report.status, report.resolution, report.note = ReportStatus.OPEN.value, None, ""
    report.resolved_by = report.resolved_at = report.escalated_at = None
    report.details, report.created_at, report.reported_body = details, utcnow(), body
