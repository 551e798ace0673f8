"""Periodic work and how it is scheduled.

Production: ``flask scheduler`` runs RQ's own cron scheduler (``rq.cron``),
which enqueues each periodic job on its interval for the ``flask worker``
processes. Exactly one scheduler is active: it holds a Redis lock that it
renews; a second copy waits as a hot standby and takes over when the first
dies. Embedded default: a daemon thread in the web process runs the same
jobs inline on the same intervals.
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from typing import Callable

from flask import Flask

log = logging.getLogger(__name__)

# (dotted job function, interval in seconds or the config key holding it)
PERIODIC: list[tuple[str, int | str]] = [
    ("jobs.coops.aggregate_coop_hashrate", "COOP_HASHRATE_INTERVAL"),
    ("jobs.mining.sweep_offline_workers", 60),
    ("jobs.mining.purge_old_mining_events", 24 * 3600),
    ("jobs.mining.trim_mining_streams", "MINING_STREAM_TRIM_INTERVAL"),
    ("jobs.notifications.purge_old_notifications", 24 * 3600),
    ("jobs.accounts.purge_dead_sessions", 24 * 3600),
    ("jobs.email.sweep_email_deliveries", "EMAIL_SWEEP_INTERVAL"),
]
LOCK_TTL = 60  # seconds; renewed every LOCK_TTL / 3


def _resolve(dotted: str) -> Callable:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def periodic_jobs(app: Flask) -> list[tuple[Callable, int]]:
    """The periodic jobs with their intervals in seconds."""
    return [
        (_resolve(path), app.config[every] if isinstance(every, str) else every) for path, every in PERIODIC
    ]


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


_embedded_started = threading.Event()


def start_embedded(app: Flask) -> None:
    """Embedded default only: run the periodic jobs on a daemon thread of
    this process (idempotent; the first request starts it)."""
    if _embedded_started.is_set():
        return
    _embedded_started.set()
    jobs = periodic_jobs(app)

    def loop() -> None:
        due = {func: time.monotonic() + 5 for func, _ in jobs}
        while True:
            for func, interval in jobs:
                if time.monotonic() >= due[func]:
                    due[func] = time.monotonic() + interval
                    try:
                        with app.app_context():
                            func()
                    except Exception:  # noqa: BLE001 - keep the loop alive
                        log.exception("embedded scheduler: %s failed", func.__name__)
            time.sleep(1)

    threading.Thread(target=loop, name="embedded-scheduler", daemon=True).start()
