"""The weekly e-mail to a coop's admin (issue "Coops people can find and
join", item 5): new members, top miners, open reports and the combined
hashrate trend of the last seven days.

- **Content** (``build``): members who joined in the 7 days before ``now``
  and are still members; the top 3 members by best difficulty and by
  hashrate from the coop leaderboard (``rankings.coop_leaderboard`` seen by
  the admin, so a member whose ``showInCoopRankings`` is false is "a
  member"); the coop's open reports (what its admin and moderators triage);
  the average combined hashrate (``coop_hashrate_samples``, H/s) of those 7
  days against the 7 before, with the change in percent.
- **When** (``send_weekly``, the hourly job ``jobs.coops.send_coop_digests``):
  once the admin's Monday 08:00 local time has passed (the weekly digest
  time of ``services/pacing.py``), one mail per active coop for that ISO week.
  A coop founded after that instant waits for the next Monday.
- **Who**: the coop's admin, when they have an e-mail address and the
  ``coopDigest`` toggle (default on) is on. The unsubscribe link and the
  ``List-Unsubscribe`` header turn the toggle off.
- **Once per coop and ISO week**: a Redis key per coop and week
  (``coop_digest:<coop id>:<YYYY-Www>``) claimed with ``SET NX`` before
  sending. A retried job, a second scheduler or two workers running the
  job at the same moment find the key taken and send nothing. The claim is
  a lease (``EMAIL_LEASE_SECONDS``) while sending; once SMTP accepted the
  mail the key is kept for 15 days ("sent"); a failed send deletes it, so
  the next hourly run retries. A sender that dies mid-send leaves the lease
  to expire: the next run sends again (at least once, like the other
  mails, and with a fresh Message-ID as nothing was recorded). Redis rather
  than a row: no schema change, and the key only has to outlive the week.
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app, render_template
from sqlalchemy import func, select

from ..extensions import db, get_redis, redis_key
from ..formatting import format_difficulty, format_hashrate
from ..models import Cooperative, CooperativeMember, CoopHashrateSample, Report, User, utcnow
from ..vocabulary import CoopStatus, MemberStatus, ReportStatus
from . import email, pacing, preferences, rankings
from .mailformat import PlainHeaderMessage

log = logging.getLogger(__name__)
WEEK = timedelta(days=7)
TOP = 3
TOGGLE = "coopDigest"
SENT_KEEP = 15 * 24 * 3600  # seconds a "sent" mark outlives its week's digest time


@dataclass(frozen=True)
class Miner:
    """A top miner line: display name ("a member" when hidden), the value
    (H/s or share difficulty) and the same value formatted."""

    rank: int
    name: str
    value: float
    shown: str


@dataclass(frozen=True)
class Trend:
    """Average combined hashrate (H/s) this week and last week, and the
    change in percent (None when there is no sample last week, or it was 0)."""

    this_week: float | None
    last_week: float | None
    change_percent: float | None

    def sentence(self) -> str:
        """The trend as the mail says it."""
        if self.this_week is None:
            return "No hashrate was recorded this week."
        now = format_hashrate(self.this_week)
        if self.last_week is None:
            return f"{now} on average this week (no figure for last week)."
        if self.change_percent is None:  # last week was 0 H/s
            if not self.this_week:
                return "0 H/s on average this week, as last week."
            return f"{now} on average this week, up from 0 H/s last week."
        direction = "up" if self.change_percent > 0 else "down" if self.change_percent < 0 else "unchanged"
        if direction == "unchanged":
            return f"{now} on average this week, unchanged from last week."
        return (f"{now} on average this week, {direction} {abs(self.change_percent):.1f}% "
                f"from {format_hashrate(self.last_week)} last week.")


@dataclass(frozen=True)
class Digest:
    """One coop's week (``build``): the window is ``[since, until)``."""

    coop_id: int
    coop_name: str
    admin_user_id: str
    since: datetime
    until: datetime
    new_members: list[str] = field(default_factory=list)
    top_best_difficulty: list[Miner] = field(default_factory=list)
    top_hashrate: list[Miner] = field(default_factory=list)
    open_reports: int = 0
    trend: Trend = Trend(None, None, None)


def _average(coop_id: int, since: datetime, until: datetime) -> float | None:
    value = db.session.scalar(
        select(func.avg(CoopHashrateSample.total_hashrate))
        .where(CoopHashrateSample.cooperative_id == coop_id, CoopHashrateSample.computed_at >= since,
               CoopHashrateSample.computed_at < until))
    return None if value is None else float(value)


def trend(coop_id: int, now: datetime) -> Trend:
    """The coop's average combined hashrate over the 7 days before ``now``
    against the 7 days before those (H/s, from the aggregation's samples)."""
    this_week = _average(coop_id, now - WEEK, now)
    last_week = _average(coop_id, now - 2 * WEEK, now - WEEK)
    change = None
    if this_week is not None and last_week:
        change = round((this_week - last_week) / last_week * 100, 1)
    return Trend(this_week, last_week, change)


def _top(admin: User, coop_id: int, metric: str, now: datetime) -> list[Miner]:
    fmt = format_hashrate if metric == "hashrate" else format_difficulty
    entries = rankings.coop_leaderboard(admin, coop_id=coop_id, metric=metric, now=now)
    return [Miner(e.rank, e.display_name, e.value, fmt(e.value)) for e in entries
            if e.rank is not None and e.value is not None and e.value > 0][:TOP]


def build(coop_id: int, now: datetime | None = None) -> Digest | None:
    """The digest of the coop's 7 days before ``now`` (aware UTC) as its
    admin reads it; None for a coop that is not active or has no admin."""
    now = now or utcnow()
    coop = db.session.get(Cooperative, coop_id)
    if coop is None or coop.status != CoopStatus.ACTIVE or coop.admin_user_id is None:
        return None
    admin = db.session.get(User, coop.admin_user_id)
    if admin is None:
        return None
    since = now - WEEK
    new_members = list(db.session.scalars(
        select(User.display_name).join(CooperativeMember, CooperativeMember.user_id == User.user_id)
        .where(CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == MemberStatus.ACTIVE,
               CooperativeMember.joined_at >= since, CooperativeMember.joined_at < now,
               CooperativeMember.user_id != admin.user_id)
        .order_by(CooperativeMember.joined_at, CooperativeMember.id)))
    open_reports = db.session.scalar(
        select(func.count()).select_from(Report)
        .where(Report.cooperative_id == coop_id, Report.status == ReportStatus.OPEN)) or 0
    return Digest(
        coop_id=coop.id, coop_name=coop.name, admin_user_id=admin.user_id, since=since, until=now,
        new_members=new_members,
        top_best_difficulty=_top(admin, coop_id, "best_difficulty", now),
        top_hashrate=_top(admin, coop_id, "hashrate", now),
        open_reports=int(open_reports), trend=trend(coop_id, now),
    )


def build_message(digest: Digest, admin: User) -> PlainHeaderMessage:
    """The html + text mail of ``digest`` to ``admin`` with the one-click
    unsubscribe headers (the link turns ``coopDigest`` off). Raises
    ValueError for an admin without an address."""
    if not admin.email:
        raise ValueError(f"user {admin.user_id} has no e-mail address")
    unsubscribe_url, headers = email.unsubscribe_headers(admin, TOGGLE)
    subject = re.sub(r"\s+", " ", f"Your week at {digest.coop_name}").strip()
    context = {
        "subject": subject, "d": digest, "user": admin, "unsubscribe_url": unsubscribe_url,
        "settings_url": email.absolute_link("/settings"),
        "coop_url": email.absolute_link("/coop"),
        "moderation_url": email.absolute_link("/coop/moderation"),
    }
    return PlainHeaderMessage(
        subject=subject, recipients=[admin.email],
        body=render_template("emails/coop_digest.txt", **context),
        html=render_template("emails/coop_digest.html", **context),
        extra_headers=headers,
    )


def week_of(instant: datetime) -> str:
    """``YYYY-Www``: the ISO week of a digest instant (in its own zone)."""
    year, week, _ = instant.isocalendar()
    return f"{year}-W{week:02d}"


def sent_key(coop_id: int, week: str) -> str:
    """The Redis key that marks the coop's digest of ``week`` claimed or sent."""
    return redis_key("coop_digest", coop_id, week)


def send_weekly(now: datetime | None = None) -> list[int]:
    """Send every digest that is due (see the module doc). Returns the ids
    of the coops whose digest went out in this run; one coop's SMTP failure
    is logged and retried by the next run, the others still go out."""
    now = now or utcnow()
    rows = db.session.execute(
        select(Cooperative.id, Cooperative.created_at, User)
        .join(User, User.user_id == Cooperative.admin_user_id)
        .where(Cooperative.status == CoopStatus.ACTIVE, User.email.is_not(None))
        .order_by(Cooperative.id)).all()
    sent = []
    for coop_id, created_at, admin in rows:
        prefs = preferences.user_notifications(admin.user_id)
        if not admin.email or not prefs.get(TOGGLE, True):
            continue
        local = pacing.last_digest_instant({"digest": "weekly", "timezone": prefs["timezone"]}, now)
        if local is None or created_at > local:
            continue
        try:
            if _send_one(coop_id, admin, week_of(local.astimezone(preferences.zone(prefs["timezone"]))), now):
                sent.append(coop_id)
        except Exception:  # noqa: BLE001 - one coop's failure must not stop the others
            log.exception("weekly digest of coop %s failed", coop_id)
            db.session.rollback()
    db.session.commit()
    return sent


def _send_one(coop_id: int, admin: User, week: str, now: datetime) -> bool:
    """Claim the coop's week, build and send; False when already claimed.
    Raises the send error after releasing the claim."""
    redis = get_redis()
    key = sent_key(coop_id, week)
    if not redis.set(key, "sending", nx=True, ex=int(current_app.config["EMAIL_LEASE_SECONDS"])):
        return False
    try:
        digest = build(coop_id, now)
        if digest is None:
            redis.delete(key)
            return False
        message = build_message(digest, admin)
        message.msgId = f"<coop-digest-{coop_id}.{week}.{secrets.token_hex(4)}@{email.message_id_domain()}>"
        db.session.commit()  # no connection held while talking to SMTP
        email.send(message, f"coop-digest-{coop_id}-{week}")
    except Exception:
        redis.delete(key)
        raise
    redis.set(key, "sent", ex=SENT_KEEP)
    return True
