"""A miner's own data (API.md "Profiles"): the export holds every stored
fact; deleting the account removes it with its personal data in one
transaction, leaves the coop by the rules of leaving, and afterwards no row
anywhere keeps the user id except as an anonymous token. The e-mail change
goes through a confirmation link."""
from __future__ import annotations

import email as email_lib
import io
import re
import time

import sqlalchemy as sa
from PIL import Image

from webapp.extensions import db
from webapp.models import Cooperative, Message, Notification, WorkerStatus
from webapp.services import friends, messages, notifications

from .builders import PASSWORD
from .mining_support import drain, share, xadd


def _png(width: int = 600, height: int = 600) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (5, 6, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def _busy_miner(client, auth_headers, make_user, make_coop, redis):
    """A miner with a bit of everything: coop (admin), chat messages with a
    mention, friends, requests, a block, notifications, activity, an avatar,
    mining data."""
    alice = make_user(display_name="Alice Gone", email="alice@example.org")
    bob, carol, dave = make_user(display_name="Bob Stays"), make_user(), make_user()
    coop, _, _ = make_coop(alice, members=[bob])
    conversation_id = db.session.scalar(sa.text("SELECT id FROM conversations WHERE cooperative_id = :c"),
                                        {"c": coop.id})
    messages.post(alice.user_id, conversation_id, "hello shelf")
    messages.post(bob.user_id, conversation_id, f"hi @{alice.user_id}")
    row, _ = friends.send_request(alice, bob.user_id, "be my friend")
    friends.accept(bob, row.id)
    friends.send_request(carol, alice.user_id)
    friends.block(alice, dave.user_id)
    notifications.notify(alice.user_id, "system", "announcement", "For Alice")
    client.put("/api/profile/avatar", data={"file": (io.BytesIO(_png()), "a.png", "image/png")},
               headers=auth_headers(alice), content_type="multipart/form-data")
    xadd(redis, "share_submitted", share(alice.user_id, "rig", 1000.0), ts=time.time() - 5)
    drain()
    return alice, bob, coop


def test_export_holds_every_stored_fact(client, make_user, make_coop, auth_headers, redis):
    alice, bob, coop = _busy_miner(client, auth_headers, make_user, make_coop, redis)
    body = client.get("/api/me/export", headers=auth_headers(alice)).get_json()
    assert body["account"]["user_id"] == alice.user_id and body["account"]["email"] == "alice@example.org"
    assert body["settings"]["privacy"]["publicProfile"] is True
    assert body["profile"]["display_name"] == "Alice Gone"
    assert [c["cooperative_id"] for c in body["cooperatives"]] == [coop.id]
    assert any(n["title"] == "For Alice" for n in body["notifications"])
    assert body["activity"]  # coop joined / settings etc.
    assert [m["body"] for m in body["messages_sent"]] == ["hello shelf"]
    assert [f["user_id"] for f in body["friends"]] == [bob.user_id]
    assert len(body["friend_requests"]) == 2 and len(body["blocks"]) == 1
    assert body["uploads"]["avatar_url"].startswith("/media/avatars/")
    assert body["sessions"] == []


def _rows_naming(user_id: str) -> list[str]:
    """Every (table.column) whose text or JSON anywhere contains ``user_id``."""
    found = []
    inspector = sa.inspect(db.engine)
    with db.engine.connect() as conn:
        for table in inspector.get_table_names():
            if table == "alembic_version":
                continue
            for column in inspector.get_columns(table):
                type_name = str(column["type"]).upper()
                if not any(t in type_name for t in ("CHAR", "TEXT", "JSON")):
                    continue
                count = conn.execute(sa.text(
                    f'SELECT count(*) FROM "{table}" WHERE CAST("{column["name"]}" AS TEXT) LIKE :pattern'),
                    {"pattern": f"%{user_id}%"}).scalar()
                if count:
                    found.append(f"{table}.{column['name']}")
    return found


def test_delete_account_leaves_no_row_with_the_user_id(client, make_user, make_coop, auth_headers, redis, app):
    alice, bob, coop = _busy_miner(client, auth_headers, make_user, make_coop, redis)
    me = alice.user_id
    avatar = client.get("/api/profile", headers=auth_headers(alice)).get_json()["avatar_url"]
    assert client.get(avatar).status_code == 200
    headers = auth_headers(alice)
    assert len(_rows_naming(me)) > 10  # the miner is everywhere before

    wrong = client.delete("/api/me", json={"password": "not-it"}, headers=headers)
    assert wrong.status_code == 403
    resp = client.delete("/api/me", json={"password": PASSWORD}, headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"status": "deleted"}

    assert _rows_naming(me) == []
    # Coop rules as for leaving: bob is the admin now and heard it.
    db.session.expire_all()
    coop_now = db.session.get(Cooperative, coop.id)
    assert coop_now.status == "active" and coop_now.admin_user_id == bob.user_id and coop_now.member_count == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == bob.user_id, Notification.subtype == "coop_new_admin")) == 1
    # Alice's message stays in the chat as "deleted miner"; bob's mention of her is anonymised.
    sent = db.session.scalars(sa.select(Message).where(Message.body == "hello shelf")).one()
    assert sent.sender_id is None
    history = client.get(f"/api/conversations/{sent.conversation_id}/messages", headers=auth_headers(bob)).get_json()
    assert {m["sender"]["display_name"] for m in history["messages"]} == {"deleted miner", "Bob Stays"}
    # The avatar file is gone, the token no longer works, the profile is a missing account.
    assert client.get(avatar).status_code == 404
    assert client.get("/api/me", headers=headers).status_code == 401
    assert client.get(f"/api/public/miners/{me}").status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkerStatus)) == 0


def test_deleting_the_last_member_dissolves_the_coop(client, make_user, make_coop, auth_headers):
    alice = make_user()
    coop, _, _ = make_coop(alice)
    assert client.delete("/api/me", json={"password": PASSWORD}, headers=auth_headers(alice)).status_code == 200
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).status == "dissolved"


# ---- account basics ----------------------------------------------------------------------


def test_email_change_needs_the_confirmation_link(client, make_app, make_user, auth_headers, tmp_path):
    mailing = make_app(MAIL_SERVER="", MAIL_OUTBOX_DIR=str(tmp_path)).test_client()
    user = make_user(email="old@example.org")
    assert mailing.post("/api/me/email", json={"email": "new@example.org", "password": "nope"},
                        headers=auth_headers(user)).status_code == 403
    assert mailing.post("/api/me/email", json={"email": "not an address", "password": PASSWORD},
                        headers=auth_headers(user)).status_code == 400
    resp = mailing.post("/api/me/email", json={"email": "new@example.org", "password": PASSWORD},
                        headers=auth_headers(user))
    assert resp.status_code == 202 and resp.get_json() == {"status": "confirmation_sent"}
    db.session.expire_all()
    assert client.get("/api/me", headers=auth_headers(user)).get_json()["email"] == "old@example.org"
    [eml] = list(tmp_path.glob("email-change-*.eml"))
    mail = email_lib.message_from_bytes(eml.read_bytes())
    assert mail["To"] == "new@example.org"
    text = mail.get_payload(decode=True).decode() if not mail.is_multipart() else \
        mail.get_payload(0).get_payload(decode=True).decode()
    link = re.search(r"http://localhost(/settings/email/confirm/\S+)", text).group(1)
    assert mailing.get(link).status_code == 302
    assert client.get("/api/me", headers=auth_headers(user)).get_json()["email"] == "new@example.org"
    [notice] = list(tmp_path.glob("email-changed-*.eml"))
    warning = email_lib.message_from_bytes(notice.read_bytes())
    assert warning["To"] == "old@example.org" and warning["Subject"] == "Your e-mail address was changed"
    assert "n***@example.org" in warning.get_payload(decode=True).decode()
    # Used once: the address changed, so the same link is dead.
    follow = mailing.get(link, follow_redirects=False)
    assert follow.status_code == 302
    db.session.expire_all()
    assert client.get("/api/me", headers=auth_headers(user)).get_json()["email"] == "new@example.org"
    assert mailing.get("/settings/email/confirm/forged.token").status_code == 302


def test_an_address_set_through_the_settings_is_announced_to_the_previous_one(make_app, make_user, auth_headers,
                                                                             tmp_path):
    mailing = make_app(MAIL_SERVER="", MAIL_OUTBOX_DIR=str(tmp_path)).test_client()
    fresh = make_user()
    # No previous address: nobody to warn.
    assert mailing.patch("/api/settings", json={"notifications": {"email": "first@example.org"}},
                         headers=auth_headers(fresh)).status_code == 200
    assert list(tmp_path.glob("email-changed-*.eml")) == []
    # The same address again: nothing changed, nothing sent.
    mailing.patch("/api/settings", json={"notifications": {"email": "first@example.org"}}, headers=auth_headers(fresh))
    assert list(tmp_path.glob("email-changed-*.eml")) == []
    resp = mailing.patch("/api/settings", json={"notifications": {"email": "second@example.org"}},
                         headers=auth_headers(fresh))
    assert resp.get_json()["notifications"]["email"] == "second@example.org"  # the v1 contract: set at once
    [notice] = list(tmp_path.glob("email-changed-*.eml"))
    warning = email_lib.message_from_bytes(notice.read_bytes())
    assert warning["To"] == "first@example.org"
    assert "s***@example.org" in warning.get_payload(decode=True).decode()
    # A refused change (bad address) warns nobody.
    assert mailing.patch("/api/settings", json={"notifications": {"email": "nope"}},
                         headers=auth_headers(fresh)).status_code == 400
    assert len(list(tmp_path.glob("email-changed-*.eml"))) == 1


def test_password_change_revokes_other_tokens(client, make_user, auth_headers):
    user = make_user()
    other = auth_headers(user)
    resp = client.post("/api/auth/password", json={"current_password": PASSWORD, "new_password": "brand-new-pass-9"},
                       headers=auth_headers(user))
    assert resp.status_code == 200
    assert client.get("/api/me", headers=other).status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Bearer {resp.get_json()['token']}"}).status_code == 200
