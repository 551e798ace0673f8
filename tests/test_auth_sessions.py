"""Revocable sign-in: server-side page sessions behind the session and
remember cookies, bearer tokens ended by logout, "log out everywhere" and a
password change, the CSRF token rotated at login, and sockets of revoked
credentials closed (docs/API.md "Sessions and logout")."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from webapp import models
from webapp.extensions import db
from webapp.models import User, utcnow
from webapp.services import accounts
from webapp.services.errors import Unauthorized

from .builders import PASSWORD, AuthActions, bearer, token_of
from .wshelpers import Client

NEW_PASSWORD = "a-brand-new-secret-7"


def _cookie(client, name: str) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None, f"no {name} cookie"
    return cookie.value


def _browser_with(app, **cookies):
    """A fresh test client that presents only the given cookies."""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value, domain="localhost")
    return other


def _me(client, headers=None) -> int:
    return client.get("/api/me", headers=headers or {}).status_code


# ---- logout ends this session: copies of its cookies are dead ---------------------------


def test_old_session_cookie_is_refused_after_logout(app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    stolen = _cookie(client, "session")
    assert _me(_browser_with(app, session=stolen)) == 200  # a copy works while the session lives
    assert client.post("/logout", data={"csrf_token": auth.csrf_token("/settings")}).status_code == 302
    assert _me(client) == 401
    assert _me(_browser_with(app, session=stolen)) == 401


def test_old_remember_cookie_is_refused_after_logout(app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id, remember=True).status_code == 302
    remember = _cookie(client, "remember_token")
    assert _me(_browser_with(app, remember_token=remember)) == 200
    client.post("/logout", data={"csrf_token": auth.csrf_token("/settings")})
    assert _me(_browser_with(app, remember_token=remember)) == 401
    assert user.user_id not in remember  # it names a server-side session, not the user
    row = db.session.scalars(select(models.UserSession).where(models.UserSession.user_id == user.user_id)).one()
    assert row.revoked_at is not None


def test_api_logout_with_a_cookie_ends_the_session(app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    stolen = _cookie(client, "session")
    token = auth.csrf_token("/settings")
    assert client.post("/api/auth/logout", headers={"X-CSRFToken": token}).get_json() == {"status": "logged_out"}
    assert _me(client) == 401
    assert _me(_browser_with(app, session=stolen)) == 401


def test_api_logout_with_a_bearer_token_ends_only_that_token(client, make_user):
    user = make_user()
    first, second = bearer(user), bearer(user)
    resp = client.post("/api/auth/logout", headers=first)
    assert resp.status_code == 200 and resp.get_json() == {"status": "logged_out"}
    assert _me(client, first) == 401
    assert _me(client, second) == 200
    assert client.post("/api/auth/logout", headers=first).status_code == 401
    assert db.session.scalar(select(func.count()).select_from(models.RevokedToken)) == 1


def test_logging_in_again_ends_the_browsers_previous_session(app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    before = _cookie(client, "session")
    assert auth.login(user.user_id).status_code == 302
    assert _me(client) == 200
    assert _me(_browser_with(app, session=before)) == 401


# ---- log out everywhere -----------------------------------------------------------------


def _three_browsers_and_two_tokens(app, make_user):
    user = make_user()
    browsers = []
    for remember in (False, False, True):
        browser = app.test_client()
        assert AuthActions(browser).login(user.user_id, remember=remember).status_code == 302
        browsers.append(browser)
    remember_cookie = _cookie(browsers[2], "remember_token")
    tokens = [bearer(user), bearer(user)]
    assert all(_me(b) == 200 for b in browsers) and all(_me(browsers[0], t) == 200 for t in tokens)
    return user, browsers, remember_cookie, tokens


def test_logout_everywhere_button_ends_every_session_and_bearer_token(app, make_user):
    user, browsers, remember_cookie, tokens = _three_browsers_and_two_tokens(app, make_user)
    page = AuthActions(browsers[0]).csrf_token("/settings")
    resp = browsers[0].post("/settings/logout-everywhere", data={"csrf_token": page})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert [_me(b) for b in browsers] == [401, 401, 401]
    assert _me(_browser_with(app, remember_token=remember_cookie)) == 401
    fresh = app.test_client()
    assert [_me(fresh, t) for t in tokens] == [401, 401]
    assert db.session.get(User, user.user_id).auth_epoch == 1
    live = select(func.count()).select_from(models.UserSession).where(models.UserSession.revoked_at.is_(None))
    assert db.session.scalar(live) == 0


def test_logout_everywhere_api_with_a_bearer_token(app, make_user):
    user, browsers, remember_cookie, tokens = _three_browsers_and_two_tokens(app, make_user)
    client = app.test_client()
    resp = client.post("/api/auth/logout-everywhere", headers=tokens[0])
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "logged_out", "sessions_ended": 3}
    assert [_me(b) for b in browsers] == [401, 401, 401]
    assert [_me(client, t) for t in tokens] == [401, 401]
    assert _me(_browser_with(app, remember_token=remember_cookie)) == 401
    # A token asked for afterwards works.
    new = client.post("/api/auth/token", json={"user_id": user.user_id, "password": PASSWORD}).get_json()["token"]
    assert _me(client, {"Authorization": f"Bearer {new}"}) == 200


def test_logout_everywhere_from_the_cli(app, runner, make_user):
    user, browsers, _, tokens = _three_browsers_and_two_tokens(app, make_user)
    result = runner.invoke(args=["users", "logout-everywhere", user.user_id])
    assert result.exit_code == 0, result.output
    assert [_me(b) for b in browsers] == [401, 401, 401]
    assert [_me(browsers[0], t) for t in tokens] == [401, 401]
    assert runner.invoke(args=["users", "logout-everywhere", "bc1qnobody"]).exit_code != 0


def test_concurrent_revocations_each_bump_the_epoch(app, make_user):
    """The epoch is bumped in SQL (auth_epoch + 1), never read-modify-written:
    eight racing "log out everywhere" calls leave it at exactly 8."""
    user = make_user()
    user_id = user.user_id
    barrier = threading.Barrier(8)
    errors = []

    def worker():
        with app.app_context():
            try:
                barrier.wait()
                accounts.log_out_everywhere(db.session.get(User, user_id))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db.session.expire_all()
    assert db.session.get(User, user_id).auth_epoch == 8


# ---- password change --------------------------------------------------------------------


def test_password_change_on_the_settings_page_keeps_only_this_browser(app, make_user):
    user, browsers, remember_cookie, tokens = _three_browsers_and_two_tokens(app, make_user)
    here = AuthActions(browsers[0])
    resp = browsers[0].post("/settings/password", data={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "csrf_token": here.csrf_token("/settings")})
    assert resp.status_code == 302 and resp.headers["Location"] == "/settings"
    assert [_me(b) for b in browsers] == [200, 401, 401]
    assert _me(_browser_with(app, remember_token=remember_cookie)) == 401
    assert [_me(browsers[0], t) for t in tokens] == [401, 401]
    with pytest.raises(Unauthorized):
        accounts.authenticate(user_id=user.user_id, password=PASSWORD)
    assert accounts.authenticate(user_id=user.user_id, password=NEW_PASSWORD).user_id == user.user_id


def test_password_change_on_the_settings_page_refuses_a_wrong_or_common_password(client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    token = auth.csrf_token("/settings")
    wrong = client.post("/settings/password", data={"current_password": "not-my-password", "new_password": NEW_PASSWORD,
                                                    "csrf_token": token})
    assert wrong.status_code == 403 and b"The current password is not right." in wrong.data
    common = client.post("/settings/password", data={"current_password": PASSWORD, "new_password": "Password123",
                                                     "csrf_token": token})
    assert common.status_code == 400 and b"most common" in common.data
    assert accounts.authenticate(user_id=user.user_id, password=PASSWORD).user_id == user.user_id
    assert _me(client) == 200


def test_password_change_api_with_a_bearer_token(app, make_user):
    user, browsers, _, tokens = _three_browsers_and_two_tokens(app, make_user)
    client = app.test_client()
    resp = client.post("/api/auth/password", headers=tokens[0],
                       json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "password_changed" and body["expires_at"].endswith("Z")
    assert [_me(client, t) for t in tokens] == [401, 401]
    assert [_me(b) for b in browsers] == [401, 401, 401]
    assert _me(client, {"Authorization": f"Bearer {body['token']}"}) == 200


def test_password_change_api_errors(client, make_user):
    user = make_user()
    headers = bearer(user)
    wrong = client.post("/api/auth/password", headers=headers,
                        json={"current_password": "not-my-password", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and wrong.get_json()["error"]["code"] == "wrong_password"
    for new in ("short", "iloveyou1", "QWERTY123"):
        resp = client.post("/api/auth/password", headers=headers, json={"current_password": PASSWORD, "new_password": new})
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "validation_error", new
    assert client.post("/api/auth/password", headers=headers, json={"new_password": NEW_PASSWORD}).status_code == 400
    assert client.post("/api/auth/password", json={"current_password": PASSWORD,
                                                   "new_password": NEW_PASSWORD}).status_code == 401
    assert _me(client, headers) == 200  # nothing was revoked


def test_password_change_api_with_a_cookie_needs_csrf_and_keeps_the_session(app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    refused = client.post("/api/auth/password", json=body)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
    ok = client.post("/api/auth/password", json=body, headers={"X-CSRFToken": auth.csrf_token("/settings")})
    assert ok.status_code == 200
    assert _me(client) == 200


# ---- CSRF token and session at login -----------------------------------------------------


def test_csrf_token_from_before_login_is_refused_after_login(client, auth, make_user):
    user = make_user()
    before = auth.csrf_token("/login")
    assert auth.login(user.user_id).status_code == 302
    patch = {"privacy": {"publicProfile": False}}
    refused = client.patch("/api/settings", json=patch, headers={"X-CSRFToken": before})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
    after = auth.csrf_token("/settings")
    assert after != before
    assert client.patch("/api/settings", json=patch, headers={"X-CSRFToken": after}).status_code == 200


def test_csrf_token_from_before_logout_is_refused_after_logout(client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    before = auth.csrf_token("/settings")
    client.post("/logout", data={"csrf_token": before})
    resp = client.post("/login", data={"user_id": user.user_id, "password": PASSWORD, "csrf_token": before})
    assert resp.status_code == 403


def test_settings_page_lists_this_browser_among_the_sessions(client, auth, make_user, app):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    other = app.test_client()
    assert AuthActions(other).login(user.user_id).status_code == 302
    page = client.get("/settings").get_data(as_text=True)
    assert page.count("(this browser)") == 1
    from webapp.services import sessions

    assert len(sessions.live_sessions(user.user_id)) == 2
    assert "Log out everywhere" in page


# ---- session lifetime and retention -----------------------------------------------------


def test_idle_and_expired_sessions_are_refused_and_purged(app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    row = db.session.scalars(select(models.UserSession)).one()
    row.last_seen_at = utcnow() - timedelta(days=app.config["AUTH_SESSION_IDLE_DAYS"], minutes=1)
    db.session.commit()
    assert _me(client) == 401
    from jobs.accounts import purge_dead_sessions

    db.session.add(models.RevokedToken(jti="old", user_id=user.user_id, expires_at=utcnow() - timedelta(seconds=1)))
    db.session.add(models.RevokedToken(jti="new", user_id=user.user_id, expires_at=utcnow() + timedelta(days=1)))
    db.session.commit()
    assert purge_dead_sessions() == 2
    assert db.session.scalar(select(func.count()).select_from(models.UserSession)) == 0
    assert db.session.scalars(select(models.RevokedToken.jti)).all() == ["new"]


def test_a_session_records_when_it_was_last_seen(client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    row = db.session.scalars(select(models.UserSession)).one()
    stale = utcnow() - timedelta(minutes=10)
    row.last_seen_at = stale
    db.session.commit()
    assert _me(client) == 200
    db.session.expire_all()
    assert db.session.scalars(select(models.UserSession)).one().last_seen_at > stale + timedelta(minutes=9)


def test_tokens_and_cookies_from_before_revocable_sessions_are_refused(app, client, make_user):
    """A token without an id (the old format) and a session cookie naming a
    bare user id (the old format) no longer authenticate."""
    from itsdangerous import URLSafeTimedSerializer

    user = make_user()
    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="api-token").dumps({"u": user.user_id, "f": "x"})
    assert _me(client, {"Authorization": f"Bearer {old}"}) == 401
    with client.session_transaction() as sess:
        sess["_user_id"] = user.user_id
        sess["_fresh"] = True
    assert _me(client) == 401


# ---- sockets ----------------------------------------------------------------------------


def _socket(live, *, cookie: str | None = None, token: str | None = None) -> Client:
    if token:
        return Client(live.ws_url(f"token={token}"))
    return Client(live.ws_url(), cookie=cookie, origin=live.origin)


def test_sockets_of_a_logged_out_session_or_token_close_and_cannot_reopen(live, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    cookie = f"session={_cookie(client, 'session')}"
    token = token_of(user)
    by_cookie, by_token = _socket(live, cookie=cookie), _socket(live, token=token)
    assert by_cookie.recv_json() == {"type": "unread_count", "count": 0}
    assert by_token.recv_json() == {"type": "unread_count", "count": 0}

    client.post("/logout", data={"csrf_token": auth.csrf_token("/settings")})
    assert by_cookie.close_code() == 4001
    by_token.send_json({"type": "ping"})
    assert by_token.recv_json() == {"type": "pong"}  # the token was not logged out
    assert _socket(live, cookie=cookie).close_code() == 4001

    assert client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert by_token.close_code() == 4001
    assert _socket(live, token=token).close_code() == 4001


def test_password_change_closes_every_socket_but_this_browsers(live, app, client, auth, make_user):
    user = make_user()
    assert auth.login(user.user_id).status_code == 302
    here = _socket(live, cookie=f"session={_cookie(client, 'session')}")
    other_browser = app.test_client()
    assert AuthActions(other_browser).login(user.user_id).status_code == 302
    there = _socket(live, cookie=f"session={_cookie(other_browser, 'session')}")
    by_token = _socket(live, token=token_of(user))
    for sock in (here, there, by_token):
        assert sock.recv_json()["type"] == "unread_count"

    resp = client.post("/settings/password", data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                   "csrf_token": auth.csrf_token("/settings")})
    assert resp.status_code == 302
    assert there.close_code() == 4001
    assert by_token.close_code() == 4001
    here.send_json({"type": "ping"})
    assert here.recv_json() == {"type": "pong"}
    here.close()
