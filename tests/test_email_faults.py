"""E-mail delivery under faults, with real processes: a real ``flask worker``
killed with SIGKILL in the middle of the SMTP conversation, a real SMTP
server (aiosmtpd), the sweep, and a second worker. Plus the lease rules
(claim, reclaim, attempt bound, lost jobs) with in-process RQ workers."""
from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from rq import Queue

from jobs.email import sweep_email_deliveries
from webapp.extensions import db
from webapp.models import NotificationDelivery, utcnow
from webapp.services import email as email_service
from webapp.services import notifications

from .builders import free_port, run_jobs, wait_for
from .test_email import Recorder, delivery, opted_in_user
from .worker_support import kill_group, start_worker

DOMAIN = "mining.example"


class StallingRecorder:
    """aiosmtpd handler whose first DATA stalls until released: with
    ``accepted=False`` the server has not taken that mail (the client dies
    before the 250); with ``accepted=True`` it has (it is recorded, as a real
    server would have queued it, and only the 250 never reaches the client).
    Every later DATA is accepted and recorded."""

    def __init__(self, accepted: bool) -> None:
        self.accepted = accepted
        self.attempts = 0
        self.messages: list[email.message.EmailMessage] = []
        self.stalled = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        if self.attempts == 1:
            if self.accepted:
                self.messages.append(message)
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "421 4.3.0 closing"
        self.messages.append(message)
        return "250 Message accepted"


@pytest.fixture
def stalling_smtp():
    started = []

    def start(accepted: bool) -> tuple[StallingRecorder, int]:
        handler = StallingRecorder(accepted)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append((controller, handler))
        return handler, port

    yield start
    for controller, handler in started:
        handler.release.set()
        controller.stop()


def _kill_mid_delivery_then_recover(migrated, make_app, make_user, tmp_path, smtp, port):
    """One notification; worker 1 is killed (SIGKILL) inside DATA; once its
    lease has expired the sweep re-enqueues it and worker 2 (burst) sends it.
    Returns the final delivery row."""
    settings = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(port), "PUBLIC_BASE_URL": f"https://{DOMAIN}",
                "EMAIL_LEASE_SECONDS": "2", "MAIL_TIMEOUT": "30"}
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, PUBLIC_BASE_URL=f"https://{DOMAIN}")
    log = tmp_path / "workers.log"
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Block 900002 found!").id

        first = start_worker(migrated, log, "--queue", "email", **settings)
        try:
            wait_for(smtp.stalled.is_set, 60, "the first worker to reach DATA", log)
            leased = delivery(row_id)
            assert (leased.status, leased.attempts) == ("sending", 1)
            assert leased.message_id.startswith(f"<notification-{row_id}.{leased.id}.")
            assert leased.message_id.endswith(f"@{DOMAIN}>")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            kill_group(first)

        # The dead worker's lease runs out; then the sweep hands the delivery to a new job.
        wait_for(lambda: utcnow() > delivery(row_id).lease_expires_at, 30, "the lease to expire")
        assert sweep_email_deliveries() == {"requeued": 1, "gave_up": 0, "push_requeued": 0,
                                            "broadcasts_resumed": 0}
        reclaimed = delivery(row_id)
        assert (reclaimed.status, reclaimed.attempts) == ("pending", 1)
        assert reclaimed.last_error == email_service.LEASE_EXPIRED

        second = start_worker(migrated, log, "--queue", "email", "--burst", **settings)
        try:
            assert second.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            kill_group(second)
        return delivery(row_id), leased.message_id


@pytest.mark.slow
def test_worker_killed_mid_smtp_conversation_sends_exactly_one_mail(migrated, app, make_app, make_user, tmp_path,
                                                                    stalling_smtp):
    smtp, port = stalling_smtp(accepted=False)
    final, message_id = _kill_mid_delivery_then_recover(migrated, make_app, make_user, tmp_path, smtp, port)
    assert smtp.attempts == 2
    [mail] = smtp.messages  # exactly one mail reached the server
    assert mail["Message-ID"] == message_id
    assert mail["Subject"] == "Block 900002 found!"
    assert (final.status, final.attempts, final.last_error) == ("sent", 2, None)
    assert final.message_id == message_id and final.lease_expires_at is None and final.sent_at is not None


@pytest.mark.slow
def test_worker_killed_after_the_server_accepted_resends_with_the_same_message_id(
        migrated, app, make_app, make_user, tmp_path, stalling_smtp):
    """At-least-once: the outcome of the first attempt is unknown to us, so
    the mail goes again — recognisably the same mail (one Message-ID)."""
    smtp, port = stalling_smtp(accepted=True)
    final, message_id = _kill_mid_delivery_then_recover(migrated, make_app, make_user, tmp_path, smtp, port)
    assert [m["Message-ID"] for m in smtp.messages] == [message_id, message_id]
    assert (final.status, final.attempts) == ("sent", 2)


# ---- the lease rules, with in-process workers --------------------------------------------------


@pytest.fixture
def lease_app(app, make_app):
    """An app on a real SMTP server (aiosmtpd) that records every mail."""
    controllers = []

    def build(**overrides):
        recorder = Recorder()
        port = free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, PUBLIC_BASE_URL=f"https://{DOMAIN}",
                        EMAIL_RETRY_INTERVALS=[0], **overrides), recorder

    yield build
    for controller in controllers:
        controller.stop()


def _set(notification_id: int, **values) -> None:
    db.session.execute(sa.update(NotificationDelivery)
                       .where(NotificationDelivery.notification_id == notification_id).values(**values))
    db.session.commit()


def test_a_retried_job_takes_over_an_expired_lease_but_never_a_live_one(lease_app, make_user):
    app, smtp = lease_app()
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Block!").id
        Queue("email", connection=app.extensions["redis_raw"]).empty()  # the job is "running" elsewhere
        # A live sender holds the lease: a duplicate or retried job sends nothing.
        _set(row_id, status="sending", attempts=1, lease_expires_at=utcnow() + timedelta(minutes=5),
             message_id="<notification-x@mining.example>")
        assert email_service.deliver(row_id) == "nothing to send"
        assert email_service.sweep().requeued == []
        assert smtp.messages == []
        # Its lease ran out (the sender died): the next job claims it and sends the same Message-ID.
        _set(row_id, lease_expires_at=utcnow() - timedelta(seconds=1))
        assert email_service.deliver(row_id) == "sent"
        [mail] = smtp.messages
        assert mail["Message-ID"] == "<notification-x@mining.example>"
        assert (delivery(row_id).status, delivery(row_id).attempts) == ("sent", 2)


def test_a_sender_that_outlived_its_lease_still_records_sent_and_wins(lease_app, make_user):
    """A hung sender (past its lease) that finishes after a second one took
    over: its success is recorded, and the second one's late failure can no
    longer overwrite the row (every write is fenced by status and attempt)."""
    app, smtp = lease_app()
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Slow").id
        slow = email_service._claim(row_id)
        _set(row_id, lease_expires_at=utcnow() - timedelta(seconds=1))
        takeover = email_service._claim(row_id)
        assert (slow.attempt, takeover.attempt, slow.message_id) == (1, 2, takeover.message_id)
        email_service._record_sent(slow)
        assert email_service._record_failure(takeover, "SMTPServerDisconnected: late") is None
        final = delivery(row_id)
        assert (final.status, final.attempts, final.last_error) == ("sent", 2, None)
        assert email_service.deliver(row_id) == "nothing to send"


def test_sweep_re_enqueues_a_delivery_whose_job_was_lost(lease_app, make_user):
    """Redis lost the job (down at enqueue time, or flushed): after
    EMAIL_REQUEUE_AFTER the sweep enqueues it again, once per window."""
    app, smtp = lease_app(EMAIL_REQUEUE_AFTER=60)
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Lost job").id
        queue = Queue("email", connection=app.extensions["redis_raw"])
        queue.empty()
        assert email_service.sweep().requeued == []  # too young: its job may still be queued
        _set(row_id, updated_at=utcnow() - timedelta(seconds=61))
        assert email_service.sweep().requeued == [row_id]
        assert email_service.sweep().requeued == []  # the new job has EMAIL_REQUEUE_AFTER to claim it
        assert queue.count == 1
        run_jobs(app, "email", scheduler=True)
        [mail] = smtp.messages
        assert mail["Subject"] == "Lost job"
        assert (delivery(row_id).status, delivery(row_id).attempts) == ("sent", 1)


def test_a_job_queued_twice_sends_once(lease_app, make_user):
    app, smtp = lease_app(EMAIL_REQUEUE_AFTER=60)
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Twice queued").id
        _set(row_id, updated_at=utcnow() - timedelta(seconds=61))  # the first job is only slow, not lost
        assert email_service.sweep().requeued == [row_id]
        assert Queue("email", connection=app.extensions["redis_raw"]).count == 2
        run_jobs(app, "email", scheduler=True)
        assert len(smtp.messages) == 1
        assert (delivery(row_id).status, delivery(row_id).attempts) == ("sent", 1)


def test_attempts_are_bounded_across_crashes(lease_app, make_user):
    """Every claim counts: a delivery whose senders keep dying ends failed
    after EMAIL_MAX_ATTEMPTS, with the reason, and is never sent again."""
    app, smtp = lease_app(EMAIL_MAX_ATTEMPTS=2)
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Crashy").id
        Queue("email", connection=app.extensions["redis_raw"]).empty()
        for attempt in (1, 2):
            claim = email_service._claim(row_id)  # a sender takes it and dies
            assert claim.attempt == attempt
            _set(row_id, lease_expires_at=utcnow() - timedelta(seconds=1))
            swept = email_service.sweep()
            assert (swept.requeued, swept.gave_up) == (([row_id], []) if attempt == 1 else ([], [row_id]))
            Queue("email", connection=app.extensions["redis_raw"]).empty()
        final = delivery(row_id)
        assert (final.status, final.attempts) == ("failed", 2)
        assert final.last_error == f"gave up after 2 attempts: {email_service.LEASE_EXPIRED}"
        assert email_service.deliver(row_id) == "nothing to send"
        assert email_service.sweep().requeued == []
        assert smtp.messages == []


def test_message_id_is_stable_and_uses_the_sender_domain(lease_app, make_user):
    app, smtp = lease_app(MAIL_DEFAULT_SENDER="Solo Mining <noreply@pool.example>")
    with app.app_context():
        user = opted_in_user(make_user)
        row_id = notifications.notify(user.user_id, "mining", "block_found", "Stable").id
        claim = email_service._claim(row_id)
        assert claim.message_id.startswith(f"<notification-{row_id}.") and claim.message_id.endswith("@pool.example>")
        _set(row_id, lease_expires_at=utcnow() - timedelta(seconds=1))
        assert email_service.sweep().requeued == [row_id]
        run_jobs(app, "email", scheduler=True)
        [mail] = smtp.messages
        assert mail["Message-ID"] == claim.message_id == delivery(row_id).message_id


def test_upgrade_adopts_deliveries_left_by_the_old_state_machine(tmp_path):
    """Rows stuck ``sending`` get an expired lease (the sweep resends them)
    unless older than a day; ``failed`` ones still awaiting RQ's retry become
    ``pending``. On SQLite, where the embedded default runs."""
    from flask_migrate import upgrade

    from webapp import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}",
                      "REDIS_URL": "", "SECRET_KEY": "x", "RATELIMIT_ENABLED": False})  # the limiter is global
    now = utcnow()
    rows = {  # notification id: (status, attempts, last_error, updated_at)
        1: ("sending", 1, None, now - timedelta(minutes=20)),
        2: ("sending", 1, None, now - timedelta(days=3)),
        3: ("failed", 2, "SMTPDataError: 451", now - timedelta(minutes=5)),
        4: ("failed", 4, "SMTPDataError: 451", now - timedelta(minutes=5)),
        5: ("failed", 1, "skipped: e-mail turned off or no address at send time", now - timedelta(minutes=5)),
        6: ("failed", 1, "SMTPDataError: 451", now - timedelta(days=2)),
        7: ("sent", 1, None, now - timedelta(minutes=5)),
    }
    with app.app_context():
        upgrade(revision="0001")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO users (user_id, password_hash, display_name, is_admin, created_at) "
                                 "VALUES ('u', 'x', 'u', 0, '2026-01-01')"))
            for nid, (status, attempts, error, updated) in rows.items():
                conn.execute(sa.text("INSERT INTO notifications (id, user_id, category, subtype, title, body, is_read,"
                                     " created_at) VALUES (:id, 'u', 'mining', 's', 't', '', 0, :at)"),
                             {"id": nid, "at": updated.replace(tzinfo=None)})
                conn.execute(sa.text("INSERT INTO notification_deliveries (notification_id, channel, status, attempts,"
                                     " last_error, created_at, updated_at) VALUES (:id, 'email', :s, :a, :e, :at, :at)"),
                             {"id": nid, "s": status, "a": attempts, "e": error, "at": updated.replace(tzinfo=None)})
        upgrade()
        got = {row.notification_id: row for row in db.session.scalars(sa.select(NotificationDelivery))}
        assert got[1].status == "sending" and got[1].lease_expires_at == rows[1][3]
        assert got[2].status == "failed" and got[2].last_error.startswith("lost: ")
        assert [got[n].status for n in (3, 4, 5, 6, 7)] == ["pending", "failed", "failed", "failed", "sent"]
        db.session.remove()
        db.engine.dispose()
