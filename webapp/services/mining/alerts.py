"""The notifications and activities mining raises: worker back online or
gone offline, a new personal best, a block found (registered users only,
subject to their preferences).
"""
from __future__ import annotations

from datetime import datetime

from flask import current_app

from ...formatting import block_display, format_difficulty, format_duration, worker_label
from ...models import Notification, iso
from ...vocabulary import NotificationCategory as C
from ...vocabulary import NotificationSubtype as S
from .. import activity as activity_service
from .. import notifications as notification_service
from .common import BatchResult, profile_link
from .events import MiningEventIn


def _notify_worker(user_id: str, worker: str, online: bool, reason: str, at: datetime,
                   data: dict | None = None) -> Notification | None:
    label = worker_label(worker)
    if online:
        title = f"{label} is back online"
        body = {"connected": f"{label} reconnected to the pool.",
                "sample": f"{label} is hashing again."}.get(reason, f"{label} is back.")
        subtype = S.WORKER_ONLINE
    else:
        title = f"{label} went offline"
        if reason == "disconnected":
            duration = (data or {}).get("session_duration")
            body = f"{label} disconnected from the pool" + (
                f" after {format_duration(float(duration))}." if isinstance(duration, (int, float)) else ".")
        else:
            minutes = current_app.config["WORKER_OFFLINE_AFTER"] // 60
            body = f"No hashrate from {label} for {minutes} minutes."
        subtype = S.WORKER_OFFLINE
    row = notification_service.notify(
        user_id, C.MINING, subtype, title[:200], body, link=profile_link(user_id),
        data={"worker": worker, "reason": reason, "at": iso(at)}, commit=False,
    )
    return row


def _raise_event_notifications(events: list[MiningEventIn], registered: set[str], result: BatchResult,
                               bests: dict[str, float] | None = None) -> None:
    """Personal bests and blocks found: a notification (subject to the user's
    preferences) and an activity, for registered users only. Only
    ``share_best_diff`` with the ``alltime`` timeframe (or none) is a personal
    best; other timeframes are stored but raise nothing. ``bests``: each
    miner's best difficulty known before this batch (``rollups._stored_bests``); a
    "new best" below it, or below an earlier one of the same batch, is not
    one (a replayed or reordered stream, a pool that restarted its count)
    and raises nothing, so a notice never contradicts the best the profile
    shows. ``events`` are in time order (``_aggregate``)."""
    floor = dict(bests or {})
    for ev in events:
        if ev.user is None or ev.user not in registered:
            continue
        if ev.event == "share_best_diff" and ev.data.get("timeframe", "alltime") == "alltime":
            best = float(ev.data["new_best"])
            if best < floor.get(ev.user, 0.0):
                continue
            floor[ev.user] = best
            _personal_best(ev.user, ev, result)
        elif ev.event == "block_found":
            _block_found(ev.user, ev, result)


def _personal_best(user_id: str, ev: MiningEventIn, result: BatchResult) -> None:
    best = float(ev.data["new_best"])
    previous = ev.data.get("prev_best")
    label = worker_label(ev.worker)
    title = f"New personal best: {format_difficulty(best)}"
    body = f"{label} found a share of difficulty {format_difficulty(best)}" + (
        f", beating your previous best of {format_difficulty(previous)}." if previous else ".")
    data = {"difficulty": best, "previous_best": previous, "worker": ev.worker, "at": iso(ev.ts)}
    row = notification_service.notify(user_id, C.MINING, S.PERSONAL_BEST, title, body,
                                      link=profile_link(user_id), data=data, commit=False)
    if row is not None:
        result.notifications += 1
    act = activity_service.record_activity(
        user_id, "share_submitted", title, description=body,
        data={"personal_best": True, **data}, link=profile_link(user_id),
    )
    act.created_at = ev.ts
    result.activities += 1


def _block_found(user_id: str, ev: MiningEventIn, result: BatchResult) -> None:
    data = block_display(ev)
    height = data.get("height")
    label = worker_label(ev.worker) if ev.worker else "Your miner"
    title = f"You found block {height:,}!" if height is not None else "You found a block!"
    body = f"{label} solved " + (f"block {height:,}" if height is not None else "a block") + \
        " for the network. Congratulations!"
    data["at"] = iso(ev.ts)
    row = notification_service.notify(user_id, C.MINING, S.BLOCK_FOUND, title, body,
                                      link=profile_link(user_id), data=data, commit=False)
    if row is not None:
        result.notifications += 1
    act = activity_service.record_activity(user_id, "block_found", title, description=body, data=data,
                                           link=profile_link(user_id))
    act.created_at = ev.ts
    result.activities += 1
