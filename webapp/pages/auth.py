"""Pages: register, log in, log out (server-side sessions behind the
Flask-Login cookies, see ``webapp.auth``)."""
from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from ..api.coops import client_ip
from ..auth import log_in, log_out
from ..extensions import auth_rate_limit
from ..services import accounts, coops, invites
from ..services.errors import DomainError, NotAnAddress
from ..urls import safe_next

bp = Blueprint("pages_auth", __name__)


def _next() -> str:
    """Where to go after logging in or registering: ``?next=`` when it is a
    same-site path (``urls.is_same_site_path``), else home."""
    return safe_next(request.args.get("next"), url_for("pages_home.index"))


@bp.route("/register", methods=["GET", "POST"])
@auth_rate_limit
def register():
    """A user id that is not a Bitcoin address is refused with a warning
    until the visitor ticks ``not_an_address`` (``accounts.register``'s
    ``require_address``). ``?invite=<code>&k=<link key>`` (from the invite
    page) is kept through the form; once the account exists it joins that
    coop (``coops.join``) and lands on its dashboard, or on the invite page
    with the reason when the join is refused (full, expired...)."""
    invite, invite_key = request.values.get("invite") or None, request.values.get("k") or None
    error: str | None = None
    warning: str | None = None
    form: Mapping[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            user = accounts.register(
                user_id=form.get("user_id", "").strip(),
                password=form.get("password", ""),
                display_name=form.get("display_name", "").strip() or None,
                email=form.get("email", "").strip() or None,
                country_code=form.get("country_code", "").strip().upper() or None,
                require_address=not form.get("not_an_address"),
            )
        except NotAnAddress as exc:
            warning = exc.message
        except DomainError as exc:
            error = exc.message
        else:
            log_in(user)
            flash(f"Welcome, {user.display_name}!")
            if invite:
                return _join_after_register(user, invite, invite_key)
            return redirect(_next())
    return (render_template("auth/register.html", error=error, warning=warning, form=form, invite=invite,
                            invite_key=invite_key),
            (400 if error or warning else 200))


def _join_after_register(user, invite: str, invite_key: str | None):
    try:
        coop = coops.join(user, invite_code=invite, ip=client_ip(), invite_key=invite_key)
    except DomainError as exc:
        flash(f"Your account is ready, but joining did not work: {exc.message}")
        try:
            return redirect(url_for("pages_coops.join_link", code=invites.normalise_invite_code(invite),
                                    k=invite_key))
        except DomainError:
            return redirect(url_for("pages_coops.coop"))
    flash(f"Welcome to {coop.name}!")
    return redirect(url_for("pages_coops.coop"))


@bp.route("/login", methods=["GET", "POST"])
@auth_rate_limit
def login():
    error = None
    if request.method == "POST":
        try:
            user = accounts.authenticate(
                user_id=request.form.get("user_id", "").strip(), password=request.form.get("password", "")
            )
        except DomainError as exc:
            error = exc.message
        else:
            log_in(user, remember=bool(request.form.get("remember")))
            return redirect(_next())
    return render_template("auth/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
@login_required
def logout():
    log_out()
    return redirect(url_for("pages_auth.login"))
