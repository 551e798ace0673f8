"""Local time: the ``localtime`` filter writes ``<time datetime title>`` in
the viewer's zone, days are grouped by the viewer's calendar, and events
show when they happened (``data.at``), not when they were processed."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask

from webapp import formatting
from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent, UserActivity
from webapp.services import accounts, activity, notifications, preferences

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
# 23:30 UTC on 20 Nov: already the 21st in Berlin (UTC+1), still the 20th in New York (UTC-5).
LATE = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
TIME_TAG = re.compile(r'<time(?: class="[^"]*")? datetime="([^"]+)" title="([^"]+)" data-style="([a-z_]+)">([^<]*)</time>')


def set_zone(user, zone: str) -> None:
    row = accounts.get_settings_row(user.user_id)
    row.notifications = {**row.notifications, "timezone": zone}
    db.session.commit()


@pytest.mark.parametrize(("zone", "style", "text", "title"), [
    (BERLIN, "datetime", "2026-11-21 00:30", "Saturday 21 November 2026, 00:30:00 CET"),
    (NEW_YORK, "datetime", "2026-11-20 18:30", "Friday 20 November 2026, 18:30:00 EST"),
    (BERLIN, "date", "2026-11-21", None),
    (NEW_YORK, "date", "2026-11-20", None),
    (BERLIN, "clock", "00:30", None),
    (UTC, "datetime_seconds", "2026-11-20 23:30:00", "Friday 20 November 2026, 23:30:00 UTC"),
])
def test_time_tag_in_two_zones_across_a_day_boundary(zone, style, text, title):
    tag = formatting.time_tag(LATE, style, zone)
    stamp, full, shown_style, shown = TIME_TAG.fullmatch(str(tag)).groups()
    assert stamp == "2026-11-20T23:30:00Z" and shown_style == style and shown == text
    if title:
        assert full == title


def test_day_grouping_uses_the_viewers_calendar():
    with time_machine.travel(datetime(2026, 11, 21, 8, 0, tzinfo=UTC), tick=False):
        now = datetime.now(UTC)
        assert formatting.group_of(LATE, now, BERLIN) == "today"  # 00:30 on the 21st
        assert formatting.group_of(LATE, now, NEW_YORK) == "yesterday"  # 18:30 on the 20th
        assert formatting.group_of(LATE, now) == "yesterday"
        assert formatting.notification_time(LATE, BERLIN) == "00:30"
        assert formatting.notification_time(LATE - timedelta(days=3), NEW_YORK) == "17 Nov 18:30"
        assert formatting.day_label(LATE.astimezone(BERLIN).date(), BERLIN) == "Today"
        assert formatting.day_label(LATE.astimezone(NEW_YORK).date(), NEW_YORK) == "Yesterday"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "just now"), (59, "just now"), (60, "1 min ago"), (150, "2 min ago"), (3599, "59 min ago"),
    (3600, "1 h ago"), (86399, "23 h ago"), (86400, "1 day ago"), (3 * 86400, "3 days ago"), (-300, "in 5 min"),
])
def test_relative_time(seconds, text):
    assert formatting.relative_time(LATE - timedelta(seconds=seconds), now=LATE) == text


def test_the_filter_reads_the_viewer_zone_and_is_utc_elsewhere():
    app = Flask(__name__)
    formatting.init_template_filters(app)
    template = app.jinja_env.from_string('{{ at | localtime("clock", "muted") }}')
    with app.app_context():
        assert 'class="muted"' in template.render(at=LATE) and ">23:30</time>" in template.render(at=LATE)
    app.extensions["viewer_zone"] = lambda: BERLIN
    with app.test_request_context("/"):
        assert ">00:30</time>" in template.render(at=LATE)
    assert formatting.time_tag(None) == ""


def test_happened_at_prefers_a_readable_data_at():
    n = {"created_at": "2026-11-20T19:32:00Z", "data": {"at": "2026-11-20T17:34:00Z"}}
    assert formatting.happened_at(n) == "2026-11-20T17:34:00Z"
    for data in ({"at": "yesterday"}, {"at": 5}, {"at": "x" * 100}, None, {}):
        assert formatting.happened_at({"created_at": "2026-11-20T19:32:00Z", "data": data}) == "2026-11-20T19:32:00Z"


def test_a_notification_from_another_day_than_its_arrival_shows_that_day():
    """The list groups by arrival (Today, Yesterday); an event that arrived
    the next day (a late ingest, a replay) says its day, not a bare clock
    time that reads as later today."""
    app = Flask(__name__)
    formatting.init_template_filters(app)
    template = app.jinja_env.from_string("{{ n | notification_when }}")
    late = {"created_at": "2026-11-21T06:00:00Z", "data": {"at": "2026-11-20T23:49:00Z"}}
    same_day = {"created_at": "2026-11-21T06:00:00Z", "data": {"at": "2026-11-21T05:49:00Z"}}
    with time_machine.travel(datetime(2026, 11, 21, 8, 0, tzinfo=UTC), tick=False), app.app_context():
        stamp, _, style, text = TIME_TAG.fullmatch(template.render(n=late)).groups()
        assert (stamp, style, text) == ("2026-11-20T23:49:00Z", "day_clock", "20 Nov 23:49")
        assert TIME_TAG.fullmatch(template.render(n=same_day)).groups()[2:] == ("notification", "05:49")
    # In Berlin both are on the 21st: a clock time is enough.
    app.extensions["viewer_zone"] = lambda: BERLIN
    with time_machine.travel(datetime(2026, 11, 21, 8, 0, tzinfo=UTC), tick=False), app.test_request_context("/"):
        assert TIME_TAG.fullmatch(template.render(n=late)).groups()[2:] == ("notification", "00:49")


def test_pages_write_times_in_the_users_zone(client, make_user, login_as):
    user = make_user()
    set_zone(user, "Europe/Berlin")
    db.session.add(MiningEvent(stream="mining:share_best_diff", entry_id="1-0", event="share_best_diff", ts=LATE,
                               user_id=user.user_id, worker=f"{user.user_id}.rig",
                               data={"new_best": 5e6, "prev_best": 0, "timeframe": "alltime"}))
    stats = db.session.get(MinerStats, user.user_id) or MinerStats(user_id=user.user_id)
    stats.last_share_at = datetime.now(UTC) - timedelta(minutes=3)
    db.session.add(stats)
    # A personal best ingested two hours late: the notification shows when it happened.
    notifications.notify(user.user_id, "mining", "personal_best", "New best", data={"at": "2026-11-20T17:34:00Z"})
    row = activity.record_activity(user.user_id, "badge_earned", "Badge")
    db.session.flush()
    db.session.get(UserActivity, row.id).created_at = LATE
    db.session.commit()
    login_as(user)

    profile = client.get(f"/miners/{user.user_id}").get_data(as_text=True)
    assert 'data-tz="Europe/Berlin"' in profile and 'id="timezone-banner"' not in profile
    tags = {m.group(1): m.groups() for m in TIME_TAG.finditer(profile)}
    assert tags["2026-11-20T23:30:00Z"][3] == "2026-11-21 00:30"  # the personal best, Berlin time
    assert any(style == "relative" and text == "3 min ago" for _, _, style, text in tags.values())

    listing = client.get("/notifications").get_data(as_text=True)
    stamps = [m.groups() for m in TIME_TAG.finditer(listing)]
    assert ("2026-11-20T17:34:00Z", "Friday 20 November 2026, 18:34:00 CET", "notification", "20 Nov 18:34") in stamps

    timeline = client.get("/activity").get_data(as_text=True)
    assert 'data-day="2026-11-21"' in timeline  # 23:30 UTC is the 21st in Berlin
    assert '<time class="muted" datetime="2026-11-20T23:30:00Z"' in timeline and ">00:30</time>" in timeline

    set_zone(user, "America/New_York")
    timeline = client.get("/activity").get_data(as_text=True)
    assert 'data-day="2026-11-20"' in timeline and ">18:30</time>" in timeline

    sessions = [m.groups() for m in TIME_TAG.finditer(client.get("/settings").get_data(as_text=True))]
    assert sessions and all(title.endswith(("EST", "EDT")) for _, title, _, _ in sessions)


def test_a_user_on_utc_is_offered_the_browser_zone(client, make_user, login_as):
    user = make_user()
    login_as(user)
    html = client.get("/activity").get_data(as_text=True)
    assert 'data-tz="UTC"' in html and 'id="timezone-banner"' in html and "hidden" in html
    assert str(preferences.user_timezone(user.user_id)) == "UTC"
    anonymous = client.application.test_client().get(f"/miners/{user.user_id}").get_data(as_text=True)
    assert "data-tz=" not in anonymous and 'id="timezone-banner"' not in anonymous
