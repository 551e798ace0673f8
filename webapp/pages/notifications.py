"""Pages: ``/notifications`` and the e-mail unsubscribe link.

The list is grouped Today / Yesterday / Earlier (UTC), filtered by category
chips and an unread-only toggle, and pages itself with infinite scroll
(htmx ``hx-trigger="revealed"`` on a sentinel that fetches the next keyset
page). Actions are htmx POSTs (CSRF through the ``hx-headers`` on
``<body>``) answered with the changed item plus the bell's badge out of
band; without htmx they redirect back. Live items arrive over ``/ws`` in
HTML mode and slide in at the top of the Today list (``#notification-list``).

The bell in the layout (``notifications/_bell.html``) reads its data from
the ``notification_bell()`` template global, only when it is rendered.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..api.validation import encode_cursor, int_arg, parse_cursor
from ..auth import csrf_exempt
from ..formatting import group_of, viewer_zone
from ..models import NOTIFICATION_CATEGORIES, utcnow
from ..services import accounts, deliveries, email, notification_groups, preferences
from ..services import notifications as service
from ..urls import safe_next
from .fragments import is_htmx

bp = Blueprint("pages_notifications", __name__)

PAGE_SIZE = 20
BELL_ITEMS = 5
GROUPS = {"today": "Today", "yesterday": "Yesterday", "earlier": "Earlier"}


def page_cursor() -> int:
    """The seq watermark of this page (the socket's ``since_seq``), read once
    per request and BEFORE the page reads any notification: every row the
    page shows has a seq up to it or arrives again over the socket (the page
    script drops the copy), and no row committed later is skipped."""
    if "notification_cursor" not in g:
        g.notification_cursor = service.latest_seq(current_user.user_id)
    return g.notification_cursor


@bp.app_template_global("notification_bell")
def notification_bell() -> dict[str, Any]:
    """The bell's data for the logged-in user: unread count, latest items
    (dicts), the newest id and the page's seq cursor (``page_cursor``)."""
    if not current_user.is_authenticated:
        return {"count": 0, "items": [], "groups": [], "latest_id": 0, "latest_seq": 0}
    user_id = current_user.user_id
    cursor = page_cursor()
    groups, _ = notification_groups.list_groups(user_id, limit=BELL_ITEMS, expand=True, per_group=BELL_ITEMS)
    titles = notification_groups.titles(groups)
    return {
        "count": service.unread_count(user_id),
        "items": [g.latest.to_dict() for g in groups],
        # Grouped rows (issue 11): one expandable entry per group_key.
        "groups": [{"key": g.group_key, "title": titles[g.group_key], "count": g.count,
                    "unread": g.unread_count, "latest": g.latest.to_dict(),
                    "items": [r.to_dict() for r in g.items]} for g in groups],
        "latest_id": max((g.latest.id for g in groups), default=0),
        "latest_seq": cursor,
    }


def _with_deliveries(items: list[dict]) -> list[dict]:
    """Add ``deliveries`` to each item: the words for its e-mail and push
    ("e-mailed 10:31", "pushed 10:32"), times in the user's zone."""
    states = deliveries.status_by_notification([item["id"] for item in items])
    tz = preferences.user_timezone(current_user.user_id)
    for item in items:
        item["deliveries"] = [deliveries.label(channel, info, tz)
                              for channel, info in sorted(states.get(item["id"], {}).items())]
    return items


def _sections(items: list[dict], *, first_page: bool, prev_group: str | None, live: bool) -> list[dict]:
    """Split items into consecutive groups. The first page always starts with
    Today (the live list, ``#notification-list``, even when empty); a later
    page continues the previous page's group without repeating its heading."""
    now, zone = utcnow(), viewer_zone()  # days as the viewer's calendar has them
    sections: list[dict] = []
    if first_page:
        sections.append({"group": "today", "heading": GROUPS["today"], "items": [], "live": live})
        prev_group = "today"
    for item in items:
        group = group_of(item["created_at"], now, zone)
        if not sections or sections[-1]["group"] != group:
            heading = None if (not sections and group == prev_group) else GROUPS[group]
            sections.append({"group": group, "heading": heading, "items": [], "live": False})
        sections[-1]["items"].append(item)
    return sections


def _feed_context(category: str | None, unread_only: bool, before_id: int | None = None,
                  prev_group: str | None = None) -> dict[str, Any]:
    page_cursor()  # before the list is read
    rows, next_id = service.list_notifications(
        current_user.user_id, limit=PAGE_SIZE, before_id=before_id, category=category, unread_only=unread_only
    )
    items = _with_deliveries([row.to_dict() for row in rows])
    sections = _sections(items, first_page=before_id is None, prev_group=prev_group, live=True)
    last_group = sections[-1]["group"] if sections else prev_group
    next_url = None
    if next_id:
        next_url = url_for("pages_notifications.notifications", cursor=encode_cursor(next_id),
                           category=category, unread="1" if unread_only else None, group=last_group)
    return {"sections": sections, "next_url": next_url, "category": category, "unread_only": unread_only,
            "empty": before_id is None and not items,
            # "Mark all read" marks what existed when the page was shown, in every category.
            "watermark": service.latest_id(current_user.user_id) if before_id is None and items else None}


def _filters() -> tuple[str | None, bool]:
    source = request.values
    category = service.check_category(source.get("category") or None)
    return category, source.get("unread") == "1"


def _grouped_context(category: str | None, unread_only: bool, before_id: int | None) -> dict[str, Any]:
    page_cursor()
    groups, next_id = notification_groups.list_groups(
        current_user.user_id, limit=PAGE_SIZE, before_id=before_id, category=category, unread_only=unread_only,
        expand=True)
    titles = notification_groups.titles(groups)
    rows = [{"key": g.group_key, "title": titles[g.group_key], "count": g.count, "unread": g.unread_count,
             "latest": g.latest.to_dict(), "items": _with_deliveries([r.to_dict() for r in g.items])}
            for g in groups]
    next_url = url_for("pages_notifications.notifications", cursor=encode_cursor(next_id), category=category,
                       unread="1" if unread_only else None, grouped="1") if next_id else None
    return {"groups": rows, "next_url": next_url, "category": category, "unread_only": unread_only,
            "grouped": True, "empty": before_id is None and not rows, "sections": [],
            "watermark": service.latest_id(current_user.user_id) if before_id is None and rows else None}


@bp.get("/notifications")
@login_required
def notifications():
    category, unread_only = _filters()
    before_id = parse_cursor()
    if request.args.get("grouped") == "1":
        context = _grouped_context(category, unread_only, before_id)
        if is_htmx() and before_id is not None:
            return render_template("notifications/_groups.html", **context)
        return render_template("notifications/index.html", categories=NOTIFICATION_CATEGORIES, **context)
    prev_group = request.args.get("group") if request.args.get("group") in GROUPS else None
    context = _feed_context(category, unread_only, before_id, prev_group)
    if is_htmx() and before_id is not None:
        return render_template("notifications/_feed.html", **context)
    return render_template("notifications/index.html", categories=NOTIFICATION_CATEGORIES, **context)


def _back():
    """Back to the referring page of this site (``urls.safe_next``), else the list."""
    referrer = request.referrer or ""
    path = referrer[len(request.host_url) - 1:] if referrer.startswith(request.host_url) else None
    return redirect(safe_next(path, url_for("pages_notifications.notifications")))


def _badge() -> str:
    count = service.unread_count(current_user.user_id)
    return render_template("notifications/_badge.html", count=count, oob=True)


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def read(notification_id: int):
    row = service.mark_read(current_user.user_id, notification_id)
    if not is_htmx():
        return _back()
    return render_template("notifications/_item.html", n=row.to_dict()) + _badge()


@bp.post("/notifications/<int:notification_id>/open")
@login_required
def open_link(notification_id: int):
    """Mark read, then go to the notification's link (htmx: HX-Redirect)."""
    row = service.mark_read(current_user.user_id, notification_id)
    default = url_for("pages_notifications.notifications")
    link = row.link
    # An http(s) link from the platform's services goes where it says; a path
    # must pass the same-site check (rows stored before it was enforced too).
    target = link if link and link.startswith(("https://", "http://")) else safe_next(link, default)
    if is_htmx():
        return "", 200, {"HX-Redirect": target}
    return redirect(target, 303)


@bp.post("/notifications/<int:notification_id>/delete")
@login_required
def delete(notification_id: int):
    service.delete_notification(current_user.user_id, notification_id)
    if not is_htmx():
        return _back()
    return _badge()


@bp.post("/notifications/read-all")
@login_required
def read_all():
    """Mark read what the page showed: ids up to the form's ``up_to_id``."""
    category, unread_only = _filters()
    service.mark_all_read(current_user.user_id, up_to_id=int_arg("up_to_id", source="form"))
    if not is_htmx():
        return _back()
    return render_template("notifications/_feed.html", **_feed_context(category, unread_only)) + _badge()


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf_exempt  # the signed token is the authorisation (RFC 8058 one-click POST)
def unsubscribe(token: str):
    """GET: a confirmation page with a button; POST: turn that category's
    e-mail off. A bad token is a 400 page."""
    if request.method == "POST":
        user, category = accounts.unsubscribe(token)
        return render_template("notifications/unsubscribe.html", done=True, user=user, category=category)
    user, category = email.read_unsubscribe_token(token)
    return render_template("notifications/unsubscribe.html", done=False, user=user, category=category,
                           token=token)
