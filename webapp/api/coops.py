"""JSON routes: cooperatives (API.md endpoints 1–9 and ``/api/coops/{id}``).

Thin: parse, call ``services.coops``, serialise. Domain errors become the
API.md statuses in ``webapp.errors``. A coop object carries ``invite_code``
only when the caller is an active member of it.
"""
from __future__ import annotations

from typing import Optional

from flask import Blueprint
from pydantic import Field

from ..auth import api_auth_required, api_caller
from ..models import Cooperative
from ..services import coops
from .validation import Schema, parse_body

bp = Blueprint("api_coops", __name__)


class CreateBody(Schema):
    name: str = Field(max_length=1000)
    description: Optional[str] = Field(default=None, max_length=5000)


class JoinBody(Schema):
    invite_code: str = Field(max_length=1000)


class UpdateBody(Schema):
    name: Optional[str] = Field(default=None, max_length=1000)
    description: Optional[str] = Field(default=None, max_length=5000)


def _coop(coop: Cooperative, *, member: bool) -> dict:
    return coop.to_dict(include_invite_code=member)


@bp.post("/coops")
@api_auth_required
def create():
    body = parse_body(CreateBody)
    coop = coops.create(api_caller(), name=body.name, description=body.description)
    return _coop(coop, member=True), 201


@bp.get("/coops/mine")
@api_auth_required
def mine():
    coop = coops.get_mine(api_caller())
    return {"cooperative": _coop(coop, member=True) if coop else None}


@bp.post("/coops/join")
@api_auth_required
def join():
    body = parse_body(JoinBody)
    return _coop(coops.join(api_caller(), invite_code=body.invite_code), member=True)


@bp.get("/coops/<int:coop_id>")
@api_auth_required
def get(coop_id: int):
    return _coop(coops.get_for_member(api_caller(), coop_id=coop_id), member=True)


@bp.patch("/coops/<int:coop_id>")
@api_auth_required
def patch(coop_id: int):
    body = parse_body(UpdateBody)
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    coop = coops.update_details(api_caller(), coop_id=coop_id, **changes)
    return _coop(coop, member=True)


@bp.delete("/coops/<int:coop_id>")
@api_auth_required
def dissolve(coop_id: int):
    return _coop(coops.dissolve(api_caller(), coop_id=coop_id), member=False)


@bp.post("/coops/<int:coop_id>/leave")
@api_auth_required
def leave(coop_id: int):
    coop = coops.leave(api_caller(), coop_id=coop_id)
    return {"status": "left", "cooperative": _coop(coop, member=False) if coop.status == "active" else None}


@bp.get("/coops/<int:coop_id>/members")
@api_auth_required
def members(coop_id: int):
    return {"members": [m.to_dict() for m in coops.list_members(api_caller(), coop_id=coop_id)]}


@bp.delete("/coops/<int:coop_id>/members/<user_id>")
@api_auth_required
def remove_member(coop_id: int, user_id: str):
    coops.remove_member(api_caller(), coop_id=coop_id, user_id=user_id)
    return {"status": "removed"}


@bp.post("/coops/<int:coop_id>/regenerate-code")
@api_auth_required
def regenerate_code(coop_id: int):
    coop = coops.regenerate_code(api_caller(), coop_id=coop_id)
    return {"invite_code": coop.invite_code}


@bp.get("/coops/<int:coop_id>/hashrate")
@api_auth_required
def hashrate(coop_id: int):
    return coops.hashrate(api_caller(), coop_id=coop_id).to_dict()


@bp.get("/coops/<int:coop_id>/stats")
@api_auth_required
def stats(coop_id: int):
    return coops.stats(api_caller(), coop_id=coop_id).to_dict()
