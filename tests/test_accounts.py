"""Accounts: registration, tokens, the caller, settings (API.md Authentication)."""
from __future__ import annotations

import pytest

from .builders import PASSWORD


def test_register_returns_user_and_working_token(client):
    resp = client.post("/api/auth/register", json={"user_id": "bc1qalice0001", "password": "longenough",
                                                   "display_name": "Alice", "country_code": "PT"})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["user"]["user_id"] == "bc1qalice0001"
    assert body["user"]["display_name"] == "Alice"
    me = client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.get_json()["user_id"] == "bc1qalice0001"


def test_duplicate_registration_is_409(client, make_user):
    make_user("bc1qdup0001")
    resp = client.post("/api/auth/register", json={"user_id": "bc1qdup0001", "password": "longenough"})
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "user_exists"


def test_register_validates_fields(client):
    cases = [
        {"user_id": "ab", "password": "longenough"},
        {"user_id": "bad id!", "password": "longenough"},
        {"user_id": "bc1qok0001", "password": "short"},
        {"user_id": 12345, "password": "longenough"},
        {"user_id": "bc1qok0001", "password": "longenough", "extra": 1},
        {"user_id": "bc1qok0001", "password": "longenough", "country_code": "pt"},
    ]
    for body in cases:
        resp = client.post("/api/auth/register", json=body)
        assert resp.status_code == 400, body
        assert resp.get_json()["error"]["code"] == "validation_error"
    assert client.post("/api/auth/register", data="not json", content_type="application/json").status_code == 400
    assert client.post("/api/auth/register", json=["a"]).status_code == 400


def test_token_for_right_password_only(client, make_user):
    make_user("bc1qtok0001")
    ok = client.post("/api/auth/token", json={"user_id": "bc1qtok0001", "password": PASSWORD})
    assert ok.status_code == 200
    assert ok.get_json()["token"] and ok.get_json()["expires_at"].endswith("Z")
    wrong = client.post("/api/auth/token", json={"user_id": "bc1qtok0001", "password": "wrong-password"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["code"] == "unauthorized"
    unknown = client.post("/api/auth/token", json={"user_id": "bc1qnobody", "password": "wrong-password"})
    assert unknown.status_code == 401
    assert unknown.get_json() == wrong.get_json()


@pytest.mark.parametrize("path", ["/api/me", "/api/settings"])
def test_authenticated_routes_need_credentials(client, path):
    resp = client.get(path)
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"
    bad = client.get("/api/me", headers={"Authorization": "Bearer forged.token.value"})
    assert bad.status_code == 401
    basic = client.get("/api/me", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_password_change_revokes_tokens(client, make_user, auth_headers):
    from webapp.services import accounts

    user = make_user()
    headers = auth_headers(user)
    accounts.set_password(user, "another-password")
    assert client.get("/api/me", headers=headers).status_code == 401


def test_settings_defaults(client, make_user, auth_headers):
    user = make_user()
    body = client.get("/api/settings", headers=auth_headers(user)).get_json()
    assert body["privacy"] == {"publicProfile": True, "showOnLeaderboard": True,
                               "showCountryFlag": True, "showInCoopRankings": True, "showPresence": True}
    cats = body["notifications"]["categories"]
    assert set(cats) == {"mining", "gamification", "competition", "social", "system"}
    assert all(c == {"enabled": True, "email": False} for c in cats.values())
    assert body["notifications"]["email"] is None
    assert body["notifications"]["personalBest"] is True


def test_settings_patch_merges_partially(client, make_user, auth_headers):
    user = make_user()
    headers = auth_headers(user)
    resp = client.patch("/api/settings", headers=headers, json={
        "privacy": {"showCountryFlag": False},
        "notifications": {"categories": {"mining": {"email": True}}, "email": "miner@example.org"},
    })
    assert resp.status_code == 200
    body = client.get("/api/settings", headers=headers).get_json()
    assert body["privacy"]["showCountryFlag"] is False
    assert body["privacy"]["publicProfile"] is True
    assert body["notifications"]["categories"]["mining"] == {"enabled": True, "email": True}
    assert body["notifications"]["email"] == "miner@example.org"


@pytest.mark.parametrize("body", [
    {"privacy": {"nope": True}}, {"surprise": 1}, {"privacy": {"publicProfile": 1}},
    {"notifications": {"categories": {"mining": {"enabled": "yes"}}}},
    {"notifications": {"categories": {"lottery": {"enabled": True}}}},
    {"notifications": {"email": "not-an-address"}}, [1, 2],
])
def test_settings_patch_rejects_unknown_keys_and_wrong_types(client, make_user, auth_headers, body):
    headers = auth_headers(make_user())
    assert client.patch("/api/settings", headers=headers, json=body).status_code == 400
    assert client.get("/api/settings", headers=headers).get_json()["privacy"]["publicProfile"] is True


def test_cookie_session_needs_csrf_for_api_writes(client, make_user, auth):
    make_user("bc1qcookie001")
    assert auth.login("bc1qcookie001").status_code == 302
    assert client.get("/api/me").status_code == 200
    refused = client.patch("/api/settings", json={"privacy": {"publicProfile": False}})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    token = auth.csrf_token("/login")
    ok = client.patch("/api/settings", json={"privacy": {"publicProfile": False}}, headers={"X-CSRFToken": token})
    assert ok.status_code == 200


def test_login_page_flow(client, make_user, auth):
    make_user("bc1qpage0001", display_name="PageMiner")
    assert client.get("/login").status_code == 200
    bad = client.post("/login", data={"user_id": "bc1qpage0001", "password": "nope-nope",
                                      "csrf_token": auth.csrf_token()})
    assert bad.status_code == 401
    assert b"Wrong user id or password" in bad.data
    resp = auth.login("bc1qpage0001")
    assert resp.status_code == 302
    page = client.get("/login")
    assert b"PageMiner" in page.data and b"Log out" in page.data


def test_login_form_without_csrf_is_refused(client, make_user):
    make_user("bc1qpage0002")
    resp = client.post("/login", data={"user_id": "bc1qpage0002", "password": PASSWORD})
    assert resp.status_code == 403


def test_register_page_creates_account_and_logs_in(client, auth):
    token = auth.csrf_token("/register")
    resp = client.post("/register", data={"user_id": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "password": "longenough",
                                          "display_name": "Newbie", "csrf_token": token})
    assert resp.status_code == 302
    assert client.get("/api/me").get_json()["display_name"] == "Newbie"


def test_logout(client, make_user, auth):
    make_user("bc1qbye00001")
    auth.login("bc1qbye00001")
    token = auth.csrf_token("/login")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/api/me").status_code == 401


def test_cli_users_create(runner, app):
    result = runner.invoke(args=["users", "create", "bc1qcli00001", "--password", "longenough", "--admin"])
    assert result.exit_code == 0, result.output
    from webapp.extensions import db
    from webapp.models import User

    user = db.session.get(User, "bc1qcli00001")
    assert user is not None and user.is_admin is True
    again = runner.invoke(args=["users", "create", "bc1qcli00001", "--password", "longenough"])
    assert again.exit_code != 0 and "already registered" in again.output


def test_unknown_api_route_is_json_404(client):
    resp = client.get("/api/does-not-exist")
    assert resp.status_code == 404
    assert resp.get_json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_token_endpoint_is_rate_limited_per_ip(make_app):
    app = make_app(RATELIMIT_ENABLED=True, AUTH_RATE_LIMIT="3 per minute")
    client = app.test_client()
    with app.app_context():
        app.extensions["redis_raw"].flushdb()
    statuses = [client.post("/api/auth/token", json={"user_id": "bc1qnobody", "password": "whatever1"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    resp = client.post("/api/auth/token", json={"user_id": "bc1qnobody", "password": "whatever1"})
    assert resp.get_json()["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) > 0


def test_an_app_with_limits_on_neither_arms_nor_is_disarmed_by_the_others(client, make_app):
    """One Limiter object serves every app of the process: each app keeps its
    own RATELIMIT_ENABLED whatever the apps built after it say."""
    limited = make_app(RATELIMIT_ENABLED=True, AUTH_RATE_LIMIT="2 per minute")
    make_app(RATELIMIT_ENABLED=False)  # built last
    body = {"user_id": "bc1qnobody", "password": "whatever1"}
    assert [client.post("/api/auth/token", json=body).status_code for _ in range(4)] == [401] * 4
    other = limited.test_client()
    assert [other.post("/api/auth/token", json=body).status_code for _ in range(3)] == [401, 401, 429]


def test_pages_carry_security_headers(client):
    resp = client.get("/login")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in resp.data  # no inline scripts under the CSP
    cookie = resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_miner_without_a_display_name_gets_a_shortened_address(client):
    resp = client.post("/api/auth/register", json={"user_id": "bc1quqx4th6f002x0gls4k9w5gaa6y3ety60yw92h2",
                                                   "password": "longenough"})
    assert resp.get_json()["user"]["display_name"] == "bc1quqx4…92h2"
