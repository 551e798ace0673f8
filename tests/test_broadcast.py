"""/admin/broadcast: platform admins only; a real RQ job fans a system
notification out to every user in batches, with progress on the row."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import AuditLog, Broadcast, Notification
from webapp.services import broadcasts

from .builders import PASSWORD, run_jobs


def test_only_platform_admins_reach_the_page(client, auth, make_user):
    assert client.get("/admin/broadcast").status_code == 302  # anonymous → login
    miner = make_user()
    auth.login(miner.user_id, PASSWORD)
    assert client.get("/admin/broadcast").status_code == 403
    token = auth.csrf_token("/notifications")
    assert client.post("/admin/broadcast", data={"title": "x", "csrf_token": token}).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 0


def test_broadcast_fans_out_in_batches_with_progress(app, client, auth, make_user, make_app):
    admin = make_user(is_admin=True)
    users = [make_user() for _ in range(6)]
    quiet = users[0]
    from webapp.services import accounts, preferences

    accounts.update_settings(quiet, preferences.SettingsPatch.model_validate(
        {"notifications": {"categories": {"system": {"enabled": False}}}}))
    auth.login(admin.user_id, PASSWORD)
    page = client.get("/admin/broadcast")
    assert page.status_code == 200
    token = auth.csrf_token("/admin/broadcast")
    resp = client.post("/admin/broadcast", data={"title": "Pool maintenance <b>tonight</b>", "body": "10 minutes.",
                                                  "link": "/status", "csrf_token": token})
    assert resp.status_code == 302
    row = db.session.scalars(sa.select(Broadcast)).one()
    assert (row.status, row.total, row.sent) == ("queued", 7, 0)
    status = client.get(f"/admin/broadcast/{row.id}/status").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in status and "0 / 7" in status
    assert "<b>tonight</b>" not in status and "&lt;b&gt;tonight&lt;/b&gt;" in status

    small_batches = make_app(BROADCAST_BATCH_SIZE=3)
    with small_batches.app_context():
        run_jobs(small_batches)
    db.session.expire_all()
    done = db.session.get(Broadcast, row.id)
    assert (done.status, done.sent, done.total) == ("done", 7, 7)
    assert done.finished_at is not None
    received = set(db.session.scalars(sa.select(Notification.user_id).where(Notification.subtype == "broadcast")))
    assert received == {u.user_id for u in users[1:]} | {admin.user_id}
    sample = db.session.scalars(sa.select(Notification).where(Notification.user_id == users[1].user_id)).one()
    assert (sample.category, sample.title, sample.link, sample.data) == (
        "system", "Pool maintenance <b>tonight</b>", "/status", {"broadcast_id": row.id})
    finished = client.get(f"/admin/broadcast/{row.id}/status").get_data(as_text=True)
    assert "hx-trigger" not in finished and "7 / 7" in finished
    audit = db.session.scalars(sa.select(AuditLog)).one()
    assert (audit.action, audit.target_id, audit.actor_user_id) == ("broadcast", str(row.id), admin.user_id)


def test_the_flash_says_what_the_row_says_when_it_is_shown(app, client, auth, make_user, monkeypatch):
    """Under the embedded default the fan-out runs inline: the flash says it
    was sent, not "queued"; with a worker it is still queued."""
    admin = make_user(is_admin=True)
    for _ in range(3):
        make_user()
    auth.login(admin.user_id, PASSWORD)
    token = auth.csrf_token("/admin/broadcast")
    monkeypatch.setitem(app.config, "EMBEDDED", True)
    page = client.post("/admin/broadcast", data={"title": "Now", "csrf_token": token}, follow_redirects=True)
    html = page.get_data(as_text=True)
    row = db.session.scalars(sa.select(Broadcast)).one()
    db.session.refresh(row)
    assert (row.status, row.sent) == ("done", 4)
    assert f"Broadcast #{row.id} sent to 4 of 4 users." in html and "queued" not in html

    monkeypatch.setitem(app.config, "EMBEDDED", False)
    html = client.post("/admin/broadcast", data={"title": "Later", "csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    later = db.session.scalars(sa.select(Broadcast).where(Broadcast.id != row.id)).one()
    assert f"Broadcast #{later.id} queued for 4 users." in html


@pytest.mark.parametrize("data", [{"title": ""}, {"title": "ok", "link": "javascript:alert(1)"}, {"title": "x" * 201}])
def test_broadcast_form_validates(client, make_user, login_as, data):
    token = login_as(make_user(is_admin=True), csrf_from="/admin/broadcast")["X-CSRFToken"]
    resp = client.post("/admin/broadcast", data={**data, "csrf_token": token})
    assert resp.status_code == 400
    assert re.search(r'class="error"', resp.get_data(as_text=True))
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 0


def test_fan_out_is_not_repeated(app, make_user):
    admin = make_user(is_admin=True)
    make_user()
    row = broadcasts.create_broadcast(admin, title="Once")
    broadcasts.fan_out(row.id, batch_size=1)
    broadcasts.fan_out(row.id, batch_size=1)  # a re-run of a finished broadcast does nothing
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 2
