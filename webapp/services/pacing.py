"""When a notification may leave the app: quiet hours, digests, the hourly
cap (API.md "Notification settings"; issue 11).

Pure rules over a user's merged preferences (``preferences.merged_notifications``)
and a time. The dispatcher (``notifications.notify``) applies quiet hours and
digests from the preferences it already read, and counts nothing; the cap is
applied by the senders when they claim a delivery (``services/hourly_cap.py``:
``email.deliver``, ``webpush.deliver``) and by the summary job
(``summaries.send_due``). In-app rows and open sockets never wait.

- **Quiet hours** ``{"start": "HH:MM", "end": "HH:MM"}`` in the user's zone,
  start inclusive, end exclusive; ``start > end`` crosses midnight
  (22:00–07:00). Inside them nothing is e-mailed or pushed; the mail is
  held and goes out as one summary once they end.
- **Digest** ``daily`` / ``weekly``: every e-mail is held and sent as one
  summary at ``DIGEST_HOUR`` local time (weekly: on Mondays) — or at the
  end of quiet hours if they cover that hour.
- **Cap** ``max_per_hour``: at most that many mails (summaries included)
  and as many pushes in any rolling hour; a further mail is held for the
  next summary when its e-mail job claims it, a further push is dropped when
  its push job claims it (the row is in the app).
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from . import preferences

DIGEST_HOUR = 8  # local time of the daily and weekly digests
DIGEST_WEEKDAY = 0  # Monday, for weekly digests
HOLD_QUIET, HOLD_DIGEST, HOLD_CAP = "quiet_hours", "digest", "hourly_cap"


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(prefs: dict, now: datetime) -> bool:
    """Whether aware ``now`` falls inside the user's quiet hours (in their zone)."""
    quiet = prefs.get("quiet_hours")
    if not quiet:
        return False
    local = now.astimezone(preferences.zone(prefs.get("timezone"))).time().replace(second=0, microsecond=0)
    start, end = _hhmm(quiet["start"]), _hhmm(quiet["end"])
    if start < end:
        return start <= local < end
    return local >= start or local < end  # crosses midnight


def hold_reason(prefs: dict, now: datetime) -> str | None:
    """Why an e-mail of a notification made now must wait for a summary
    (``HOLD_DIGEST`` or ``HOLD_QUIET``), or None to queue it for sending.
    The cap is not decided here but by the e-mail job (``cap_reached``,
    ``HOLD_CAP``), so ``notify`` needs no count."""
    if prefs.get("digest", "off") != "off":
        return HOLD_DIGEST
    if in_quiet_hours(prefs, now):
        return HOLD_QUIET
    return None


def push_allowed(prefs: dict, now: datetime) -> bool:
    """Whether a device push of a notification made now is queued (outside
    quiet hours); the push job applies the cap (``cap_reached``)."""
    return not in_quiet_hours(prefs, now)


def cap_reached(prefs: dict, sent_last_hour: int) -> bool:
    """Whether one more mail (or push) would exceed ``max_per_hour``, given
    what the user was sent in the last hour (False without a cap)."""
    cap = prefs.get("max_per_hour")
    return cap is not None and sent_last_hour >= cap


def last_digest_instant(prefs: dict, now: datetime) -> datetime | None:
    """The latest scheduled digest time at or before ``now`` (aware UTC),
    for a user on ``daily`` or ``weekly``; None for ``off``. Computed in the
    user's zone, so it follows their clock across daylight-saving changes."""
    mode = prefs.get("digest", "off")
    if mode == "off":
        return None
    tz = preferences.zone(prefs.get("timezone"))
    local = now.astimezone(tz)
    day = local.date()
    for back in range(0, 8):
        candidate_day = day - timedelta(days=back)
        if mode == "weekly" and candidate_day.weekday() != DIGEST_WEEKDAY:
            continue
        candidate = datetime.combine(candidate_day, time(DIGEST_HOUR), tzinfo=tz)
        if candidate <= local:
            return candidate.astimezone(now.tzinfo)
    return None


def summary_due(prefs: dict, now: datetime, *, oldest_held_at: datetime, mails_last_hour: int) -> str | None:
    """The kind of summary to send now for a user with held mail
    (``"digest"`` or ``"held"``), or None to keep waiting.

    Digest users: when a scheduled digest time has passed since the oldest
    held mail was held, and not inside quiet hours. Others: once outside
    quiet hours and under the hourly cap (the summary counts as one mail).
    """
    if in_quiet_hours(prefs, now):
        return None
    if prefs.get("digest", "off") != "off":
        due = last_digest_instant(prefs, now)
        return "digest" if due is not None and due >= oldest_held_at else None
    return None if cap_reached(prefs, mails_last_hour) else "held"
