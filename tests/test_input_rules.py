"""Where the two input rules (webapp/services/inputs.py; their properties:
tests/test_input_parsers.py) hold:

* The inputs that used to answer 500 (NUL in user ids, e-mail and coop
  names, ``²`` in ids and limits, a deep JSON body), each now a 400 with
  the API.md error body on /api and an error page elsewhere.
* A failed database flush no longer breaks the error page (it made
  gunicorn answer its raw 500 page), ``<int:>`` path segments are ASCII,
  chunked bodies over MAX_CONTENT_LENGTH answer 413 on every route.
"""
from __future__ import annotations

import base64
import io
import json

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import User

from . import builders
from .builders import PASSWORD, AuthActions, bearer

# ---- the inputs that used to answer 500 ----------------------------------------------------------

# (who, method, url, body); who: "anon", "bearer" (JSON) or "page" (logged-in form session).
FORMER_500S = [
    ("anon", "POST", "/api/auth/token", {"json": {"user_id": "a\x00b", "password": "x" * 8}}),
    ("anon", "POST", "/api/auth/register", {"json": {"user_id": "bc1qnulname", "password": "x" * 8,
                                                     "display_name": "a\x00b"}}),
    ("anon", "POST", "/api/auth/register", {"json": {"user_id": "bc1qnulmail", "password": "x" * 8,
                                                     "email": "a\x00b@example.org"}}),
    ("anon", "POST", "/login", {"form": {"user_id": "a\x00b", "password": "x" * 8}}),
    ("anon", "POST", "/register", {"form": {"user_id": "bc1qnulpage", "password": "x" * 8, "display_name": "a\x00b"}}),
    ("anon", "GET", "/api/public/miners/a%00b", {}),
    ("anon", "GET", "/api/public/miners/a%00b/stats", {}),
    ("anon", "GET", "/miners/a%00b", {}),
    ("page", "GET", "/miners/a%00b", {}),
    ("bearer", "PATCH", "/api/settings", {"json": {"notifications": {"email": "a\x00b@example.org"}}}),
    ("page", "POST", "/settings/email", {"form": {"email": "a\x00b@example.org"}}),
    ("bearer", "POST", "/api/coops", {"json": {"name": "Nul\x00Coop"}}),
    ("page", "POST", "/coop/create", {"form": {"name": "Nul\x00Coop"}}),
    ("bearer", "GET", "/api/notifications?limit=%C2%B2", {}),
    ("bearer", "GET", "/api/activity?limit=%C2%B2", {}),
    ("bearer", "POST", "/api/notifications/read-all?up_to_id=%C2%B2", {}),
    ("page", "POST", "/notifications/read-all", {"form": {"up_to_id": "²"}}),
    ("page", "GET", "/admin?q=%C2%B2", {"ok": True}),  # a search for the text "²": no coop id
    ("page", "GET", "/admin/coops?q=%C2%B2", {"ok": True}),
    ("page", "GET", "/activity?before_id=%C2%B2", {}),
    ("page", "GET", "/admin/users?cursor=" + base64.urlsafe_b64encode(b"k:a\x00b").decode(), {}),
    ("bearer", "GET", "/ws?since=%C2%B2", {"ws": True}),
    ("bearer", "POST", "/api/coops", {"raw": "[" * 2000 + "]" * 2000}),
]


@pytest.mark.parametrize(("who", "method", "url", "body"), FORMER_500S,
                         ids=[f"{w}-{m} {u[:40]}" for w, m, u, _ in FORMER_500S])
def test_former_500_is_a_clear_400(client, who, method, url, body):
    """Each used to answer 500 (two of them gunicorn's raw page); now 400
    with the reason (the admin search: 200, "²" is text to search for)."""
    admin = builders.make_user("bc1qinputadmin", is_admin=True)
    headers, data = {}, None
    if who == "page":
        auth = AuthActions(client)
        auth.login(admin.user_id, PASSWORD)
        data = {"csrf_token": auth.csrf_token("/settings")}
    elif who == "bearer":
        headers.update(bearer(admin))
    elif method == "POST" and "form" in body:
        data = {"csrf_token": AuthActions(client).csrf_token("/login")}
    if "form" in body:
        data = {**(data or {}), **body["form"]}
    if body.get("ws"):
        headers.update({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    if "raw" in body:
        resp = client.open(url, method=method, headers=headers, data=body["raw"], content_type="application/json")
    else:
        resp = client.open(url, method=method, headers=headers, json=body.get("json"), data=data)
    if body.get("ok"):
        assert resp.status_code == 200 and "No cooperatives" in resp.get_data(as_text=True)
        return
    assert resp.status_code == 400, resp.get_data(as_text=True)[:500]
    if url.startswith("/api/"):
        assert resp.get_json()["error"]["code"] == "validation_error"
    else:
        page = resp.get_data(as_text=True)
        assert "<html" in page and ("control character" in page or "whole number" in page
                                    or "NUL" in page or "cursor is not valid" in page), page[-800:]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User).where(User.user_id.like("bc1qnul%"))) == 0


@pytest.mark.parametrize(("segment", "status"), [
    ("١", 404), ("𝟏", 404), ("１", 404), ("²", 404),  # int("١") == 1: it used to reach notification 1
    (str(2**63), 404), ("1", 200),
])
def test_int_path_segments_are_ascii_digits(client, make_user, auth_headers, segment, status):
    from webapp.services import notifications

    user = make_user()
    assert notifications.notify(user.user_id, "system", "x", "Arabic-Indic one").id == 1
    assert client.post(f"/api/notifications/{segment}/read", headers=auth_headers(user)).status_code == status


def test_a_failed_flush_still_gets_the_error_page_not_a_raw_500(app):
    """The two page routes that answered gunicorn's raw 500 page did so
    because the session's flush had failed and the error page's own queries
    (the bell) then raised inside the error handler. Whatever a route
    breaks, the handler must answer."""
    user = builders.make_user("bc1qflushfail")
    handler = app.error_handler_spec[None][None][Exception]
    with app.test_request_context("/settings/email", method="POST"):
        from webapp.auth import log_in

        log_in(user)
        user.email = "a\x00b@example.org"  # PostgreSQL refuses it at flush
        with pytest.raises(sa.exc.DataError) as failed:
            db.session.flush()
        body, status, _ = handler(failed.value)
        assert status == 500 and "Something went wrong" in body and "<html" in body


def test_every_route_answers_a_chunked_body_over_the_limit_with_413(app, client):
    """Transfer-Encoding: chunked has no Content-Length: the body used to be
    cut at the limit, so the view saw broken JSON (400) or lost its CSRF
    token (403)."""
    admin = builders.make_user("bc1qchunked", is_admin=True)
    too_big = b'{"name": "' + b"x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}'
    checked = 0
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PATCH", "PUT", "DELETE"}):
            url = rule.rule.replace("<int:", "<").replace("<", "").replace(">", "")
            url = "/".join("1" if part.endswith("id") else part for part in url.split("/"))
            resp = client.open(url, method=method, data=io.BytesIO(too_big), headers={
                "Transfer-Encoding": "chunked", "Content-Type": "application/json", **bearer(admin)})
            assert resp.status_code == 413, f"{method} {url}: {resp.status_code}"
            if url.startswith("/api/"):
                assert resp.get_json()["error"]["code"] == "payload_too_large", url
            else:
                assert "too large" in resp.get_data(as_text=True), url
            checked += 1
    assert checked > 30


def test_a_chunked_body_within_the_limit_is_read_whole(client):
    body = json.dumps({"user_id": "bc1qchunkedok", "password": "x" * 8}).encode()
    resp = client.post("/api/auth/register", data=io.BytesIO(body),
                       headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_cli_reads_whole_numbers_and_text_with_the_same_rules(runner):
    result = runner.invoke(args=["coops", "show", "١"])
    assert result.exit_code != 0 and "digits 0-9 only" in result.output
    result = runner.invoke(args=["users", "create", "bc1qclitext", "--password", PASSWORD, "--display-name", "a\x1bb"])
    assert result.exit_code != 0 and "control character" in result.output
