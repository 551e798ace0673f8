"""JSON routes: Web Push (API.md "Notification settings"): the VAPID public
key, and the caller's browser subscriptions (``services/webpush.py``)."""
from __future__ import annotations

from flask import Blueprint, request
from pydantic import Field

from ..auth import api_auth_required, api_caller
from ..services import webpush
from .openapi import endpoint
from .schemas import Out, PushKeyOut, PushSubscriptionOut
from .validation import Schema

bp = Blueprint("api_push", __name__)


class SubscriptionKeys(Schema):
    p256dh: str = Field(min_length=1, max_length=128)
    auth: str = Field(min_length=1, max_length=64)


class SubscriptionBody(Schema):
    """A browser ``PushSubscription`` as ``JSON.stringify`` writes it."""

    endpoint: str = Field(min_length=1, max_length=1024)
    expirationTime: int | None = None
    keys: SubscriptionKeys


class EndpointBody(Schema):
    endpoint: str = Field(min_length=1, max_length=1024)


class RemovedOut(Out):
    status: str


@bp.get("/push/public-key")
@endpoint(ok={200: PushKeyOut}, auth="none", tags=["push"])
def public_key():
    """The VAPID application server key (base64url) for PushManager.subscribe"""
    return {"public_key": webpush.public_key()}


@bp.post("/push/subscriptions")
@api_auth_required
@endpoint(ok={201: PushSubscriptionOut}, tags=["push"])
def subscribe(json: SubscriptionBody):
    """Store this browser's push subscription for the caller (idempotent per endpoint)"""
    row = webpush.subscribe(api_caller(), json.endpoint, json.keys.p256dh, json.keys.auth,
                            request.headers.get("User-Agent"))
    return row.to_dict(), 201


@bp.delete("/push/subscriptions")
@api_auth_required
@endpoint(ok={200: RemovedOut}, errors=[404], tags=["push"])
def unsubscribe(json: EndpointBody):
    """Delete the caller's subscription for an endpoint"""
    webpush.unsubscribe(api_caller(), json.endpoint)
    return {"status": "deleted"}
