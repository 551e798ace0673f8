"""One same-site check for every redirect target (``webapp.urls``): ``next=``
after login and registration, "back" after a notification action, a
notification's path link. Hostile values go home instead."""
from __future__ import annotations

import pytest

from .builders import PASSWORD

HOSTILE = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\\\evil.example",
    "https://evil.example/",
    "http:evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    ".//evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "/\u2215evil.example",   # division slash
    "/\uff0fevil.example",   # fullwidth solidus
    "/\uff3cevil.example",   # fullwidth reverse solidus
    "/\u3000/evil.example",  # ideographic space
    "/\u200b/evil.example",  # zero-width space
    "",
    "/" + "a" * 3000,
]
SAME_SITE = ["/", "/settings", "/coop?tab=members#top", "/miners/bc1qabc", "/%2F%2Fevil.example", "/a/b/../c"]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_targets_are_not_same_site(target):
    from webapp.urls import is_same_site_path

    assert is_same_site_path(target) is False


@pytest.mark.parametrize("target", SAME_SITE)
def test_paths_of_this_site_are(target):
    from webapp.urls import is_same_site_path

    assert is_same_site_path(target) is True


@pytest.mark.parametrize("target", HOSTILE[:-2])
def test_login_with_a_hostile_next_goes_home(client, auth, make_user, target):
    user = make_user()
    resp = client.post("/login", query_string={"next": target},
                       data={"user_id": user.user_id, "password": PASSWORD, "csrf_token": auth.csrf_token()})
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        # Control characters never reach the view: the input rule refuses the request.
        assert resp.status_code == 400 and "Location" not in resp.headers
        return
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/settings", "/coop?tab=members"])
def test_login_with_a_same_site_next_goes_there(client, auth, make_user, target):
    user = make_user()
    resp = client.post("/login", query_string={"next": target},
                       data={"user_id": user.user_id, "password": PASSWORD, "csrf_token": auth.csrf_token()})
    assert resp.headers["Location"] == target


def test_login_required_page_round_trips_through_next(client, auth, make_user):
    user = make_user()
    bounce = client.get("/settings")
    assert bounce.status_code == 302 and bounce.headers["Location"].startswith("/login?next=")
    resp = client.post(bounce.headers["Location"],
                       data={"user_id": user.user_id, "password": PASSWORD, "csrf_token": auth.csrf_token()})
    assert resp.headers["Location"] == "/settings"


@pytest.mark.parametrize("target", ["/\\evil.example", "//evil.example", "https://evil.example"])
def test_register_with_a_hostile_next_goes_home(client, auth, target):
    resp = client.post("/register", query_string={"next": target},
                       data={"user_id": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "password": "longenough",
                             "csrf_token": auth.csrf_token("/register")})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_register_with_a_same_site_next_goes_there(client, auth):
    resp = client.post("/register", query_string={"next": "/coop"},
                       data={"user_id": "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "password": "longenough",
                             "csrf_token": auth.csrf_token("/register")})
    assert resp.headers["Location"] == "/coop"


@pytest.mark.parametrize(("link", "statuses"), [
    ("/\\evil.example", (400,)), ("//evil.example", (400,)), ("/\t/evil.example", (400,)),
    ("/coop", (200, 201)), ("https://example.org/news", (200, 201)),
])
def test_notification_links_must_be_same_site_paths_or_http_urls(client, make_user, link, statuses):
    service = {"Authorization": "Bearer test-service-token"}
    body = {"user_id": make_user().user_id, "category": "system", "subtype": "x", "title": "t", "link": link}
    assert client.post("/api/internal/notifications", headers=service, json=body).status_code in statuses


def test_back_after_a_notification_action_stays_on_this_site(client, auth, make_user):
    from webapp.services import notifications

    user = make_user()
    auth.login(user.user_id)
    row = notifications.notify(user.user_id, "system", "x", "Hello")
    token = auth.csrf_token("/notifications")
    resp = client.post(f"/notifications/{row.id}/read", data={"csrf_token": token},
                       headers={"Referer": "http://localhost/\\evil.example"})
    assert resp.headers["Location"] == "/notifications"
    resp = client.post(f"/notifications/{row.id}/read", data={"csrf_token": token},
                       headers={"Referer": "http://localhost/activity?x=1"})
    assert resp.headers["Location"] == "/activity?x=1"
