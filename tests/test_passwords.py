"""Password rules: a missing account costs the same key derivation as a
wrong password (no user enumeration by timing), and common passwords are
refused wherever a password is set."""
from __future__ import annotations

import hashlib

import pytest

from webapp.services import demo

from .builders import PASSWORD, bearer


@pytest.fixture
def kdf_calls(monkeypatch):
    """Record every key derivation werkzeug runs (hashlib is the library
    underneath werkzeug's check_password_hash), as (function, cost)."""
    calls: list[tuple] = []
    pbkdf2, scrypt = hashlib.pbkdf2_hmac, hashlib.scrypt

    def recording_pbkdf2(name, password, salt, iterations, *args, **kwargs):
        calls.append(("pbkdf2", name, iterations))
        return pbkdf2(name, password, salt, iterations, *args, **kwargs)

    def recording_scrypt(password, *, salt, n, r, p, **kwargs):
        calls.append(("scrypt", n, r, p))
        return scrypt(password, salt=salt, n=n, r=r, p=p, **kwargs)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", recording_pbkdf2)
    monkeypatch.setattr(hashlib, "scrypt", recording_scrypt)
    return calls


def _attempts(client, auth, user_id: str) -> None:
    """A wrong password for ``user_id`` at the token route and the login form."""
    assert client.post("/api/auth/token", json={"user_id": user_id, "password": "not-the-password"}).status_code == 401
    csrf = auth.csrf_token("/login")
    assert client.post("/login", data={"user_id": user_id, "password": "not-the-password",
                                       "csrf_token": csrf}).status_code == 401


def test_a_missing_user_costs_the_same_key_derivation_as_a_wrong_password(client, auth, make_user, kdf_calls):
    """Measurement-free: the work a login does is the KDF run on the stored
    hash. For a missing user it must run too, with the same function and
    cost as for a real account (the test config: pbkdf2-sha256, 1000
    rounds), so both take the same time."""
    user = make_user()
    _attempts(client, auth, user.user_id)  # the process's first check also makes the dummy hash
    kdf_calls.clear()
    _attempts(client, auth, user.user_id)
    existing = list(kdf_calls)
    kdf_calls.clear()
    _attempts(client, auth, "bc1qnobodyhere01")
    missing = list(kdf_calls)
    assert existing == [("pbkdf2", "sha256", 1000)] * 2
    assert missing == existing


def test_the_dummy_hash_follows_the_production_method(make_app, kdf_calls):
    """With scrypt (the production default) a missing user costs one scrypt
    of the same parameters as a real account's check."""
    from .builders import AuthActions

    app = make_app(PASSWORD_HASH_METHOD="scrypt")
    client = app.test_client()
    with app.app_context():
        from . import builders

        user_id = builders.make_user().user_id
    _attempts(client, AuthActions(client), user_id)
    kdf_calls.clear()
    _attempts(client, AuthActions(client), user_id)
    existing = list(kdf_calls)
    kdf_calls.clear()
    _attempts(client, AuthActions(client), "bc1qnobodyhere02")
    assert existing == [("scrypt", 2**15, 8, 1)] * 2
    assert kdf_calls == existing


def test_register_hashes_before_it_answers_user_exists(client, make_user, kdf_calls):
    make_user("bc1qtakenid001")
    client.post("/api/auth/token", json={"user_id": "bc1qtakenid001", "password": "warm-up-check"})
    kdf_calls.clear()
    taken = client.post("/api/auth/register", json={"user_id": "bc1qtakenid001", "password": "longenough"})
    assert taken.status_code == 409
    assert kdf_calls == [("pbkdf2", "sha256", 1000)]


# ---- common passwords -------------------------------------------------------------------

COMMON = ["password", "12345678", "Password1", "qwertyuiop", "iloveyou1", "SUNSHINE", "football1"]


@pytest.mark.parametrize("password", COMMON)
def test_register_refuses_common_passwords(client, password):
    resp = client.post("/api/auth/register", json={"user_id": "bc1qcommon0001", "password": password})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "most common" in error["message"]
    assert client.post("/api/auth/token", json={"user_id": "bc1qcommon0001", "password": password}).status_code == 401


def test_register_page_and_cli_refuse_common_passwords(client, auth, runner):
    page = client.post("/register", data={"user_id": "bc1qcommon0002", "password": "Letmein1",
                                          "csrf_token": auth.csrf_token("/register")})
    assert page.status_code == 400 and b"most common" in page.data
    result = runner.invoke(args=["users", "create", "bc1qcommon0003", "--password", "Qwerty123"])
    assert result.exit_code != 0 and "most common" in result.output


def test_uncommon_passwords_and_the_demo_password_are_accepted(client):
    from webapp.services import passwords

    for password in ("longenough", PASSWORD, demo.DEMO_PASSWORD):
        passwords.check_new_password(password)
    resp = client.post("/api/auth/register", json={"user_id": "bc1qfine000001", "password": "tidal-wrench-42"})
    assert resp.status_code == 201
    assert client.get("/api/me", headers={"Authorization": f"Bearer {resp.get_json()['token']}"}).status_code == 200


def test_the_common_list_is_the_shipped_breached_password_list():
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    from webapp.services import passwords

    shipped = FREQUENCY_LISTS["passwords"]
    assert len(shipped) >= 30_000
    assert all(passwords.is_common(p) for p in shipped[:1000])
    assert passwords.is_common("PaSsWoRd1")
    assert not passwords.is_common("tidal-wrench-42")


def test_bearer_password_change_refuses_common_passwords(client, make_user):
    user = make_user()
    resp = client.post("/api/auth/password", headers=bearer(user),
                       json={"current_password": PASSWORD, "new_password": "baseball1"})
    assert resp.status_code == 400 and "most common" in resp.get_json()["error"]["message"]
