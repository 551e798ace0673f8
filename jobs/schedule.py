"""Periodic work and how it is scheduled.

Production: ``flask scheduler`` runs RQ's own cron scheduler (``rq.cron``),
which enqueues each periodic job on its interval for the ``flask worker``
processes. Exactly one scheduler is active: it holds a Redis lock that it
renews; a second copy waits as a hot standby and takes over when the first
dies. Embedded default: a daemon thread in the web process runs the same
jobs inline on the same intervals (``webapp.services.schedule.start_embedded``).
The table of periodic jobs is data in ``webapp/services/schedule.py``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from flask import Flask
from rq.utils import import_attribute

from webapp.services.schedule import PERIODIC, start_embedded  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

LOCK_TTL = 60  # seconds; renewed every LOCK_TTL / 3


def periodic_jobs(app: Flask) -> list[tuple[Callable, int]]:
    """The periodic jobs (``PERIODIC``) resolved, with their intervals in seconds."""
    return [(import_attribute(entry.job), entry.interval(app.config)) for entry in PERIODIC]


def scheduler_lock(app: Flask):
    """The Redis lock that makes one scheduler active (renewed while held)."""
    from webapp.extensions import redis_key

    with app.app_context():
        name = redis_key("scheduler", "lock")
    return app.extensions["redis_raw"].lock(name, timeout=LOCK_TTL, thread_local=False)


def build_cron(app: Flask):
    """RQ's CronScheduler with every periodic job registered on "default"."""
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=app.extensions["redis_raw"])
    for func, interval in periodic_jobs(app):
        scheduler.register(func, "default", interval=interval, job_timeout=interval)
    return scheduler


def run_scheduler(app: Flask) -> None:
    """Block as the single cron scheduler (see module docstring)."""
    lock = scheduler_lock(app)
    log.info("scheduler: waiting for the scheduler lock")
    lock.acquire(blocking=True)
    log.info("scheduler: lock held, starting")

    def renew() -> None:
        while True:
            time.sleep(LOCK_TTL / 3)
            try:
                lock.extend(LOCK_TTL, replace_ttl=True)
            except Exception:  # noqa: BLE001 - lost the lock: stop so the standby takes over
                log.exception("scheduler: lost the lock, exiting")
                os._exit(1)

    threading.Thread(target=renew, name="scheduler-lock", daemon=True).start()
    build_cron(app).start()
