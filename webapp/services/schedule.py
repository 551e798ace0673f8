"""The background work as data: the RQ queues the workers serve and the
periodic-job table. ``jobs/worker.py`` and ``jobs/schedule.py`` (``flask
worker``, ``flask scheduler``) read it, the admin page shows it, and the
embedded default runs it on a thread of the web process (``start_embedded``).
Job functions are named by dotted path, never imported here.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from flask import Flask
from rq.utils import import_attribute

log = logging.getLogger(__name__)

# Every queue a worker serves by default (``flask worker --queue`` narrows it).
QUEUES: tuple[str, ...] = ("default", "email", "push")


class PeriodicJob(NamedTuple):
    """One periodic job: ``job`` the dotted job function, ``every`` its
    interval in seconds or the config key holding it."""

    job: str
    every: int | str

    def interval(self, config: Mapping[str, Any]) -> int:
        """The interval in seconds under ``config`` (the app's config)."""
        return int(config[self.every]) if isinstance(self.every, str) else self.every


PERIODIC: tuple[PeriodicJob, ...] = (
    PeriodicJob("jobs.coops.aggregate_coop_hashrate", "COOP_HASHRATE_INTERVAL"),
    PeriodicJob("jobs.mining.sweep_offline_workers", 60),
    PeriodicJob("jobs.mining.purge_old_mining_events", 24 * 3600),
    PeriodicJob("jobs.mining.trim_mining_streams", "MINING_STREAM_TRIM_INTERVAL"),
    PeriodicJob("jobs.notifications.purge_old_notifications", 24 * 3600),
    PeriodicJob("jobs.accounts.purge_dead_sessions", 24 * 3600),
    PeriodicJob("jobs.chat.purge_archived_conversations", 24 * 3600),
    PeriodicJob("jobs.email.sweep_email_deliveries", "EMAIL_SWEEP_INTERVAL"),
    PeriodicJob("jobs.moderation.escalate_reports", 15 * 60),
    PeriodicJob("jobs.email.send_email_summaries", "EMAIL_SUMMARY_INTERVAL"),
    PeriodicJob("jobs.mining.alert_offline_workers", "WORKER_ALERT_INTERVAL"),
    PeriodicJob("jobs.friends.expire_friend_requests", 3600),
    # Hourly: each admin's digest is due at Monday 08:00 in their zone; sent once a week.
    PeriodicJob("jobs.coops.send_coop_digests", 3600),
)

_embedded_started = threading.Event()
_embedded_thread: threading.Thread | None = None
_last_runs: dict[str, datetime] = {}  # dotted job -> when its last embedded run ended (UTC)
_held: set[str] = set()  # dotted jobs the embedded loop skips for now (``hold``)


def hold(name: str, held: bool = True) -> None:
    """Embedded default: skip (``held``) or resume the periodic job ``name``
    on the embedded thread. The demo holds the offline sweep while the day
    flows in, when every worker's newest stored sample is still hours old."""
    (_held.add if held else _held.discard)(name)


def embedded_running() -> bool:
    """Whether the embedded scheduler thread runs in this process."""
    return _embedded_thread is not None and _embedded_thread.is_alive()


def last_embedded_runs() -> dict[str, datetime]:
    """When each periodic job last ran on the embedded thread (dotted job ->
    aware UTC datetime, failed runs included); empty outside the embedded default."""
    return dict(_last_runs)


def run_embedded_job(app: Flask, name: str) -> None:
    """Run the periodic job ``name`` once inline, in an app context, and
    record the time; an exception is logged, never raised (the loop lives on)."""
    try:
        with app.app_context():
            import_attribute(name)()
    except Exception:  # noqa: BLE001 - keep the loop alive
        log.exception("embedded scheduler: %s failed", name.rsplit(".", 1)[1])
    finally:
        _last_runs[name] = datetime.now(UTC)


def start_embedded(app: Flask) -> None:
    """Embedded default only: run the periodic jobs inline on a daemon
    thread of this process, each on its interval, the first ones 5 s after
    the start (idempotent; the first request starts it). The job functions
    are looked up by name, as an RQ worker does."""
    global _embedded_thread
    if _embedded_started.is_set():
        return
    _embedded_started.set()
    jobs = [(entry.job, entry.interval(app.config)) for entry in PERIODIC]
    for name, _ in jobs:
        import_attribute(name)  # fail at the start on a misspelt name, as before

    def loop() -> None:
        due = {name: time.monotonic() + 5 for name, _ in jobs}
        while True:
            for name, interval in jobs:
                if time.monotonic() >= due[name]:
                    due[name] = time.monotonic() + interval
                    if name not in _held:
                        run_embedded_job(app, name)
            time.sleep(1)

    _embedded_thread = threading.Thread(target=loop, name="embedded-scheduler", daemon=True)
    _embedded_thread.start()
