"""Web Push, end to end (issue 11 §5): the browser's subscription through
the API, the push job on a real RQ worker, and a push service on loopback
started by the test that checks the VAPID signature and decrypts the
payload with the subscription's private key (RFC 8291, http_ece) — as a
browser would. 404/410 from the push service delete the subscription;
quiet hours and the per-category switch keep pushes back."""
from __future__ import annotations

import base64
import json
import os
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
import sqlalchemy as sa
import time_machine
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from webapp.extensions import db
from webapp.models import DeliveryAttempt, NotificationDelivery, PushSubscription
from webapp.services import accounts, notifications, preferences

from .builders import bearer, run_jobs


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushService:
    """A push service on 127.0.0.1: records each POST (path, headers, body);
    paths listed in ``answers`` get that status instead of 201."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answers: dict[str, int] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                service.received.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(service.answers.get(self.path, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class Browser:
    """A browser's side of a subscription: its P-256 key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint

    def subscription(self) -> dict:
        public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


@pytest.fixture
def push(make_app, app, tmp_path):
    service = PushService()
    push_app = make_app(PUSH_ALLOW_HTTP_LOOPBACK=True, VAPID_PRIVATE_KEY_FILE=str(tmp_path / "vapid.pem"),
                        VAPID_SUBJECT="mailto:ops@mining.example", PUBLIC_BASE_URL="https://mining.example")
    with push_app.app_context():
        yield push_app, service
    service.stop()


def verify_vapid(headers: dict, public_key: str, audience: str) -> dict:
    """Check the RFC 8292 Authorization header; return the JWT claims."""
    scheme, _, params = headers["authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == public_key
    head, payload, signature = fields["t"].split(".")
    raw = unb64url(signature)
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    point.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                 f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64url(payload))
    assert claims["aud"] == audience
    return claims


def test_a_push_reaches_the_browser_encrypted_and_signed(push, make_user, tmp_path):
    app, service = push
    client = app.test_client()
    key = client.get("/api/push/public-key").get_json()["public_key"]
    assert len(unb64url(key)) == 65 and (tmp_path / "vapid.pem").exists()  # generated on first use
    assert client.get("/api/push/public-key").get_json()["public_key"] == key  # and kept

    user = make_user()
    browser = Browser(f"{service.url}/push/browser-1")
    made = client.post("/api/push/subscriptions", json=browser.subscription(), headers=bearer(user))
    assert made.status_code == 201 and made.get_json()["endpoint"] == browser.endpoint
    again = client.post("/api/push/subscriptions", json=browser.subscription(), headers=bearer(user))
    assert again.status_code == 201
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PushSubscription)) == 1

    row = notifications.notify(user.user_id, "mining", "block_found", "You found block 900,001!",
                               "Congratulations!", link="/miners/me")
    row_id = row.id
    run_jobs(app, "push", scheduler=True)
    [request] = service.received
    assert request["path"] == "/push/browser-1"
    assert request["headers"]["content-encoding"] == "aes128gcm" and int(request["headers"]["ttl"]) > 0
    claims = verify_vapid(request["headers"], key, service.url)
    assert claims["sub"] == "mailto:ops@mining.example"
    assert b"You found block" not in request["body"]  # encrypted on the wire
    assert browser.decrypt(request["body"]) == {
        "id": row_id, "title": "You found block 900,001!", "body": "Congratulations!",
        "url": "https://mining.example/miners/me", "category": "mining", "tag": f"block_found:{user.user_id}"}
    db.session.expire_all()
    delivery = db.session.scalars(sa.select(NotificationDelivery).where(
        NotificationDelivery.notification_id == row_id, NotificationDelivery.channel == "push")).one()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    [attempt] = db.session.scalars(sa.select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id))
    assert (attempt.channel, attempt.status) == ("push", "sent")

    # Run again (a retried job): nothing is pushed twice.
    from webapp.services import webpush

    webpush.enqueue_delivery(row_id)
    run_jobs(app, "push", scheduler=True)
    assert len(service.received) == 1


def test_gone_subscriptions_are_deleted(push, make_user):
    app, service = push
    client = app.test_client()
    user = make_user()
    gone, alive = Browser(f"{service.url}/push/gone"), Browser(f"{service.url}/push/alive")
    for browser in (gone, alive):
        assert client.post("/api/push/subscriptions", json=browser.subscription(),
                           headers=bearer(user)).status_code == 201
    service.answers["/push/gone"] = 410
    notifications.notify(user.user_id, "system", "maintenance", "Maintenance tonight")
    run_jobs(app, "push", scheduler=True)
    assert sorted(r["path"] for r in service.received) == ["/push/alive", "/push/gone"]
    db.session.expire_all()
    assert [s.endpoint for s in db.session.scalars(sa.select(PushSubscription))] == [alive.endpoint]
    # The caller removes the other one.
    removed = client.delete("/api/push/subscriptions", json={"endpoint": alive.endpoint}, headers=bearer(user))
    assert removed.status_code == 200
    again = client.delete("/api/push/subscriptions", json={"endpoint": alive.endpoint}, headers=bearer(user))
    assert again.status_code == 404 and again.get_json()["error"]["code"]


def test_quiet_hours_and_category_switches_keep_pushes_back(push, make_user):
    app, service = push
    client = app.test_client()
    user = make_user()
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"notifications": {
        "timezone": "Europe/Berlin", "quiet_hours": {"start": "22:00", "end": "07:00"},
        "push": {"competition": False}}}))
    browser = Browser(f"{service.url}/push/b")
    client.post("/api/push/subscriptions", json=browser.subscription(), headers=bearer(user))
    with time_machine.travel(datetime(2026, 11, 30, 23, 0, tzinfo=UTC), tick=True):  # 00:00 in Berlin
        notifications.notify(user.user_id, "mining", "block_found", "Quiet block")
    with time_machine.travel(datetime(2026, 11, 30, 12, 0, tzinfo=UTC), tick=True):  # 13:00
        notifications.notify(user.user_id, "competition", "match", "Match result")
        notifications.notify(user.user_id, "social", "coop", "Coop news")  # off by default
        notifications.notify(user.user_id, "mining", "block_found", "Daytime block")
    run_jobs(app, "push", scheduler=True)
    assert [browser.decrypt(r["body"])["title"] for r in service.received] == ["Daytime block"]


def test_the_push_job_drops_pushes_over_the_hourly_cap(push, make_user):
    """notify() queues every push (it counts nothing); the push job applies
    ``max_per_hour`` when it claims: the third push of the hour is not sent
    and leaves no delivery row, while its notification stays in the app."""
    app, service = push
    client = app.test_client()
    user = make_user()
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"notifications": {"max_per_hour": 2}}))
    browser = Browser(f"{service.url}/push/capped")
    client.post("/api/push/subscriptions", json=browser.subscription(), headers=bearer(user))
    ids = [notifications.notify(user.user_id, "mining", "block_found", f"Block {i}").id for i in range(3)]
    db.session.expire_all()
    pushes = sa.select(NotificationDelivery.notification_id, NotificationDelivery.status).where(
        NotificationDelivery.channel == "push").order_by(NotificationDelivery.notification_id)
    assert db.session.execute(pushes).all() == [(i, "pending") for i in ids]
    run_jobs(app, "push", scheduler=True)
    assert [browser.decrypt(r["body"])["title"] for r in service.received] == ["Block 0", "Block 1"]
    db.session.expire_all()
    assert db.session.execute(pushes).all() == [(ids[0], "sent"), (ids[1], "sent")]
    listed = client.get("/api/notifications", headers=bearer(user)).get_json()
    assert sorted(n["id"] for n in listed["notifications"]) == sorted(ids)
    # A job for the dropped push run again (the sweep, a retry) finds nothing to send.
    from webapp.services import webpush

    assert webpush.deliver(ids[2]) == "nothing to send" and len(service.received) == 2


def test_subscriptions_must_be_https_push_services(client, make_user):
    user = make_user()
    browser = Browser("http://127.0.0.1:9/push/x")
    refused = client.post("/api/push/subscriptions", json=browser.subscription(), headers=bearer(user))
    assert refused.status_code == 400
    bad_keys = {**Browser("https://push.example/x").subscription(), "keys": {"p256dh": "<script>", "auth": "x"}}
    assert client.post("/api/push/subscriptions", json=bad_keys, headers=bearer(user)).status_code == 400
    assert client.post("/api/push/subscriptions", json={"endpoint": "https://push.example/x"}).status_code == 401
