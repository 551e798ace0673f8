"""Pages: the profile editor (``/settings/profile``) with a live preview of
what a stranger and a friend see, the e-mail change, the data export and
account deletion (forms on ``/settings``). Thin: every action calls the
service behind its JSON twin (``profile_edit``, ``email_change``,
``your_data``); the preview is ``profiles.profile_dict``, the one serialiser."""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required

from ..auth import log_out
from ..extensions import auth_rate_limit
from ..security import allow_large_body
from ..services import email_change, profile_edit, profile_fields, profiles, your_data
from ..services.errors import DomainError
from .fragments import fragment_or_page, is_htmx

bp = Blueprint("pages_your_data", __name__)

LEVELS = (("public", "Everyone"), ("connections", "Friends"), ("private", "Only me"))
FIELD_LABELS = {"display_name": "Name", "avatar": "Picture", "banner": "Banner", "bio": "Bio",
                "pronouns": "Pronouns", "location": "Location", "country_code": "Country"}


def _page_words(message: str) -> tuple[str, str | None]:
    """``(words, the form control's name)`` of a service message that starts
    with a field's key: ("display_name must be 3 to 40 characters.") gives
    ("Name must …", "display_name"), "visibility.bio must …" names the
    ``visibility.bio`` select. Another message: (itself, None)."""
    key, _, rest = message.partition(" ")
    if key in FIELD_LABELS and rest:
        return f"{FIELD_LABELS[key]} {rest}", key
    return message, (key if key.removeprefix("visibility.") in FIELD_LABELS and rest else None)


def _editor(error: str | None = None, status: int = 200):
    error, error_field = _page_words(error) if error else (error, None)
    context = {
        "own": profile_edit.own_profile(current_user),
        "previews": profiles.previews(current_user),
        "levels": LEVELS,
        "field_labels": FIELD_LABELS,
        "fields": profile_fields.FIELDS,
        "error": error,
        "error_field": error_field,
    }
    return fragment_or_page("settings/_profile_preview.html", "settings/profile.html", **context), status


@bp.get("/settings/profile")
@login_required
def profile_editor():
    """The editor: fields, levels, uploads, and both previews."""
    return _editor()


@bp.post("/settings/profile")
@login_required
def save_profile():
    """Save the form (htmx on every change: answers the refreshed previews)."""
    form = request.form
    changes: dict[str, object] = {key: form[key] for key in ("display_name", "bio", "pronouns", "location")
                                  if key in form}
    if "country_code" in form:
        changes["country_code"] = form["country_code"].strip().upper() or None
    visibility = {f: form[f"visibility.{f}"] for f in profile_fields.FIELDS if f"visibility.{f}" in form}
    if visibility:
        changes["visibility"] = visibility
    try:
        profile_edit.update(current_user, changes)
    except DomainError as exc:
        return _editor(error=exc.message, status=exc.status)
    if is_htmx():
        return _editor()
    flash("Profile saved.")
    return redirect(url_for("pages_your_data.profile_editor"))


@bp.post("/settings/profile/<any(avatar, banner):kind>")
@allow_large_body("MEDIA_MAX_UPLOAD", back="pages_your_data.profile_editor")
@login_required
def upload(kind: str):
    """Upload or (``remove``) delete the avatar or banner."""
    try:
        if "remove" in request.form:
            profile_edit.delete_image(current_user, kind)
        else:
            file = request.files.get("file")
            if file is None or not file.filename:
                raise DomainError("Choose an image file first.")
            profile_edit.set_image(current_user, kind, file.read(int(current_app.config["MEDIA_MAX_UPLOAD"]) + 1))
    except DomainError as exc:
        flash(exc.message)
    else:
        flash("Picture saved." if "remove" not in request.form else "Picture removed.")
    return redirect(url_for("pages_your_data.profile_editor"))


@bp.get("/settings/export")
@login_required
def export():
    """The export as a downloaded JSON file."""
    body = json.dumps(your_data.export(current_user), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="solo-mining-my-data.json"',
                             "Cache-Control": "no-store"})


@bp.post("/settings/email/change")
@auth_rate_limit
@login_required
def change_email():
    try:
        email_change.request_change(current_user, request.form.get("email", ""), request.form.get("password", ""))
    except DomainError as exc:
        flash(exc.message)
    else:
        flash("We sent a confirmation link to the new address; open it to finish.")
    return redirect(url_for("pages_settings.settings") + "#email-change")


@bp.post("/settings/delete")
@auth_rate_limit
@login_required
def delete_account():
    try:
        your_data.delete_account(current_user, request.form.get("password", ""))
    except DomainError as exc:
        flash(exc.message)
        return redirect(url_for("pages_settings.settings") + "#your-data")
    log_out()
    flash("Your account and its data are deleted.")
    return redirect(url_for("pages_auth.login"))
