"""Pages: the platform-admin broadcast (``/admin/broadcast``): a form that
sends a ``system`` notification to every user. The fan-out runs in an RQ job
(``jobs.notifications.fan_out_broadcast``, enqueued by name); the page polls the broadcast's
progress with htmx every second until it is done or failed."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth import admin_required
from ..services import broadcasts
from ..services.errors import ValidationError

bp = Blueprint("pages_broadcast", __name__)


@bp.get("/admin/broadcast")
@admin_required
def index():
    return render_template("broadcast/index.html", broadcasts=broadcasts.recent(), form={}, error=None)


@bp.post("/admin/broadcast")
@admin_required
def send():
    form = request.form
    try:
        row = broadcasts.create_broadcast(current_user, title=form.get("title", ""), body=form.get("body", ""),
                                          link=form.get("link", ""))
    except ValidationError as exc:
        return render_template("broadcast/index.html", broadcasts=broadcasts.recent(), form=form,
                               error=exc.message), 400
    broadcasts.enqueue_fan_out(row.id)
    flash(broadcasts.progress_message(row.id))
    return redirect(url_for("pages_broadcast.index"))


@bp.get("/admin/broadcast/<int:broadcast_id>/status")
@admin_required
def status(broadcast_id: int):
    """One broadcast's row (htmx polls it while queued or running)."""
    return render_template("broadcast/_status.html", b=broadcasts.get_broadcast(broadcast_id))
