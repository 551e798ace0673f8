"""JSON routes: coop moderation (API.md "Coop governance": roles, transfer,
bans, mutes, the audit log, reports). Thin over ``services.coop_moderation``
and ``services.reports``; slow mode and keyword filters are fields of
``PATCH /api/coops/{id}`` (api/coops.py)."""
from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import Field

from ..auth import api_auth_required, api_caller
from ..models import iso
from ..services import coop_moderation, moderation, reports
from ..services.inputs import MultilineText
from .openapi import endpoint
from .schemas import (
    AuditPageOut,
    BanOut,
    BansOut,
    CoopOut,
    MuteOut,
    MutesOut,
    ReportOut,
    ReportPageOut,
    RoleOut,
    StatusOut,
)
from .validation import Flag, PageQuery, Schema, encode_cursor

bp = Blueprint("api_moderation", __name__)

UserId = Field(min_length=1, max_length=128)


class RoleBody(Schema):
    role: Literal["moderator", "member"]


class TransferBody(Schema):
    user_id: str = UserId


class BanBody(Schema):
    user_id: str = UserId
    reason: MultilineText | None = Field(default=None, max_length=moderation.REASON_MAX)


class MuteBody(Schema):
    user_id: str = UserId
    minutes: int = Field(ge=moderation.MUTE_MINUTES[0], le=moderation.MUTE_MINUTES[1])


class ReportBody(Schema):
    target_type: Literal["message", "user", "cooperative"]
    target_id: str | int
    reason: Literal["spam", "abuse", "other"]
    details: MultilineText | None = Field(default=None, max_length=reports.DETAILS_MAX)


class ResolveBody(Schema):
    action: Literal["dismiss", "delete_message", "mute", "ban"]
    note: MultilineText | None = Field(default=None, max_length=reports.NOTE_MAX)
    minutes: int | None = Field(default=None, ge=moderation.MUTE_MINUTES[0], le=moderation.MUTE_MINUTES[1])


class ReportQuery(PageQuery):
    status: Literal["open", "resolved", "all"] = "open"
    escalated: Flag = False


# ---- roles ------------------------------------------------------------------------------------


@bp.patch("/coops/<int:coop_id>/members/<user_id>")
@api_auth_required
@endpoint(ok={200: RoleOut}, errors=[403, 404, 409], tags=["moderation"])
def set_role(coop_id: int, user_id: str, json: RoleBody):
    """Make a member a moderator or a moderator a member (admin)"""
    membership = coop_moderation.set_role(api_caller(), coop_id=coop_id, user_id=user_id, role=json.role)
    return {"user_id": membership.user_id, "role": membership.role}


@bp.post("/coops/<int:coop_id>/transfer")
@api_auth_required
@endpoint(ok={200: CoopOut}, errors=[403, 404, 409], tags=["moderation"])
def transfer(coop_id: int, json: TransferBody):
    """Hand the admin role to another member; the old admin becomes a moderator (admin)"""
    coop = coop_moderation.transfer(api_caller(), coop_id=coop_id, user_id=json.user_id)
    return coop.to_dict()


# ---- bans -------------------------------------------------------------------------------------


@bp.get("/coops/<int:coop_id>/bans")
@api_auth_required
@endpoint(ok={200: BansOut}, errors=[403, 404], tags=["moderation"])
def bans(coop_id: int):
    """The coop's bans, newest first (admin, moderators)"""
    return {"bans": [b.to_dict() for b in coop_moderation.list_bans(api_caller(), coop_id=coop_id)]}


@bp.post("/coops/<int:coop_id>/bans")
@api_auth_required
@endpoint(ok={201: BanOut}, errors=[403, 404, 409], tags=["moderation"])
def ban(coop_id: int, json: BanBody):
    """Ban a miner; an active member is removed (admin, moderators)"""
    row = coop_moderation.ban(api_caller(), coop_id=coop_id, user_id=json.user_id, reason=json.reason)
    return {"user_id": row.user_id, "display_name": coop_moderation.display_name(row.user_id),
            "reason": row.reason, "banned_by": row.banned_by, "created_at": iso(row.created_at)}, 201


@bp.delete("/coops/<int:coop_id>/bans/<user_id>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[403, 404, 409], tags=["moderation"])
def unban(coop_id: int, user_id: str):
    """Lift a ban (admin, moderators)"""
    coop_moderation.unban(api_caller(), coop_id=coop_id, user_id=user_id)
    return {"status": "unbanned"}


# ---- mutes ------------------------------------------------------------------------------------


@bp.get("/coops/<int:coop_id>/mutes")
@api_auth_required
@endpoint(ok={200: MutesOut}, errors=[403, 404], tags=["moderation"])
def mutes(coop_id: int):
    """Running mutes (admin, moderators)"""
    running = coop_moderation.list_mutes(api_caller(), coop_id=coop_id)
    return {"mutes": [{"user_id": uid, "until": iso(until)} for uid, until in running.items()]}


@bp.post("/coops/<int:coop_id>/mutes")
@api_auth_required
@endpoint(ok={201: MuteOut}, errors=[403, 404, 409], tags=["moderation"])
def mute(coop_id: int, json: MuteBody):
    """Mute a member in the coop's chat for 1–10080 minutes (admin, moderators)"""
    row = coop_moderation.mute(api_caller(), coop_id=coop_id, user_id=json.user_id, minutes=json.minutes)
    return {"user_id": row.user_id, "until": iso(row.until)}, 201


@bp.delete("/coops/<int:coop_id>/mutes/<user_id>")
@api_auth_required
@endpoint(ok={200: StatusOut}, errors=[403, 404, 409], tags=["moderation"])
def unmute(coop_id: int, user_id: str):
    """End a mute early (admin, moderators)"""
    coop_moderation.unmute(api_caller(), coop_id=coop_id, user_id=user_id)
    return {"status": "unmuted"}


# ---- audit log --------------------------------------------------------------------------------


@bp.get("/coops/<int:coop_id>/audit")
@api_auth_required
@endpoint(ok={200: AuditPageOut}, errors=[403, 404], tags=["moderation"])
def audit(coop_id: int, query: PageQuery):
    """Every moderation action, newest first (admin, moderators)"""
    entries, last = coop_moderation.audit_page(api_caller(), coop_id=coop_id, limit=query.limit,
                                               before_id=query.cursor)
    return {"entries": entries, "next_cursor": encode_cursor(last) if last else None}


# ---- reports ----------------------------------------------------------------------------------


@bp.post("/reports")
@api_auth_required
@endpoint(ok={201: ReportOut}, errors=[404, 409], tags=["moderation"])
def report(json: ReportBody):
    """Report a message, a miner or a cooperative"""
    row = reports.create(api_caller(), target_type=json.target_type, target_id=str(json.target_id),
                         reason=json.reason, details=json.details)
    return row.to_dict(), 201


@bp.get("/reports")
@api_auth_required
@endpoint(ok={200: ReportPageOut}, tags=["moderation"])
def triage(query: ReportQuery):
    """Reports the caller handles: their coop's (admin, moderators) or all (platform admins)"""
    rows, last = reports.triage(api_caller(), status=query.status, escalated=query.escalated, limit=query.limit,
                                before_id=query.cursor)
    return {"reports": [r.to_dict() for r in rows], "next_cursor": encode_cursor(last) if last else None}


@bp.post("/reports/<int:report_id>/resolve")
@api_auth_required
@endpoint(ok={200: ReportOut}, errors=[403, 404, 409], tags=["moderation"])
def resolve(report_id: int, json: ResolveBody):
    """Resolve a report: dismiss, delete the message, mute or ban; the reporter is told"""
    row = reports.resolve(api_caller(), report_id=report_id, action=json.action, note=json.note,
                          minutes=json.minutes)
    return row.to_dict()
