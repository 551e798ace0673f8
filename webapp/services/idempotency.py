"""Idempotency keys: a service caller that retries a request with the same
``Idempotency-Key`` gets the first answer again instead of a second effect.

Shape follows Stripe's keys and the IETF draft "The Idempotency-Key HTTP
Header Field" (draft-ietf-httpapi-idempotency-key-header): the caller picks
a unique key per operation (a UUID), sends it with every retry, and the
server remembers the key with the answer for a while (``IDEMPOTENCY_KEY_TTL``,
24 h). Rules:

- A key is 1–255 visible ASCII characters; the draft's quoted form
  (``"8e03…"``) is accepted too. Anything else is 400 ``validation_error``.
- Keys are scoped: the same key from another caller or for another route is
  another key.
- The key row (scope, key, a SHA-256 of the canonical request body, the
  status and body answered) is written in the transaction of what the
  request created, under a unique (scope, key) constraint: two concurrent
  retries create one row — the loser's transaction rolls back (its
  notification with it) and it answers the winner's stored response.
- A repeat with the same body answers the stored status and body; with a
  different body it is 409 ``idempotency_key_reused`` and changes nothing.
- Only answers of 2xx are stored: a request refused (400, 404, …) left no
  effect, so its retry is simply tried again.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db, execute_dml
from ..models import IdempotencyKey, utcnow
from .errors import Conflict, ValidationError

MAX_KEY = 255


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used with a different request body; use a new key."


@dataclass(frozen=True)
class Outcome:
    """What to answer: HTTP ``status``, JSON ``body``; ``replayed`` when it
    is the stored answer of an earlier request with the same key."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def read_key(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header's key, or None when absent. Raises
    ValidationError (400) for an empty, over-long or non-ASCII key."""
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':  # the draft's sf-string form
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY or not all("\x21" <= ch <= "\x7e" for ch in key):
        raise ValidationError(f"Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters.",
                              details=[{"field": "Idempotency-Key", "message": "invalid key"}])
    return key


def fingerprint(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a request body: key order and
    spacing do not matter, values do."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(scope: str, key: str, digest: str) -> Outcome | None:
    row = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.scope == scope,
                                                          IdempotencyKey.key == key)).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyKeyReused()
    return Outcome(row.status_code, row.response, replayed=True)


def run_once(scope: str, key: str | None, payload: dict[str, Any],
             action: Callable[[], tuple[int, dict[str, Any], int | None]]) -> Outcome:
    """Run ``action`` at most once per (scope, key) and commit.

    ``action`` adds its rows to the session without committing and returns
    (status, body, notification id or None). With ``key`` None it simply
    runs and commits. Otherwise: a stored key answers its response (or
    raises IdempotencyKeyReused, 409, for another ``payload``); a new one
    commits the key row with the action's rows, and if a concurrent request
    committed the same key first, rolls back and answers that one's response.
    Domain errors from ``action`` propagate (nothing is stored).
    """
    if key is None:
        status, body, _ = action()
        db.session.commit()
        return Outcome(status, body)
    digest = fingerprint(payload)
    earlier = _stored(scope, key, digest)
    if earlier is not None:
        db.session.rollback()
        return earlier
    status, body, notification_id = action()
    db.session.add(IdempotencyKey(scope=scope, key=key, request_hash=digest, status_code=status, response=body,
                                  notification_id=notification_id))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # ours lost the race: drop what the action added
        earlier = _stored(scope, key, digest)
        if earlier is None:
            raise  # another constraint failed
        return earlier
    return Outcome(status, body)


def purge_expired(now: datetime | None = None) -> int:
    """Delete keys older than IDEMPOTENCY_KEY_TTL (seconds); the daily
    retention job calls it. Returns how many were deleted."""
    cutoff = (now or utcnow()) - timedelta(seconds=current_app.config["IDEMPOTENCY_KEY_TTL"])
    deleted = execute_dml(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    db.session.commit()
    return deleted
