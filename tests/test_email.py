"""E-mail notifications through a real SMTP server (aiosmtpd) and real RQ
jobs: one mail with the unsubscribe headers, retries with back-off when the
server refuses, at most one send per notification, one-click unsubscribe,
and the embedded default's outbox."""
from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from rq import Queue

from webapp.extensions import db
from webapp.models import Notification, NotificationDelivery
from webapp.services import accounts, notifications
from webapp.services import email as email_service

from .builders import free_port, run_jobs

RETRY_INTERVALS = [10, 60, 300]


class Recorder:
    """aiosmtpd handler: records each DATA attempt; ``refuse`` answers it
    with that SMTP reply instead of accepting."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.attempts = 0
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.refuse:
            return self.refuse
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    servers = []

    def start(refuse: str | None = None) -> tuple[Recorder, int]:
        handler = Recorder(refuse)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        return handler, port

    yield start
    for controller in servers:
        controller.stop()


@pytest.fixture
def mail_app(app, make_app, smtp):
    """An app that sends through a real SMTP server; yields (app, recorder)."""

    def build(refuse: str | None = None):
        recorder, port = smtp(refuse)
        mail_app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, EMAIL_RETRY_INTERVALS=RETRY_INTERVALS,
                            PUBLIC_BASE_URL="https://mining.example")
        return mail_app, recorder

    return build


def opted_in_user(make_user, categories=("mining",)):
    from webapp.services import accounts, preferences

    user = make_user(email="miner@example.org")
    patch = {"notifications": {"categories": {c: {"email": True} for c in categories}}}
    accounts.update_settings(user, preferences.SettingsPatch.model_validate(patch))
    return user


def delivery(notification_id: int) -> NotificationDelivery:
    db.session.expire_all()
    return db.session.scalars(sa.select(NotificationDelivery).where(
        NotificationDelivery.notification_id == notification_id)).one()


def test_opted_in_gets_exactly_one_mail_with_unsubscribe_headers(mail_app, make_user):
    app, smtp = mail_app()
    with app.app_context():
        user = opted_in_user(make_user)
        row = notifications.notify(user.user_id, "mining", "block_found", "Block 900001 found!",
                                   "You found block 900001.", link="/miners/me")
        row_id = row.id
        run_jobs(app, "email", scheduler=True)
        assert smtp.attempts == 1
        [message] = smtp.messages
        assert message["To"] == "miner@example.org"
        assert message["Subject"] == "Block 900001 found!"
        unsubscribe = message["List-Unsubscribe"]
        assert unsubscribe.startswith("<https://mining.example/unsubscribe/") and unsubscribe.endswith(">")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "You found block 900001." in text and "https://mining.example/miners/me" in text
        assert "<h1>Block 900001 found!</h1>" in html
        sent = delivery(row_id)
        assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
        assert sent.sent_at is not None

        # A retried job after the successful send sends nothing.
        from jobs.email import enqueue_email

        enqueue_email(row_id)
        run_jobs(app, "email", scheduler=True)
        assert smtp.attempts == 1 and len(smtp.messages) == 1
        again = delivery(row_id)
        assert (again.status, again.attempts) == ("sent", 1)


def test_refusing_smtp_is_retried_three_times_with_back_off(mail_app, make_user):
    app, smtp = mail_app(refuse="451 4.3.0 Mailbox busy, try later")
    with app.app_context():
        user = opted_in_user(make_user, ("system",))
        row = notifications.notify(user.user_id, "system", "announcement", "Maintenance tonight")
        row_id = row.id
        queue = Queue("email", connection=app.extensions["redis_raw"])
        registry = queue.scheduled_job_registry
        run_jobs(app, "email", scheduler=True)
        for attempt, interval in enumerate(RETRY_INTERVALS, start=1):
            assert smtp.attempts == attempt
            waiting = delivery(row_id)  # back to pending, with the error, for RQ's retry
            assert (waiting.status, waiting.attempts) == ("pending", attempt)
            assert "451" in waiting.last_error and "Mailbox busy" in waiting.last_error
            [job_id] = registry.get_job_ids()
            wait = (registry.get_scheduled_time(job_id) - datetime.now(UTC)).total_seconds()
            assert interval - 2 <= wait <= interval + 1  # the back-off RQ will honour
            registry.schedule(queue.fetch_job(job_id), datetime.now(UTC))  # fast-forward: due now
            run_jobs(app, "email", scheduler=True)
        assert smtp.attempts == 4  # the first attempt and three retries
        final = delivery(row_id)
        assert (final.status, final.attempts) == ("failed", 4)
        assert final.last_error.startswith("gave up after 4 attempts: SMTPDataError")
        assert "Mailbox busy" in final.last_error
        assert registry.get_job_ids() == []
        assert len(queue.failed_job_registry.get_job_ids()) == 1
        kept = db.session.get(Notification, row_id)
        assert kept is not None and kept.title == "Maintenance tonight" and kept.is_read is False
        assert smtp.messages == []


def test_unreachable_smtp_is_recorded(make_app, app, make_user):
    mail_app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), EMAIL_RETRY_INTERVALS=[0])
    with mail_app.app_context():
        user = opted_in_user(make_user)
        row = notifications.notify(user.user_id, "mining", "block_found", "Block!")
        row_id = row.id
        run_jobs(mail_app, "email", scheduler=True)  # interval 0: RQ re-enqueues at once, so one burst does all four attempts
        failed = delivery(row_id)
        assert (failed.status, failed.attempts) == ("failed", 4)
        assert failed.last_error.startswith("gave up after 4 attempts: ConnectionRefusedError")


def test_no_mail_without_opt_in_or_address(mail_app, make_user):
    app, smtp = mail_app()
    with app.app_context():
        no_opt_in = make_user(email="a@example.org")
        no_address = opted_in_user(make_user)
        no_address.email = None
        db.session.commit()
        notifications.notify(no_opt_in.user_id, "mining", "block_found", "Block!")
        notifications.notify(no_address.user_id, "mining", "block_found", "Block!")
        run_jobs(app, "email", scheduler=True)
        assert smtp.attempts == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationDelivery)) == 0


def test_opting_out_before_the_job_runs_skips_the_mail(mail_app, make_user):
    app, smtp = mail_app()
    with app.app_context():
        user = opted_in_user(make_user)
        row = notifications.notify(user.user_id, "mining", "block_found", "Block!")
        row_id = row.id
        accounts.unsubscribe(email_service.unsubscribe_token(user.user_id, "mining"))
        run_jobs(app, "email", scheduler=True)
        assert smtp.attempts == 0
        skipped = delivery(row_id)
        assert skipped.status == "failed" and skipped.last_error.startswith("skipped")


def test_one_click_unsubscribe(client, make_user, auth_headers):
    user = opted_in_user(make_user, ("mining", "system"))
    token = email_service.unsubscribe_token(user.user_id, "mining")
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert "Unsubscribe from mining e-mails</button>" in page.get_data(as_text=True)
    # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click", no cookie, no CSRF token.
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "Unsubscribed" in done.get_data(as_text=True)
    settings = client.get("/api/settings", headers=auth_headers(user)).get_json()["notifications"]["categories"]
    assert settings["mining"]["email"] is False and settings["system"]["email"] is True
    assert notifications.notify(user.user_id, "mining", "block_found", "Block!") is not None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationDelivery)) == 0
    assert client.post(f"/unsubscribe/{token}").status_code == 200  # idempotent
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.post(f"/unsubscribe/{forged}").status_code == 400
    assert client.get("/unsubscribe/garbage").status_code == 400


def test_embedded_default_writes_the_outbox_inline(make_app, app, make_user, tmp_path):
    """EMBEDDED: the job runs inline from the after-commit hook, in its own
    app context and session, and writes an .eml file instead of sending."""
    embedded = make_app(EMBEDDED=True, MAIL_SERVER="", MAIL_OUTBOX_DIR=str(tmp_path))
    with embedded.app_context():
        user = opted_in_user(make_user)
        row = notifications.notify(user.user_id, "mining", "block_found", "Block in the outbox")
        row_id = row.id
        [path] = list(tmp_path.glob("*.eml"))
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["Subject"] == "Block in the outbox"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert delivery(row_id).status == "sent"
