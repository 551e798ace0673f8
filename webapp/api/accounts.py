"""JSON routes: registration, tokens, logout, password change, the caller,
settings (API.md Authentication; the additions are in docs/API.md)."""
from __future__ import annotations

from typing import Optional

from flask import Blueprint, g
from pydantic import Field

from ..auth import api_auth_required, api_caller, log_out
from ..extensions import auth_rate_limit
from ..models import iso
from ..services import accounts, passwords, preferences
from .openapi import documented
from .schemas import LoggedOutOut, PasswordChangedOut, RegisterOut, SettingsOut, TokenOut, UserOut
from .validation import Schema, parse_body

bp = Blueprint("api_accounts", __name__)


# The service's rules, documented in the OpenAPI document (json_schema_extra):
# the service checks them and answers with its own messages.
_USER_ID_DOC = {"pattern": "^[A-Za-z0-9._-]{3,128}$", "minLength": 3}


class RegisterBody(Schema):
    user_id: str = Field(max_length=128, json_schema_extra=_USER_ID_DOC)
    password: str = Field(max_length=256, json_schema_extra={"minLength": accounts.MIN_PASSWORD})
    display_name: Optional[str] = Field(default=None, max_length=64, json_schema_extra={"minLength": 1,
                                                                                       "pattern": r"\S"})
    email: Optional[str] = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    country_code: Optional[str] = Field(default=None, max_length=2, json_schema_extra={"pattern": "^[A-Z]{2}$"})


class TokenBody(Schema):
    user_id: str = Field(max_length=128)
    password: str = Field(max_length=256)


class PasswordBody(Schema):
    current_password: str = Field(max_length=passwords.MAX_PASSWORD)
    new_password: str = Field(max_length=passwords.MAX_PASSWORD)


@bp.post("/auth/register")
@auth_rate_limit
@documented(summary="Register a miner", body=RegisterBody, responses={201: RegisterOut, 409: None}, auth="none", tags=["auth"])
def register():
    body = parse_body(RegisterBody)
    user = accounts.register(**body.model_dump())
    token, _ = accounts.issue_token(user)
    return {"user": user.to_dict(), "token": token}, 201


@bp.post("/auth/token")
@auth_rate_limit
@documented(summary="Get a bearer token", body=TokenBody, responses={200: TokenOut, 401: None}, auth="none", tags=["auth"])
def token():
    body = parse_body(TokenBody)
    user = accounts.authenticate(user_id=body.user_id, password=body.password)
    token, expires_at = accounts.issue_token(user)
    return {"token": token, "expires_at": iso(expires_at)}


@bp.post("/auth/logout")
@documented(summary="End the presented bearer token or this browser's session", responses={200: LoggedOutOut},
            tags=["auth"])
@api_auth_required
def logout():
    if g.auth_mode == "bearer":
        accounts.revoke_token(g.auth_token)
    else:
        log_out()
    return {"status": "logged_out"}


@bp.post("/auth/logout-everywhere")
@documented(summary="End every session and every bearer token of the caller", responses={200: LoggedOutOut},
            tags=["auth"])
@api_auth_required
def logout_everywhere():
    ended = accounts.log_out_everywhere(api_caller())
    if g.auth_mode == "session":
        log_out()
    return {"status": "logged_out", "sessions_ended": ended}


@bp.post("/auth/password")
@auth_rate_limit
@documented(summary="Change the password (ends every other session and every bearer token)", body=PasswordBody,
            responses={200: PasswordChangedOut, 403: None}, tags=["auth"])
@api_auth_required
def change_password():
    body = parse_body(PasswordBody)
    user = api_caller()
    accounts.change_password(user, current_password=body.current_password, new_password=body.new_password,
                             keep_session_secret=g.auth_session_secret)
    token, expires_at = accounts.issue_token(user)
    return {"status": "password_changed", "token": token, "expires_at": iso(expires_at)}


@bp.get("/me")
@documented(summary="The caller", responses={200: UserOut}, tags=["auth"])
@api_auth_required
def me():
    return api_caller().to_dict()


@bp.get("/settings")
@documented(summary="The caller's settings", responses={200: SettingsOut}, tags=["settings"])
@api_auth_required
def get_settings():
    return accounts.get_settings(api_caller())


@bp.patch("/settings")
@documented(summary="Merge a partial settings document", body=preferences.SettingsPatch, responses={200: SettingsOut}, tags=["settings"])
@api_auth_required
def patch_settings():
    patch = parse_body(preferences.SettingsPatch)
    return accounts.update_settings(api_caller(), patch)
