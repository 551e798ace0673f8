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


class InviteExpired(DomainError):
    """410: an invite that existed but is past its expiry or its last use
    (API.md "Coop governance and discovery")."""

    status, code, message = 410, "invite_expired", "This invite has expired or was used up. Ask for a fresh one."
