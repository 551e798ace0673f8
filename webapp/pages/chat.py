"""Pages: the coop chat (``/coop/chat``), beside the dashboard.

Thin over ``services.messages`` and ``services.presence``. The page shows
the newest messages; older ones load upwards (``/coop/chat/older``, an
htmx fragment with the next sentinel). Live messages, edits, reactions,
typing, reads and presence arrive over the page's ``/ws?format=html&chat=<id>``
as fragments (``chat/_push.html``); ``static/js/chat.js`` sends over the
same socket (Enter sends, Shift+Enter is a newline) and calls the JSON
routes for reactions, edits and deletes. Without JavaScript the composer
posts to ``/coop/chat/send``.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..services import conversations, coops, messages, presence
from ..services.errors import DomainError

bp = Blueprint("pages_chat", __name__)

PAGE = 50


def _my_chat():
    """(coop, conversation dict) of the viewer's coop, or (None, None)."""
    mine = coops.get_mine(current_user)
    if mine is None:
        return None, None
    return mine, messages.conversation_for_coop(current_user.user_id, mine.id)


@bp.get("/coop/chat")
@login_required
def chat():
    coop, conversation = _my_chat()
    if coop is None or conversation is None:
        flash("Join a cooperative to chat with its members.")
        return redirect(url_for("pages_coops.coop"))
    cid = conversation["id"]
    newest, cursor = messages.history(current_user.user_id, cid, limit=PAGE)
    member_ids = [m["user_id"] for m in conversation["members"]]
    try:
        seen = presence.visible(current_user.user_id, member_ids)
    except Exception:  # noqa: BLE001 - Redis down: everyone shows offline, the chat still works
        seen = {}
    reads = conversations.read_positions(cid)
    return render_template(
        "chat/page.html", coop=coop, conversation=conversation, messages=list(reversed(newest)), cursor=cursor,
        presence=seen, reads=reads, me=current_user.user_id,
        can_moderate=messages.can_moderate(conversations.get(cid), current_user.user_id),
    )


@bp.get("/coop/chat/older")
@login_required
def older():
    """The page of messages before ``cursor`` (oldest first) and the next
    sentinel, replacing the sentinel that asked."""
    coop, conversation = _my_chat()
    if coop is None or conversation is None:
        return "", 204
    rows, cursor = messages.history(current_user.user_id, conversation["id"], limit=PAGE,
                                    cursor=request.args.get("cursor"))
    return render_template("chat/_older.html", messages=list(reversed(rows)), cursor=cursor,
                           me=current_user.user_id,
                           can_moderate=messages.can_moderate(conversations.get(conversation["id"]),
                                                              current_user.user_id))


@bp.post("/coop/chat/send")
@login_required
def send():
    """The composer without JavaScript: post, then back to the chat."""
    coop, conversation = _my_chat()
    if coop is None or conversation is None:
        return redirect(url_for("pages_coops.coop"))
    try:
        messages.post(current_user.user_id, conversation["id"], request.form.get("body", ""),
                      client_id=request.form.get("client_id") or None)
    except DomainError as exc:
        flash(exc.message)
    return redirect(url_for("pages_chat.chat"))
