"""Hostile input against the production server (gunicorn.conf.py: gevent
workers): a real chunked body over MAX_CONTENT_LENGTH answers 413, and the
two page routes that answered gunicorn's own raw 500 page (a NUL in the
settings e-mail or a coop name) answer the app's 400 page."""
from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import pytest
import requests

from . import builders
from .builders import PASSWORD
from .wshelpers import Gunicorn

pytestmark = pytest.mark.slow  # the production server, two gevent worker processes

ROOT = Path(__file__).resolve().parent.parent
RAW_500 = "<title>Internal Server Error</title>"  # gunicorn's own page


@pytest.fixture(scope="module")
def server(migrated):
    server = Gunicorn(migrated, WEB_CONCURRENCY="1", RATELIMIT_ENABLED="0").wait_ready()
    yield server.port
    server.stop()


def _chunked(port: int, path: str, body: bytes, content_type: str) -> tuple[int, str, str]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    pieces = (body[i:i + 8192] for i in range(0, len(body), 8192))
    conn.request("POST", path, body=pieces, headers={"Content-Type": content_type}, encode_chunked=True)
    response = conn.getresponse()
    result = response.status, response.getheader("Content-Type") or "", response.read().decode()
    conn.close()
    return result


def test_a_chunked_body_over_the_limit_is_413_on_the_api_and_on_pages(server, app):
    too_big = json.dumps({"user_id": "x" * 70_000, "password": "y" * 8}).encode()
    status, kind, body = _chunked(server, "/api/auth/token", too_big, "application/json")
    assert status == 413 and kind.startswith("application/json"), body[:300]
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    status, kind, body = _chunked(server, "/login", b"user_id=" + b"x" * 70_000, "application/x-www-form-urlencoded")
    assert status == 413 and kind.startswith("text/html") and "too large" in body, body[:300]
    # Within the limit, a chunked body is read whole.
    builders.make_user("bc1qchunkeduser")
    status, _, body = _chunked(server, "/api/auth/token",
                               json.dumps({"user_id": "bc1qchunkeduser", "password": PASSWORD}).encode(),
                               "application/json")
    assert status == 200 and "token" in json.loads(body), body[:300]


def _csrf(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', session.get(url).text).group(1)


def test_the_pages_that_gave_the_raw_500_page_answer_the_apps_400_page(server, app):
    user = builders.make_user("bc1qgunicornpages")
    base = f"http://127.0.0.1:{server}"
    browser = requests.Session()
    login = browser.post(f"{base}/login", data={"user_id": user.user_id, "password": PASSWORD,
                                                "csrf_token": _csrf(browser, f"{base}/login")}, allow_redirects=False)
    assert login.status_code == 302
    token = _csrf(browser, f"{base}/settings")
    for path, form in (("/settings/email", {"email": "a\x00b@example.org"}), ("/coop/create", {"name": "Nul\x00Coop"})):
        resp = browser.post(f"{base}{path}", data={**form, "csrf_token": token}, allow_redirects=False)
        assert RAW_500 not in resp.text, path
        assert resp.status_code == 400 and "NUL character" in resp.text, (path, resp.status_code, resp.text[:300])
