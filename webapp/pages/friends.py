"""Pages: ``/friends`` (requests in and out, friends, blocks), the friend
buttons of a miner's profile page, and ``/miners/search`` (the nav's search
box). Plain forms that post and redirect back (no script needed); the nav's
pending-request badge is kept live by the socket (friends/_badge.html)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import limiter
from ..services import email_change, friends, messages, search
from ..services.errors import DomainError

bp = Blueprint("pages_friends", __name__)

_search_limit = limiter.limit(
    lambda: current_app.config["SEARCH_RATE_LIMIT"], scope="miner-search",
    error_message="Too many searches from your address; wait a minute.",
)


@bp.app_context_processor
def _friend_badge() -> dict[str, Any]:
    """The nav's pending incoming count, read only for a logged-in page."""
    def count() -> int:
        if not current_user.is_authenticated:
            return 0
        return friends.pending_counts(current_user.user_id)["incoming"]

    return {"friend_requests_incoming": count}


def _back(default: str = "pages_friends.friends"):
    target = request.form.get("next") or ""
    # Only our own paths: never an open redirect.
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect(url_for(default))


def _act(action, done: str):
    try:
        action()
    except DomainError as exc:
        flash(exc.message)
    else:
        flash(done)
    return _back()


@bp.get("/friends", endpoint="friends")
@login_required
def friends_page():
    """Requests to and from me, my friends, the miners I blocked."""
    me = current_user.user_id
    incoming, _ = friends.list_requests(me, direction="incoming", limit=50, before_id=None)
    outgoing, _ = friends.list_requests(me, direction="outgoing", limit=50, before_id=None)
    listed, _ = friends.list_friends(me, limit=100, after=None)
    return render_template(
        "friends/index.html",
        incoming=[friends.request_dict(r, me) for r in incoming],
        outgoing=[friends.request_dict(r, me) for r in outgoing],
        friends=listed,
        blocks=friends.list_blocks(me),
    )


@bp.post("/friends/request")
@login_required
def send_request():
    user_id = request.form.get("user_id", "")
    message = request.form.get("message") or None

    def act() -> None:
        _, created = friends.send_request(current_user, user_id, message)
        if not created:
            flash("They had already asked you: you are now friends.")

    return _act(act, "Friend request sent.")


@bp.post("/friends/requests/<int:request_id>/<any(accept, decline, cancel):action>")
@login_required
def answer(request_id: int, action: str):
    verbs = {"accept": (friends.accept, "You are now friends."), "decline": (friends.decline, "Request declined."),
             "cancel": (friends.cancel, "Request withdrawn.")}
    func, done = verbs[action]
    return _act(lambda: func(current_user, request_id), done)


@bp.post("/friends/<user_id>/remove")
@login_required
def unfriend(user_id: str):
    return _act(lambda: friends.unfriend(current_user, user_id), "Friend removed.")


@bp.post("/blocks")
@login_required
def block():
    user_id = request.form.get("user_id", "")
    return _act(lambda: friends.block(current_user, user_id), "Blocked. They can no longer reach or find you.")


@bp.post("/blocks/<user_id>/remove")
@login_required
def unblock(user_id: str):
    return _act(lambda: friends.unblock(current_user, user_id), "Unblocked.")


@bp.get("/miners/search")
@_search_limit
def search_page():
    """Results of the nav's search box (public profiles only)."""
    q = (request.args.get("q") or "").strip()
    viewer = g.get("user")
    results, error = [], None
    if q:
        try:
            results = search.search(q, viewer_id=viewer.user_id if viewer else None)
        except DomainError as exc:
            error = exc.message
    return render_template("friends/search.html", q=q, results=results, error=error)


@bp.get("/settings/email/confirm/<token>")
def confirm_email(token: str):
    """The link of the confirmation e-mail: the new address takes effect."""
    try:
        email_change.confirm(token)
    except DomainError as exc:
        flash(exc.message)
    else:
        flash("Your e-mail address is changed.")
    return redirect(url_for("pages_settings.settings") if current_user.is_authenticated else url_for("pages_auth.login"))


@bp.get("/messages")
@login_required
def messages_page():
    """The caller's conversations (coop, direct, group), most recent first,
    with unread counts (``messages.list_conversations``)."""
    items, _ = messages.list_conversations(current_user.user_id, limit=100)
    return render_template("friends/messages.html", conversations=items)
