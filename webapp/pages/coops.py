"""Pages: the coop dashboard (``/coop``), joining by link (``/coop/join/<code>``)
and the admin screen (``/coop/manage``).

Thin over ``services.coops`` like the JSON routes. Action routes carry the
coop id, so a form left open in an old tab can never act on another coop.
The admin actions are htmx posts that answer with the one partial that
changed (``coops/_members.html``, ``_invite.html``, ``_details.html``); the
full pages include the same partials. A failed action re-renders its partial
with the error inline; a plain (non-htmx) form post is redirected instead.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..api.coops import client_ip, join_rate_limit
from ..api.validation import int_arg
from ..services import coop_hashrate, coops, invites, moderation, rankings
from ..services.errors import DomainError, InvalidInviteCode, NotAdmin, NotFound, RateLimited, ValidationError
from ..vocabulary import CoopStatus
from .charts import hashrate_view, page_range
from .fragments import is_htmx

bp = Blueprint("pages_coops", __name__)

# Numbers are formatted with the shared ``hashrate`` / ``difficulty`` filters
# (webapp/pages/miners.py).


def _answer_manage(fragment: Callable[[], Any], message: str):
    """An admin action's answer: the re-rendered ``fragment()`` for htmx,
    otherwise back to the admin screen with ``message`` flashed."""
    return fragment() if is_htmx() else _go("pages_coops.manage", message)


def _go(endpoint: str, message: str | None = None):
    """Redirect after a successful action: ``HX-Redirect`` for htmx, 302 otherwise."""
    if message:
        flash(message)
    target = url_for(endpoint)
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def _invite_url(code: str) -> str:
    """The invite link: the join page with the code's link key (``k``), which
    joins even while typed codes are paused (services/invites.py)."""
    return url_for("pages_coops.join_link", code=code, k=invites.link_key(code), _external=True)


def _caller() -> invites.Caller:
    user_id = current_user.user_id if current_user.is_authenticated else None
    return invites.Caller(user_id, client_ip())


# ---- the dashboard, create and join ------------------------------------------------


def _dashboard_context(coop_id: int) -> dict[str, Any]:
    """What the dashboard's partials need (the page and ``/coop/live`` alike)."""
    coop_, stats, members = coops.dashboard(current_user, coop_id=coop_id)
    return {"coop": coop_, "stats": stats, "members": members, "coop_id": coop_.id,
            "is_admin": coops.is_admin(current_user, coop_),
            "is_moderator": moderation.is_moderator(coop_.id, current_user.user_id),
            "invite_url": _invite_url(coop_.invite_code)}


@bp.get("/coop")
@login_required
def coop():
    mine = coops.get_mine(current_user)
    if mine is None:
        return render_template("coops/start.html")
    context = _dashboard_context(mine.id)
    # The members as this viewer sees them, read once for the table, the ranking and the chart.
    members = context["members"]
    # ?metric= picks the leaderboard's tab (its links, opened without htmx); an unknown one shows hashrate.
    metric = request.args.get("metric", "hashrate")
    metric = metric if metric in rankings.COOP_METRICS else "hashrate"
    context["leaderboard"] = rankings.coop_leaderboard(current_user, coop_id=mine.id, metric=metric,
                                                       members=members)
    context["leaderboard_metric"] = metric
    context["timeline"], context["timeline_next"] = coops.timeline(current_user, coop_id=mine.id)
    chart = hashrate_view(coops.hashrate_chart(current_user, coop_id=mine.id, rng=page_range(), members=members))
    return render_template("coops/dashboard.html", chart=chart,
                           chart_src=url_for("api_coops.hashrate_history", coop_id=mine.id), **context)


# The fragments /coop/live sends out of band, per page; each is the partial the page includes.
LIVE_FRAGMENTS = {
    "dashboard": ("coops/_header.html", "coops/_stats.html", "coops/_invite.html", "coops/_members.html"),
    "manage": ("coops/_invite.html", "coops/_members.html"),
}


@bp.get("/coop/live")
@login_required
def live():
    """Every live fragment of an open coop page (``view=dashboard|manage``),
    fetched once by htmx when the socket says the coop ``coop_id`` changed
    (coops/_refresh.html), each marked ``hx-swap-oob``. A viewer no longer
    in that coop (removed, dissolved, left in another tab), or no longer its
    admin on the admin screen, is sent to ``/coop`` (``HX-Redirect``) with
    a message saying so."""
    view = request.args.get("view", "dashboard")
    if view not in LIVE_FRAGMENTS:
        raise ValidationError("view must be dashboard or manage.")
    coop_id = int_arg("coop_id", minimum=1)
    mine = coops.get_mine(current_user)
    if mine is None or (coop_id is not None and mine.id != coop_id):
        return _leave_page(coops.departure(current_user, coop_id=coop_id) if coop_id else
                           "You are no longer a member of this cooperative.")
    if view == "manage":
        if not coops.is_admin(current_user, mine):
            return _leave_page(f"You are no longer the admin of {mine.name}.")
        context = {"coop": mine, "coop_id": mine.id, "manage": True, "invite_url": _invite_url(mine.invite_code),
                   "members": coops.list_members(current_user, coop_id=mine.id)}
    else:
        context = {**_dashboard_context(mine.id), "manage": False}
    return "".join(render_template(name, oob=True, **context) for name in LIVE_FRAGMENTS[view])


def _leave_page(message: str):
    """Send an open coop page to ``/coop`` with ``message`` flashed."""
    flash(message)
    response = make_response("", 200)
    response.headers["HX-Redirect"] = url_for("pages_coops.coop")
    return response


@bp.post("/coop/create")
@login_required
def create():
    form = request.form
    try:
        coops.create(current_user, name=form.get("name", ""), description=form.get("description", ""))
    except DomainError as exc:
        return render_template("coops/start.html", create_error=exc.message, form=form), exc.status
    return _go("pages_coops.coop", "Your cooperative is ready. Share the invite link with your friends!")


def _code_from_input(raw: str) -> tuple[str, str | None]:
    """(code, link key or None) from a bare code or a pasted invite link
    (``…/coop/join/<code>?k=<key>``)."""
    raw = raw.strip()
    if "/" not in raw:
        return raw, None
    parts = urlsplit(raw)
    keys = parse_qs(parts.query).get("k")  # never an empty list
    key = keys[0] if keys else None
    return parts.path.rstrip("/").rsplit("/", 1)[-1], key


@bp.post("/coop/join")
@join_rate_limit
@login_required
def join():
    code, key = _code_from_input(request.form.get("invite_code", ""))
    try:
        coop_ = coops.join(current_user, invite_code=code, ip=client_ip(), invite_key=key)
    except DomainError as exc:
        return (render_template("coops/start.html", join_error=exc.message, form=request.form), exc.status,
                exc.headers)
    return _go("pages_coops.coop", f"Welcome to {coop_.name}!")


@bp.get("/coop/join/<code>")
@join_rate_limit
def join_link(code: str):
    """The invite page: a preview for anyone holding the link; logged-out
    visitors register (keeping the invite, see ``pages_auth.register``) or
    log in and come back here."""
    return _join_page(code, request.args.get("k"))


@bp.post("/coop/join/<code>")
@join_rate_limit
@login_required
def join_link_post(code: str):
    key = request.args.get("k")
    try:
        coop_ = coops.join(current_user, invite_code=code, ip=client_ip(), invite_key=key)
    except (InvalidInviteCode, NotFound, RateLimited) as exc:
        # Answered as is: a second lookup for the page would count the guess twice.
        return _invalid_link(exc)
    except DomainError as exc:
        return _join_page(code, key, error=exc.message, status=exc.status)
    return _go("pages_coops.coop", f"Welcome to {coop_.name}!")


def _invalid_link(exc: DomainError):
    return render_template("coops/join.html", coop=None, error=exc.message), exc.status, exc.headers


def _join_page(code: str, key: str | None, error: str | None = None, status: int = 200):
    """The preview through the guarded lookup (``coops.preview``)."""
    try:
        coop_, target = coops.preview(invite_code=code, caller=_caller(), invite_key=key)
    except DomainError as exc:
        return _invalid_link(exc)
    code = invites.normalise_invite_code(code)
    mine = coops.get_mine(current_user) if current_user.is_authenticated else None
    here = url_for("pages_coops.join_link", code=code, k=key or None)
    return (
        render_template("coops/join.html", coop=coop_, code=code, key=key, mine=mine, error=error,
                        expires_at=target.expires_at, total=coop_hashrate.cached_total(coop_.id),
                        admin=coop_.admin_user_id and coops.display_name(coop_.admin_user_id),
                        register_url=url_for("pages_auth.register", invite=code, k=key or None),
                        login_url=url_for("pages_auth.login", next=here)),
        status,
    )


@bp.post("/coop/<int:coop_id>/leave")
@login_required
def leave(coop_id: int):
    try:
        coop_ = coops.leave(current_user, coop_id=coop_id)
    except DomainError as exc:
        flash(exc.message)
        return _go("pages_coops.coop")
    message = f"You left {coop_.name}." + (" It had no members left and was dissolved." if coop_.status != CoopStatus.ACTIVE else "")
    return _go("pages_coops.coop", message)


# ---- the admin screen -----------------------------------------------------------------


@bp.get("/coop/manage")
@login_required
def manage():
    mine = coops.get_mine(current_user)
    if mine is None:
        flash("You are not in a cooperative yet.")
        return redirect(url_for("pages_coops.coop"))
    if not coops.is_admin(current_user, mine):
        raise NotAdmin("Only the cooperative's admin can manage it.")
    return render_template(
        "coops/manage.html",
        coop=mine,
        members=coops.list_members(current_user, coop_id=mine.id),
        invite_url=_invite_url(mine.invite_code),
        join_requests=(pending := coops.list_requests(current_user, coop_id=mine.id)),
        names={r.user_id: coops.display_name(r.user_id) for r in pending},
        **_invites_context(mine.id),
    )


def _invites_context(coop_id: int) -> dict[str, Any]:
    live = coops.list_invites(current_user, coop_id=coop_id)
    return {"invites": live, "invite_urls": {i.code: _invite_url(i.code) for i in live}, "coop_id": coop_id}


def _invites_fragment(coop_id: int, *, made=None, error: str | None = None, status: int = 200):
    try:
        context = _invites_context(coop_id)
    except DomainError:
        context = {"invites": [], "invite_urls": {}, "coop_id": coop_id}
    return render_template("coops/_invites.html", made=made, error=error, **context), status


def _optional_int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:  # "²" is a digit to str.isdigit
        raise ValidationError("Pick a value from the list.")
    return int(raw)


@bp.post("/coop/<int:coop_id>/invites")
@login_required
def create_invite(coop_id: int):
    """Make an extra invite (admin, moderators); answers the invites partial."""
    try:
        made = coops.create_invite(current_user, coop_id=coop_id,
                                   max_uses=_optional_int(request.form.get("max_uses")),
                                   expires_in=_optional_int(request.form.get("expires_in")))
    except DomainError as exc:
        error = exc
        return _answer_manage(lambda: _invites_fragment(coop_id, error=error.message, status=error.status),
                              error.message)
    return _answer_manage(lambda: _invites_fragment(coop_id, made=made), f"Invite {made.code} is ready.")


@bp.post("/coop/<int:coop_id>/invites/<code>/revoke")
@login_required
def revoke_invite(coop_id: int, code: str):
    """Revoke an extra invite (admin, moderators); answers the invites partial."""
    try:
        coops.revoke_invite(current_user, coop_id=coop_id, code=code)
    except DomainError as exc:
        error = exc
        return _answer_manage(lambda: _invites_fragment(coop_id, error=error.message, status=error.status),
                              error.message)
    return _answer_manage(lambda: _invites_fragment(coop_id), "Invite revoked.")


def _members_fragment(coop_id: int, error: str | None = None, status: int = 200, removed: str | None = None,
                      admin_screen: bool = True):
    """The members partial: the admin screen's (remove buttons only for the
    admin) or, with ``admin_screen=False``, the dashboard's."""
    try:
        coop_ = coops.get_for_member(current_user, coop_id=coop_id)
        members = coops.list_members(current_user, coop_id=coop_id)
        manage = admin_screen and coops.is_admin(current_user, coop_)
    except DomainError:
        members, manage = [], False
    return render_template("coops/_members.html", members=members, manage=manage, coop_id=coop_id,
                           error=error, removed=removed), status


@bp.get("/coop/members")
@login_required
def members():
    """The members table of the viewer's coop, re-fetched by htmx when the
    socket says the membership changed (coops/_refresh.html); ``manage=1``
    from the admin screen adds the Remove buttons (admins only). A viewer
    who is no longer in a coop (removed, or it was dissolved) gets an empty
    table saying so, without a navigation under their feet."""
    mine = coops.get_mine(current_user)
    if mine is None:
        return render_template("coops/_members.html", members=[], manage=False, coop_id=None,
                               error="You are no longer a member of this cooperative.")
    return _members_fragment(mine.id, admin_screen=request.args.get("manage") == "1")


@bp.post("/coop/<int:coop_id>/members/<user_id>/remove")
@login_required
def remove_member(coop_id: int, user_id: str):
    try:
        membership = coops.remove_member(current_user, coop_id=coop_id, user_id=user_id)
    except DomainError as exc:
        error = exc  # the lambda outlives the except clause's name
        return _answer_manage(lambda: _members_fragment(coop_id, error.message, error.status), error.message)
    name = coops.display_name(membership.user_id)
    return _answer_manage(lambda: _members_fragment(coop_id, removed=name), f"{name} was removed.")


@bp.post("/coop/<int:coop_id>/regenerate-code")
@login_required
def regenerate_code(coop_id: int):
    try:
        coop_ = coops.regenerate_code(current_user, coop_id=coop_id)
    except DomainError as exc:
        error = exc
        return _answer_manage(
            lambda: (render_template("coops/_invite.html", manage=True, coop=None, error=error.message), error.status),
            error.message)
    return _answer_manage(
        lambda: render_template("coops/_invite.html", manage=True, coop=coop_,
                                invite_url=_invite_url(coop_.invite_code), regenerated=True),
        "New invite code made; the old link no longer works.")


@bp.post("/coop/<int:coop_id>/details")
@login_required
def details(coop_id: int):
    form = request.form
    try:
        coop_ = coops.update_details(current_user, coop_id=coop_id, name=form.get("name", ""),
                                     description=form.get("description", ""))
    except DomainError as exc:
        error = exc
        return _answer_manage(
            lambda: (render_template("coops/_details.html", coop_id=coop_id, name=form.get("name", ""),
                                     description=form.get("description", ""), error=error.message), error.status),
            error.message)
    return _answer_manage(
        lambda: render_template("coops/_details.html", coop_id=coop_.id, name=coop_.name,
                                description=coop_.description, saved=True),
        "Saved.")


@bp.post("/coop/<int:coop_id>/dissolve")
@login_required
def dissolve(coop_id: int):
    try:
        coop_ = coops.dissolve(current_user, coop_id=coop_id)
    except DomainError as exc:
        return _go("pages_coops.coop", exc.message)
    return _go("pages_coops.coop", f"{coop_.name} was dissolved.")
