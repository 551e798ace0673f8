"""JSON routes: the caller's own profile and images, and miner search
(API.md "Profiles"). What others see of a profile is
``profiles.profile_dict`` (``GET /api/public/miners/{user_id}``)."""
from __future__ import annotations

from flask import Blueprint, current_app, request
from pydantic import Field

from ..auth import api_auth_required, api_caller, caller_or_none
from ..extensions import limiter
from ..security import allow_large_body
from ..services import profile_edit, search
from ..services.errors import UnsupportedMedia, ValidationError
from ..services.inputs import MultilineText
from .openapi import endpoint
from .schemas import Out
from .validation import Query, Schema

bp = Blueprint("api_profiles", __name__)

search_rate_limit = limiter.limit(
    lambda: current_app.config["SEARCH_RATE_LIMIT"], scope="miner-search",
    error_message="Too many searches from your address; wait a minute.",
)


class ProfilePatch(Schema):
    """Fields to change; the rules are checked by ``profile_edit.update``
    (the name's length counts after NFKC normalisation and trimming)."""

    display_name: str | None = Field(default=None, max_length=200, json_schema_extra={"minLength": 3})
    bio: MultilineText | None = Field(default=None, max_length=280)
    pronouns: str | None = Field(default=None, max_length=30)
    location: str | None = Field(default=None, max_length=60)
    country_code: str | None = Field(default=None, json_schema_extra={"pattern": "^[A-Z]{2}$"})
    visibility: dict[str, str] | None = None


class OwnProfileOut(Out):
    user_id: str
    display_name: str
    bio: str
    bio_html: str
    pronouns: str
    location: str
    country_code: str | None
    avatar_url: str | None
    banner_url: str | None
    visibility: dict[str, str]


class SearchQuery(Query):
    q: str = Field(default="", max_length=100)


class MinerHit(Out):
    user_id: str
    display_name: str
    avatar_url: str | None


class SearchOut(Out):
    miners: list[MinerHit]


@bp.get("/profile")
@api_auth_required
@endpoint(ok={200: OwnProfileOut}, tags=["profiles"])
def get_profile():
    """The caller's profile: every field and its visibility"""
    return profile_edit.own_profile(api_caller())


@bp.patch("/profile")
@api_auth_required
@endpoint(ok={200: OwnProfileOut}, tags=["profiles"])
def patch_profile(json: ProfilePatch):
    """Change profile fields and their visibility (public, connections, private)"""
    return profile_edit.update(api_caller(), json.model_dump(exclude_unset=True))


def _upload() -> bytes:
    file = request.files.get("file")
    if file is None:
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMedia("Send the image as multipart/form-data in the field 'file'.")
        raise ValidationError("Send the image in the multipart field 'file'.")
    return file.read(int(current_app.config["MEDIA_MAX_UPLOAD"]) + 1)


@bp.put("/profile/<any(avatar, banner):kind>")
@allow_large_body("MEDIA_MAX_UPLOAD")
@api_auth_required
@endpoint(ok={200: OwnProfileOut}, errors=[415], tags=["profiles"])
def put_image(kind: str):
    """Upload an avatar (1:1, at least 512 px) or a banner (3:1): PNG, JPEG or WebP up to 2 MiB"""
    return profile_edit.set_image(api_caller(), kind, _upload())


@bp.delete("/profile/<any(avatar, banner):kind>")
@api_auth_required
@endpoint(ok={200: OwnProfileOut}, tags=["profiles"])
def delete_image(kind: str):
    """Remove the avatar or the banner"""
    return profile_edit.delete_image(api_caller(), kind)


@bp.get("/miners/search")
@search_rate_limit
@endpoint(ok={200: SearchOut}, auth="none", tags=["profiles"])
def search_miners(query: SearchQuery):
    """Miners with a public profile by display name or address prefix (at least 2 characters)"""
    viewer = caller_or_none()
    return {"miners": search.search(query.q, viewer_id=viewer.user_id if viewer else None)}
