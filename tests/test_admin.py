"""Platform admin: /admin access, search and lists, coop moderation with an
audit log, and RQ job health with retry (issue 5 item 4)."""
from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import (
    AuditLog,
    Cooperative,
    CooperativeMember,
    Notification,
    UserActivity,
)

from .builders import run_jobs

MY_ROUTES = {
    ("GET", "/admin"), ("GET", "/admin/coops"), ("GET", "/admin/users"), ("GET", "/admin/audit"),
    ("GET", "/admin/jobs"), ("POST", "/admin/coops/<int:coop_id>/dissolve"),
    ("POST", "/admin/coops/<int:coop_id>/rename"), ("POST", "/admin/jobs/<job_id>/retry"),
}


def failing_job(n: int) -> None:
    """An RQ job that always fails (imported by the worker by its dotted path)."""
    raise RuntimeError(f"boom {n}")


def admin_routes(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def concrete(rule: str) -> str:
    return re.sub(r"<(?:int:)?([a-z_]+)>", lambda m: "1" if "int:" in m.group(0) else "x", rule)


@pytest.fixture
def as_admin(make_user, login_as):
    """A platform admin logged in, and the htmx headers of /admin."""
    admin = make_user(display_name="Root", is_admin=True)
    return admin, login_as(admin, csrf_from="/admin")


# ---- access -----------------------------------------------------------------------


def test_non_admin_gets_403_on_every_admin_route(app, client, auth, make_user, make_coop):
    user = make_user()
    coop = make_coop(user, name="Target")[0]
    auth.login(user.user_id)
    csrf = {"X-CSRFToken": auth.csrf_token("/settings")}
    routes = admin_routes(app)
    assert MY_ROUTES <= routes
    for method, rule in sorted(routes):
        path = concrete(rule)
        for headers in ({}, {"HX-Request": "true"}):
            resp = client.open(path, method=method, headers={**csrf, **headers},
                               data={"reason": "x", "name": "New name", "title": "t", "body": "b"})
            assert resp.status_code == 403, (method, path, headers)
    assert client.get("/admin", headers={"Accept": "application/json"}).get_json()["error"]["code"] == "forbidden"
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).status == "active"
    assert db.session.scalar(select(AuditLog.id)) is None


def test_anonymous_is_sent_to_login(app):
    with app.app_context():
        client = app.test_client()
        for method, rule in sorted(admin_routes(app)):
            if method == "GET":
                resp = client.get(concrete(rule))
                assert resp.status_code == 302 and "/login" in resp.headers["Location"], rule
        # a POST with a valid session CSRF token but no login also goes to the login page
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
        resp = client.post("/admin/coops/1/dissolve", headers={"X-CSRFToken": token}, data={"reason": "x"})
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


# ---- lists and search -------------------------------------------------------------------


def test_admin_page_lists_searches_and_pages(client, as_admin, make_user, make_coop):
    admin, hx = as_admin
    users = [make_user(f"bc1qpage{i:03d}", display_name=f"Pager {i}") for i in range(27)]
    make_coop(users[0], members=users[1:3], name="Alpha Miners")
    make_coop(users[3], name="Beta Hashers")
    html = client.get("/admin").get_data(as_text=True)
    assert "Alpha Miners" in html and "Beta Hashers" in html and 'href="/admin/broadcast"' in html
    assert "Job health" in html and "Audit log" in html and 'name="reason"' in html

    found = client.get("/admin?q=alpha").get_data(as_text=True)
    assert "Alpha Miners" in found and "Beta Hashers" not in found
    by_user = client.get("/admin/users?q=Pager 1", headers=hx).get_data(as_text=True)
    assert "bc1qpage001" in by_user and "bc1qpage010" in by_user and "bc1qpage002" not in by_user
    assert "#1 Alpha Miners" in by_user  # the user's active coop

    seen, url = [], "/admin/users?q=bc1qpage"
    while url:
        page = client.get(url, headers=hx).get_data(as_text=True)
        seen += re.findall(r">(bc1qpage\d{3})</a>", page)
        nxt = re.search(r'hx-get="([^"]+)" hx-target="#admin-users" hx-swap="outerHTML">Next', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == [f"bc1qpage{i:03d}" for i in range(27)]  # two pages, no gaps, no repeats
    assert client.get("/admin/users?cursor=%%%", headers=hx).status_code == 400
    assert client.get("/admin/coops?cursor=bad!", headers=hx).status_code == 400
    huge = base64.urlsafe_b64encode(b"id:" + b"9" * 40).decode().rstrip("=")
    assert client.get(f"/admin/coops?cursor={huge}", headers=hx).status_code == 400
    assert client.get(f"/admin/audit?cursor={huge}", headers=hx).status_code == 400
    assert client.get("/admin?q=" + "x" * 101).status_code == 400
    plain = client.get("/admin/coops")  # without htmx: a page of its own
    assert plain.status_code == 200 and "<html" in plain.get_data(as_text=True)


# ---- coop moderation ---------------------------------------------------------------------


def test_dissolve_writes_an_audit_entry(client, as_admin, make_user, make_coop):
    admin, hx = as_admin
    owner, member = make_user(), make_user()
    coop = make_coop(owner, members=[member], name="Spam Coop")[0]
    resp = client.post(f"/admin/coops/{coop.id}/dissolve", headers=hx, data={"reason": "  Spam links in the name "})
    assert resp.status_code == 200
    assert resp.headers["HX-Trigger"] == "audit-changed"
    assert f'id="coop-{coop.id}"' in resp.get_data(as_text=True) and "dissolved" in resp.get_data(as_text=True)

    entry = db.session.scalars(select(AuditLog)).one()
    assert (entry.actor_user_id, entry.action, entry.target_type, entry.target_id, entry.reason) == (
        admin.user_id, "coop.dissolve", "cooperative", str(coop.id), "Spam links in the name")
    assert entry.data["name"] == "Spam Coop" and sorted(entry.data["members"]) == sorted([owner.user_id, member.user_id])

    db.session.expire_all()
    dissolved = db.session.get(Cooperative, coop.id)
    assert dissolved.status == "dissolved" and dissolved.member_count == 0 and dissolved.dissolved_at is not None
    statuses = db.session.scalars(select(CooperativeMember.status).where(CooperativeMember.cooperative_id == coop.id)).all()
    assert statuses == ["left", "left"]
    left = db.session.scalars(select(UserActivity.user_id).where(UserActivity.activity_type == "coop_left")).all()
    assert sorted(left) == sorted([owner.user_id, member.user_id])
    told = db.session.scalars(select(Notification.user_id).where(Notification.subtype == "admin_coop_dissolved")).all()
    assert sorted(told) == sorted([owner.user_id, member.user_id])

    audit = client.get("/admin/audit", headers=hx).get_data(as_text=True)
    assert "coop.dissolve" in audit and "Spam links in the name" in audit
    assert "Spam links in the name" in client.get("/admin").get_data(as_text=True)
    again = client.post(f"/admin/coops/{coop.id}/dissolve", headers=hx, data={"reason": "again"})
    assert again.status_code == 409
    assert db.session.scalar(select(AuditLog.id).where(AuditLog.id != entry.id)) is None


def test_dissolve_and_rename_need_a_reason(client, as_admin, make_user, make_coop):
    admin, hx = as_admin
    coop = make_coop(make_user(), name="Keep Me")[0]
    for path, data in ((f"/admin/coops/{coop.id}/dissolve", {"reason": "   "}),
                       (f"/admin/coops/{coop.id}/rename", {"name": "Other", "reason": ""}),
                       (f"/admin/coops/{coop.id}/rename", {"name": "ab", "reason": "too short"}),
                       (f"/admin/coops/{coop.id}/dissolve", {"reason": "r" * 501})):
        resp = client.post(path, headers=hx, data=data)
        assert resp.status_code == 400, data
        assert 'class="error"' in resp.get_data(as_text=True) and f'id="coop-{coop.id}"' in resp.get_data(as_text=True)
        assert '<details class="admin-manage" open>' in resp.get_data(as_text=True)  # the forms beside the error
    assert '<details class="admin-manage">' in client.get("/admin/coops", headers=hx).get_data(as_text=True)
    for missing_id in (999999, 10**30):
        missing = client.post(f"/admin/coops/{missing_id}/dissolve", headers=hx, data={"reason": "x"})
        assert missing.status_code == 404
        assert client.post(f"/admin/coops/{missing_id}/rename", headers=hx,
                           data={"name": "Valid", "reason": "x"}).status_code == 404
        assert client.post(f"/admin/coops/{missing_id}/rename", headers=hx, data={"name": "V"}).status_code in (400, 404)
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).status == "active"
    assert db.session.scalar(select(AuditLog.id)) is None


def test_rename_is_audited_and_told_to_the_coop_admin(client, as_admin, make_user, make_coop):
    admin, hx = as_admin
    owner = make_user()
    coop = make_coop(owner, name="Rude Name")[0]
    resp = client.post(f"/admin/coops/{coop.id}/rename", headers=hx,
                       data={"name": " Polite Name ", "reason": "Offensive name"})
    assert resp.status_code == 200 and "Polite Name" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Cooperative, coop.id).name == "Polite Name"
    entry = db.session.scalars(select(AuditLog)).one()
    assert entry.action == "coop.rename" and entry.data == {"old_name": "Rude Name", "new_name": "Polite Name"}
    assert db.session.scalars(select(Notification.user_id).where(Notification.subtype == "admin_coop_renamed")).all() == [
        owner.user_id]


def test_plain_form_post_redirects_back(client, as_admin, make_user, make_coop):
    admin, hx = as_admin
    coop = make_coop(make_user(), name="Plain Coop")[0]
    resp = client.post(f"/admin/coops/{coop.id}/dissolve", data={"csrf_token": hx["X-CSRFToken"], "reason": "test"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin")
    assert "Cooperative dissolved." in client.get("/admin").get_data(as_text=True)


# ---- job health ------------------------------------------------------------------------------


def test_job_health_shows_a_failed_job_and_retry_requeues_it(app, client, as_admin):
    admin, hx = as_admin
    raw = app.extensions["redis_raw"]
    queue = Queue("default", connection=raw)
    job = queue.enqueue(failing_job, 7)
    later = queue.enqueue_in(timedelta(hours=1), failing_job, 8)
    run_jobs(app)
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()

    html = client.get("/admin/jobs", headers=hx).get_data(as_text=True)
    assert f'id="failed-{job.id}"' in html and "RuntimeError: boom 7" in html
    assert "tests.test_admin.failing_job" in html
    assert later.id in html  # scheduled for later
    assert "jobs.coops.aggregate_coop_hashrate" in html  # the periodic jobs
    row = re.search(r'<tr data-queue="default">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["0", "0", "1", "1"]

    resp = client.post(f"/admin/jobs/{job.id}/retry", headers=hx)
    assert resp.status_code == 200 and resp.headers["HX-Trigger"] == "audit-changed"
    assert f"Job {job.id} is queued again." in resp.get_data(as_text=True)
    assert job.id not in FailedJobRegistry(queue=queue).get_job_ids()
    assert queue.get_job_ids() == [job.id] and queue.fetch_job(job.id).get_status() == "queued"
    entry = db.session.scalars(select(AuditLog)).one()
    assert (entry.action, entry.target_type, entry.target_id) == ("job.retry", "job", job.id)
    assert entry.data == {"queue": "default", "func": "tests.test_admin.failing_job"}

    # it runs (and fails) again: the retry really re-enqueued the same job
    run_jobs(app)
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()

    not_failed = client.post(f"/admin/jobs/{later.id}/retry", headers=hx)
    assert not_failed.status_code == 404 and 'class="error"' in not_failed.get_data(as_text=True)
    assert client.post("/admin/jobs/no-such-job/retry", headers=hx).status_code == 404
    assert client.post("/admin/jobs/bad%20id!/retry", headers=hx).status_code == 400
    assert len(db.session.scalars(select(AuditLog)).all()) == 1


def test_coop_search_by_id(app, make_user):
    from webapp.services import admin, coops

    coop = coops.create(make_user(), name="Numbered crew", description="")
    found, _ = admin.search_coops(str(coop.id))
    assert [c.id for c in found] == [coop.id]


def test_job_health_under_the_embedded_default_says_the_thread_runs_the_periodic_jobs(app, client, as_admin,
                                                                                        monkeypatch):
    """No REDIS_URL: no worker nor cron scheduler exists, the periodic jobs run
    on a thread of the web process; the page says so, with each job's last run."""
    import threading

    from webapp.services import schedule

    _, hx = as_admin
    monkeypatch.setitem(app.config, "EMBEDDED", True)
    monkeypatch.setattr(schedule, "_last_runs", {})
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    monkeypatch.setattr(schedule, "_embedded_thread", thread)
    try:
        schedule.run_embedded_job(app, "jobs.mining.sweep_offline_workers")
        html = client.get("/admin/jobs", headers=hx).get_data(as_text=True)
    finally:
        stop.set()
    assert "cron scheduler: <strong>not running" not in html and "Workers running" not in html
    assert "embedded scheduler thread: <strong>running" in html
    ran = re.search(r'data-job="jobs.mining.sweep_offline_workers">.*?</tr>', html, re.S)
    assert ran and "—" not in ran.group(0)  # its last run is shown
    never = re.search(r'data-job="jobs.accounts.purge_dead_sessions">.*?</tr>', html, re.S)
    assert never and "—" in never.group(0)
