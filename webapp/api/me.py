"""JSON routes: the caller's own data and account basics (API.md
"Profiles": ``GET /api/me/export``, ``DELETE /api/me``; the e-mail change
is in docs/API.md)."""
from __future__ import annotations

from flask import Blueprint, g
from pydantic import Field

from ..auth import api_auth_required, api_caller, log_out
from ..extensions import auth_rate_limit
from ..services import email_change, passwords, your_data
from .openapi import endpoint
from .schemas import Out, StatusOut
from .validation import Schema

bp = Blueprint("api_me", __name__)


class DeleteAccountBody(Schema):
    password: str = Field(max_length=passwords.MAX_PASSWORD)


class EmailChangeBody(Schema):
    email: str = Field(max_length=254)
    password: str = Field(max_length=passwords.MAX_PASSWORD)


class ExportOut(Out):
    format: int
    account: dict
    settings: dict
    profile: dict
    cooperatives: list
    notifications: list
    activity: list
    messages_sent: list
    friends: list
    friend_requests: list
    blocks: list
    uploads: dict


@bp.get("/me/export")
@api_auth_required
@endpoint(ok={200: ExportOut}, tags=["auth"])
def export():
    """Everything stored about the caller, as one JSON document"""
    return your_data.export(api_caller())


@bp.delete("/me")
@auth_rate_limit
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[403], tags=["auth"])
def delete_me(json: DeleteAccountBody):
    """Delete the account and its personal data (the password confirms)"""
    your_data.delete_account(api_caller(), json.password)
    if g.auth_mode == "session":
        log_out()
    return {"status": "deleted"}


@bp.post("/me/email")
@auth_rate_limit
@api_auth_required
@endpoint(ok={202: StatusOut}, errors=[403], tags=["auth"])
def change_email(json: EmailChangeBody):
    """Change the e-mail address: a confirmation link goes to the new one"""
    email_change.request_change(api_caller(), json.email, json.password)
    return {"status": "confirmation_sent"}, 202
