"""The RQ worker entry point (``flask worker``).

A ``SimpleWorker`` (no fork per job, so the SQLAlchemy pool is never shared
across a fork) with RQ's scheduler enabled, which retries with back-off
(``Retry(max=3, interval=[...])``) need. The DB session is released after
every job so no job sees another's identity map.

RQ runs that scheduler as a child process forked by the worker
(``RQScheduler.start``), which nothing ties to the worker's life: after a
``kill -9`` of the worker it kept running, orphaned, renewing the
scheduler locks (``rq:scheduler-lock:<queue>``) every second, so no new
worker could schedule for those queues. ``ParentBoundScheduler`` ends with
its worker and releases its locks.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

from flask import Flask
from rq import Queue, SimpleWorker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler

from webapp.services.schedule import QUEUES

from .context import set_app

__all__ = ["QUEUES", "AppWorker", "ParentBoundScheduler", "run_worker"]
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

log = logging.getLogger(__name__)


def _signal_on_parent_death(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when the thread that
    forked it exits (``prctl(PR_SET_PDEATHSIG)``, prctl(2)). False where
    that is not available; the parent-pid check still applies there."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class ParentBoundScheduler(RQScheduler):
    """RQ's scheduler process, bound to the worker that forked it.

    Two guards, either enough: the kernel sends it SIGTERM when the worker
    dies (``PR_SET_PDEATHSIG``), and every loop (``interval``, 1 s) it checks
    that its parent is still the worker. Either way it stops the way RQ
    stops it on SIGTERM: it releases the locks it holds and deletes its
    registration, so a new worker's scheduler takes the queues at once.
    If it is killed outright instead, its locks expire after
    ``interval + 60`` s (RQ's lock TTL).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.worker_pid = os.getpid()  # built in the worker, before the fork

    def work(self) -> None:
        # Handlers first, so a SIGTERM that arrives at once is a clean stop, not a kill.
        self._install_signal_handlers()
        _signal_on_parent_death(signal.SIGTERM)
        self._check_parent()  # the worker may have died before prctl took effect
        super().work()

    def _check_parent(self) -> None:
        if os.getppid() != self.worker_pid:
            log.warning("scheduler: worker %s is gone, stopping and releasing the locks", self.worker_pid)
            self.request_stop()

    def heartbeat(self) -> None:
        self._check_parent()
        super().heartbeat()


class AppWorker(SimpleWorker):
    """SimpleWorker that releases the DB session after each job, and whose
    scheduler process dies with it (``ParentBoundScheduler``)."""

    def perform_job(self, job, queue):
        try:
            return super().perform_job(job, queue)
        finally:
            from webapp.extensions import db

            db.session.remove()

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        # rq 2.12's Worker._start_scheduler, with ParentBoundScheduler for RQScheduler.
        self.scheduler = ParentBoundScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()


def run_worker(app: Flask, queues: tuple[str, ...] = QUEUES, burst: bool = False) -> None:
    """Work the given queues until stopped (or until empty with ``burst``)."""
    set_app(app)
    raw = app.extensions["redis_raw"]
    worker = AppWorker([Queue(name, connection=raw) for name in queues], connection=raw)
    with app.app_context():
        worker.work(with_scheduler=True, burst=burst)
