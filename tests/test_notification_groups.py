"""Grouped notifications (issue 11 §4; API.md ``?grouped=true``), the
pages that show them and the notification-engine parts of the settings
page, the admin page's delivery health, and the service worker route."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import DeliveryAttempt, Notification, NotificationDelivery
from webapp.services import accounts, notifications, preferences

from .builders import bearer, make_coop


def _seed(admin) -> dict:
    coop, _, _ = make_coop(admin, name="Satoshi's Hunters")
    db.session.execute(sa.delete(Notification))  # only what this test sends
    db.session.commit()
    for i in range(7):
        notifications.notify_kind(admin.user_id, "coop_member_joined", data={"cooperative_id": coop.id},
                                  member=f"Miner {i}", coop=coop.name)
    for i in range(3):
        notifications.notify(admin.user_id, "mining", "personal_best", f"New personal best: {i}M")
    notifications.notify(admin.user_id, "system", "broadcast", "Maintenance", data={"broadcast_id": 1})
    return {"coop": coop}


def test_grouped_api_pages_groups_and_leaves_the_flat_list_alone(client, make_user):
    admin = make_user()
    seeded = _seed(admin)
    headers = bearer(admin)
    flat = client.get("/api/notifications?limit=50", headers=headers).get_json()
    assert len(flat["notifications"]) == 11 and "groups" not in flat
    assert flat["notifications"][0]["group_key"] == "broadcast:1"

    first = client.get("/api/notifications?grouped=true&limit=2", headers=headers)
    assert first.status_code == 200
    page = first.get_json()
    assert set(page) == {"groups", "next_cursor", "unread_count"} and page["unread_count"] == 11
    assert [(g["group_key"], g["count"], g["unread_count"]) for g in page["groups"]] == [
        ("broadcast:1", 1, 1), (f"personal_best:{admin.user_id}", 3, 3)]
    assert page["groups"][1]["latest"]["title"] == "New personal best: 2M"
    second = client.get(f"/api/notifications?grouped=true&limit=2&cursor={page['next_cursor']}",
                        headers=headers).get_json()
    coop_key = f"coop_member_joined:{seeded['coop'].id}"
    assert [(g["group_key"], g["count"]) for g in second["groups"]] == [(coop_key, 7)]
    assert second["next_cursor"] is None

    # Reading one row of a group lowers its unread count; filters apply inside groups.
    notifications.mark_read(admin.user_id, page["groups"][1]["latest"]["id"])
    again = client.get("/api/notifications?grouped=true&category=mining", headers=headers).get_json()
    assert [(g["count"], g["unread_count"]) for g in again["groups"]] == [(3, 2)]
    unread = client.get("/api/notifications?grouped=true&unread_only=true&category=mining",
                        headers=headers).get_json()
    assert [(g["count"], g["unread_count"]) for g in unread["groups"]] == [(2, 2)]
    assert client.get("/api/notifications?grouped=maybe", headers=headers).status_code == 400


def test_grouped_page_and_bell_show_one_expandable_row_per_group(client, make_user, login_as):
    admin = make_user()
    _seed(admin)
    login_as(admin)
    html = client.get("/notifications?grouped=1").get_data(as_text=True)
    assert "7 miners joined Satoshi&#39;s Hunters" in html and "3 new personal bests" in html
    feed = html[html.index('id="notification-feed"'):]
    assert feed.count("<details>") == 2  # the single broadcast is a plain row
    assert "Miner 0 joined Satoshi&#39;s Hunters." in html  # inside the expanded group
    assert 'aria-current="true"' in html
    flat = client.get("/notifications").get_data(as_text=True)
    flat_feed = flat[flat.index('id="notification-feed"'):]
    assert "7 miners joined" not in flat_feed and flat_feed.count("joined Satoshi&#39;s Hunters.") == 7
    bell = client.get("/settings").get_data(as_text=True)
    assert 'class="bell-group unread"' in bell and "7 miners joined Satoshi&#39;s Hunters" in bell


def test_the_notification_shows_when_it_was_emailed(client, make_user, login_as):
    user = make_user(email="m@example.org")
    accounts.update_settings(user, preferences.SettingsPatch.model_validate(
        {"notifications": {"timezone": "Europe/Berlin", "categories": {"mining": {"email": True}}}}))
    row = notifications.notify(user.user_id, "mining", "block_found", "Block!")
    delivery = db.session.scalars(sa.select(NotificationDelivery).where(
        NotificationDelivery.notification_id == row.id)).one()
    delivery.status, delivery.sent_at = "sent", datetime(2026, 11, 30, 9, 31, tzinfo=UTC)
    db.session.commit()
    login_as(user)
    html = client.get("/notifications").get_data(as_text=True)
    assert "e-mailed 10:31" in html  # in the miner's zone


def test_admin_sees_failures_per_channel(client, make_user, login_as):
    admin = make_user(is_admin=True)
    row = notifications.notify(admin.user_id, "mining", "block_found", "Block!")
    delivery = NotificationDelivery(notification_id=row.id, channel="push", status="failed")
    db.session.add(delivery)
    db.session.flush()
    db.session.add(DeliveryAttempt(delivery_id=delivery.id, channel="push", attempt=1, status="failed",
                                   error="500: push service down", created_at=datetime.now(UTC)))
    db.session.add(DeliveryAttempt(delivery_id=delivery.id, channel="push", attempt=0, status="failed",
                                   error="old", created_at=datetime.now(UTC) - timedelta(days=2)))
    db.session.commit()
    login_as(admin)
    html = client.get("/admin").get_data(as_text=True)
    section = html[html.index('id="delivery-health"'):]
    assert "Web Push</td>\n        <td>0</td>\n        <td>1</td>" in section
    assert "500: push service down" in section and ">old<" not in section


def test_settings_page_saves_the_engine_settings(client, make_user, login_as):
    user = make_user()
    hx = login_as(user)
    page = client.get("/settings").get_data(as_text=True)
    assert 'id="timezone"' in page and 'data-chosen="0"' in page and 'id="push-switch"' in page
    assert "js/settings.js" in page
    saved = client.post("/settings/delivery", data={
        "timezone": "Europe/Berlin", "quiet": "on", "quiet_start": "23:00", "quiet_end": "06:30",
        "digest": "daily", "max_per_hour": "4", "after_minutes": "30", "muted_workers": "rig-1\nrig-2, rig-3",
        "push.mining": "on", "push.social": "on"}, headers=hx)
    assert saved.status_code == 200 and "Saved" in saved.get_data(as_text=True)
    n = accounts.get_settings(user)["notifications"]
    assert n["timezone"] == "Europe/Berlin" and n["quiet_hours"] == {"start": "23:00", "end": "06:30"}
    assert n["digest"] == "daily" and n["max_per_hour"] == 4
    assert n["worker_offline"] == {"after_minutes": 30, "muted_workers": ["rig-1", "rig-2", "rig-3"]}
    assert n["push"] == {"mining": True, "gamification": False, "competition": False, "social": True,
                         "system": False}
    assert 'data-chosen="1"' in client.get("/settings").get_data(as_text=True)
    bad = client.post("/settings/delivery", data={"after_minutes": "2", "digest": "off"}, headers=hx)
    assert bad.status_code == 400
    # An emptied time zone field is refused, not "Saved" with the old zone kept.
    blank = client.post("/settings/delivery", data={"timezone": "  ", "digest": "off"}, headers=hx)
    assert blank.status_code == 400 and "Choose a time zone" in blank.get_data(as_text=True)
    assert accounts.get_settings(user)["notifications"]["timezone"] == "Europe/Berlin"


def test_service_worker_is_served_from_the_root(client):
    answer = client.get("/sw.js")
    assert answer.status_code == 200 and answer.mimetype == "application/javascript"
    assert answer.headers["Service-Worker-Allowed"] == "/"
    assert b'addEventListener("push"' in answer.data
