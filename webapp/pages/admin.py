"""Pages: the platform admin (``/admin``) — search and list coops and users,
the invite-code guessing line (``services.invites``),
dissolve or rename a coop with a reason, the audit log, and job health with
retry of failed jobs. The broadcast page (``/admin/broadcast``) lives in
``pages/broadcast.py`` and is linked from here.

Every route is ``admin_required``: anonymous → the login page, a logged-in
non-admin → 403. Lists are fragments that htmx swaps in place (``Next``
links); opened without htmx they render as a page of their own. Actions are
htmx POSTs (CSRF via the ``hx-headers`` on ``<body>``) that answer with the
changed row or section and an ``HX-Trigger: audit-changed`` header on
which the audit log section reloads itself; a plain form POST
redirects back to ``/admin``.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..api.validation import encode_cursor, parse_cursor
from ..auth import admin_required
from ..extensions import db
from ..models import Cooperative
from ..services import admin, deliveries, invites
from ..services.errors import DomainError, NotFound, ValidationError
from .fragments import admin_section, is_htmx

bp = Blueprint("pages_admin", __name__)

PAGE_SIZE = 25
MAX_COOP_ID = 2**31 - 1
AUDIT_PAGE_SIZE = 20
# Tells the audit log section to reload itself (hx-trigger="audit-changed from:body").
AUDIT_CHANGED = {"HX-Trigger": "audit-changed"}


def _id_cursor(max_id: int) -> int | None:
    """``?cursor=`` as an id within the column's range. Raises ValidationError."""
    cursor = parse_cursor()
    if cursor is not None and cursor > max_id:
        raise ValidationError("cursor is not valid; use the link of the previous page.")
    return cursor


def _q() -> str:
    return admin.clean_query(request.args.get("q", ""))


def _coops_context(q: str, before_id: int | None = None) -> dict:
    coops, next_id = admin.search_coops(q, before_id=before_id, limit=PAGE_SIZE)
    return {"coops": coops, "q": q, "coops_paged": before_id is not None,
            "coops_next": url_for("pages_admin.coops", q=q or None, cursor=encode_cursor(next_id)) if next_id else None}


def _users_context(q: str, after: str | None = None) -> dict:
    rows, last = admin.search_users(q, after_user_id=after, limit=PAGE_SIZE)
    return {"users": rows, "q": q, "users_paged": after is not None,
            "users_next": url_for("pages_admin.users", q=q or None, cursor=admin.encode_key_cursor(last)) if last else None}


def _audit_context(before_id: int | None = None) -> dict:
    entries, next_id = admin.list_audit(before_id=before_id, limit=AUDIT_PAGE_SIZE)
    return {"audit": entries, "audit_paged": before_id is not None,
            "audit_next": url_for("pages_admin.audit", cursor=encode_cursor(next_id)) if next_id else None}


def _jobs_context(error: str | None = None, message: str | None = None) -> dict:
    return {"jobs": admin.job_health(current_app.extensions["redis_raw"]), "jobs_error": error, "jobs_message": message}


@bp.get("/admin")
@admin_required
def index():
    q = _q()
    context = {"counts": admin.counts(), "invite_guard": invites.status(),
               "delivery_health": deliveries.failures_by_channel()} | _coops_context(q) | _users_context(q) \
        | _audit_context() | _jobs_context()
    return render_template("admin/index.html", **context)


@bp.get("/admin/coops")
@admin_required
def coops():
    return admin_section("admin/_coops.html", "Cooperatives", **_coops_context(_q(), _id_cursor(MAX_COOP_ID)))


@bp.get("/admin/users")
@admin_required
def users():
    after = admin.parse_key_cursor(request.args.get("cursor"))
    return admin_section("admin/_users.html", "Users", **_users_context(_q(), after))


@bp.get("/admin/audit")
@admin_required
def audit():
    return admin_section("admin/_audit.html", "Audit log", **_audit_context(_id_cursor(2**63 - 1)))


@bp.get("/admin/jobs")
@admin_required
def jobs():
    return admin_section("admin/_jobs.html", "Job health", **_jobs_context())


def _coop_action(coop_id: int, action, done: str):
    """Run a coop action; answer htmx with the row (+ audit log out of band)
    or the row with the error, and a plain POST with a redirect."""
    if coop_id > MAX_COOP_ID:  # the column is a 32-bit integer
        raise NotFound("No such cooperative.")
    try:
        action()
    except DomainError as exc:
        db.session.rollback()
        coop = None if isinstance(exc, NotFound) else db.session.get(Cooperative, coop_id)
        if not is_htmx() or coop is None:
            raise
        return render_template("admin/_coop_row.html", coop=coop, error=exc.message), exc.status
    if not is_htmx():
        flash(done)
        return redirect(url_for("pages_admin.index"))
    coop = db.session.get(Cooperative, coop_id)
    return render_template("admin/_coop_row.html", coop=coop, message=done), 200, AUDIT_CHANGED


@bp.post("/admin/coops/<int:coop_id>/dissolve")
@admin_required
def dissolve(coop_id: int):
    return _coop_action(
        coop_id,
        lambda: admin.dissolve_coop(current_user, coop_id=coop_id, reason=request.form.get("reason", "")),
        "Cooperative dissolved.",
    )


@bp.post("/admin/coops/<int:coop_id>/rename")
@admin_required
def rename(coop_id: int):
    return _coop_action(
        coop_id,
        lambda: admin.rename_coop(current_user, coop_id=coop_id, name=request.form.get("name", ""),
                                  reason=request.form.get("reason", "")),
        "Cooperative renamed.",
    )


@bp.post("/admin/jobs/<job_id>/retry")
@admin_required
def retry_job(job_id: str):
    try:
        job = admin.retry_failed_job(current_user, current_app.extensions["redis_raw"], job_id=job_id)
    except DomainError as exc:
        if not is_htmx():
            raise
        return render_template("admin/_jobs.html", **_jobs_context(error=exc.message)), exc.status
    done = f"Job {job.id} is queued again."
    if not is_htmx():
        flash(done)
        return redirect(url_for("pages_admin.index"))
    return render_template("admin/_jobs.html", **_jobs_context(message=done)), 200, AUDIT_CHANGED
