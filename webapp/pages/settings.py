"""Pages: ``/settings`` — privacy toggles, notification preferences, and
sign-in security (password change, open sessions, log out everywhere).

Each form saves itself through htmx on every change and answers with a
"Saved" line; without JS the same forms post normally and redirect back.
Every save builds a ``preferences.SettingsPatch`` and calls
``accounts.update_settings``, the service behind ``PATCH /api/settings``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_from_directory, url_for
from flask_login import current_user, login_required

from ..api.validation import validate
from ..auth import log_out
from ..extensions import auth_rate_limit
from ..models import NOTIFICATION_CATEGORIES, utcnow
from ..services import accounts, catalogue, preferences, sessions
from ..services.errors import DomainError, ValidationError
from .fragments import is_htmx

bp = Blueprint("pages_settings", __name__)

PRIVACY_LABELS = preferences.PRIVACY_LABELS
# Derived from the catalogue of notification kinds (services/catalogue.py).
CATEGORY_LABELS = {c.name.value: (c.label, c.help) for c in catalogue.CATEGORIES}
TOGGLE_LABELS = {t.key: t.label for t in catalogue.TOGGLES}

def _save(patch: dict[str, Any], section: str):
    """Apply ``patch`` through the settings service and confirm. A refusal
    names the setting as the page does (``preferences.plain_problem``), not
    its path in the settings document."""
    try:
        checked = validate(preferences.SettingsPatch, patch)
    except ValidationError as exc:
        first = (exc.details or [{}])[0]
        if "field" not in first:
            raise
        raise ValidationError(preferences.plain_problem(first["field"], first["message"])) from None
    accounts.update_settings(current_user, checked)
    if is_htmx():
        return render_template("settings/_saved.html", section=section, at=utcnow())
    flash("Settings saved.")
    return redirect(url_for("pages_settings.settings"))


def _page(password_error: str | None = None):
    current = accounts.get_settings(current_user)
    return render_template(
        "settings/index.html",
        current=current,
        # Still the default zone: the page proposes the browser's (static/js/settings.js).
        timezone_chosen=current["notifications"]["timezone"] != preferences.DEFAULT_TIMEZONE,
        digest_modes=preferences.DIGEST_MODES,
        privacy_labels=PRIVACY_LABELS,
        category_labels=CATEGORY_LABELS,
        categories=NOTIFICATION_CATEGORIES,
        email_categories=preferences.EMAIL_CATEGORIES,
        toggle_labels={k: TOGGLE_LABELS.get(k, k) for k in preferences.SUBTYPE_TOGGLES},
        sessions=sessions.live_sessions(current_user.user_id, current_secret=current_user.auth_session_secret),
        password_error=password_error,
    )


@bp.get("/settings")
@login_required
def settings():
    return _page()


@bp.post("/settings/password")
@auth_rate_limit
@login_required
def change_password():
    """The current password and a new one; this browser stays logged in,
    every other session and every bearer token ends."""
    try:
        accounts.change_password(current_user, current_password=request.form.get("current_password", ""),
                                 new_password=request.form.get("new_password", ""),
                                 keep_session_secret=current_user.auth_session_secret)
    except DomainError as exc:
        return _page(password_error=exc.message), exc.status
    flash("Password changed. Every other session and every API token has been logged out.")
    return redirect(url_for("pages_settings.settings"))


@bp.post("/settings/logout-everywhere")
@login_required
def logout_everywhere():
    """End every session (this one too) and every bearer token."""
    accounts.log_out_everywhere(current_user)
    log_out()
    flash("You have been logged out everywhere.")
    return redirect(url_for("pages_auth.login"))


@bp.post("/settings/privacy")
@login_required
def save_privacy():
    """Checkboxes: a key present in the form is on, absent is off."""
    return _save({"privacy": {key: key in request.form for key in preferences.DEFAULT_PRIVACY}}, "privacy")


@bp.post("/settings/notifications")
@login_required
def save_notifications():
    """``<category>.enabled`` and ``<category>.email`` (e-mail categories
    only) checkboxes plus the frontend's subtype toggles."""
    categories: dict[str, dict[str, bool]] = {}
    for category in NOTIFICATION_CATEGORIES:
        categories[category] = {"enabled": f"{category}.enabled" in request.form}
        if category in preferences.EMAIL_CATEGORIES:
            categories[category]["email"] = f"{category}.email" in request.form
    notifications: dict[str, Any] = {"categories": categories}
    for toggle in preferences.SUBTYPE_TOGGLES:
        notifications[toggle] = toggle in request.form
    return _save({"notifications": notifications}, "notifications")


@bp.post("/settings/email")
@login_required
def save_email():
    """The address e-mail notifications go to; blank removes it."""
    email = (request.form.get("email") or "").strip() or None
    try:
        return _save({"notifications": {"email": email}}, "email")
    except ValidationError:
        raise ValidationError("That does not look like an e-mail address (name@example.org).") from None


def _int_field(name: str) -> int | str | None:
    """A number field: blank is None; a non-number is passed on as text so
    the settings schema answers with its own 400."""
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    return int(raw) if raw.isdigit() else raw


@bp.post("/settings/delivery")
@login_required
def save_delivery():
    """Time zone, quiet hours (``quiet`` checkbox + ``quiet_start``/``quiet_end``),
    digest, hourly limit (blank: none), worker-offline threshold and muted
    workers (one per line or comma-separated), push per category
    (``push.<category>`` checkboxes): API.md "Notification settings"."""
    form = request.form
    notifications: dict[str, Any] = {
        "digest": form.get("digest") or "off",
        "max_per_hour": _int_field("max_per_hour"),
        "quiet_hours": ({"start": form.get("quiet_start", ""), "end": form.get("quiet_end", "")}
                        if "quiet" in form else None),
        "push": {category: f"push.{category}" in form for category in NOTIFICATION_CATEGORIES},
    }
    if "timezone" in form:  # the page's field; a form without it keeps the zone
        zone = form["timezone"].strip()
        if not zone:  # never "Saved" while the old zone silently stays
            raise ValidationError("Choose a time zone: an IANA name such as Europe/Berlin, or UTC.")
        notifications["timezone"] = zone
    offline: dict[str, Any] = {"muted_workers": [w.strip() for w in (form.get("muted_workers") or "")
                                                 .replace(",", "\n").splitlines() if w.strip()]}
    after = _int_field("after_minutes")
    if after is not None:
        offline["after_minutes"] = after
    notifications["worker_offline"] = offline
    return _save({"notifications": notifications}, "delivery")


@bp.get("/sw.js")
def service_worker():
    """The Web Push service worker, served from the site's root so its scope
    covers every page (``static/js/sw.js``)."""
    response = send_from_directory(current_app.static_folder or "static", "js/sw.js",
                                   mimetype="application/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    return response
