"""Pages: the coop chat (``/coop/chat``), beside the dashboard.

Thin over ``services.messages`` and ``services.presence``. The page shows
the newest messages; older ones load upwards (``/coop/chat/older``, an
htmx fragment with the next sentinel). Live messages, edits, reactions,
typing, reads and presence arrive over the page's ``/ws?format=html&chat=<id>``
as fragments (``chat/_push.html``); ``static/js/chat.js`` sends over the
same socket (Enter sends, Shift+Enter is a newline) and calls the JSON
routes for reactions and deletes. Without JavaScript the composer posts to
``/coop/chat/send``.

Editing is inline (htmx): Edit swaps the message for its edit form
(``/coop/chat/messages/<id>/edit``, ``chat/_edit.html``); Save posts it
there (``messages.edit``: screened like a post, so a blocked phrase comes
back in the form with the error and the text kept); Cancel swaps the
message back (``/coop/chat/messages/<id>``). The other members' pages get
the edit over their sockets as before.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..services import conversations, coops, messages, presence, reports
from ..services.errors import AlreadyReported, DomainError
from ..urls import safe_next
from .fragments import is_htmx

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
        seen = presence.visible(current_user.user_id, member_ids, viewer_here=True)
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


# ---- inline edit (htmx fragments) ---------------------------------------------------


def _chat_message(message_id: int) -> tuple[int, dict[str, Any]]:
    """(conversation id, message dict) of a message of the viewer's coop
    chat; 404 for any other message (or none)."""
    coop, conversation = _my_chat()
    if coop is None or conversation is None:
        abort(404)
    try:
        message_ = messages.get_message(current_user.user_id, message_id)
    except DomainError:
        abort(404)
    if message_["conversation_id"] != conversation["id"]:
        abort(404)
    return conversation["id"], message_


def _message_fragment(cid: int, message_: dict[str, Any], *, focus_edit: bool = False) -> str:
    return render_template("chat/_message.html", m=message_, me=current_user.user_id, oob=False,
                           focus_edit=focus_edit,
                           can_moderate=messages.can_moderate(conversations.get(cid), current_user.user_id))


@bp.get("/coop/chat/messages/<int:message_id>")
@login_required
def message(message_id: int):
    """One message of the viewer's coop chat (Cancel of the inline edit:
    back to the message, the focus on its Edit button)."""
    cid, message_ = _chat_message(message_id)
    return _message_fragment(cid, message_, focus_edit=True)


@bp.get("/coop/chat/messages/<int:message_id>/edit")
@login_required
def edit_form(message_id: int):
    """The inline edit form of one of the viewer's own messages; a message
    deleted meanwhile comes back as its tombstone. 403 for someone else's."""
    cid, message_ = _chat_message(message_id)
    if message_["sender"]["user_id"] != current_user.user_id:
        abort(403)
    if message_["deleted_at"] is not None:
        return _message_fragment(cid, message_)
    return render_template("chat/_edit.html", m=message_, body=message_["body"], error=None)


@bp.post("/coop/chat/messages/<int:message_id>/edit")
@login_required
def edit(message_id: int):
    """Save the inline edit (``messages.edit``): the edited message (htmx),
    or the form again with the error and the refused text (its status:
    400 ``message_blocked``, 403 ``muted`` …). Without htmx: back to the
    chat, the error flashed."""
    cid, message_ = _chat_message(message_id)
    if message_["sender"]["user_id"] != current_user.user_id:
        abort(403)
    # A browser's own form post sends line breaks as CRLF; the field counted them as one.
    body = request.form.get("body", "").replace("\r\n", "\n")
    try:
        saved = messages.edit(current_user.user_id, message_id, body)
    except DomainError as exc:
        db.session.rollback()
        if not is_htmx():
            flash(exc.message)
            return redirect(url_for("pages_chat.chat"))
        _, current = _chat_message(message_id)
        return render_template("chat/_edit.html", m=current, body=body, error=exc.message), exc.status
    if not is_htmx():
        return redirect(url_for("pages_chat.chat"))
    return _message_fragment(cid, saved, focus_edit=True)


# ---- reporting a message ----------------------------------------------------------------


@bp.post("/chat/messages/<int:message_id>/report")
@login_required
def report(message_id: int):
    """Report a message the viewer can read (``reports.create``: a coop's
    message goes to its moderators, a direct or group one to the platform's
    admins). htmx: the form's place says it was sent (201), that it had
    been (200: the earlier report stands), or why not (its status: 404 …);
    without htmx: back to the page the form was on, the outcome flashed."""
    try:
        row = reports.create(current_user, target_type="message", target_id=str(message_id),
                             reason=request.form.get("reason", ""), details=request.form.get("details") or None)
        who = "The moderators" if row.cooperative_id is not None else "The site's admins"
        text, status = f"Reported. {who} will look at it.", 201
    except AlreadyReported as exc:  # not a failure: the earlier report stands
        db.session.rollback()
        text, status = exc.message, 200
    except DomainError as exc:
        db.session.rollback()
        text, status = exc.message, exc.status
    if not is_htmx():
        flash(text)
        back = urlsplit(request.referrer or "").path or None
        return redirect(safe_next(back, url_for("pages_chat.chat")))
    return render_template("chat/_report_status.html", text=text, error=status >= 400), status
