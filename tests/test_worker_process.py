"""The ``flask worker`` process: its RQ scheduler child does not outlive it."""
from __future__ import annotations

import os
import signal

import pytest
from rq.scheduler import RQScheduler

from jobs.worker import QUEUES

from .builders import wait_for
from .worker_support import alive, children_of, kill_group, start_worker

pytestmark = pytest.mark.slow  # real `flask worker` processes, killed


def test_scheduler_child_ends_with_a_killed_worker_and_frees_its_locks(migrated, app, tmp_path):
    raw = app.extensions["redis_raw"]
    locks = [RQScheduler.get_locking_key(name) for name in QUEUES]
    log = tmp_path / "worker.log"
    worker = start_worker(migrated, log)
    try:
        # RQ forks the scheduler once the worker holds the scheduler locks of its queues.
        [scheduler_pid] = wait_for(lambda: children_of(worker.pid), 60, "the scheduler process", log)
        wait_for(lambda: all(raw.get(key) for key in locks), 30, "the scheduler locks", log)

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

        wait_for(lambda: not alive(scheduler_pid), 10, "the orphaned scheduler to exit", log)
        assert [key for key in locks if raw.exists(key)] == []  # released, not left to expire
        # A new worker's scheduler takes the queues at once.
        successor = RQScheduler(list(QUEUES), connection=raw)
        assert successor.acquire_locks() == set(QUEUES)
        successor.release_locks()
    finally:
        kill_group(worker)
