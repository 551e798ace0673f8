"""Mining events in: parsing and validation (``events``), storage and rollups
(``rollups``), worker state (``workers``), the notifications and activities
they raise (``alerts``), reads (``queries``) and retention (``retention``).

The pool publishes each event to the Redis Stream ``mining:{event}`` with the
fields ``event``, ``ts`` (unix seconds as text), ``source`` and ``data`` (JSON
text; API.md "Mining events in"). ``webapp.services.ingest`` reads the
streams; this package decides what an entry means:

* ``parse_entry`` turns one stream entry into a ``MiningEventIn`` or raises
  ``MalformedEvent`` (the caller dead-letters it).
* ``ingest_batch`` stores a batch once (``ON CONFLICT (stream, entry_id) DO
  NOTHING RETURNING``) and applies the rollups, worker transitions,
  notifications and activities of the rows actually inserted, so a
  redelivered entry changes nothing. One transaction, one commit.
* ``sweep_offline_workers`` marks workers silent for ``WORKER_OFFLINE_AFTER``
  seconds offline (run every minute by the scheduler).
* ``alert_offline_workers`` tells owners about workers offline for their
  ``worker_offline.after_minutes`` (``offline_alerts``; every minute).

Rollup definitions (API.md public stats): ``total_shares`` counts accepted
shares, ``best_difficulty`` is the highest ``sdiff`` of an accepted share,
``last_share_at`` is the time of the latest accepted share. Every rollup write
is a single SQL upsert whose arithmetic runs in the database (``+``, greatest,
least), and worker rows are locked for the transaction, so several consumers
may run at once.

This package re-exports the names of the former ``services/mining.py``, so
callers keep writing ``mining.parse_entry`` and the like.
"""
from __future__ import annotations

from ...formatting import block_display, display_hash, format_difficulty, format_hashrate, worker_label
from .common import BatchResult, profile_link
from .events import (
    DEAD_LETTER_STREAM,
    EVENTS,
    MAX_DATA_CHARS,
    MAX_ENTRY_ID,
    MAX_FUTURE_SECONDS,
    MAX_SOURCE,
    MAX_USER,
    MAX_USERAGENT,
    MAX_WORKER,
    MIN_TS,
    STREAM_PREFIX,
    STREAMS,
    MalformedEvent,
    MiningEventIn,
    parse_entry,
    stream_name,
)
from .offline_alerts import alert_offline_workers
from .queries import alltime_records, has_events, personal_best_history, recent_personal_bests, workers_of
from .retention import purge_old_events
from .rollups import ingest_batch
from .workers import sweep_offline_workers

__all__ = [
    "BatchResult", "alert_offline_workers", "alltime_records", "DEAD_LETTER_STREAM", "EVENTS", "MAX_DATA_CHARS", "MAX_ENTRY_ID", "MAX_FUTURE_SECONDS",
    "MAX_SOURCE", "MAX_USER", "MAX_USERAGENT", "MAX_WORKER", "MIN_TS", "STREAM_PREFIX", "STREAMS",
    "MalformedEvent", "MiningEventIn", "block_display", "display_hash", "format_difficulty", "format_hashrate",
    "has_events", "ingest_batch", "parse_entry", "personal_best_history", "profile_link", "purge_old_events",
    "recent_personal_bests", "stream_name", "sweep_offline_workers", "worker_label",
    "workers_of",
]
