"""Enqueue RQ jobs by their dotted name (``"jobs.email.send_notification_email"``),
as microblog does: the web app never imports ``jobs`` (the jobs import the
services they wrap, never the other way round; tests/test_layers.py).

RQ resolves the name when a worker runs the job; in the embedded default
(no ``REDIS_URL``) ``get_queue`` runs it inline, at once, in this process.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app
from redis.client import Pipeline
from rq.job import Job

from ..extensions import get_queue


def enqueue(job: str, *args: Any, queue: str = "default", pipeline: Pipeline | None = None,
            **options: Any) -> Job:
    """Enqueue the job function named ``job`` (a dotted path under ``jobs.``)
    with ``args`` on ``queue``; ``options`` go to ``Queue.enqueue`` (``retry``,
    ``job_timeout``, ``description`` ...). With ``pipeline`` (``batch``) the
    job is queued when that pipeline executes. Returns the RQ job. Raises
    ``redis.RedisError`` when Redis is unreachable (callers decide)."""
    return get_queue(queue).enqueue(job, *args, pipeline=pipeline, **options)


@contextmanager
def batch() -> Iterator[Pipeline | None]:
    """A pipeline for several ``enqueue(..., pipeline=...)`` calls: all their
    jobs are queued in one Redis round trip when the block ends (RQ's
    ``enqueue`` writes each job in two otherwise). None in the embedded
    default, where each job runs inline as it is enqueued. Raises
    ``redis.RedisError`` from the round trip; then none of the jobs is
    queued."""
    if current_app.config["EMBEDDED"]:
        yield None
        return
    pipe = current_app.extensions["redis_raw"].pipeline()
    yield pipe
    pipe.execute()
