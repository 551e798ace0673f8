"""Enqueue RQ jobs by their dotted name (``"jobs.email.send_notification_email"``),
as microblog does: the web app never imports ``jobs`` (the jobs import the
services they wrap, never the other way round; tests/test_layers.py).

RQ resolves the name when a worker runs the job; in the embedded default
(no ``REDIS_URL``) ``get_queue`` runs it inline, at once, in this process.
"""
from __future__ import annotations

from typing import Any

from rq.job import Job

from ..extensions import get_queue


def enqueue(job: str, *args: Any, queue: str = "default", **options: Any) -> Job:
    """Enqueue the job function named ``job`` (a dotted path under ``jobs.``)
    with ``args`` on ``queue``; ``options`` go to ``Queue.enqueue`` (``retry``,
    ``job_timeout``, ``description`` ...). Returns the RQ job. Raises
    ``redis.RedisError`` when Redis is unreachable (callers decide)."""
    return get_queue(queue).enqueue(job, *args, **options)
