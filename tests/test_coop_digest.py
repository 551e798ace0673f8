"""The weekly e-mail to coop admins (issue "Coops people can find and join",
item 5) through a real SMTP server (aiosmtpd), PostgreSQL, Redis and RQ:
its content (new members, top miners without a member hidden from rankings,
open reports, the hashrate trend), the coopDigest opt-out and its
unsubscribe link, no address → no mail, and once per coop and ISO week
even when the job runs twice."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from rq import Queue

from webapp.extensions import db
from webapp.models import CoopHashrateSample, MinerStats, WorkerStatus
from webapp.services import accounts, coop_digest, coops, preferences, reports
from webapp.services import email as email_service

from .builders import make_coop, make_user, run_jobs
from .test_email import mail_app, smtp  # noqa: F401 - fixtures

FOUNDED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday, two weeks before
JOINED = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # Wednesday of ISO week 47
MONDAY = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)  # ISO week 48, after the 08:00 digest time


def _settings(user, **notifications):
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"notifications": notifications}))


def _coop_with_a_week():
    """A coop founded on FOUNDED whose admin has an address, an old member,
    two who joined on JOINED (one hides from coop rankings), best
    difficulties, live hashrate at MONDAY, an open report and hashrate
    samples: 1 TH/s average last week, 1.5 TH/s this week."""
    with time_machine.travel(FOUNDED, tick=True):
        admin = make_user(display_name="Admin Ada", email="ada@example.org")
        coop, _, (old,) = make_coop(admin, members=[make_user(display_name="Old Olga")], name="Shelf Miners")
    with time_machine.travel(JOINED, tick=True):
        ana, shy = make_user(display_name="New Ana"), make_user(display_name="Shy Sam")
        coops.join(ana, invite_code=coop.invite_code)
        coops.join(shy, invite_code=coop.invite_code)
        reports.create(ana, target_type="user", target_id=old.user_id, reason="spam")
    accounts.update_settings(shy, preferences.SettingsPatch.model_validate(
        {"privacy": {"showInCoopRankings": False}}))
    for user, best in ((admin, 2e9), (old, 5e9), (ana, 1e9), (shy, 9e12)):
        db.session.merge(MinerStats(user_id=user.user_id, best_difficulty=best, total_shares=1))
    for user, rate in ((shy, 3e12), (ana, 2e12), (old, 1e12)):
        db.session.add(WorkerStatus(worker=f"{user.user_id}.rig", user_id=user.user_id, is_online=True,
                                    last_sample_at=MONDAY, last_seen_at=MONDAY, hashrate_1h=rate))
    for day in range(7):
        db.session.add(CoopHashrateSample(cooperative_id=coop.id, total_hashrate=1e12, online_count=1,
                                          computed_at=MONDAY - timedelta(days=7 + day, hours=12)))
        db.session.add(CoopHashrateSample(cooperative_id=coop.id, total_hashrate=1.5e12, online_count=2,
                                          computed_at=MONDAY - timedelta(days=day, hours=12)))
    db.session.commit()
    return coop, admin


def _text(message) -> str:
    return message.get_body(("plain",)).get_content()


def _html(message) -> str:
    return message.get_body(("html",)).get_content()


def test_the_digest_tells_the_admin_the_week_once(mail_app):  # noqa: F811
    app, recorder = mail_app()
    with app.app_context():
        coop, admin = _coop_with_a_week()
        with time_machine.travel(MONDAY, tick=True):
            digest = coop_digest.build(coop.id)
            assert digest.new_members == ["New Ana", "Shy Sam"]
            # Shy Sam hides from coop rankings: not ranked, no figure (rankings.coop_leaderboard).
            assert [(m.rank, m.name) for m in digest.top_best_difficulty] == [
                (1, "Old Olga"), (2, "Admin Ada"), (3, "New Ana")]
            assert [(m.name, m.value) for m in digest.top_hashrate][:2] == [("New Ana", 2e12), ("Old Olga", 1e12)]
            assert digest.open_reports == 1
            assert (digest.trend.this_week, digest.trend.last_week, digest.trend.change_percent) == (
                1.5e12, 1e12, 50.0)

            assert coop_digest.send_weekly() == [coop.id]
            assert coop_digest.send_weekly() == []  # the same week again: nothing
        [message] = recorder.messages
        assert message["To"] == "ada@example.org"
        assert message["Subject"] == "Your week at Shelf Miners"
        unsubscribe = message["List-Unsubscribe"]
        assert unsubscribe.startswith("<https://mining.example/unsubscribe/") and unsubscribe.endswith(">")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text, html = _text(message), _html(message)
        for body in (text, html):
            assert "New Ana" in body and "Shy Sam" in body
            assert "Shy Sam:" not in body and "3 TH/s" not in body.replace("3.00", "3")
            assert "up 50.0% from 1" in body
            assert "1 open report" in body
        assert "<li>New Ana</li>" in html
        assert "https://mining.example/coop/moderation" in text

        # Next week: one more mail, for ISO week 49.
        with time_machine.travel(MONDAY + timedelta(days=7), tick=True):
            assert coop_digest.send_weekly() == [coop.id]
        assert len(recorder.messages) == 2
        assert db.session.get(type(coop), coop.id) is not None


def test_the_job_run_twice_sends_one_mail(mail_app):  # noqa: F811
    app, recorder = mail_app()
    with app.app_context():
        coop, _ = _coop_with_a_week()
        queue = Queue("default", connection=app.extensions["redis_raw"])
        with time_machine.travel(MONDAY, tick=True):
            queue.enqueue("jobs.coops.send_coop_digests")
            queue.enqueue("jobs.coops.send_coop_digests")
            run_jobs(app)
            assert [job.return_value() for job in
                    (queue.fetch_job(i) for i in queue.finished_job_registry.get_job_ids())] in ([1, 0], [0, 1])
        assert len(recorder.messages) == 1
        assert recorder.messages[0]["Subject"] == "Your week at Shelf Miners"


def test_not_before_the_admins_monday_morning_nor_for_a_coop_founded_since(mail_app):  # noqa: F811
    app, recorder = mail_app()
    with app.app_context():
        coop, admin = _coop_with_a_week()
        _settings(admin, timezone="America/Los_Angeles")  # Monday 08:00 there is 16:00 UTC
        with time_machine.travel(MONDAY, tick=True):
            # The digest of week 47 (Monday 16 November, 08:00 local) is still due.
            assert coop_digest.send_weekly() == [coop.id]
        with time_machine.travel(MONDAY + timedelta(hours=7), tick=True):
            assert coop_digest.send_weekly() == []  # 07:30 in Los Angeles: week 48 not yet
        with time_machine.travel(MONDAY + timedelta(hours=8), tick=True):
            assert coop_digest.send_weekly() == [coop.id]
            young, _, _ = make_coop(make_user(email="new@example.org"), name="Fresh")
            assert coop_digest.send_weekly() == []  # founded after this week's digest time
        assert len(recorder.messages) == 2


def test_opt_out_and_no_address_send_nothing(mail_app):  # noqa: F811
    app, recorder = mail_app()
    with app.app_context():
        coop, admin = _coop_with_a_week()
        with time_machine.travel(FOUNDED, tick=True):
            quiet_admin = make_user(email="quiet@example.org")
            quiet, _, _ = make_coop(quiet_admin, name="Quiet")
            _settings(quiet_admin, coopDigest=False)
            no_mail, _, _ = make_coop(make_user(), name="No Address")
        with time_machine.travel(MONDAY, tick=True):
            assert coop_digest.send_weekly() == [coop.id]
        assert [m["To"] for m in recorder.messages] == ["ada@example.org"]

        # The mail's unsubscribe link turns the toggle off: next week, nothing.
        token = email_service.unsubscribe_token(admin.user_id, "coopDigest")
        assert recorder.messages[0]["List-Unsubscribe"] == f"<https://mining.example/unsubscribe/{token}>"
        browser = app.test_client()
        page = browser.get(f"/unsubscribe/{token}")
        assert page.status_code == 200 and "weekly cooperative digest" in page.get_data(as_text=True)
        assert browser.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
        db.session.expire_all()
        assert preferences.user_notifications(admin.user_id)["coopDigest"] is False
        with time_machine.travel(MONDAY + timedelta(days=7), tick=True):
            assert coop_digest.send_weekly() == []
        assert len(recorder.messages) == 1


def test_the_settings_toggle(app, client, auth_headers):
    user = make_user()
    settings = client.get("/api/settings", headers=auth_headers(user)).get_json()["notifications"]
    assert settings["coopDigest"] is True
    answer = client.patch("/api/settings", json={"notifications": {"coopDigest": False}}, headers=auth_headers(user))
    assert answer.status_code == 200 and answer.get_json()["notifications"]["coopDigest"] is False
    bad = client.patch("/api/settings", json={"notifications": {"coopDigest": "no"}}, headers=auth_headers(user))
    assert bad.status_code == 400


def test_a_failed_send_is_retried_by_the_next_run(mail_app):  # noqa: F811
    app, recorder = mail_app(refuse="451 4.3.0 Mailbox busy, try later")
    with app.app_context():
        coop, _ = _coop_with_a_week()
        with time_machine.travel(MONDAY, tick=True):
            assert coop_digest.send_weekly() == []
            assert recorder.attempts == 1
            recorder.refuse = None
            assert coop_digest.send_weekly() == [coop.id]
            assert coop_digest.send_weekly() == []
        assert recorder.attempts == 2 and len(recorder.messages) == 1


def test_two_schedulers_at_the_same_moment_send_one_mail(mail_app):  # noqa: F811
    import threading

    app, recorder = mail_app()
    with app.app_context():
        coop_id = _coop_with_a_week()[0].id
    results: list[list[int]] = []
    start = threading.Barrier(2)

    def run() -> None:
        with app.app_context():
            start.wait()
            results.append(coop_digest.send_weekly(MONDAY))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [[], [coop_id]]
    assert len(recorder.messages) == 1


def test_the_trend_sentence():
    assert coop_digest.Trend(2e12, 4e12, -50.0).sentence() == (
        "2 TH/s on average this week, down 50.0% from 4 TH/s last week.")
    assert coop_digest.Trend(1e12, None, None).sentence() == "1 TH/s on average this week (no figure for last week)."
    assert coop_digest.Trend(None, 1e12, None).sentence() == "No hashrate was recorded this week."
    assert coop_digest.Trend(0.0, 0.0, None).sentence() == "0 H/s on average this week, as last week."


def test_the_settings_page_shows_the_toggle(app, client, login_as):
    user = make_user()
    login_as(user)
    page = client.get("/settings").get_data(as_text=True)
    assert 'name="coopDigest"' in page and "A weekly e-mail about the cooperative I run" in page
