"""Invite codes: their format, signed invite links, and the one guarded
lookup that every door testing a code goes through (the join page preview,
the join forms, ``POST /api/coops/join``; later the extra invite codes of
``coop_invites`` and ``GET /api/invites/{code}``).

A right code and a wrong one must answer differently (that is the point of
a code), so the answer is an oracle; ``lookup`` bounds how often anyone can
ask it (docs/COOPS.md "Guessing invite codes" has the arithmetic):

* failed lookups per user (``INVITE_CODE_FAILURE_LIMIT``, 10 per hour) and
  per client IP (``INVITE_CODE_IP_FAILURE_LIMIT``, 30 per hour: several
  people can share an address; an IPv6 client counts by its /64, the block
  one subscriber gets), then 429 ``rate_limited`` for that caller only;
* failed lookups across the whole platform: ``INVITE_CODE_GLOBAL_FAILURE_LIMIT``
  (200 per hour). Past it, lookups of typed codes are paused for everyone
  (429) until the hour has room again, and the platform admins get one
  ``system`` notification per window (and a line on /admin). However many
  machines a botnet has, it gets at most that many guesses an hour.
* invite links carry a key, an HMAC of the code under the app's secret
  (``link_key``): a lookup with a valid key cannot be a guess, so it is
  never limited nor counted. Members who got the link can still join while
  typed codes are paused: that is the trade-off (a botnet can pause typing
  codes, never joining by link, and never reach a code by guessing).

Counters live in the rate-limit storage (``RATELIMIT_STORAGE_URI``, Redis in
production) through the ``limits`` library's moving windows, shared by every
process. ``RATELIMIT_ENABLED=false`` switches the counting off with the
other limits.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select

from ..extensions import db
from ..models import User
from ..vocabulary import NotificationCategory, NotificationSubtype
from . import notifications
from .errors import InvalidInviteCode, NotFound, RateLimited

log = logging.getLogger(__name__)

INVITE_CODE_LENGTH = 8
INVITE_CODE_ALPHABET = string.ascii_uppercase + string.digits
INVITE_CODE_RE = re.compile(r"[A-Za-z0-9]{8}", re.ASCII)
LINK_KEY_BYTES = 10  # 80 bits: as hard to guess as 36^15, beyond any botnet
ALARM_SUBTYPE = NotificationSubtype.INVITE_CODE_GUESSING
ADMIN_LINK = "/admin"

T = TypeVar("T")


# ---- the code and its link key ---------------------------------------------------------


def generate_invite_code() -> str:
    """A fresh invite code: 8 characters of ``A-Z0-9`` from ``secrets`` (a CSPRNG)."""
    return "".join(secrets.choice(INVITE_CODE_ALPHABET) for _ in range(INVITE_CODE_LENGTH))


def normalise_invite_code(raw: object) -> str:
    """The upper-case form of an invite code as a miner typed or pasted it
    (surrounding blanks ignored, any case). Raises InvalidInviteCode (400)
    unless it is 8 ASCII letters or digits; runs before any lookup."""
    if not isinstance(raw, str):
        raise InvalidInviteCode()
    code = raw.strip()
    if not INVITE_CODE_RE.fullmatch(code):
        raise InvalidInviteCode()
    return code.upper()


def link_key(code: str) -> str:
    """The key of ``code``'s invite link: the first 80 bits of
    HMAC-SHA256(SECRET_KEY, "invite-link:" + code), base32, lower case (16
    characters). A new code (regeneration) gets a new key; old links die
    with the old code."""
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), f"invite-link:{code}".encode(),
                      hashlib.sha256).digest()
    return base64.b32encode(digest[:LINK_KEY_BYTES]).decode().lower()


def valid_link_key(code: str, key: object) -> bool:
    """Whether ``key`` is ``code``'s link key (constant-time comparison)."""
    return isinstance(key, str) and key.isascii() and hmac.compare_digest(key.lower(), link_key(code))


# ---- who is asking -------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who tests a code: a user id and/or a client IP (either may be None,
    e.g. the CLI)."""

    user_id: str | None = None
    ip: str | None = None

    def identities(self) -> list[tuple[str, str]]:
        """("user", id) and ("ip", address or IPv6 /64) for the counters."""
        found = []
        if self.user_id:
            found.append(("user", self.user_id))
        if self.ip:
            found.append(("ip", ip_bucket(self.ip)))
        return found


def ip_bucket(ip: str) -> str:
    """The unit an address is counted in: an IPv4 address itself, an IPv6
    address by its /64 (one subscriber's block); anything unparsable as is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# ---- the counters --------------------------------------------------------------------------


class Guard:
    """The failed-lookup counters of one app (see the module doc)."""

    def __init__(self, storage_uri: str, per_user: str, per_ip: str, global_limit: str) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.per_caller: dict[str, RateLimitItem] = {"user": parse(per_user), "ip": parse(per_ip)}
        self.global_limit: RateLimitItem = parse(global_limit)
        # One alarm per global window.
        self.alarm = type(self.global_limit)(1, self.global_limit.multiples)

    def check(self, caller: Caller | None) -> None:
        """Raise RateLimited (429) when this caller, or the platform, has no
        failed lookups left in the window."""
        now = time.time()
        for kind, value in (caller.identities() if caller else []):
            stats = self.limiter.get_window_stats(self.per_caller[kind], "invite-fail", kind, value)
            if stats.remaining <= 0:
                raise RateLimited("Too many wrong invite codes; check the code with the cooperative's admin "
                                  "and try again later.", retry_after=stats.reset_time - now)
        stats = self.limiter.get_window_stats(self.global_limit, "invite-fail", "all")
        if stats.remaining <= 0:
            raise RateLimited("Joining by a typed invite code is paused for a while because of many wrong "
                              "codes on the platform. Invite links still work: ask the cooperative's admin "
                              "for theirs.", retry_after=stats.reset_time - now)

    def record_failure(self, caller: Caller | None) -> None:
        """Count one failed lookup for the caller and the platform; when the
        platform's budget runs out, alarm the admins (once per window)."""
        for kind, value in (caller.identities() if caller else []):
            self.limiter.hit(self.per_caller[kind], "invite-fail", kind, value)
        self.limiter.hit(self.global_limit, "invite-fail", "all")
        stats = self.limiter.get_window_stats(self.global_limit, "invite-fail", "all")
        if stats.remaining <= 0 and self.limiter.hit(self.alarm, "invite-fail-alarm"):
            _alarm_admins(self.global_limit, stats.reset_time)

    def status(self) -> dict:
        """``{"failures", "limit", "window", "paused", "resumes_at"}`` for /admin
        (``resumes_at`` an aware UTC datetime when paused, else None)."""
        stats = self.limiter.get_window_stats(self.global_limit, "invite-fail", "all")
        limit = self.global_limit.amount
        paused = stats.remaining <= 0
        return {
            "failures": limit - stats.remaining,
            "limit": limit,
            "window": _window_text(self.global_limit),
            "paused": paused,
            "resumes_at": datetime.fromtimestamp(stats.reset_time, UTC) if paused else None,
        }


def _window_text(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return f"{item.multiples} {unit}s" if item.multiples != 1 else unit


def guard() -> Guard | None:
    """This app's Guard, or None when rate limiting is off (RATELIMIT_ENABLED)."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return None
    settings = (config["RATELIMIT_STORAGE_URI"], config["INVITE_CODE_FAILURE_LIMIT"],
                config["INVITE_CODE_IP_FAILURE_LIMIT"], config["INVITE_CODE_GLOBAL_FAILURE_LIMIT"])
    cached = current_app.extensions.get("invite_guard")
    if cached is None or cached[0] != settings:
        cached = (settings, Guard(*settings))
        current_app.extensions["invite_guard"] = cached
    return cached[1]


def status() -> dict | None:
    """The platform's failed lookups (``Guard.status``), or None when off."""
    current = guard()
    return current.status() if current else None


def _alarm_admins(item: RateLimitItem, resumes: float) -> None:
    """A ``system`` notification to every platform admin (the guard calls
    this at most once per window). Failures are logged, never raised: the
    lookup's answer must not depend on the alarm."""
    until = datetime.fromtimestamp(resumes, UTC).strftime("%H:%M UTC")
    body = (f"{item.amount} wrong invite codes were tried in the last {_window_text(item)}. Joining by a typed "
            f"code is paused until about {until}; invite links keep working.")
    log.warning("invite codes are being guessed: %s failed lookups in %s; typed codes paused until %s",
                item.amount, _window_text(item), until)
    try:
        admins = db.session.scalars(select(User.user_id).where(User.is_admin.is_(True))).all()
        for admin_id in admins:
            notifications.notify(admin_id, NotificationCategory.SYSTEM, ALARM_SUBTYPE,
                                 "Invite codes are being guessed", body, link=ADMIN_LINK,
                                 data={"failures": item.amount, "window": _window_text(item)})
    except Exception:  # noqa: BLE001 - see docstring
        db.session.rollback()
        log.exception("could not notify the admins about invite-code guessing")


# ---- the one lookup ------------------------------------------------------------------------


def unknown_code() -> NotFound:
    return NotFound("No cooperative uses that invite code (any more). Ask its admin for a fresh link.")


def lookup(raw_code: object, *, find: Callable[[str], T | None], caller: Caller | None = None,
           key: str | None = None) -> tuple[str, T]:
    """Test an invite code: normalise it, check the caller's and the
    platform's budgets, then ``find(code)`` (None = no such code).

    Returns ``(code, found)``. Raises InvalidInviteCode (400, malformed:
    nothing looked up, nothing counted), RateLimited (429, before any
    lookup) or NotFound (404, counted as a failed lookup). A valid link
    ``key`` skips the budgets and is never counted.
    """
    code = normalise_invite_code(raw_code)
    current = None if key is not None and valid_link_key(code, key) else guard()
    if current is not None:
        current.check(caller)
    found = find(code)
    if found is None:
        if current is not None:
            current.record_failure(caller)
        raise unknown_code()
    return code, found
