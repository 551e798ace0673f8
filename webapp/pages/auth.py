"""Pages: register, log in, log out (Flask-Login session cookie)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user

from ..extensions import auth_rate_limit
from ..services import accounts
from ..services.errors import DomainError

bp = Blueprint("pages_auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes home."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages_home.index")


@bp.route("/register", methods=["GET", "POST"])
@auth_rate_limit
def register():
    error, form = None, {}
    if request.method == "POST":
        form = request.form
        try:
            user = accounts.register(
                user_id=form.get("user_id", "").strip(),
                password=form.get("password", ""),
                display_name=form.get("display_name", "").strip() or None,
                email=form.get("email", "").strip() or None,
                country_code=form.get("country_code", "").strip().upper() or None,
            )
        except DomainError as exc:
            error = exc.message
        else:
            login_user(user)
            flash(f"Welcome, {user.display_name}!")
            return redirect(url_for("pages_home.index"))
    return render_template("auth/register.html", error=error, form=form), (400 if error else 200)


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
            login_user(user, remember=bool(request.form.get("remember")))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("pages_auth.login"))
