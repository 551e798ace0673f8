"""The periodic jobs: one active scheduler, RQ cron enqueuing every job, a
real worker running them."""
from __future__ import annotations

from jobs.schedule import PERIODIC, build_cron, periodic_jobs, scheduler_lock
from webapp.extensions import db
from webapp.models import Cooperative
from webapp.services import coops

from .builders import run_jobs


def test_every_periodic_job_resolves_with_its_interval(app):
    jobs = periodic_jobs(app)
    assert len(jobs) == len(PERIODIC)
    by_name = {func.__name__: every for func, every in jobs}
    assert by_name == {"aggregate_coop_hashrate": 300, "sweep_offline_workers": 60,
                       "purge_old_mining_events": 86400, "trim_mining_streams": 300,
                       "purge_old_notifications": 86400,
                       "purge_dead_sessions": 86400, "purge_archived_conversations": 86400,
                       "sweep_email_deliveries": 60,
                       "escalate_reports": 900, "expire_friend_requests": 3600,
                       "send_email_summaries": 60, "alert_offline_workers": 60, "send_coop_digests": 3600}


def test_only_one_scheduler_holds_the_lock(app):
    first, second = scheduler_lock(app), scheduler_lock(app)
    assert first.acquire(blocking=False) is True
    assert second.acquire(blocking=False) is False  # the standby waits
    first.release()
    assert second.acquire(blocking=False) is True
    second.release()


def test_cron_enqueues_the_jobs_and_a_worker_runs_them(app, make_user):
    admin = make_user()
    coop = coops.create(admin, name="Cron Coop", description="")
    coop_id = coop.id
    assert coop.hashrate_updated_at is None
    cron = build_cron(app)
    enqueued = cron.enqueue_jobs()  # interval jobs that never ran are due at once
    assert {job.func_name.rsplit(".", 1)[1] for job in enqueued} == {
        "aggregate_coop_hashrate", "sweep_offline_workers", "purge_old_mining_events", "trim_mining_streams",
        "purge_old_notifications", "purge_dead_sessions", "purge_archived_conversations", "sweep_email_deliveries",
        "escalate_reports", "expire_friend_requests", "send_email_summaries", "alert_offline_workers",
        "send_coop_digests"}
    queue = run_jobs(app)
    assert queue.finished_job_registry.count == len(enqueued) == 13
    assert queue.failed_job_registry.count == 0
    assert db.session.get(Cooperative, coop_id).hashrate_updated_at is not None
