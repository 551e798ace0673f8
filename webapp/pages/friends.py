"""Pages: ``/friends`` (requests in and out, friends, blocks), the friend
buttons of a miner's profile page, ``/miners/search`` (the nav's search
box), ``/messages`` (the caller's conversations) and ``/conversations/<id>``
(a direct or group conversation, live like the coop chat). Plain forms
that post and redirect back (no script needed); the nav's pending-request badge is kept live by the socket (friends/_badge.html)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth import caller_or_none
from ..extensions import limiter
from ..services import conversations, direct_messages, email_change, friends, messages, presence, search
from ..services.errors import DomainError
from ..vocabulary import ConversationKind

bp = Blueprint("pages_friends", __name__)

CONVERSATION_PAGE = 50  # messages per page of a conversation

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


def _back(default: str = "pages_friends.friends", anchor: str | None = None):
    target = request.form.get("next") or ""
    # Only our own paths: never an open redirect.
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect(url_for(default, _anchor=anchor))


def _act(action, done: str, anchor: str | None = None):
    try:
        action()
    except DomainError as exc:
        flash(exc.message)
    else:
        flash(done)
    return _back(anchor=anchor)


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
    # Back on /friends at the list the answer changed: app.js focuses it, so a
    # keyboard user goes on from there rather than from the top of the page.
    section = {"accept": "friends-list", "decline": "incoming-requests", "cancel": "outgoing-requests"}[action]
    return _act(lambda: func(current_user, request_id), done, anchor=section)


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
    viewer = caller_or_none()
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
    listed, _ = friends.list_friends(current_user.user_id, limit=100, after=None)
    return render_template("friends/messages.html", conversations=items, friends=listed)


@bp.get("/messages/live")
@login_required
def messages_live():
    """The list of /messages again, out of band (friends/_conversations.html),
    fetched once by htmx when the page's socket says a conversation changed
    (friends/_messages_refresh.html): a new message, a read in another tab,
    a conversation joined or left."""
    items, _ = messages.list_conversations(current_user.user_id, limit=100)
    return render_template("friends/_conversations.html", conversations=items, oob=True)


# ---- direct and group conversations ---------------------------------------------------
# The chat page's parts (chat/_message.html, chat.js, the page's socket with
# ``chat=<id>``) for a direct or group conversation: /conversations/<id>.


def _conversation_or_chat(conversation_id: int):
    """The conversation as the caller sees it; a coop's goes to /coop/chat
    (None). Raises NotFound (404 page), NotAMember (403 page)."""
    conversation = messages.get_conversation(current_user.user_id, conversation_id)
    return None if conversation["kind"] == ConversationKind.COOP else conversation


def _read_only_note(conversation_id: int) -> str | None:
    """Why the caller may not post here now (the page shows it instead of
    the composer), or None (``direct_messages.post_refusal``)."""
    row = conversations.get(conversation_id)
    refusal = direct_messages.post_refusal(row, current_user.user_id, conversations.member_ids(conversation_id))
    return refusal.message if refusal is not None else None


@bp.post("/conversations/direct")
@login_required
def start_direct():
    """"Message" on a friend's profile: their direct conversation (started
    or the existing one), or back to the profile with why not."""
    user_id = request.form.get("user_id", "")
    try:
        conversation, _ = direct_messages.start(current_user, ConversationKind.DIRECT, [user_id])
    except DomainError as exc:
        flash(exc.message)
        return _back("pages_friends.messages_page")
    return redirect(url_for("pages_friends.conversation_page", conversation_id=conversation["id"]))


@bp.post("/conversations/group")
@login_required
def start_group():
    """The group form of /messages: a title and 2–9 friends ticked; the new
    group, or back to /messages with why not (too few or many, a block
    between two of them, ...)."""
    try:
        conversation, _ = direct_messages.start(current_user, ConversationKind.GROUP,
                                                request.form.getlist("user_ids"), request.form.get("title", ""))
    except DomainError as exc:
        flash(exc.message)
        return redirect(url_for("pages_friends.messages_page"))
    return redirect(url_for("pages_friends.conversation_page", conversation_id=conversation["id"]))


@bp.get("/conversations/<int:conversation_id>")
@login_required
def conversation_page(conversation_id: int):
    """A direct or group conversation: the newest messages, the members,
    the composer (or why it is read-only); live over the page's socket."""
    conversation = _conversation_or_chat(conversation_id)
    if conversation is None:
        return redirect(url_for("pages_chat.chat"))
    me = current_user.user_id
    newest, cursor = messages.history(me, conversation_id, limit=CONVERSATION_PAGE)
    others = [m["display_name"] for m in conversation["members"] if m["user_id"] != me]
    try:
        seen = presence.visible(me, [m["user_id"] for m in conversation["members"]], viewer_here=True)
    except Exception:  # noqa: BLE001 - Redis down: everyone shows offline, the conversation still works
        seen = {}
    addable = []
    if conversation["kind"] == ConversationKind.GROUP and conversations.get(conversation_id).created_by == me \
            and len(conversation["members"]) < direct_messages.GROUP_MAX:
        inside = {m["user_id"] for m in conversation["members"]}
        addable = [f for f in friends.list_friends(me, limit=100, after=None)[0] if f["user_id"] not in inside]
    return render_template(
        "friends/conversation.html", conversation=conversation, addable=addable, messages=list(reversed(newest)), cursor=cursor,
        reads=conversations.read_positions(conversation_id), me=me, can_moderate=False,
        presence=seen, title=conversation["title"] or ", ".join(others) or "Just you",
        read_only=_read_only_note(conversation_id),
        older_url=lambda c: url_for("pages_friends.conversation_older", conversation_id=conversation_id, cursor=c),
    )


@bp.post("/conversations/<int:conversation_id>/members")
@login_required
def conversation_add(conversation_id: int):
    """The group's creator adds a friend (``direct_messages.add_to_group``)."""
    try:
        _, added = direct_messages.add_to_group(current_user, conversation_id, request.form.get("user_id", ""))
    except DomainError as exc:
        flash(exc.message)
    else:
        flash("Added to the group." if added else "Already in the group.")
    return redirect(url_for("pages_friends.conversation_page", conversation_id=conversation_id))


@bp.get("/conversations/<int:conversation_id>/older")
@login_required
def conversation_older(conversation_id: int):
    """The page of messages before ``cursor`` and the next sentinel (htmx)."""
    if _conversation_or_chat(conversation_id) is None:
        return "", 204
    rows, cursor = messages.history(current_user.user_id, conversation_id, limit=CONVERSATION_PAGE,
                                    cursor=request.args.get("cursor"))
    return render_template(
        "chat/_older.html", messages=list(reversed(rows)), cursor=cursor, me=current_user.user_id,
        can_moderate=False,
        older_url=lambda c: url_for("pages_friends.conversation_older", conversation_id=conversation_id, cursor=c),
    )


@bp.post("/conversations/<int:conversation_id>/send")
@login_required
def conversation_send(conversation_id: int):
    """The composer without JavaScript: post, then back to the conversation."""
    try:
        messages.post(current_user.user_id, conversation_id, request.form.get("body", ""),
                      client_id=request.form.get("client_id") or None)
    except DomainError as exc:
        flash(exc.message)
    return redirect(url_for("pages_friends.conversation_page", conversation_id=conversation_id))
