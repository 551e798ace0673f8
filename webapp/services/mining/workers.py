"""Worker state: the online/offline state machine applied to a batch's
state events, and the periodic sweep of silent workers.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from flask import current_app
from sqlalchemy import Table, bindparam, or_, select, update

from ...extensions import db
from ...models import WorkerStatus, utcnow
from .alerts import _notify_worker
from .common import BatchResult, _insert, _WorkerBatch
from .events import MAX_USERAGENT, MiningEventIn

log = logging.getLogger("webapp.mining")


_STATE_FIELDS = (
    "user_id", "is_online", "state_changed_at", "connected_at", "last_seen_at", "last_sample_at",
    "hashrate_1m", "hashrate_5m", "hashrate_1h", "hashrate_1d", "last_share_at", "useragent",
)


def _apply_workers(workers: dict[str, _WorkerBatch], registered: set[str], result: BatchResult) -> None:
    """Worker state machine over the batch's state events in time order.

    Streams are read out of order (one stream can run hours ahead of
    another), so an online/offline transition only applies when its event is
    at or after ``state_changed_at``, and a hashrate sample only replaces the
    latest one when it is newer. Transitions: connect → online; disconnect →
    offline; a sample newer than the last transition brings an offline
    worker back online. A worker's first event ever raises no notification;
    a new worker seen only through shares starts online.
    """
    if not workers:
        return
    table = cast(Table, WorkerStatus.__table__)
    # Make every row exist and lock it, in one sorted statement (a no-op
    # update on conflict returns and locks the existing row).
    stmt = _insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=["worker"], set_={"worker": stmt.excluded.worker}).returning(
        *table.c
    )
    placeholders = [{"worker": w, "user_id": workers[w].user, "is_online": False} for w in sorted(workers)]
    current = {row.worker: dict(row._mapping) for row in db.session.connection().execute(stmt, placeholders)}

    updates = []
    for worker, agg in workers.items():
        state = current[worker]
        before = {k: state[k] for k in _STATE_FIELDS}
        # A row never processed before has no last_seen_at: its state is unknown.
        known = state["last_seen_at"] is not None
        if agg.user:
            state["user_id"] = agg.user
        agg.state_events.sort(key=lambda ev: ev.ts)
        for ev in agg.state_events:
            _apply_worker_event(state, ev, known, registered, result)
            known = True
        if not known:
            state["is_online"] = True  # seen only through shares: it is connected
        if state["last_seen_at"] is None or agg.last_seen > state["last_seen_at"]:
            state["last_seen_at"] = agg.last_seen
        if agg.last_share is not None and (state["last_share_at"] is None or agg.last_share > state["last_share_at"]):
            state["last_share_at"] = agg.last_share
        if any(state[k] != before[k] for k in _STATE_FIELDS):
            updates.append({"b_worker": worker, **{k: state[k] for k in _STATE_FIELDS}})
    if updates:
        stmt = update(table).where(table.c.worker == bindparam("b_worker")).values(
            {k: bindparam(k) for k in _STATE_FIELDS}
        )
        db.session.connection().execute(stmt, updates)


def _later(a: datetime | None, b: datetime) -> bool:
    return a is None or b >= a


def _apply_worker_event(state: dict, ev: MiningEventIn, known: bool, registered: set[str],
                        result: BatchResult) -> None:
    ts = ev.ts
    if ev.event == "hashrate_update":
        if state["last_sample_at"] is None or ts > state["last_sample_at"]:
            state["last_sample_at"] = ts
            for name in ("hashrate_1m", "hashrate_5m", "hashrate_1h", "hashrate_1d"):
                if name in ev.data:
                    state[name] = float(ev.data[name])
        if not known:
            state["is_online"] = True
        elif not state["is_online"] and (state["state_changed_at"] is None or ts > state["state_changed_at"]):
            _transition(state, ev, True, "sample", known, registered, result)
    elif ev.event == "miner_connected":
        if _later(state["connected_at"], ts):
            state["connected_at"] = ts
            if "useragent" in ev.data:
                state["useragent"] = ev.data["useragent"][:MAX_USERAGENT]
        if _later(state["state_changed_at"], ts):
            if not state["is_online"]:
                _transition(state, ev, True, "connected", known, registered, result)
            state["is_online"], state["state_changed_at"] = True, ts
    elif ev.event == "miner_disconnected":
        if _later(state["state_changed_at"], ts):
            if state["is_online"] or not known:
                _transition(state, ev, False, "disconnected", known, registered, result)
            state["state_changed_at"] = ts


def _transition(state: dict, ev: MiningEventIn, online: bool, reason: str, known: bool,
                registered: set[str], result: BatchResult) -> None:
    """Going offline raises nothing here: ``offline_alerts`` tells the owner
    once the worker has stayed offline for their threshold. Coming back is
    news only after an outage they were told about."""
    announced = (state.get("offline_notified_at") is not None and state["state_changed_at"] is not None
                 and state["offline_notified_at"] >= state["state_changed_at"])
    state["is_online"] = online
    state["state_changed_at"] = ev.ts
    if not known or not online or not announced:
        return
    if state["user_id"] in registered:
        if _notify_worker(state["user_id"], ev.worker or "", online, reason, ev.ts, ev.data):
            result.notifications += 1


def sweep_offline_workers(now: datetime | None = None) -> list[str]:
    """Mark online workers with no sign of life for ``WORKER_OFFLINE_AFTER``
    seconds offline (once: the worker stays offline until a connect or a
    fresh sample). The owner is told later, by ``offline_alerts``, if the
    worker stays offline for their threshold.

    A sign of life is a hashrate sample or a (re)connect: a worker that just
    reconnected gets the full 15 minutes to send its first sample. The
    transition is dated when the silence crossed the limit. Rows locked by a
    running consumer are skipped (next sweep). Commits; returns the workers
    marked offline.
    """
    now = now or utcnow()
    limit = timedelta(seconds=current_app.config["WORKER_OFFLINE_AFTER"])
    cutoff = now - limit
    ws = WorkerStatus
    rows = db.session.execute(
        select(ws)
        .where(
            ws.is_online.is_(True),
            or_(ws.last_sample_at.is_(None), ws.last_sample_at < cutoff),
            or_(ws.connected_at.is_(None), ws.connected_at < cutoff),
        )
        .order_by(ws.worker)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    marked = []
    try:
        for row in rows:
            signs = [t for t in (row.last_sample_at, row.connected_at) if t is not None]
            last = max(signs) if signs else (row.last_seen_at or now - limit)
            if last >= cutoff:
                continue
            row.is_online = False
            row.state_changed_at = min(last + limit, now)
            marked.append(row.worker)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if marked:
        log.info("sweep: %d worker(s) marked offline", len(marked))
    return marked
