"""Pages: the coop's moderation screen (``/coop/moderation``, for its admin
and moderators) and the platform admins' escalated reports
(``/admin/reports``, also lazy-loaded into ``/admin``).

Thin over ``services.coop_moderation`` and ``services.reports``, like the
JSON routes. Every action is an htmx POST (CSRF through the ``hx-headers``
on ``<body>``) answering with the whole moderation panel
(``moderation/_panel.html``), since a ban changes the members, the bans and
the audit log at once; the outcome is announced in its ``role="status"``
line. A plain form POST redirects back to the screen with the message flashed.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..api.validation import decode_cursor, encode_cursor
from ..auth import admin_required
from ..models import SLOW_MODE_MAX
from ..services import coop_moderation, coops, inputs, moderation, reports
from ..services.errors import DomainError, NotModerator, ValidationError
from .fragments import admin_section, is_htmx

bp = Blueprint("pages_moderation", __name__)

AUDIT_PAGE = 20
MUTE_CHOICES = ((10, "10 minutes"), (60, "1 hour"), (24 * 60, "1 day"), (7 * 24 * 60, "7 days"))
SLOW_MODE_CHOICES = (0, 5, 10, 30, 60, 300, 900, 3600)


def _panel_context(coop_id: int) -> dict[str, Any]:
    coop = coops.get_for_member(current_user, coop_id=coop_id)
    actor = moderation.require_moderator(coop.id, current_user.user_id)
    members = coops.members_of(coop.id)
    audit, last = coop_moderation.audit_page(current_user, coop_id=coop.id, limit=AUDIT_PAGE)
    open_reports, _ = reports.triage_for_coop(coop.id, viewer_id=current_user.user_id, limit=50)
    bodies = reports.message_bodies(open_reports)
    return {
        "coop": coop, "actor": actor, "members": members, "mutes": coop_moderation.mutes_of(coop.id),
        "bans": coop_moderation.list_bans(current_user, coop_id=coop.id),
        "reports": open_reports, "names": reports.display_names(open_reports),
        "bodies": bodies, "outcomes": reports.outcomes(current_user, open_reports, bodies),
        "audit": audit, "audit_next": _audit_url(last),
        "filters": coop.keyword_filters or [], "mute_choices": MUTE_CHOICES,
        "slow_mode_choices": sorted({*SLOW_MODE_CHOICES, coop.slow_mode_seconds}),
        "phrase_max": moderation.PHRASE_MAX, "filters_max": moderation.FILTERS_MAX,
    }


def _audit_url(last: int | None) -> str | None:
    return url_for("pages_moderation.audit", cursor=encode_cursor(last)) if last else None


def _panel(coop_id: int, *, message: str | None = None, error: DomainError | None = None):
    """The re-rendered panel (htmx) or a redirect to the screen."""
    if not is_htmx():
        flash(error.message if error else message or "Done.")
        return redirect(url_for("pages_moderation.screen"))
    try:
        context = _panel_context(coop_id)
    except DomainError as exc:  # no longer a moderator (or member) of this coop
        return render_template("moderation/_gone.html", message=exc.message), exc.status
    return (render_template("moderation/_panel.html", message=message, error=error and error.message, **context),
            error.status if error else 200)


def _act(coop_id: int, action, message: str):
    try:
        action()
    except DomainError as exc:
        return _panel(coop_id, error=exc)
    return _panel(coop_id, message=message)


def _minutes(raw: str | None) -> int:
    return inputs.parse_int(raw or "", name="minutes", minimum=moderation.MUTE_MINUTES[0],
                            maximum=moderation.MUTE_MINUTES[1])


def _resolve_report(report_id: int) -> None:
    """Resolve the report with the posted action, note and mute ``minutes``
    (optional). Raises DomainError, ValidationError included."""
    form = request.form
    minutes = _minutes(form.get("minutes")) if form.get("minutes") else None
    reports.resolve(current_user, report_id=report_id, action=form.get("action", ""), note=form.get("note"),
                    minutes=minutes)


# ---- the screen -------------------------------------------------------------------------------


@bp.get("/coop/moderation")
@login_required
def screen():
    mine = coops.get_mine(current_user)
    if mine is None:
        flash("You are not in a cooperative yet.")
        return redirect(url_for("pages_coops.coop"))
    if not moderation.is_moderator(mine.id, current_user.user_id):
        raise NotModerator("Only the cooperative's admin and moderators can moderate it.")
    return render_template("moderation/screen.html", **_panel_context(mine.id))


@bp.get("/coop/moderation/panel")
@login_required
def panel():
    """The panel as it is now, for the "Show the latest" button of a pushed
    moderation/_changed.html (htmx), with that line cleared; otherwise the
    screen."""
    if not is_htmx():
        return redirect(url_for("pages_moderation.screen"))
    cleared = '<div id="moderation-live" hx-swap-oob="innerHTML"></div>'
    mine = coops.get_mine(current_user)
    if mine is None:
        return render_template("moderation/_gone.html", message="You are not in a cooperative any more.") + cleared
    body, status = _panel(mine.id, message="Showing the latest.")
    return body + cleared, status


@bp.get("/coop/moderation/counts")
@login_required
def counts():
    """The section links with the open reports and bans counted, out of
    band (htmx, after a pushed moderation/_changed.html); empty when the
    viewer moderates no coop any more (the pushed line says why)."""
    mine = coops.get_mine(current_user)
    if mine is None or not moderation.is_moderator(mine.id, current_user.user_id):
        return ""
    open_reports, _ = reports.triage_for_coop(mine.id, viewer_id=current_user.user_id, limit=50)
    bans = coop_moderation.list_bans(current_user, coop_id=mine.id)
    return render_template("moderation/_jump.html", oob=True, report_count=len(open_reports), ban_count=len(bans))


@bp.get("/coop/moderation/audit")
@login_required
def audit():
    """An older page of the audit log (the "Older entries" link)."""
    mine = coops.get_mine(current_user)
    if mine is None:
        raise NotModerator()
    before = decode_cursor(request.args.get("cursor"))
    entries, last = coop_moderation.audit_page(current_user, coop_id=mine.id, limit=AUDIT_PAGE, before_id=before)
    return render_template("moderation/_audit_rows.html", audit=entries, audit_next=_audit_url(last))


# ---- member actions ------------------------------------------------------------------------------


@bp.post("/coop/<int:coop_id>/moderation/members/<user_id>/role")
@login_required
def set_role(coop_id: int, user_id: str):
    role = request.form.get("role", "")
    return _act(coop_id, lambda: coop_moderation.set_role(current_user, coop_id=coop_id, user_id=user_id, role=role),
                f"{coops.display_name(user_id)} is now a {role}.")


@bp.post("/coop/<int:coop_id>/moderation/members/<user_id>/mute")
@login_required
def mute(coop_id: int, user_id: str):
    try:
        minutes = _minutes(request.form.get("minutes"))
    except ValidationError as exc:
        return _panel(coop_id, error=exc)
    return _act(coop_id, lambda: coop_moderation.mute(current_user, coop_id=coop_id, user_id=user_id, minutes=minutes),
                f"{coops.display_name(user_id)} is muted.")


@bp.post("/coop/<int:coop_id>/moderation/members/<user_id>/unmute")
@login_required
def unmute(coop_id: int, user_id: str):
    return _act(coop_id, lambda: coop_moderation.unmute(current_user, coop_id=coop_id, user_id=user_id),
                f"{coops.display_name(user_id)} can write again.")


@bp.post("/coop/<int:coop_id>/moderation/members/<user_id>/ban")
@login_required
def ban(coop_id: int, user_id: str):
    reason = request.form.get("reason", "")
    return _act(coop_id, lambda: coop_moderation.ban(current_user, coop_id=coop_id, user_id=user_id, reason=reason),
                f"{coops.display_name(user_id)} is banned.")


@bp.post("/coop/<int:coop_id>/moderation/members/<user_id>/remove")
@login_required
def remove(coop_id: int, user_id: str):
    return _act(coop_id, lambda: coops.remove_member(current_user, coop_id=coop_id, user_id=user_id),
                f"{coops.display_name(user_id)} was removed.")


@bp.post("/coop/<int:coop_id>/moderation/bans/<user_id>/unban")
@login_required
def unban(coop_id: int, user_id: str):
    return _act(coop_id, lambda: coop_moderation.unban(current_user, coop_id=coop_id, user_id=user_id),
                f"{coops.display_name(user_id)} is no longer banned.")


# ---- settings and reports --------------------------------------------------------------------------


def _phrases(field: str, action: str) -> list[dict[str, str]]:
    return [{"phrase": line, "action": action} for line in request.form.get(field, "").splitlines() if line.strip()]


@bp.post("/coop/<int:coop_id>/moderation/settings")
@login_required
def settings(coop_id: int):
    try:
        seconds = inputs.parse_int(request.form.get("slow_mode_seconds") or "0", name="slow_mode_seconds",
                                   minimum=0, maximum=SLOW_MODE_MAX)
    except ValidationError as exc:
        return _panel(coop_id, error=exc)
    filters = _phrases("block", "block") + _phrases("flag", "flag")
    return _act(coop_id, lambda: coop_moderation.update_settings(
        current_user, coop_id=coop_id, slow_mode_seconds=seconds, keyword_filters=filters), "Chat settings saved.")


@bp.post("/coop/<int:coop_id>/moderation/reports/<int:report_id>/resolve")
@login_required
def resolve(coop_id: int, report_id: int):
    return _act(coop_id, lambda: _resolve_report(report_id), "Report resolved.")


# ---- platform admins ---------------------------------------------------------------------------------


def _escalated_context(message: str | None = None, error: DomainError | None = None) -> dict[str, Any]:
    """The open reports, escalated first (open 24 hours or more), then newest
    first, for ``moderation/_admin_reports.html`` with the outcome of an action."""
    rows, _ = reports.triage(current_user, status="open", limit=100)
    rows.sort(key=lambda r: (r.escalated_at is None, -r.id))
    bodies = reports.message_bodies(rows)
    return {"reports": rows, "names": reports.display_names(rows), "bodies": bodies,
            "outcomes": reports.outcomes(current_user, rows, bodies),
            "message": message, "error": error and error.message}


@bp.get("/admin/reports")
@admin_required
def escalated():
    """Reports open for 24 hours or more (escalated), then the other open
    ones; a section of ``/admin`` (htmx) or a page of its own."""
    return admin_section("moderation/_admin_reports.html", "Reports", **_escalated_context())


@bp.post("/admin/reports/<int:report_id>/resolve")
@admin_required
def admin_resolve(report_id: int):
    message, error = None, None
    try:
        _resolve_report(report_id)
        message = "Report resolved."
    except DomainError as exc:
        error = exc
    if not is_htmx():
        flash(error.message if error else message or "Done.")
        return redirect(url_for("pages_moderation.escalated"))
    return (render_template("moderation/_admin_reports.html", **_escalated_context(message, error)),
            error.status if error else 200)
