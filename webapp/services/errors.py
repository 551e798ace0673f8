"""Domain errors raised by services and mapped to API.md statuses in one
place (``webapp.errors``). Each carries its HTTP status and error ``code``."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: ``status`` and ``code`` per API.md, ``message`` for people."""

    status = 400
    code = "validation_error"
    message = "The request is not valid."

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers: dict[str, str] = {}  # extra response headers (Retry-After)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class ValidationError(DomainError):
    status, code, message = 400, "validation_error", "The request is not valid."


class NotAnAddress(ValidationError):
    """A user id that is not a Bitcoin address, refused until confirmed (the
    register page; the API accepts any valid user id)."""

    code, message = "not_an_address", ("This is not a Bitcoin address: the pool pays the address your miner sends "
                                       "as its username. Check it, or confirm that you want this user id anyway.")


class InvalidInviteCode(DomainError):
    status, code, message = 400, "invalid_invite_code", "An invite code is 8 letters or digits."


class CannotRemoveSelf(DomainError):
    status, code, message = 400, "cannot_remove_self", "The admin cannot remove themself; leave the cooperative instead."


class Unauthorized(DomainError):
    status, code, message = 401, "unauthorized", "Log in or send a valid bearer token."


class Forbidden(DomainError):
    status, code, message = 403, "forbidden", "You are not allowed to do that."


class NotAdmin(Forbidden):
    code, message = "not_admin", "Only the cooperative's admin can do that."


class NotAMember(Forbidden):
    code, message = "not_a_member", "Only members of this cooperative can see that."


class NotFound(DomainError):
    status, code, message = 404, "not_found", "Not found."


class Conflict(DomainError):
    status, code, message = 409, "conflict", "That conflicts with the current state."


class UserExists(Conflict):
    code, message = "user_exists", "A miner with that user id is already registered."


class AlreadyInCoop(Conflict):
    code, message = "already_in_coop", "You are already in a cooperative; leave it first."


class CoopFull(Conflict):
    code, message = "coop_full", "This cooperative already has 20 members."


class RateLimited(DomainError):
    """429 with ``Retry-After`` (whole seconds, at least 1)."""

    status, code, message = 429, "rate_limited", "Too many attempts; wait a while and try again."

    def __init__(self, message: str | None = None, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))
        self.headers = {"Retry-After": str(self.retry_after)}


class CoopDissolved(Conflict):
    code, message = "coop_dissolved", "This cooperative has been dissolved."


class WrongPassword(Forbidden):
    code, message = "wrong_password", "The current password is not right."


# ---- Coop moderation (API.md "Coop governance"; services/moderation.py) ----


class NotModerator(Forbidden):
    code, message = "not_moderator", "Only the cooperative's admin and moderators can do that."


class CannotModerate(Forbidden):
    """Moderators act on plain members only: never on the admin, each other or themselves."""

    code, message = "cannot_moderate", "You cannot do that to the admin, a moderator or yourself."


class Banned(Forbidden):
    code, message = "banned", "You are banned from this cooperative."


def wait_words(seconds: float) -> str:
    """A wait for people, rounded up: seconds below a minute, minutes below
    two hours, hours below two days, then days (``"1 second"``, ``"27
    seconds"``, ``"90 minutes"``, ``"3 hours"``, ``"2 days"``; a message
    shown as is on every client, so no time zone)."""
    seconds = max(1, int(seconds + 0.999))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * (2 if unit != "minute" else 1):
            count = -(-seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class Muted(Forbidden):
    """403 ``muted``; ``details.until`` is when the mute ends (ISO 8601 UTC);
    the message says how long is left (``seconds_left``)."""

    code, message = "muted", "You are muted in this cooperative's chat."

    def __init__(self, until: str, seconds_left: float | None = None) -> None:
        text = self.message if seconds_left is None else \
            f"You are muted in this cooperative's chat for another {wait_words(seconds_left)}."
        super().__init__(text, details={"until": until})
        self.until = until


class SlowMode(RateLimited):
    """429 ``slow_mode``; the message and ``Retry-After`` give the wait."""

    code, message = "slow_mode", "Slow mode is on: wait a little before your next message."

    def __init__(self, message: str | None = None, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        if message is None:
            self.message = f"Slow mode is on: wait {wait_words(self.retry_after)} before your next message."
            self.args = (self.message,)


class MessageBlocked(ValidationError):
    code, message = "message_blocked", "This message contains a phrase the cooperative does not allow."


class AlreadyReported(Conflict):
    code, message = "already_reported", "You already reported this; the moderators will look at it."


# ---- friends, blocks and profiles ----------------------------------------------------


class AlreadyFriends(Conflict):
    code, message = "already_friends", "You are already friends."


class RequestPending(Conflict):
    code, message = "request_pending", "You already asked this miner; wait for an answer or cancel the request."


class RequestNotPending(Conflict):
    code, message = "request_not_pending", "This request was already answered, cancelled or has expired."


class YouBlocked(Conflict):
    code, message = "blocked", "You blocked this miner; unblock them first."


class UnsupportedMedia(DomainError):
    status, code, message = 415, "unsupported_media", "Upload a PNG, JPEG or WebP image."


class ImageTooLarge(DomainError):
    status, code, message = 413, "image_too_large", "The image is too large."


class ImageTooSmall(ValidationError):
    code, message = "image_too_small", "The image is too small."


class InviteExpired(DomainError):
    """410: an invite that existed but is past its expiry or its last use
    (API.md "Coop governance and discovery")."""

    status, code, message = 410, "invite_expired", "This invite has expired or was used up. Ask for a fresh one."


class Unavailable(DomainError):
    """503 with ``Retry-After``: no database connection came free within the
    pool's timeout (SQLAlchemy's ``TimeoutError``: more requests and socket
    messages at once than the pool holds, for ``pool_timeout`` seconds).
    Nothing was written; the same request (a post with its client_id) may
    be sent again."""

    status, code, message = 503, "unavailable", "The server is busy; try again in a moment."

    def __init__(self, message: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}
