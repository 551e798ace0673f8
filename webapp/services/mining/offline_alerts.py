"""Worker-offline notices a miner can live with (issue 11 §3; API.md
"Notification settings" ``worker_offline``).

A worker going offline (a disconnect, or silence caught by
``sweep_offline_workers``) raises nothing at once. ``alert_offline_workers``
(the periodic job ``jobs.mining.alert_offline_workers``, every
``WORKER_ALERT_INTERVAL`` s) tells the owner about workers that have stayed
offline for their ``worker_offline.after_minutes`` (5–1440, default 15):

- a worker back online within that time raises nothing (and its "back
  online" notice is sent only after an announced outage);
- ``muted_workers`` (``user.rig`` or ``rig``) are never announced;
- flapping is suppressed: at most one offline notice per worker per hour
  (``worker_status.offline_notified_at``);
- workers of one owner that are due in the same run make ONE notice,
  "3 workers offline", listing them in ``data.workers``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from ...extensions import db
from ...formatting import worker_label
from ...models import User, UserSettings, WorkerStatus, iso, utcnow
from ...vocabulary import NotificationCategory as C
from ...vocabulary import NotificationSubtype as S
from .. import notifications as notification_service
from .. import preferences
from .common import profile_link

log = logging.getLogger("webapp.mining")
FLAP_WINDOW = timedelta(hours=1)
# Outages older than the longest threshold plus the flap window are old news
# (e.g. workers retired long before this rule existed).
MAX_AGE = timedelta(minutes=preferences.MAX_OFFLINE_AFTER_MINUTES) + FLAP_WINDOW


def is_muted(worker: str, muted: list[str]) -> bool:
    """Whether ``worker`` (``user.rig``) is named in ``muted`` by its full name or its rig part."""
    return worker in muted or worker_label(worker) in muted


def alert_offline_workers(now: datetime | None = None) -> dict[str, list[str]]:
    """Send the offline notices that are due (see module doc). Rows locked by
    a running consumer are skipped (next run). Commits; returns
    ``{user_id: [workers announced]}``."""
    now = now or utcnow()
    ws = WorkerStatus
    min_after = timedelta(minutes=preferences.MIN_OFFLINE_AFTER_MINUTES)
    rows = db.session.execute(
        select(ws, UserSettings.notifications)
        .join(User, User.user_id == ws.user_id)
        .outerjoin(UserSettings, UserSettings.user_id == ws.user_id)
        .where(ws.is_online.is_(False), ws.state_changed_at <= now - min_after, ws.state_changed_at >= now - MAX_AGE,
               or_(ws.offline_notified_at.is_(None), ws.offline_notified_at < ws.state_changed_at))
        .order_by(ws.user_id, ws.worker)
        .with_for_update(of=ws, skip_locked=True)
    ).all()
    due: dict[str, list[WorkerStatus]] = {}
    for worker, stored in rows:
        prefs = preferences.merged_notifications(stored)["worker_offline"]
        if now - worker.state_changed_at < timedelta(minutes=prefs["after_minutes"]):
            continue
        if is_muted(worker.worker, prefs["muted_workers"]):
            continue
        if worker.offline_notified_at is not None and now - worker.offline_notified_at < FLAP_WINDOW:
            continue  # flapping: told within the hour; a later run tells if it is still down
        due.setdefault(worker.user_id, []).append(worker)
    announced: dict[str, list[str]] = {}
    try:
        for user_id, workers in due.items():
            for worker in workers:
                worker.offline_notified_at = now
            _notify(user_id, workers, now)
            announced[user_id] = [w.worker for w in workers]
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if announced:
        log.info("offline alerts: %d worker(s) of %d miner(s)", sum(map(len, announced.values())), len(announced))
    return announced


def _notify(user_id: str, workers: list[WorkerStatus], now: datetime) -> None:
    since = min(w.state_changed_at or now for w in workers)
    minutes = int((now - since).total_seconds() // 60)
    labels = [worker_label(w.worker) for w in workers]
    if len(workers) == 1:
        title = f"{labels[0]} went offline"
        body = f"{labels[0]} has been offline for {minutes} minutes."
    else:
        title = f"{len(workers)} workers offline"
        body = (", ".join(labels[:-1]) + f" and {labels[-1]}")[:1500] + " went offline."
    notification_service.notify(
        user_id, C.MINING, S.WORKER_OFFLINE, title[:200], body, link=profile_link(user_id),
        data={"worker": workers[0].worker, "workers": [w.worker for w in workers], "at": iso(since),
              "offline_minutes": minutes}, commit=False,
    )
