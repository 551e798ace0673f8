"""JSON routes: cooperatives (API.md endpoints 1–9 and ``/api/coops/{id}``).

Thin: parse, call ``services.coops``, serialise. Domain errors become the
API.md statuses in ``webapp.errors``. A coop object carries ``invite_code``
only when the caller is an active member of it.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from flask import Blueprint, current_app, url_for
from flask_limiter.util import get_remote_address
from pydantic import Field, WithJsonSchema
from pydantic.config import JsonDict

from ..auth import api_auth_required, api_caller
from ..extensions import limiter
from ..models import SLOW_MODE_MAX, Cooperative, CoopInvite, iso
from ..services import coop_hashrate, coop_moderation, coops, invites, moderation, rankings
from ..services import hashrate as hashrates
from ..services.errors import ValidationError
from ..services.inputs import MultilineText
from ..vocabulary import CoopStatus
from .openapi import endpoint
from .schemas import (
    ChartOut,
    CoopHashrateOut,
    CoopLeaderboardOut,
    CoopOut,
    CoopStatsOut,
    DirectoryOut,
    InviteCodeOut,
    InviteOut,
    InvitePreviewOut,
    InvitesOut,
    JoinRequestOut,
    JoinRequestsOut,
    LeaveOut,
    MembersOut,
    MineOut,
    StatusOut,
    TimelineOut,
)
from .validation import ChartQuery, Flag, PageQuery, Query, Schema, encode_cursor, parsed_by_name, trimmed_max_length

bp = Blueprint("api_coops", __name__)

# Every route that tests an invite code (this API's join, the join page and
# its forms in webapp/pages/coops.py): attempts per client IP, one budget for
# all of them. Failed lookups per user, per IP and platform-wide are counted
# by the service (services/invites.py), which alone knows a lookup failed.
join_rate_limit = limiter.shared_limit(
    lambda: current_app.config["COOP_JOIN_RATE_LIMIT"], scope="coop_join",
    error_message="Too many join attempts; wait a minute.",
)


def client_ip() -> str:
    """The client's address as the rate limits see it (ProxyFix applied)."""
    return get_remote_address()


# The service's rules, documented in the OpenAPI document (json_schema_extra):
# the service checks them and answers with its own messages and codes.
_NAME_DOC: JsonDict = {"minLength": coops.NAME_MIN, "pattern": r"\S.*\S"}
# The service's limits, counted as the service counts them: after trimming.
Name = Annotated[str, trimmed_max_length(coops.NAME_MAX)]
Description = Annotated[MultilineText, trimmed_max_length(coops.DESCRIPTION_MAX)]


class CreateBody(Schema):
    name: Name = Field(json_schema_extra=_NAME_DOC)
    description: Description | None = None


class JoinBody(Schema):
    # Format checked by the service: 400 invalid_invite_code.
    invite_code: str = Field(json_schema_extra={"pattern": "^ *[A-Za-z0-9]{8} *$"})
    # The key of an invite link (``invite_key`` of the coop object): a join
    # with it is never limited as a guess (docs/COOPS.md).
    invite_key: str | None = Field(default=None, max_length=64)


class KeywordFilter(Schema):
    phrase: str = Field(min_length=1, max_length=moderation.PHRASE_MAX)
    action: Literal["block", "flag"]


class InviteBody(Schema):
    # Limits checked by the service (400 validation_error with its message).
    max_uses: int | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 100})
    expires_in: int | None = Field(default=None, json_schema_extra={"minimum": 300, "maximum": 2592000})


class InviteKeyQuery(Schema):
    k: str | None = Field(default=None, max_length=64)


class UpdateBody(Schema):
    name: Name | None = Field(default=None, json_schema_extra=_NAME_DOC)
    description: Description | None = None
    # Coop moderation (admin and moderators; services/coop_moderation.py).
    slow_mode_seconds: int | None = Field(default=None, ge=0, le=SLOW_MODE_MAX)
    keyword_filters: list[KeywordFilter] | None = Field(default=None, max_length=moderation.FILTERS_MAX)
    # Discovery (admin; services/coops/discovery.py).
    visibility: Literal["private", "listed"] | None = None
    join_mode: Literal["invite", "request"] | None = None
    # ISO 3166-1 alpha-2 (checked by the service); null clears it.
    country_code: str | None = Field(default=None, max_length=2)


_DETAIL_FIELDS = ("name", "description")
_CHAT_FIELDS = ("slow_mode_seconds", "keyword_filters")
_DISCOVERY_FIELDS = ("visibility", "join_mode", "country_code")


def _hashrate(raw: Any, name: str) -> float | None:
    """A hashrate bound in H/s: a finite number ≥ 0 (``2e12`` or ``2000000000000``)."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not math.isfinite(value) or value < 0 or len(str(raw)) > 32:
        raise ValidationError(f"{name} must be a hashrate in H/s, a number of 0 or more.")
    return value


Hashrate = Annotated[float | None, parsed_by_name(_hashrate), WithJsonSchema({"type": "number", "minimum": 0})]


class DirectoryQuery(PageQuery):
    q: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=2)
    has_room: Flag = False
    min_hashrate: Hashrate = None
    max_hashrate: Hashrate = None
    sort: Literal["hashrate", "members", "new"] = "hashrate"


class LeaderboardQuery(Query):
    metric: Literal["hashrate", "best_difficulty", "shares_24h"] = "hashrate"


class TimelineQuery(Query):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=50)


class JoinRequestBody(Schema):
    message: Annotated[MultilineText, trimmed_max_length(280)] | None = None


def invite_fields(code: str) -> dict:
    """``invite_code`` with its link: ``invite_key`` and the absolute
    ``invite_url`` of the join page (for members only)."""
    key = invites.link_key(code)
    return {"invite_code": code, "invite_key": key,
            "invite_url": url_for("pages_coops.join_link", code=code, k=key, _external=True)}


def _coop(coop: Cooperative, *, member: bool, chat_settings: bool = False) -> dict:
    data = coop.to_dict(include_invite_code=member)
    if member and coop.invite_code:
        data.update(invite_fields(coop.invite_code))
    if member:
        data["slow_mode_seconds"] = coop.slow_mode_seconds
    if chat_settings:  # the filters are for those who set them, not a list to dodge
        data["keyword_filters"] = coop.keyword_filters or []
    return data


@bp.post("/coops")
@api_auth_required
@endpoint(ok={201: CoopOut}, errors=[409], tags=["coops"])
def create(json: CreateBody):
    """Found a coop; the caller becomes its admin (endpoint 1)"""
    coop = coops.create(api_caller(), name=json.name, description=json.description)
    return _coop(coop, member=True), 201


@bp.get("/coops/mine")
@api_auth_required
@endpoint(ok={200: MineOut}, tags=["coops"])
def mine():
    """The caller's coop or null (endpoint 2)"""
    coop = coops.get_mine(api_caller())
    return {"cooperative": _coop(coop, member=True) if coop else None}


@bp.post("/coops/join")
@join_rate_limit
@api_auth_required
@endpoint(ok={200: CoopOut}, errors=[404, 409], tags=["coops"])
def join(json: JoinBody):
    """Join by invite code, any case (endpoint 3)"""
    coop = coops.join(api_caller(), invite_code=json.invite_code, ip=client_ip(), invite_key=json.invite_key)
    return _coop(coop, member=True)


@bp.get("/coops/<int:coop_id>")
@api_auth_required
@endpoint(ok={200: CoopOut}, errors=[403, 404], tags=["coops"])
def get(coop_id: int):
    """A coop, for its members (``keyword_filters`` for its admin and moderators)"""
    coop = coops.get_for_member(api_caller(), coop_id=coop_id)
    return _coop(coop, member=True, chat_settings=moderation.is_moderator(coop.id, api_caller().user_id))


@bp.patch("/coops/<int:coop_id>")
@api_auth_required
@endpoint(ok={200: CoopOut}, errors=[403, 404, 409], tags=["coops"])
def patch(coop_id: int, json: UpdateBody):
    """Edit name and description (admin); visibility, join mode and country (admin); slow mode and keyword
    filters (admin, moderators)"""
    given = json.model_fields_set
    details = {field: getattr(json, field) for field in given if field in _DETAIL_FIELDS}
    chat = {field: getattr(json, field) for field in given if field in _CHAT_FIELDS}
    discovery = {field: getattr(json, field) for field in given if field in _DISCOVERY_FIELDS}
    if "keyword_filters" in chat and chat["keyword_filters"] is not None:
        chat["keyword_filters"] = [f.model_dump() for f in chat["keyword_filters"]]
    if details or not (chat or discovery):
        coop = coops.update_details(api_caller(), coop_id=coop_id, **details)
    if discovery:
        clear = "country_code" in discovery and discovery["country_code"] is None
        coop = coops.update_discovery(api_caller(), coop_id=coop_id, clear_country=clear, **discovery)
    if chat:
        coop = coop_moderation.update_settings(api_caller(), coop_id=coop_id, **chat)
    return _coop(coop, member=True, chat_settings=True)


@bp.delete("/coops/<int:coop_id>")
@api_auth_required
@endpoint(ok={200: CoopOut}, errors=[403, 404, 409], tags=["coops"])
def dissolve(coop_id: int):
    """Dissolve the coop (admin)"""
    return _coop(coops.dissolve(api_caller(), coop_id=coop_id), member=False)


@bp.post("/coops/<int:coop_id>/leave")
@api_auth_required
@endpoint(ok={200: LeaveOut}, errors=[403, 404, 409], tags=["coops"])
def leave(coop_id: int):
    """Leave the coop (endpoint 4)"""
    coop = coops.leave(api_caller(), coop_id=coop_id)
    return {"status": "left", "cooperative": _coop(coop, member=False) if coop.status == CoopStatus.ACTIVE else None}


@bp.get("/coops/<int:coop_id>/members")
@api_auth_required
@endpoint(ok={200: MembersOut}, errors=[403, 404], tags=["coops"])
def members(coop_id: int):
    """Active members, oldest first (endpoint 5)"""
    return {"members": [m.to_dict() for m in coops.list_members(api_caller(), coop_id=coop_id)]}


@bp.delete("/coops/<int:coop_id>/members/<user_id>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[400, 403, 404, 409], tags=["coops"])
def remove_member(coop_id: int, user_id: str):
    """Remove a member (admin or moderator, endpoint 6)"""
    coops.remove_member(api_caller(), coop_id=coop_id, user_id=user_id)
    return {"status": "removed"}


@bp.post("/coops/<int:coop_id>/regenerate-code")
@api_auth_required
@endpoint(ok={200: InviteCodeOut}, errors=[403, 404, 409], tags=["coops"])
def regenerate_code(coop_id: int):
    """Replace the invite code (admin, endpoint 7)"""
    coop = coops.regenerate_code(api_caller(), coop_id=coop_id)
    return invite_fields(coop.invite_code)


@bp.get("/coops/<int:coop_id>/hashrate")
@api_auth_required
@endpoint(ok={200: CoopHashrateOut}, errors=[403, 404], tags=["coops"])
def hashrate(coop_id: int):
    """Combined and members' hashrate (endpoint 8)"""
    return coops.hashrate(api_caller(), coop_id=coop_id).to_dict()


@bp.get("/coops/<int:coop_id>/hashrate/history")
@api_auth_required
@endpoint(ok={200: ChartOut}, errors=[403, 404], tags=["coops", "charts"])
def hashrate_history(coop_id: int, query: ChartQuery):
    """The coop's hashrate over time, combined and per member

    ``?range=1h|24h|7d|30d`` (default 24h): series ``combined`` and one per
    active member in H/s; a member hiding from coop rankings is "a member"
    (docs/API.md "Charts").
    """
    rng = hashrates.chart_range(query.range)
    return coops.hashrate_chart(api_caller(), coop_id=coop_id, rng=rng).to_dict()


@bp.get("/coops/<int:coop_id>/stats")
@api_auth_required
@endpoint(ok={200: CoopStatsOut}, errors=[403, 404], tags=["coops"])
def stats(coop_id: int):
    """Coop statistics (endpoint 9)"""
    return coops.stats(api_caller(), coop_id=coop_id).to_dict()


def _invite(invite: CoopInvite) -> dict:
    data = invite.to_dict()
    data.update({k: v for k, v in invite_fields(invite.code).items() if k != "invite_code"})
    return data


@bp.post("/coops/<int:coop_id>/invites")
@api_auth_required
@endpoint(ok={201: InviteOut}, errors=[403, 404, 409], tags=["coops"])
def create_invite(coop_id: int, json: InviteBody):
    """Add an invite with optional use limit and expiry (admin, moderators)"""
    invite = coops.create_invite(api_caller(), coop_id=coop_id, max_uses=json.max_uses, expires_in=json.expires_in)
    return _invite(invite), 201


@bp.get("/coops/<int:coop_id>/invites")
@api_auth_required
@endpoint(ok={200: InvitesOut}, errors=[403, 404, 409], tags=["coops"])
def list_invites(coop_id: int):
    """The coop's live invites, newest first (admin, moderators)"""
    return {"invites": [_invite(i) for i in coops.list_invites(api_caller(), coop_id=coop_id)]}


@bp.delete("/coops/<int:coop_id>/invites/<code>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[403, 404, 409], tags=["coops"])
def revoke_invite(coop_id: int, code: str):
    """Revoke an invite (admin, moderators)"""
    coops.revoke_invite(api_caller(), coop_id=coop_id, code=code)
    return {"status": "revoked"}


@bp.get("/invites/<code>")
@join_rate_limit
@endpoint(ok={200: InvitePreviewOut}, errors=[404, 410], auth="none", tags=["coops"])
def invite_preview(code: str, query: InviteKeyQuery):
    """What an invite opens, for anyone holding it (no login)"""
    coop, target = coops.preview(invite_code=code, caller=invites.Caller(None, client_ip()), invite_key=query.k)
    total = coop_hashrate.cached_total(coop.id)
    return {
        "cooperative": {"id": coop.id, "name": coop.name, "description": coop.description,
                        "member_count": coop.member_count, "total_hashrate": total.total_hashrate},
        "expires_at": iso(target.expires_at),
    }


@bp.get("/coops/directory")
@endpoint(ok={200: DirectoryOut}, auth="none", tags=["coops"])
def directory(query: DirectoryQuery):
    """Listed coops: search, filters, sorts, keyset pages (no login)"""
    entries, next_cursor = coops.directory(
        q=query.q, country=query.country, has_room=query.has_room, min_hashrate=query.min_hashrate,
        max_hashrate=query.max_hashrate, sort=query.sort, cursor=query.cursor, limit=query.limit)
    return {"cooperatives": [e.to_dict() for e in entries],
            "next_cursor": encode_cursor(next_cursor) if next_cursor is not None else None}


@bp.post("/coops/<int:coop_id>/join-requests")
@api_auth_required
@endpoint(ok={201: JoinRequestOut}, errors=[403, 404, 409], tags=["coops"])
def request_to_join(coop_id: int, json: JoinRequestBody):
    """Ask to join a listed coop that takes requests"""
    return coops.request_to_join(api_caller(), coop_id=coop_id, message=json.message).to_dict(), 201


@bp.get("/coops/<int:coop_id>/join-requests")
@api_auth_required
@endpoint(ok={200: JoinRequestsOut}, errors=[403, 404, 409], tags=["coops"])
def join_requests(coop_id: int):
    """Pending join requests, oldest first (admin, moderators)"""
    return {"requests": [r.to_dict() for r in coops.list_requests(api_caller(), coop_id=coop_id)]}


@bp.post("/coops/<int:coop_id>/join-requests/<int:request_id>/approve")
@api_auth_required
@endpoint(ok={200: JoinRequestOut}, errors=[403, 404, 409], tags=["coops"])
def approve_request(coop_id: int, request_id: int):
    """Approve a join request: the applicant becomes a member (admin, moderators)"""
    return coops.approve_request(api_caller(), coop_id=coop_id, request_id=request_id).to_dict()


@bp.post("/coops/<int:coop_id>/join-requests/<int:request_id>/decline")
@api_auth_required
@endpoint(ok={200: JoinRequestOut}, errors=[403, 404, 409], tags=["coops"])
def decline_request(coop_id: int, request_id: int):
    """Decline a join request (admin, moderators)"""
    return coops.decline_request(api_caller(), coop_id=coop_id, request_id=request_id).to_dict()


@bp.get("/coops/<int:coop_id>/leaderboard")
@api_auth_required
@endpoint(ok={200: CoopLeaderboardOut}, errors=[403, 404], tags=["coops"])
def leaderboard(coop_id: int, query: LeaderboardQuery):
    """The coop's members ranked by hashrate, best difficulty or shares in 24 h (members)"""
    entries = rankings.coop_leaderboard(api_caller(), coop_id=coop_id, metric=query.metric)
    return {"metric": query.metric, "entries": [e.to_dict() for e in entries]}


@bp.get("/coops/<int:coop_id>/timeline")
@api_auth_required
@endpoint(ok={200: TimelineOut}, errors=[403, 404], tags=["coops"])
def timeline(coop_id: int, query: TimelineQuery):
    """What happened in the coop, newest first, keyset pages (members)"""
    entries, next_cursor = coops.timeline(api_caller(), coop_id=coop_id, cursor=query.cursor, limit=query.limit)
    return {"entries": [e.to_dict() for e in entries], "next_cursor": next_cursor}
