"""JSON routes: registration, tokens, the caller, settings (API.md
Authentication)."""
from __future__ import annotations

from typing import Optional

from flask import Blueprint
from pydantic import Field

from ..auth import api_auth_required, api_caller
from ..extensions import auth_rate_limit
from ..models import iso
from ..services import accounts, preferences
from .openapi import documented
from .schemas import RegisterOut, SettingsOut, TokenOut, UserOut
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
