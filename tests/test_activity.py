"""Activity feed: the service, endpoint 14, the internal endpoint and the
/activity page (API.md; issue 5 items 1–3)."""
from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import ACTIVITY_TYPES, Notification, UserActivity
from webapp.services import activity
from webapp.services.errors import ValidationError

SERVICE = {"Authorization": "Bearer test-service-token"}


def add(user_id: str, n: int = 1, activity_type: str = "badge_earned", **fields) -> list[int]:
    """Record ``n`` activities and commit; returns their ids."""
    rows = [activity.record_activity(user_id, activity_type, f"{activity_type} #{i}", **fields) for i in range(n)]
    db.session.commit()
    return [row.id for row in rows]


def feed(client, headers, **params):
    resp = client.get("/api/activity", headers=headers, query_string=params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


# ---- service ----------------------------------------------------------------


def test_record_activity_accepts_exactly_the_14_types(app, make_user):
    user = make_user()
    assert len(ACTIVITY_TYPES) == 14
    for activity_type in ACTIVITY_TYPES:
        activity.record_activity(user.user_id, activity_type, "ok")
    db.session.commit()
    stored = set(db.session.scalars(select(UserActivity.activity_type).where(UserActivity.user_id == user.user_id)))
    assert stored == set(ACTIVITY_TYPES)


@pytest.mark.parametrize("bad", ["share", "SHARE_SUBMITTED", "", "coop_created", "personal_best"])
def test_record_activity_refuses_any_other_type(app, make_user, bad):
    with pytest.raises(ValidationError):
        activity.record_activity(make_user().user_id, bad, "no")


@pytest.mark.parametrize("fields", [
    dict(title=""),
    dict(title="x" * 201),
    dict(title="nul\x00"),
    dict(title="ok", data={"x": float("nan")}),
    dict(title="ok", data={"x": [1, float("inf")]}),
    dict(title="ok", data=["not", "an", "object"]),
    dict(title="ok", link="javascript:alert(1)"),
    dict(title="ok", link="//evil.example/x"),
    dict(title="ok", description="d" * 2001),
])
def test_record_activity_rejects_unsafe_fields(app, make_user, fields):
    with pytest.raises(ValidationError):
        activity.record_activity(make_user().user_id, "badge_earned", **fields)


def test_record_activity_keeps_safe_fields(app, make_user):
    user = make_user()
    row = activity.record_activity(user.user_id, "badge_earned", "Badge", link="https://example.org/b", data={"n": 1.5})
    db.session.commit()
    assert row.id is not None


# ---- endpoint 14 -----------------------------------------------------------------


def test_feed_newest_first(client, make_user, auth_headers):
    """Seed integration test 9: the caller's feed, newest first, in the API.md shape."""
    user, other = make_user(), make_user()
    add(other.user_id, 2)
    activity.record_activity(user.user_id, "coop_joined", "Joined Alpha", data={"cooperative_id": 1}, link="/coop")
    db.session.commit()
    activity.record_activity(user.user_id, "share_submitted", "New personal best", description="difficulty 1.2M",
                             data={"personal_best": True, "difficulty": 1.2e6})
    db.session.commit()
    activity.record_activity(user.user_id, "block_found", "Block found!")
    db.session.commit()

    body = feed(client, auth_headers(user))
    items = body["activities"]
    assert [a["activity_type"] for a in items] == ["block_found", "share_submitted", "coop_joined"]
    assert [a["id"] for a in items] == sorted((a["id"] for a in items), reverse=True)
    times = [a["created_at"] for a in items]
    assert times == sorted(times, reverse=True) and all(t.endswith("Z") for t in times)
    assert set(items[1]) == {"id", "activity_type", "title", "description", "data", "link", "created_at"}
    assert items[1]["data"] == {"personal_best": True, "difficulty": 1.2e6}
    assert items[2]["link"] == "/coop"
    assert body["next_cursor"] is None


def test_cursor_pages_have_no_gaps_or_repeats_while_new_entries_arrive(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    original = add(user.user_id, 47)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        body = feed(client, headers, **params)
        seen += [a["id"] for a in body["activities"]]
        pages += 1
        add(user.user_id, 3, "game_played")  # new entries land on top meanwhile
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == sorted(original, reverse=True)  # every original entry exactly once, in order
    newest = feed(client, headers, limit=1)["activities"][0]
    assert newest["activity_type"] == "game_played" and newest["id"] > max(original)


def test_type_filter_one_or_several(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    for activity_type in ("badge_earned", "level_up", "coop_joined", "badge_earned", "lesson_completed"):
        add(user.user_id, 1, activity_type)
    one = feed(client, headers, type="badge_earned")["activities"]
    assert [a["activity_type"] for a in one] == ["badge_earned", "badge_earned"]
    repeated = client.get("/api/activity?type=level_up&type=coop_joined", headers=headers).get_json()["activities"]
    assert [a["activity_type"] for a in repeated] == ["coop_joined", "level_up"]
    comma = feed(client, headers, type="level_up, lesson_completed")["activities"]
    assert [a["activity_type"] for a in comma] == ["lesson_completed", "level_up"]
    # filtered pages still chain by cursor
    first = feed(client, headers, type="badge_earned", limit=1)
    second = feed(client, headers, type="badge_earned", limit=1, cursor=first["next_cursor"])
    assert second["activities"][0]["id"] < first["activities"][0]["id"] and second["next_cursor"] is None


def test_before_and_after_bound_the_time(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    ids = add(user.user_id, 5)
    for i, row_id in enumerate(ids):  # one entry per hour, 12:00 .. 16:00
        db.session.get(UserActivity, row_id).created_at = base + timedelta(hours=i)
    db.session.commit()
    titles = lambda body: [a["created_at"] for a in body["activities"]]  # noqa: E731
    assert titles(feed(client, headers, after="2024-05-01T14:00:00Z")) == [
        "2024-05-01T16:00:00Z", "2024-05-01T15:00:00Z", "2024-05-01T14:00:00Z"]
    assert titles(feed(client, headers, before="2024-05-01T14:00:00+00:00")) == [
        "2024-05-01T13:00:00Z", "2024-05-01T12:00:00Z"]
    both = feed(client, headers, after="2024-05-01T15:00:00+02:00", before="2024-05-01T15:00:00")
    assert titles(both) == ["2024-05-01T14:00:00Z", "2024-05-01T13:00:00Z"]
    # an unencoded '+' arrives as a space and is still understood
    assert titles(client.get("/api/activity?before=2024-05-01T13:00:00+00:00", headers=headers).get_json()) == [
        "2024-05-01T12:00:00Z"]


@pytest.mark.parametrize("query", [
    # unknown or differently spelled types
    "type=bogus", "type=badge_earned,bogus", "type=badge_earned&type=Badge_Earned",
    # time bounds that are not times, or an empty window
    "before=yesterday", "after=2024-13-01", "after=0001-01-01T00:00:00%2B05:00",
    "after=2024-05-02T00:00:00Z&before=2024-05-01T00:00:00Z",
    # limits and cursors
    "limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5", "cursor=!!!", "cursor=aWQ6eA",
])
def test_a_bad_query_is_a_400_validation_error(client, make_user, auth_headers, query):
    resp = client.get(f"/api/activity?{query}", headers=auth_headers(make_user()))
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "validation_error"


def test_limit_100_is_accepted_and_an_oversized_cursor_refused(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    add(user.user_id, 3)
    assert len(feed(client, headers, limit=100)["activities"]) == 3
    huge = base64.urlsafe_b64encode(b"id:" + b"9" * 40).decode().rstrip("=")
    assert client.get("/api/activity", headers=headers, query_string={"cursor": huge}).status_code == 400


def test_feed_is_the_callers_own_and_needs_credentials(client, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    add(alice.user_id, 2)
    assert feed(client, auth_headers(bob))["activities"] == []
    resp = client.get("/api/activity")
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthorized"


# ---- POST /api/internal/activity ---------------------------------------------------


def test_internal_endpoint_accepts_each_of_the_14_types_with_the_token(client, make_user, auth_headers):
    user = make_user()
    for activity_type in ACTIVITY_TYPES:
        resp = client.post("/api/internal/activity", headers=SERVICE, json={
            "user_id": user.user_id, "activity_type": activity_type, "title": f"T {activity_type}",
            "description": "from another service", "data": {"source": "test", "n": 3}, "link": "/activity"})
        assert resp.status_code == 201, (activity_type, resp.get_json())
        body = resp.get_json()
        assert body["activity"]["activity_type"] == activity_type and body["notification"] is None
    listed = feed(client, auth_headers(user), limit=100)["activities"]
    assert [a["activity_type"] for a in listed] == list(reversed(ACTIVITY_TYPES))
    assert listed[0]["data"] == {"source": "test", "n": 3}


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Bearer ", "Basic test-service-token",
                                    "Bearer test-service-token-and-more", "test-service-token"])
def test_internal_endpoint_refuses_missing_or_wrong_token(client, make_user, header):
    user = make_user()
    headers = {"Authorization": header} if header is not None else {}
    resp = client.post("/api/internal/activity", headers=headers,
                       json={"user_id": user.user_id, "activity_type": "badge_earned", "title": "Badge"})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"
    assert db.session.scalar(select(UserActivity.id)) is None


def test_internal_endpoint_refuses_a_user_token_and_an_empty_service_token(make_app, make_user, auth_headers, client):
    user = make_user()
    body = {"user_id": user.user_id, "activity_type": "badge_earned", "title": "Badge"}
    assert client.post("/api/internal/activity", headers=auth_headers(user), json=body).status_code == 401
    closed = make_app(SERVICE_TOKEN="").test_client()
    for header in ("Bearer ", "Bearer test-service-token", ""):
        assert closed.post("/api/internal/activity", headers={"Authorization": header}, json=body).status_code == 401


def test_internal_endpoint_validates_the_body(client, make_user):
    user = make_user()
    good = {"user_id": user.user_id, "activity_type": "badge_earned", "title": "Badge"}
    cases = [
        good | {"activity_type": "bogus"},
        good | {"title": 5},
        good | {"title": ""},
        good | {"data": [1, 2]},
        good | {"data": "text"},
        good | {"link": "javascript:alert(1)"},
        good | {"extra": True},
        good | {"notify": {"category": "bogus"}},
        good | {"notify": {"category": "social", "unknown": 1}},
        good | {"notify": "social"},
        good | {"description": ["a"]},
    ]
    for body in cases:
        resp = client.post("/api/internal/activity", headers=SERVICE, json=body)
        assert resp.status_code == 400, body
        assert resp.get_json()["error"]["code"] == "validation_error"
    nan = json.dumps(good)[:-1] + ', "data": {"x": NaN}}'
    resp = client.post("/api/internal/activity", headers=SERVICE, data=nan, content_type="application/json")
    assert resp.status_code == 400
    assert client.post("/api/internal/activity", headers=SERVICE, data="{", content_type="application/json").status_code == 400
    missing = client.post("/api/internal/activity", headers=SERVICE, json=good | {"user_id": "bc1qnobody"})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert db.session.scalar(select(UserActivity.id)) is None  # nothing stored by any refused call


def test_internal_notify_creates_a_notification_with_the_activity(client, make_user):
    user = make_user()
    resp = client.post("/api/internal/activity", headers=SERVICE, json={
        "user_id": user.user_id, "activity_type": "badge_earned", "title": "Badge: First block",
        "description": "You found your first block", "link": "/badges/1",
        "notify": {"category": "gamification"}})
    assert resp.status_code == 201
    body = resp.get_json()
    note = body["notification"]
    assert note["category"] == "gamification" and note["subtype"] == "badge_earned"
    assert note["title"] == "Badge: First block" and note["body"] == "You found your first block"
    assert note["link"] == "/badges/1" and note["data"]["activity_id"] == body["activity"]["id"]
    stored = db.session.get(Notification, note["id"])
    assert stored.user_id == user.user_id and stored.is_read is False

    custom = client.post("/api/internal/activity", headers=SERVICE, json={
        "user_id": user.user_id, "activity_type": "match_completed", "title": "Match won",
        "notify": {"category": "competition", "subtype": "match_result", "title": "You won", "body": "3-1"}})
    assert custom.status_code == 201
    assert {k: custom.get_json()["notification"][k] for k in ("category", "subtype", "title", "body")} == {
        "category": "competition", "subtype": "match_result", "title": "You won", "body": "3-1"}


def test_internal_notify_respects_preferences_and_is_atomic(client, make_user):
    from webapp.services import accounts, preferences

    user = make_user()
    accounts.update_settings(user, preferences.SettingsPatch.model_validate(
        {"notifications": {"categories": {"gamification": {"enabled": False}}}}))
    resp = client.post("/api/internal/activity", headers=SERVICE, json={
        "user_id": user.user_id, "activity_type": "level_up", "title": "Level 3", "notify": {"category": "gamification"}})
    assert resp.status_code == 201 and resp.get_json()["notification"] is None
    count = lambda model: len(db.session.scalars(select(model.id).where(model.user_id == user.user_id)).all())  # noqa: E731
    before = count(UserActivity)
    bad = client.post("/api/internal/activity", headers=SERVICE, json={
        "user_id": user.user_id, "activity_type": "level_up", "title": "Level 4",
        "notify": {"category": "social", "link": "javascript:x"}})
    assert bad.status_code == 400
    assert count(UserActivity) == before and count(Notification) == 0


def test_feed_is_ordered_by_when_it_happened_after_a_lagging_ingest(client, make_user, auth_headers):
    """A lagging ingest records a 17:34 entry after the 19:32 and 19:33 ones:
    the feed orders by when it happened, keyset on (time, id), ties by id."""
    user, other = make_user(), make_user()
    headers = auth_headers(user)
    day = datetime(2024, 5, 1, tzinfo=UTC)
    at = {"19:32": day.replace(hour=19, minute=32), "19:33": day.replace(hour=19, minute=33),
          "17:34": day.replace(hour=17, minute=34)}
    ids = {}
    for label in ("19:32", "19:33", "17:34", "tie"):
        ids[label] = add(user.user_id, 1, "share_submitted")[0]
        db.session.get(UserActivity, ids[label]).created_at = at.get(label, at["19:32"])
    other_id = add(other.user_id, 1)[0]
    db.session.commit()
    expected = [ids["19:33"], ids["tie"], ids["19:32"], ids["17:34"]]
    assert [a["id"] for a in feed(client, headers)["activities"]] == expected
    seen, cursor = [], None
    while True:  # one entry per page: every step goes through the keyset
        body = feed(client, headers, limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [a["id"] for a in body["activities"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    filtered = feed(client, headers, type="share_submitted", limit=2)
    assert [a["id"] for a in filtered["activities"]] == expected[:2]
    rest = feed(client, headers, type="share_submitted", cursor=filtered["next_cursor"])
    assert [a["id"] for a in rest["activities"]] == expected[2:]
    # a cursor naming someone else's (or no) entry is a clear 400
    foreign = base64.urlsafe_b64encode(f"id:{other_id}".encode()).decode().rstrip("=")
    resp = client.get("/api/activity", headers=headers, query_string={"cursor": foreign})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "validation_error"


# ---- /activity page ------------------------------------------------------------------


def _types_in(html: str) -> list[str]:
    return re.findall(r'class="activity-item[^"]*" id="activity-\d+" data-type="([a-z_]+)"', html)


def test_activity_page_groups_by_day_with_icons_and_chips(client, auth, make_user):
    user = make_user()
    # ids grow with time, as they do when rows are recorded as things happen
    ids = add(user.user_id, 1, "block_found") + add(user.user_id, 1, "share_submitted", data={"personal_best": True})
    add(user.user_id, 1, "coop_joined")
    db.session.get(UserActivity, ids[0]).created_at = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    db.session.get(UserActivity, ids[1]).created_at = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    db.session.commit()
    auth.login(user.user_id)
    html = client.get("/activity").get_data(as_text=True)
    assert f'id="day-2024-05-01-{ids[0]}"' in html and f'id="day-2024-05-02-{ids[1]}"' in html
    assert html.index(">Today<") < html.index('data-day="2024-05-02"') < html.index('data-day="2024-05-01"')
    assert "🏆" in html and "🧱" in html and "🤝" in html  # personal best, block, coop join
    assert _types_in(html) == ["coop_joined", "share_submitted", "block_found"]
    # filter chips: only the kinds this miner has, plus "All"
    assert re.findall(r'<a class="pill[^"]*" href="[^"]*" data-type="([a-z_]+)"', html) == [
        "share_submitted", "block_found", "coop_joined"]
    assert 'data-type="badge_earned"' not in html and 'aria-pressed' not in html and ">All</a>" in html
    filtered = client.get("/activity?type=block_found").get_data(as_text=True)
    assert _types_in(filtered) == ["block_found"]
    assert client.get("/activity?type=nope").status_code == 400


def test_activity_page_scrolls_and_polls(client, auth, make_user):
    user = make_user()
    ids = add(user.user_id, 25)
    auth.login(user.user_id)
    html = client.get("/activity").get_data(as_text=True)
    assert len(_types_in(html)) == 20
    more = re.search(r'id="activity-more"[^>]*hx-get="([^"]+)" hx-trigger="revealed"', html)
    assert more
    page = client.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"}).get_data(as_text=True)
    today = datetime.now(UTC).date().isoformat()
    top = f"{today}-{ids[-1]}"  # the section key: its day and first (newest) entry
    assert f'id="day-{top}-list"' in html
    assert f'hx-swap-oob="beforeend:#day-{top}-list"' in page  # continues the same day's list
    assert len(_types_in(page)) == 5 and f'id="activity-{ids[0]}"' in page
    assert 'hx-trigger="revealed"' not in page  # no more pages

    poll = re.search(r'id="activity-poll" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"after_id={ids[-1]}" in poll
    assert client.get(poll, headers={"HX-Request": "true"}).status_code == 204
    new_ids = add(user.user_id, 2, "level_up")
    fresh = client.get(poll, headers={"HX-Request": "true"})
    assert fresh.status_code == 200
    text = fresh.get_data(as_text=True)
    assert f'hx-swap-oob="afterbegin:#day-{top}-list"' in text
    assert _types_in(text) == ["level_up", "level_up"] and "activity-item new" in text
    assert f"after_id={new_ids[-1]}" in text  # the next poll starts after the newest shown


def test_entries_recorded_out_of_time_order_get_distinct_sections(client, auth, make_user):
    """Ingest stamps the event time, so entries are recorded out of time
    order: the page shows them in time order, and what the poll prepends is
    its own section with a unique DOM id; scrolling or polling only ever
    extends the section it names."""
    user = make_user()
    auth.login(user.user_id)
    days = [datetime(2024, 5, d, 12, tzinfo=UTC) for d in (1, 2, 1)]
    ids = []
    for when in days:
        ids += add(user.user_id, 1)
        db.session.get(UserActivity, ids[-1]).created_at = when
    db.session.commit()
    html = client.get("/activity").get_data(as_text=True)
    keys = re.findall(r'<section class="day" id="day-([0-9-]+)"', html)
    assert keys == [f"2024-05-02-{ids[1]}", f"2024-05-01-{ids[2]}"]  # in time order a day is one run
    poll = re.search(r'id="activity-poll" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"top_section=2024-05-02-{ids[1]}" in poll and f"after_id={ids[2]}" in poll
    new_id = add(user.user_id, 1)[0]  # recorded today: a new section on top
    text = client.get(poll, headers={"HX-Request": "true"}).get_data(as_text=True)
    today = datetime.now(UTC).date().isoformat()
    assert 'hx-swap-oob="afterbegin:#activity-days"' in text and f'id="day-{today}-{new_id}"' in text
    assert f"top_section={today}-{new_id}" in text


def test_activity_poll_on_an_empty_timeline_adds_a_day_section(client, auth, make_user):
    user = make_user()
    auth.login(user.user_id)
    html = client.get("/activity").get_data(as_text=True)
    assert 'id="activity-empty" class="muted">' in html  # visible empty state
    poll = re.search(r'id="activity-poll" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    add(user.user_id, 1, "coop_joined")
    text = client.get(poll, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-swap-oob="afterbegin:#activity-days"' in text and 'class="day"' in text
    assert 'id="activity-empty" class="muted" hidden hx-swap-oob="true"' in text


@pytest.mark.parametrize("path", ["/activity", "/activity/page?before_id=5", "/activity/new?after_id=0"])
def test_activity_pages_need_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


@pytest.mark.parametrize("path", ["/activity/new?after_id=x", "/activity/new?after_id=1&top_section=tomorrow",
                                  "/activity/new?after_id=1&top_section=2024-13-01-5",
                                  "/activity/page?before_id=-3", "/activity/page?before_id=1&type=zzz"])
def test_activity_fragments_validate_their_parameters(client, make_user, login_as, path):
    login_as(make_user())
    assert client.get(path, headers={"HX-Request": "true"}).status_code == 400

