"""The RQ worker entry point (``flask worker``).

A ``SimpleWorker`` (no fork per job, so the SQLAlchemy pool is never shared
across a fork) with RQ's scheduler enabled, which retries with back-off
(``Retry(max=3, interval=[...])``) need. The DB session is released after
every job so no job sees another's identity map.
"""
from __future__ import annotations

from flask import Flask
from rq import Queue, SimpleWorker

from .context import set_app

QUEUES = ("default", "email")


class AppWorker(SimpleWorker):
    """SimpleWorker that releases the DB session after each job."""

    def perform_job(self, job, queue):
        try:
            return super().perform_job(job, queue)
        finally:
            from webapp.extensions import db

            db.session.remove()


def run_worker(app: Flask, queues: tuple[str, ...] = QUEUES, burst: bool = False) -> None:
    """Work the given queues until stopped (or until empty with ``burst``)."""
    set_app(app)
    raw = app.extensions["redis_raw"]
    worker = AppWorker([Queue(name, connection=raw) for name in queues], connection=raw)
    with app.app_context():
        worker.work(with_scheduler=True, burst=burst)
