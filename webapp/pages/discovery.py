"""Pages: the coop directory (``/coops``), asking to join, the public
leaderboard (``/leaderboard``), a coop's own leaderboard card, and the
manage screen's join requests and discovery settings. Thin over
``services.coops`` (discovery) and ``services.rankings``."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..api.validation import decode_cursor, encode_cursor
from ..auth import caller_id_or_none
from ..services import coops, rankings
from ..services.errors import DomainError, ValidationError
from .coops import _answer_manage
from .fragments import fragment_or_page, is_htmx

bp = Blueprint("pages_discovery", __name__)


def _float_arg(name: str) -> float | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a number.") from None
    if not value >= 0:
        raise ValidationError(f"{name} must be 0 or more.")
    return value


@bp.get("/coops")
def directory():
    """Listed coops with search, filters and sorts; htmx swaps the list."""
    args = request.args
    filters: dict[str, Any] = {"q": args.get("q") or None, "country": (args.get("country") or "").upper() or None,
                               "has_room": args.get("has_room") == "1", "sort": args.get("sort") or "hashrate"}
    error = None
    try:
        min_ths = _float_arg("min_ths")
        entries, next_id = coops.directory(
            **filters, min_hashrate=min_ths * 1e12 if min_ths is not None else None,
            cursor=decode_cursor(args.get("cursor")))
    except DomainError as exc:
        entries, next_id, error = [], None, exc.message
    mine = coops.get_mine(current_user) if current_user.is_authenticated else None
    pending = ({e.coop.id for e in entries if coops.my_pending_request(current_user, e.coop.id)}
               if current_user.is_authenticated else set())
    kept: dict[str, Any] = {k: v for k, v in args.items() if k != "cursor" and v}
    next_url = url_for("pages_discovery.directory", cursor=encode_cursor(next_id), **kept) if next_id else None
    # Nothing asked for: an empty list means none is listed yet, not "no match".
    searched = bool(filters["q"] or filters["country"] or filters["has_room"] or args.get("min_ths"))
    context = {"entries": entries, "next_url": next_url, "filters": filters, "searched": searched,
               "min_ths": args.get("min_ths", ""), "mine": mine, "pending": pending, "error": error}
    return fragment_or_page("coops/_directory_list.html", "coops/directory.html", **context), (400 if error else 200)


@bp.post("/coops/<int:coop_id>/request")
@login_required
def request_to_join(coop_id: int):
    """Ask to join a listed coop; answers the coop's card action."""
    try:
        coops.request_to_join(current_user, coop_id=coop_id, message=request.form.get("message"))
    except DomainError as exc:
        return render_template("coops/_request_button.html", coop_id=coop_id, error=exc.message), exc.status
    return render_template("coops/_request_button.html", coop_id=coop_id, sent=True)


@bp.get("/leaderboard")
def leaderboard():
    """The public leaderboard; a logged-in miner on it sees "Rank #n of N"."""
    period = request.args.get("period", "all")
    viewer_id = caller_id_or_none()
    try:
        entries, next_cursor, total = rankings.public_leaderboard(
            period=period, cursor=request.args.get("cursor"), viewer_id=viewer_id)
    except DomainError as exc:
        return render_template("rankings/leaderboard.html", entries=[], total=0, period="all", error=exc.message,
                               next_cursor=None, my_rank=None), exc.status
    my_rank = rankings.viewer_rank(viewer_id, period=period) if viewer_id else None
    return render_template("rankings/leaderboard.html", entries=entries, total=total, period=period,
                           next_cursor=next_cursor, my_rank=my_rank, error=None)


@bp.get("/coop/leaderboard")
@login_required
def coop_leaderboard():
    """The dashboard's leaderboard card for ``?metric=`` (htmx swaps it);
    opened as a page (a new tab, a bookmark), the dashboard on that tab."""
    if not is_htmx():
        return redirect(url_for("pages_coops.coop", metric=request.args.get("metric") or None,
                                _anchor="coop-leaderboard"))
    mine = coops.get_mine(current_user)
    if mine is None:
        return render_template("coops/_leaderboard.html", entries=[], metric="hashrate", coop_id=None)
    metric = request.args.get("metric", "hashrate")
    try:
        entries = rankings.coop_leaderboard(current_user, coop_id=mine.id, metric=metric)
    except DomainError as exc:
        return render_template("coops/_leaderboard.html", entries=[], metric="hashrate", coop_id=mine.id,
                               error=exc.message), exc.status
    return render_template("coops/_leaderboard.html", entries=entries, metric=metric, coop_id=mine.id)


def _requests_fragment(coop_id: int, *, error: str | None = None, status: int = 200, done: str | None = None):
    try:
        pending = coops.list_requests(current_user, coop_id=coop_id)
    except DomainError:
        pending = []
    names = {r.user_id: coops.display_name(r.user_id) for r in pending}
    return render_template("coops/_join_requests.html", coop_id=coop_id, join_requests=pending, names=names,
                           error=error, done=done), status


@bp.post("/coop/<int:coop_id>/join-requests/<int:request_id>/<any(approve, decline):action>")
@login_required
def decide_request(coop_id: int, request_id: int, action: str):
    """Approve or decline a join request from the manage screen."""
    decide = coops.approve_request if action == "approve" else coops.decline_request
    try:
        row = decide(current_user, coop_id=coop_id, request_id=request_id)
    except DomainError as exc:
        error = exc
        return _answer_manage(lambda: _requests_fragment(coop_id, error=error.message, status=error.status),
                              error.message)
    name = coops.display_name(row.user_id)
    message = f"{name} joined." if action == "approve" else f"{name}'s request was declined."
    return _answer_manage(lambda: _requests_fragment(coop_id, done=message), message)


@bp.post("/coop/<int:coop_id>/discovery")
@login_required
def discovery_settings(coop_id: int):
    """The admin lists the coop (or not), picks how people join, its country."""
    form = request.form
    country = (form.get("country_code") or "").strip().upper() or None
    try:
        coop = coops.update_discovery(current_user, coop_id=coop_id, visibility=form.get("visibility"),
                                      join_mode=form.get("join_mode"), country_code=country,
                                      clear_country=country is None)
    except DomainError as exc:
        error = exc
        return _answer_manage(
            lambda: (render_template("coops/_discovery.html", coop=coops.get_for_member(current_user, coop_id=coop_id),
                                     error=error.message), error.status), error.message)
    return _answer_manage(lambda: render_template("coops/_discovery.html", coop=coop, saved=True), "Saved.")


@bp.get("/coop/timeline")
@login_required
def coop_timeline():
    """The next page of the dashboard's timeline (``?cursor=``), appended by htmx."""
    mine = coops.get_mine(current_user)
    if mine is None:
        return render_template("coops/_timeline.html", entries=[], next_cursor=None, more=True)
    entries, next_cursor = coops.timeline(current_user, coop_id=mine.id, cursor=request.args.get("cursor"))
    return render_template("coops/_timeline.html", entries=entries, next_cursor=next_cursor, more=True)
