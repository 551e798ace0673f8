"""The notification engine (issue 11): quiet hours across midnight in the
user's zone, digests, the hourly cap, summary mails sent once, the raw
List-Unsubscribe header, per-kind templates with the event's local time,
delivery attempts, and resuming a broadcast that stopped half-way.

Real PostgreSQL, Redis, RQ workers and an aiosmtpd server; time is moved
with time-machine (``utcnow`` reads the patched clock)."""
from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import time_machine
from aiosmtpd.controller import Controller

from webapp.extensions import db
from webapp.models import Broadcast, DeliveryAttempt, EmailSummary, Notification, NotificationDelivery, User
from webapp.services import accounts, notifications, preferences, summaries

from .builders import free_port, run_jobs, sql_statements


class RawRecorder:
    """aiosmtpd handler keeping every message's raw bytes as received;
    ``refuse`` answers the next N DATA commands with a 451."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.refuse = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        self.raw.append(envelope.original_content)
        return "250 Message accepted"

    @property
    def messages(self):
        return [email.message_from_bytes(raw, policy=email.policy.default) for raw in self.raw]


@pytest.fixture
def mail(make_app, app):
    recorder = RawRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    mail_app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, EMAIL_RETRY_INTERVALS=[1],
                        PUBLIC_BASE_URL="https://mining.example")
    with mail_app.app_context():
        yield mail_app, recorder
    controller.stop()


def settings(user: User, **notifications_patch) -> None:
    patch = {"notifications": {"categories": {"mining": {"email": True}, "system": {"email": True}},
                               **notifications_patch}}
    accounts.update_settings(user, preferences.SettingsPatch.model_validate(patch))


def deliveries_of(user: User, channel: str = "email") -> list[NotificationDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(
        sa.select(NotificationDelivery).join(Notification, Notification.id == NotificationDelivery.notification_id)
        .where(Notification.user_id == user.user_id, NotificationDelivery.channel == channel)
        .order_by(NotificationDelivery.id)))


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


# ---- quiet hours -----------------------------------------------------------------------------


def test_quiet_hours_cross_midnight_in_each_users_zone(mail, make_user, redis):
    app, smtp = mail
    berlin = make_user(email="berlin@example.org")
    settings(berlin, timezone="Europe/Berlin", quiet_hours={"start": "22:00", "end": "07:00"})
    la = make_user(email="la@example.org")
    settings(la, timezone="America/Los_Angeles", quiet_hours={"start": "22:00", "end": "07:00"})
    pubsub = app.extensions["redis_raw"].pubsub()
    pubsub.psubscribe("*")

    # 23:30 UTC = 00:30 in Berlin (quiet, past midnight), 15:30 in Los Angeles (awake).
    with time_machine.travel(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), tick=True):
        notifications.notify(berlin.user_id, "mining", "block_found", "Block 1 found!", data={"at": "x"})
        notifications.notify(berlin.user_id, "system", "maintenance", "Maintenance at 02:00")
        notifications.notify(la.user_id, "mining", "block_found", "Block 2 found!")
    assert [d.status for d in deliveries_of(berlin)] == ["held", "held"]
    assert [d.status for d in deliveries_of(la)] == ["pending"]
    # In-app rows and the socket push are not held.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.user_id == berlin.user_id)) == 2
    pushed = [m for m in iter(lambda: pubsub.get_message(timeout=0.5), None) if m["type"] == "pmessage"]
    assert sum(berlin.user_id.encode() in m["channel"] for m in pushed) >= 2

    # Berlin's quiet hours end at 07:00 local = 06:00 UTC: nothing before, one summary after.
    with time_machine.travel(datetime(2026, 12, 1, 5, 59, tzinfo=UTC), tick=True):
        assert summaries.send_due() == []
    with time_machine.travel(datetime(2026, 12, 1, 6, 0, 30, tzinfo=UTC), tick=True):
        sent = summaries.send_due()
    assert len(sent) == 1 and len(smtp.raw) == 1
    [message] = smtp.messages
    assert message["To"] == "berlin@example.org"
    assert message["Subject"] == "While notifications were paused: 2 notifications"
    assert "Block 1 found!" in text_of(message) and "Maintenance at 02:00" in text_of(message)
    assert [d.status for d in deliveries_of(berlin)] == ["sent", "sent"]

    # 07:30 UTC = 23:30 in Los Angeles (quiet, before midnight); Berlin is awake.
    with time_machine.travel(datetime(2026, 12, 1, 7, 30, tzinfo=UTC), tick=True):
        notifications.notify(la.user_id, "mining", "block_found", "Block 3 found!")
        notifications.notify(berlin.user_id, "mining", "block_found", "Block 4 found!")
    assert [d.status for d in deliveries_of(la)] == ["pending", "held"]
    assert [d.status for d in deliveries_of(berlin)] == ["sent", "sent", "pending"]
    # Los Angeles: quiet until 07:00 local = 15:00 UTC.
    with time_machine.travel(datetime(2026, 12, 1, 14, 59, tzinfo=UTC), tick=True):
        assert summaries.send_due() == []
    with time_machine.travel(datetime(2026, 12, 1, 15, 0, 30, tzinfo=UTC), tick=True):
        assert len(summaries.send_due()) == 1
    assert [m["To"] for m in smtp.messages] == ["berlin@example.org", "la@example.org"]
    assert "Block 3 found!" in text_of(smtp.messages[1]) and "Block 2" not in text_of(smtp.messages[1])


# ---- digests and the hourly cap -------------------------------------------------------------


def test_daily_digest_is_one_mail_grouped_by_category_with_links(mail, make_user):
    app, smtp = mail
    user = make_user(email="digest@example.org")
    settings(user, timezone="Europe/Berlin", digest="daily")
    with time_machine.travel(datetime(2026, 11, 30, 10, 0, tzinfo=UTC), tick=True):
        notifications.notify(user.user_id, "mining", "personal_best", "New personal best: 12.3M",
                             link="/miners/me", data={"at": "2026-11-30T09:58:00Z"})
        notifications.notify(user.user_id, "mining", "block_found", "You found block 900,001!", link="/miners/me")
        notifications.notify(user.user_id, "system", "maintenance", "Maintenance tonight", "Down 02:00-02:30.",
                             link="https://status.example/1")
        assert [d.status for d in deliveries_of(user)] == ["held"] * 3
        assert summaries.send_due() == []  # today's 08:00 Berlin came before these
    with time_machine.travel(datetime(2026, 12, 1, 6, 59, tzinfo=UTC), tick=True):  # 07:59 Berlin
        assert summaries.send_due() == []
    with time_machine.travel(datetime(2026, 12, 1, 7, 0, 30, tzinfo=UTC), tick=True):  # 08:00 Berlin
        assert len(summaries.send_due()) == 1
        assert summaries.send_due() == []  # once
    [message] = smtp.messages
    assert message["Subject"] == "Your daily digest: 3 notifications"
    text, html = text_of(message), html_of(message)
    assert text.index("== Mining (2) ==") < text.index("New personal best") < text.index("== System (1) ==") \
        < text.index("Maintenance tonight")
    assert "https://mining.example/miners/me" in text and "https://status.example/1" in text
    assert "Mon 30 Nov 2026, 10:58 CET" in text  # the event's own time, in the user's zone
    assert "<h2>Mining (2)</h2>" in html and '<a href="https://status.example/1">Maintenance tonight</a>' in html
    assert message["List-Unsubscribe"].startswith("<https://mining.example/unsubscribe/")
    rows = deliveries_of(user)
    assert {d.status for d in rows} == {"sent"} and len({d.summary_id for d in rows}) == 1
    summary = db.session.get(EmailSummary, rows[0].summary_id)
    assert (summary.kind, summary.status, summary.item_count) == ("digest", "sent", 3)


def test_weekly_digest_waits_for_monday(mail, make_user):
    app, smtp = mail
    user = make_user(email="weekly@example.org")
    settings(user, digest="weekly")  # UTC
    with time_machine.travel(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=True):  # a Tuesday
        notifications.notify(user.user_id, "mining", "block_found", "Block!")
    with time_machine.travel(datetime(2026, 12, 6, 23, 0, tzinfo=UTC), tick=True):  # Sunday
        assert summaries.send_due() == []
    with time_machine.travel(datetime(2026, 12, 7, 8, 1, tzinfo=UTC), tick=True):  # Monday 08:01
        assert len(summaries.send_due()) == 1
    assert smtp.messages[0]["Subject"] == "Your weekly digest: 1 notification"


def test_hourly_cap_holds_the_rest_for_the_next_summary(mail, make_user):
    """notify() leaves every mail pending (it counts nothing); the e-mail job
    applies the cap when it claims: the third mail of the hour and later are
    held and go out in the next summary, which counts as one mail."""
    app, smtp = mail
    user = make_user(email="cap@example.org")
    settings(user, max_per_hour=2)
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=True):
        for i in range(5):
            notifications.notify(user.user_id, "mining", "block_found", f"Block {i}")
        assert [d.status for d in deliveries_of(user)] == ["pending"] * 5
        run_jobs(app, "email", scheduler=True)
        assert [m["Subject"] for m in smtp.messages] == ["Block 0", "Block 1"]
        rows = deliveries_of(user)
        assert [d.status for d in rows] == ["sent", "sent", "held", "held", "held"]
        assert [d.last_error for d in rows[2:]] == ["held: hourly_cap"] * 3
        assert [d.attempts for d in rows[2:]] == [0, 0, 0]  # held, never sent: no attempt used
        assert summaries.send_due() == []  # two mails in the last hour already
    with time_machine.travel(start + timedelta(minutes=61), tick=True):
        assert len(summaries.send_due()) == 1
        notifications.notify(user.user_id, "mining", "block_found", "Block 5")  # summary + 1 = 2 this hour
        notifications.notify(user.user_id, "mining", "block_found", "Block 6")  # over the cap: held by its job
        assert [d.status for d in deliveries_of(user)][-2:] == ["pending", "pending"]
        run_jobs(app, "email", scheduler=True)
    assert len(smtp.raw) == 4
    summary = smtp.messages[2]
    assert summary["Subject"] == "While notifications were paused: 3 notifications"
    text = text_of(summary)
    assert all(f"Block {i}" in text for i in (2, 3, 4)) and "Block 0" not in text and "Block 1" not in text
    assert smtp.messages[3]["Subject"] == "Block 5"
    rows = deliveries_of(user)
    assert [d.status for d in rows] == ["sent"] * 6 + ["held"]
    assert len({d.summary_id for d in rows[2:5]}) == 1 and rows[2].summary_id is not None
    assert rows[6].last_error == "held: hourly_cap"
    # The held mail goes out with the next summary, once the hour has room again.
    with time_machine.travel(start + timedelta(minutes=125), tick=True):
        assert len(summaries.send_due()) == 1
    assert "Block 6" in text_of(smtp.messages[4]) and [d.status for d in deliveries_of(user)] == ["sent"] * 7


def _notify_statements(user_id: str, title: str) -> list[str]:
    """The SQL statements one notify() runs (SQLAlchemy's before_cursor_execute,
    as benchmarks/notify_cost.py counts them)."""
    with sql_statements() as seen:
        assert notifications.notify(user_id, "mining", "personal_best", title) is not None
    return seen


def test_notify_counts_nothing_for_the_hourly_cap(mail, make_user):
    """The cap is the e-mail job's business: with quiet hours (not now), a cap
    and mining e-mail on, notify() runs one statement more than with default
    settings (the e-mail delivery row), never a count of the hour's mails."""
    plain = make_user()
    capped = make_user(email="capped@example.org")
    quiet_start = (datetime.now(UTC) + timedelta(hours=6)).strftime("%H:%M")
    quiet_end = (datetime.now(UTC) + timedelta(hours=7)).strftime("%H:%M")
    settings(capped, max_per_hour=3, timezone="UTC", quiet_hours={"start": quiet_start, "end": quiet_end})
    for user in (plain, capped):  # warm-up: the user's first row also creates its seq counter
        notifications.notify(user.user_id, "mining", "personal_best", "warm-up")
    default = _notify_statements(plain.user_id, "New best")
    engine = _notify_statements(capped.user_id, "New best")
    assert len(default) == 4, default
    assert len(engine) == 5, engine
    assert not [s for s in engine if "count(" in s.lower()]
    assert [d.status for d in deliveries_of(capped)] == ["pending", "pending"]


def test_a_retried_mail_is_not_held_by_the_cap_that_admitted_it(mail, make_user):
    """A mail whose first attempt failed was admitted: its retry is sent even
    at the cap, and it counts against the cap meanwhile (the next mail is held)."""
    app, smtp = mail
    user = make_user(email="retry-cap@example.org")
    settings(user, max_per_hour=1)
    smtp.refuse = 1
    first = notifications.notify(user.user_id, "mining", "block_found", "Block A").id
    run_jobs(app, "email", scheduler=True)
    assert [(d.status, d.attempts) for d in deliveries_of(user)] == [("pending", 1)]  # 451: waits for its retry
    notifications.notify(user.user_id, "mining", "block_found", "Block B")
    run_jobs(app, "email", scheduler=True)
    import time as _time

    _time.sleep(1.2)  # the 1 s back-off
    run_jobs(app, "email", scheduler=True)
    rows = deliveries_of(user)
    assert [(d.notification_id, d.status, d.attempts) for d in rows] == [(first, "sent", 2), (rows[1].notification_id,
                                                                                               "held", 0)]
    assert rows[1].last_error == "held: hourly_cap"
    assert [m["Subject"] for m in smtp.messages] == ["Block A"]


def test_two_senders_of_one_user_count_one_after_the_other(mail, make_user):
    """The cap count runs under the user's lock, held until the claim commits:
    a second sender waits, then sees the first one's claim and holds its mail
    (without the lock it would count 0 and send a second mail over a cap of 1)."""
    import threading

    from webapp.models import utcnow
    from webapp.services import email as email_service
    from webapp.services import hourly_cap

    app, smtp = mail
    user = make_user(email="race@example.org")
    settings(user, max_per_hour=1)
    first = notifications.notify(user.user_id, "mining", "block_found", "Block A").id
    second = notifications.notify(user.user_id, "mining", "block_found", "Block B").id
    # Sender A: counts under the lock and claims, not committed yet.
    assert hourly_cap.over_cap(first, "email", utcnow()) is False
    db.session.execute(sa.update(NotificationDelivery).where(NotificationDelivery.notification_id == first)
                       .values(status="sending", attempts=1, lease_expires_at=utcnow() + timedelta(minutes=5)))
    outcome: list[str] = []

    def sender_b() -> None:
        with app.app_context():
            outcome.append(email_service.deliver(second))

    thread = threading.Thread(target=sender_b)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and outcome == []  # waiting for A's lock
    db.session.commit()  # A's claim commits, the lock is released
    thread.join(10)
    assert outcome == ["held"] and smtp.raw == []
    assert [d.status for d in deliveries_of(user)] == ["sending", "held"]


def test_a_failed_summary_is_retried_and_sent_once(mail, make_user):
    app, smtp = mail
    user = make_user(email="retry@example.org")
    settings(user, quiet_hours={"start": "00:00", "end": "06:00"})
    with time_machine.travel(datetime(2026, 11, 30, 1, 0, tzinfo=UTC), tick=True):
        notifications.notify(user.user_id, "mining", "block_found", "Block A")
        notifications.notify(user.user_id, "mining", "block_found", "Block B")
    smtp.refuse = 1
    with time_machine.travel(datetime(2026, 11, 30, 6, 1, tzinfo=UTC), tick=True):
        assert summaries.send_due() == []  # refused: logged, rows back to held
        assert [d.status for d in deliveries_of(user)] == ["held", "held"]
        assert len(summaries.send_due()) == 1
        assert summaries.send_due() == []
    assert len(smtp.raw) == 1
    rows = deliveries_of(user)
    assert [(d.status, d.attempts) for d in rows] == [("sent", 2), ("sent", 2)]
    attempts = list(db.session.scalars(sa.select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == rows[0].id)
                                       .order_by(DeliveryAttempt.attempt)))
    assert [(a.channel, a.attempt, a.status) for a in attempts] == [("email", 1, "failed"), ("email", 2, "sent")]
    assert "451" in attempts[0].error


def test_a_summary_claimed_by_another_run_is_not_sent_again(mail, make_user):
    """Two runs for one user (two workers): the second claims nothing."""
    app, smtp = mail
    user = make_user(email="twice@example.org")
    settings(user, digest="daily")
    with time_machine.travel(datetime(2026, 11, 30, 7, 0, tzinfo=UTC), tick=True):
        notifications.notify(user.user_id, "mining", "block_found", "Block")
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    oldest = deliveries_of(user)[0].created_at
    first = summaries.send_for_user(user.user_id, oldest, now)
    second = summaries.send_for_user(user.user_id, oldest, now)
    assert first is not None and second is None and len(smtp.raw) == 1


# ---- the raw List-Unsubscribe header and per-kind templates ----------------------------------


def test_list_unsubscribe_goes_out_unencoded_for_a_long_user_id(mail, make_user):
    app, smtp = mail
    user = make_user("bc1q" + "x" * 124, email="long@example.org")
    settings(user, timezone="Europe/Berlin")
    notifications.notify(user.user_id, "mining", "worker_offline", "rig went offline", "rig has been offline.",
                         data={"at": "2026-11-30T02:12:00Z", "workers": [f"{user.user_id}.rig"]})
    run_jobs(app, "email", scheduler=True)
    [raw] = smtp.raw
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    [line] = [h for h in headers.split("\r\n") if h.startswith("List-Unsubscribe:")]
    assert line.startswith("List-Unsubscribe: <https://mining.example/unsubscribe/") and line.endswith(">")
    assert "=?" not in line and len(line) > 78  # one plain line, not folded or RFC 2047-encoded
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in headers
    # The kind's own template, with the event's time in the user's zone.
    [message] = smtp.messages
    text = text_of(message)
    assert "When: Mon 30 Nov 2026, 03:12 CET" in text
    assert "you can mute a worker" in text and "Workers: " in text
    assert '<time datetime="2026-11-30T02:12:00Z">Mon 30 Nov 2026, 03:12 CET</time>' in html_of(message)


# ---- delivery attempts and resuming -----------------------------------------------------------


def test_each_email_attempt_is_recorded(mail, make_user):
    app, smtp = mail
    user = make_user(email="attempts@example.org")
    settings(user)
    smtp.refuse = 1
    row = notifications.notify(user.user_id, "mining", "block_found", "Block!")
    row_id = row.id
    run_jobs(app, "email", scheduler=True)
    import time as _time

    _time.sleep(1.2)  # the 1 s back-off
    run_jobs(app, "email", scheduler=True)
    [delivery] = deliveries_of(user)
    attempts = list(db.session.scalars(sa.select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
                                       .order_by(DeliveryAttempt.id)))
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "sent")]
    assert delivery.status == "sent" and len(smtp.raw) == 1 and row_id == delivery.notification_id


def test_a_broadcast_that_stopped_half_way_resumes_and_nobody_gets_it_twice(app, make_user):
    from webapp.services import broadcasts

    users = sorted([make_user() for _ in range(5)], key=lambda u: u.user_id)
    admin = users[0]
    row = broadcasts.create_broadcast(admin, title="Pool maintenance", body="Tonight.")
    # The first batch (two users) committed, then the fan-out's process died.
    for user in users[:2]:
        notifications.notify(user.user_id, "system", "broadcast", row.title, row.body, None,
                             {"broadcast_id": row.id}, commit=False)
    row.status, row.sent, row.cursor = "running", 2, users[1].user_id
    row.heartbeat_at = datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    from rq import Queue

    Queue("default", connection=app.extensions["redis_raw"]).enqueue("jobs.email.sweep_email_deliveries")
    run_jobs(app)  # the sweep re-enqueues the fan-out ...
    run_jobs(app)  # ... which goes on after the cursor
    db.session.expire_all()
    counts = dict(db.session.execute(
        sa.select(Notification.user_id, sa.func.count()).where(Notification.subtype == "broadcast")
        .group_by(Notification.user_id)).all())
    everyone = set(db.session.scalars(sa.select(User.user_id)))
    assert counts == {u: 1 for u in everyone}
    done = db.session.get(Broadcast, row.id)
    assert done.status == "done" and done.sent == len(everyone)


def test_a_live_fan_out_is_not_taken_over(app, make_user):
    from webapp.services import broadcasts

    admin = make_user()
    row = broadcasts.create_broadcast(admin, title="Hello")
    row.status, row.heartbeat_at = "running", datetime.now(UTC)
    db.session.commit()
    assert broadcasts.resume_stalled() == []
    broadcasts.fan_out(row.id)  # another job is on it: does nothing
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0


# ---- settings contract ------------------------------------------------------------------------


def test_engine_settings_round_trip_and_reject_bad_values(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    got = client.get("/api/settings", headers=headers).get_json()["notifications"]
    assert got["quiet_hours"] is None and got["digest"] == "off" and got["max_per_hour"] is None
    assert got["worker_offline"] == {"after_minutes": 15, "muted_workers": []}
    assert got["push"]["mining"] is True and got["push"]["social"] is False
    body = {"notifications": {"timezone": "Asia/Tokyo", "quiet_hours": {"start": "23:30", "end": "06:15"},
                              "digest": "weekly", "max_per_hour": 5,
                              "worker_offline": {"after_minutes": 30, "muted_workers": ["rig-2", "rig-2"]},
                              "push": {"social": True}}}
    done = client.patch("/api/settings", json=body, headers=headers)
    assert done.status_code == 200
    n = done.get_json()["notifications"]
    assert n["quiet_hours"] == {"start": "23:30", "end": "06:15"} and n["digest"] == "weekly"
    assert n["max_per_hour"] == 5 and n["worker_offline"] == {"after_minutes": 30, "muted_workers": ["rig-2"]}
    assert n["push"]["social"] is True and n["push"]["mining"] is True
    cleared = client.patch("/api/settings", json={"notifications": {"quiet_hours": None, "max_per_hour": None}},
                           headers=headers).get_json()["notifications"]
    assert cleared["quiet_hours"] is None and cleared["max_per_hour"] is None and cleared["digest"] == "weekly"
    for bad in ({"quiet_hours": {"start": "24:00", "end": "06:00"}}, {"quiet_hours": {"start": "06:00", "end": "06:00"}},
                {"digest": "hourly"}, {"max_per_hour": 0}, {"max_per_hour": 101},
                {"worker_offline": {"after_minutes": 4}}, {"worker_offline": {"after_minutes": 1441}},
                {"push": {"nonsense": True}}, {"timezone": "Mars/Olympus"}):
        answer = client.patch("/api/settings", json={"notifications": bad}, headers=headers)
        assert answer.status_code == 400, bad
        assert answer.get_json()["error"]["code"]
