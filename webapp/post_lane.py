"""The lane of this process's socket posts (``{"type": "send"}``).

While fewer than ``CHAT_POST_ALONE`` posts of this process are being
stored one by one, a socket's post is stored on its own
(``messages.post``: the cheaper for one post), with no wait;
beyond that it waits in the lane, where ``CHAT_POST_LANES`` workers
(threads, greenlets under gevent) each take every post waiting (at most
``BATCH_MAX``) and store them with ONE ``messages.post_together``: one
checks query, one presence round trip, one numbering statement and one
round of PUBLISHes for all of them, where ``messages.post`` spends each of
these per post. So a quiet process posts as before, and under load the
CPU a post costs falls as the rate rises (docs/PERFORMANCE.md "Coop chat").

Whatever ``post_together`` does not take (a reply, a retry, slow mode, a
direct conversation…) the socket posts itself with ``messages.post``, so a
send over the socket and a ``POST`` give the same result. PostgreSQL only:
with SQLite, or ``CHAT_POST_LANES=0``, sockets post directly.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Any

from flask import Flask, current_app
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .extensions import db
from .services import messages
from .services.errors import DomainError, Unavailable

log = logging.getLogger(__name__)

BATCH_MAX = 50  # posts per call: bounds one statement's arrays and the wait of the first in line
_lock = threading.Lock()


class _Slot:
    __slots__ = ("request", "done", "outcome")

    def __init__(self, request: messages.PostRequest) -> None:
        self.request = request
        self.done = threading.Event()
        self.outcome: messages.PostOutcome = None


class PostLane:
    """The posts waiting in this process and the workers that store them."""

    def __init__(self, app: Flask, workers: int) -> None:
        self.app = app
        self.pending: deque[_Slot] = deque()
        self.wake = threading.Event()
        self.count_lock = threading.Lock()
        self.alone = 0  # posts of this process being stored one by one now
        self.alone_max: int = app.config["CHAT_POST_ALONE"]
        for number in range(workers):
            threading.Thread(target=self._work, name=f"post-lane-{number}", daemon=True).start()

    def post(self, request: messages.PostRequest) -> tuple[dict[str, Any], bool]:
        """Store ``request`` as ``messages.post`` would, and return or raise
        what it would: ``(message dict, created)`` or a DomainError."""
        with self.count_lock:
            alone = self.alone < self.alone_max
            if alone:
                self.alone += 1
        if alone:
            try:
                return _alone(request)
            finally:
                with self.count_lock:
                    self.alone -= 1
        slot = _Slot(request)
        self.pending.append(slot)
        self.wake.set()
        slot.done.wait()
        outcome = slot.outcome
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome if outcome is not None else _alone(request)

    def _work(self) -> None:
        with self.app.app_context():
            while True:
                if not self.pending:
                    self.wake.clear()
                    if not self.pending:  # a post that came between the two is seen here
                        self.wake.wait()
                    continue
                batch = [self.pending.popleft() for _ in range(min(BATCH_MAX, len(self.pending)))]
                self._store(batch)

    def _store(self, batch: list[_Slot]) -> None:
        outcomes: list[messages.PostOutcome] = [None] * len(batch)
        try:
            outcomes = messages.post_together([slot.request for slot in batch])
        except PoolTimeout:  # an overload: each may be sent again (API.md 503)
            outcomes = [Unavailable() for _ in batch]
        except Exception:  # noqa: BLE001 - e.g. the database went away: each post on its own says so
            log.exception("posting %d messages together failed; each is posted alone", len(batch))
        finally:
            try:
                db.session.remove()  # rolls back what is left open
            except Exception:  # noqa: BLE001 - a broken connection; the pool replaces it
                log.exception("could not end the lane's session")
            # Always answered: a socket waits for its slot, and this worker goes on.
            for slot, outcome in zip(batch, outcomes, strict=True):
                slot.outcome = outcome
                slot.done.set()


def post(request: messages.PostRequest) -> tuple[dict[str, Any], bool]:
    """A socket's post: through this process's lane when it has one, else
    ``messages.post``; returns or raises what ``messages.post`` would."""
    lane = get_lane()
    return lane.post(request) if lane is not None else _alone(request)


def _alone(request: messages.PostRequest) -> tuple[dict[str, Any], bool]:
    return messages.post(request.user_id, request.conversation_id, request.body,  # type: ignore[arg-type]
                         reply_to=request.reply_to, client_id=request.client_id)


def get_lane(app: Flask | None = None) -> PostLane | None:
    """This process's lane (started on first use; a forked child gets its
    own), or None when sockets post directly (SQLite, ``CHAT_POST_LANES=0``)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    workers = app.config["CHAT_POST_LANES"]
    if workers <= 0 or db.engine.dialect.name != "postgresql":
        return None
    with _lock:
        entry = app.extensions.get("post_lane")
        if entry is None or entry[0] != os.getpid():
            entry = (os.getpid(), PostLane(app, workers))
            app.extensions["post_lane"] = entry
        return entry[1]
