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
from typing import Any, NamedTuple

from flask import Flask
from rq.utils import import_attribute

log = logging.getLogger(__name__)

# Every queue a worker serves by default (``flask worker --queue`` narrows it).
QUEUES: tuple[str, ...] = ("default", "email")


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
    PeriodicJob("jobs.email.sweep_email_deliveries", "EMAIL_SWEEP_INTERVAL"),
)

_embedded_started = threading.Event()


def start_embedded(app: Flask) -> None:
    """Embedded default only: run the periodic jobs inline on a daemon
    thread of this process, each on its interval, the first ones 5 s after
    the start (idempotent; the first request starts it). The job functions
    are looked up by name, as an RQ worker does."""
    if _embedded_started.is_set():
        return
    _embedded_started.set()
    jobs = [(entry.job, import_attribute(entry.job), entry.interval(app.config)) for entry in PERIODIC]

    def loop() -> None:
        due = {name: time.monotonic() + 5 for name, _, _ in jobs}
        while True:
            for name, func, interval in jobs:
                if time.monotonic() >= due[name]:
                    due[name] = time.monotonic() + interval
                    try:
                        with app.app_context():
                            func()
                    except Exception:  # noqa: BLE001 - keep the loop alive
                        log.exception("embedded scheduler: %s failed", name.rsplit(".", 1)[1])
            time.sleep(1)

    threading.Thread(target=loop, name="embedded-scheduler", daemon=True).start()
