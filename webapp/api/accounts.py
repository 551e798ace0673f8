"""JSON routes: registration, tokens, logout, password change, the caller,
settings (API.md Authentication; the additions are in docs/API.md)."""
from __future__ import annotations

from flask import Blueprint, g
from pydantic import Field
from pydantic.config import JsonDict

from ..auth import api_auth_required, api_caller, log_out
from ..extensions import auth_rate_limit
from ..models import iso
from ..services import accounts, passwords
from ..services.preferences import SettingsPatch
from .openapi import endpoint
from .schemas import LoggedOutOut, PasswordChangedOut, RegisterOut, SettingsOut, TokenOut, UserOut
from .validation import Schema

bp = Blueprint("api_accounts", __name__)


# The service's rules, documented in the OpenAPI document (json_schema_extra):
# the service checks them and answers with its own messages.
_USER_ID_DOC: JsonDict = {"pattern": f"^{accounts.USER_ID_RE.pattern}$", "minLength": accounts.USER_ID_MIN}


class RegisterBody(Schema):
    user_id: str = Field(max_length=accounts.USER_ID_MAX, json_schema_extra=_USER_ID_DOC)
    password: str = Field(max_length=passwords.MAX_PASSWORD, json_schema_extra={"minLength": accounts.MIN_PASSWORD})
    display_name: str | None = Field(default=None, max_length=accounts.DISPLAY_NAME_MAX, json_schema_extra={"minLength": 1,
                                                                                       "pattern": r"\S"})
    email: str | None = Field(default=None, max_length=accounts.MAX_EMAIL, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    country_code: str | None = Field(default=None, max_length=2, json_schema_extra={
        "pattern": "^[A-Z]{2}$", "description": "An ISO 3166-1 alpha-2 code in capitals (PT); unknown codes are refused."})


class TokenBody(Schema):
    user_id: str = Field(max_length=accounts.USER_ID_MAX)
    password: str = Field(max_length=passwords.MAX_PASSWORD)


class PasswordBody(Schema):
    current_password: str = Field(max_length=passwords.MAX_PASSWORD)
    new_password: str = Field(max_length=passwords.MAX_PASSWORD)


@bp.post("/auth/register")
@auth_rate_limit
@endpoint(ok={201: RegisterOut}, errors=[409], auth="none", tags=["auth"])
def register(json: RegisterBody):
    """Register a miner"""
    user = accounts.register(**json.model_dump())
    token, _ = accounts.issue_token(user)
    return {"user": user.to_dict(), "token": token}, 201


@bp.post("/auth/token")
@auth_rate_limit
@endpoint(ok={200: TokenOut}, errors=[401], auth="none", tags=["auth"])
def token(json: TokenBody):
    """Get a bearer token"""
    user = accounts.authenticate(user_id=json.user_id, password=json.password)
    token, expires_at = accounts.issue_token(user)
    return {"token": token, "expires_at": iso(expires_at)}


@bp.post("/auth/logout")
@api_auth_required
@endpoint(ok={200: LoggedOutOut}, tags=["auth"])
def logout():
    """End the presented bearer token or this browser's session"""
    if g.auth_mode == "bearer":
        accounts.revoke_token(g.auth_token)
    else:
        log_out()
    return {"status": "logged_out"}


@bp.post("/auth/logout-everywhere")
@api_auth_required
@endpoint(ok={200: LoggedOutOut}, tags=["auth"])
def logout_everywhere():
    """End every session and every bearer token of the caller"""
    ended = accounts.log_out_everywhere(api_caller())
    if g.auth_mode == "session":
        log_out()
    return {"status": "logged_out", "sessions_ended": ended}


@bp.post("/auth/password")
@auth_rate_limit
@api_auth_required
@endpoint(ok={200: PasswordChangedOut}, errors=[403], tags=["auth"])
def change_password(json: PasswordBody):
    """Change the password (ends every other session and every bearer token)"""
    user = api_caller()
    accounts.change_password(user, current_password=json.current_password, new_password=json.new_password,
                             keep_session_secret=g.auth_session_secret)
    token, expires_at = accounts.issue_token(user)
    return {"status": "password_changed", "token": token, "expires_at": iso(expires_at)}


@bp.get("/me")
@api_auth_required
@endpoint(ok={200: UserOut}, tags=["auth"])
def me():
    """The caller"""
    return api_caller().to_dict()


@bp.get("/settings")
@api_auth_required
@endpoint(ok={200: SettingsOut}, tags=["settings"])
def get_settings():
    """The caller's settings"""
    return accounts.get_settings(api_caller())


@bp.patch("/settings")
@api_auth_required
@endpoint(ok={200: SettingsOut}, tags=["settings"])
def patch_settings(json: SettingsPatch):
    """Merge a partial settings document"""
    return accounts.update_settings(api_caller(), json)
