"""The /settings page: privacy toggles and notification preferences saved
through htmx with the same service as PATCH /api/settings (issue 5 item 3)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import User, UserActivity
from webapp.services import accounts, preferences

ALL_PRIVACY = {"publicProfile": "on", "showOnLeaderboard": "on", "showCountryFlag": "on", "showInCoopRankings": "on",
               "showPresence": "on"}


@pytest.fixture
def logged_in(make_user, login_as):
    """A logged-in miner and the htmx headers (with the page's CSRF token)."""
    user = make_user(country_code="PT", email="miner@example.org")
    return user, login_as(user)


def _settings(user_id: str) -> dict:
    db.session.expire_all()
    return accounts.get_settings(db.session.get(User, user_id))


def test_settings_page_shows_current_values(client, logged_in):
    user, _ = logged_in
    accounts.update_settings(user, accounts.preferences.SettingsPatch.model_validate(
        {"privacy": {"showCountryFlag": False}, "notifications": {"categories": {"mining": {"email": True}}}}))
    html = client.get("/settings").get_data(as_text=True)
    assert re.search(r'name="publicProfile" value="on" checked', html)
    assert re.search(r'name="showCountryFlag" value="on">', html)  # unchecked
    assert re.search(r'name="mining.email" value="on"[^>]*checked', html)
    assert 'name="social.email"' not in html and 'name="gamification.email"' not in html  # in-app only
    for toggle in ("personalBest", "blockFoundAny", "workerStatus", "badgeEarned", "coopActivity"):
        assert f'name="{toggle}"' in html
    assert 'value="miner@example.org"' in html
    assert 'hx-post="/settings/privacy"' in html and 'hx-trigger="change, submit"' in html
    # The title is the page's name alone, and the page's parts and script are in the page, once.
    assert "<title>Settings · Solo Mining</title>" in html
    assert html.count('id="profile-link"') == 1 and html.count("js/settings.js") == 1


def test_privacy_toggle_via_htmx_changes_the_public_profile(client, logged_in):
    user, hx = logged_in
    shown = client.get(f"/api/public/miners/{user.user_id}")
    assert shown.status_code == 200 and shown.get_json()["country_code"] == "PT"

    resp = client.post("/settings/privacy", headers=hx, data={k: v for k, v in ALL_PRIVACY.items() if k != "showCountryFlag"})
    assert resp.status_code == 200
    assert "Saved ✓" in resp.get_data(as_text=True) and 'data-section="privacy"' in resp.get_data(as_text=True)
    assert _settings(user.user_id)["privacy"] == {"publicProfile": True, "showOnLeaderboard": True,
                                                  "showCountryFlag": False, "showInCoopRankings": True,
                                                  "showPresence": True}
    body = client.get(f"/api/public/miners/{user.user_id}").get_json()
    assert "country_code" not in body and body["user_id"] == user.user_id

    resp = client.post("/settings/privacy", headers=hx, data={"showOnLeaderboard": "on"})
    assert resp.status_code == 200
    assert _settings(user.user_id)["privacy"]["publicProfile"] is False
    hidden = client.get(f"/api/public/miners/{user.user_id}")
    missing = client.get("/api/public/miners/bc1qnobodyhere")
    assert hidden.status_code == 404 and hidden.get_data() == missing.get_data()
    # The same document PATCH /api/settings reads.
    api = client.get("/api/settings").get_json()
    assert api["privacy"]["publicProfile"] is False and api["privacy"]["showOnLeaderboard"] is True


def test_notification_preferences_via_htmx(client, logged_in):
    user, hx = logged_in
    form = {"mining.enabled": "on", "mining.email": "on", "competition.enabled": "on", "social.enabled": "on",
            "social.email": "on",  # not an e-mail category: ignored
            "system.enabled": "on", "system.email": "on", "blockFoundAny": "on", "personalBest": "on"}
    resp = client.post("/settings/notifications", headers=hx, data=form)
    assert resp.status_code == 200 and "Saved ✓" in resp.get_data(as_text=True)
    prefs = _settings(user.user_id)["notifications"]
    assert prefs["categories"] == {
        "mining": {"enabled": True, "email": True},
        "gamification": {"enabled": False, "email": False},
        "competition": {"enabled": True, "email": False},
        "social": {"enabled": True, "email": False},
        "system": {"enabled": True, "email": True},
    }
    assert (prefs["blockFoundAny"], prefs["personalBest"], prefs["workerStatus"], prefs["badgeEarned"],
            prefs["coopActivity"]) == (True, True, False, False, False)
    assert prefs["email"] == "miner@example.org"  # untouched by this form


def test_email_address_saved_cleared_and_validated(client, logged_in):
    user, hx = logged_in
    assert client.post("/settings/email", headers=hx, data={"email": " new@example.org "}).status_code == 200
    assert db.session.get(User, user.user_id).email == "new@example.org"
    bad = client.post("/settings/email", headers=hx, data={"email": "not an address"})
    assert bad.status_code == 400 and "does not look like an e-mail address" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, user.user_id).email == "new@example.org"
    assert client.post("/settings/email", headers=hx, data={"email": ""}).status_code == 200
    assert _settings(user.user_id)["notifications"]["email"] is None


def test_a_settings_change_is_recorded_in_the_feed(client, logged_in):
    user, hx = logged_in
    client.post("/settings/privacy", headers=hx, data=ALL_PRIVACY)  # no change: no activity
    assert db.session.scalar(select(UserActivity.id)) is None
    client.post("/settings/privacy", headers=hx, data={"publicProfile": "on"})
    row = db.session.scalars(select(UserActivity).where(UserActivity.user_id == user.user_id)).one()
    assert row.activity_type == "settings_updated"
    assert row.data["changed"] == ["privacy.showCountryFlag", "privacy.showInCoopRankings", "privacy.showOnLeaderboard",
                                   "privacy.showPresence"]
    # The feed says it as the settings page does, not as keys of the settings document.
    assert row.description == ("Show my country flag, Show me in cooperative rankings, Show me on the leaderboard, "
                               "Show when I am online")


def test_a_refused_setting_is_named_as_the_page_names_it(client, logged_in):
    _, hx = logged_in
    refusals = {
        "quiet_start": ({"quiet": "on", "quiet_start": "25:00", "quiet_end": "06:00", "digest": "off"},
                        "Quiet hours: use a time such as 22:00."),
        "after_minutes": ({"after_minutes": "2", "digest": "off"},
                          "Worker offline after (minutes): input should be greater than or equal to 5."),
        "max_per_hour": ({"max_per_hour": "abc", "digest": "off"},
                         "Most notifications per hour: input should be a valid integer."),
    }
    for name, (form, message) in refusals.items():
        answer = client.post("/settings/delivery", headers=hx, data=form)
        assert answer.status_code == 400, name
        assert message in answer.get_data(as_text=True) and "notifications." not in answer.get_data(as_text=True), name


def test_settings_without_htmx_redirects_with_a_flash(client, logged_in):
    user, hx = logged_in
    resp = client.post("/settings/privacy", data={"csrf_token": hx["X-CSRFToken"], "publicProfile": "on"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/settings")
    assert "Settings saved." in client.get("/settings").get_data(as_text=True)
    assert _settings(user.user_id)["privacy"]["showOnLeaderboard"] is False


def test_settings_posts_need_csrf_and_login(app, client, logged_in):
    user, hx = logged_in
    for path in ("/settings/privacy", "/settings/notifications", "/settings/email"):
        resp = client.post(path, headers={"HX-Request": "true"}, data={})
        assert resp.status_code == 403, path
    assert _settings(user.user_id)["privacy"]["publicProfile"] is True
    with app.app_context():  # a fresh ``g``: the fixture's context caches the logged-in user
        resp = app.test_client().get("/settings")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_time_zone_is_an_iana_name_kept_in_the_settings(app, client, logged_in):
    """`notifications.timezone` (Community v2 notification settings): an IANA
    name checked by zoneinfo, UTC until set, the zone every local time uses."""
    user, _ = logged_in
    assert _settings(user.user_id)["notifications"]["timezone"] == "UTC"
    patch = preferences.SettingsPatch.model_validate({"notifications": {"timezone": "America/Sao_Paulo"}})
    accounts.update_settings(db.session.get(User, user.user_id), patch)
    assert _settings(user.user_id)["notifications"]["timezone"] == "America/Sao_Paulo"
    assert preferences.user_timezone(user.user_id).key == "America/Sao_Paulo"
    for bad in ("Mars/Olympus", "../../etc/passwd", "+02:00", ""):
        with pytest.raises(Exception, match="IANA time zone"):
            preferences.SettingsPatch.model_validate({"notifications": {"timezone": bad}})
