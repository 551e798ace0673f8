"""Redis Streams in: the ingest consumer.

``Consumer`` is the loop behind ``flask ingest``. It reads the seven
``mining:{event}`` streams with a consumer group (XREADGROUP), so any number
of consumers on any hosts share the work, and guarantees (DESIGN.md):

* nothing lost: an entry is acknowledged (XACK) only after the transaction
  that stored it committed; on start, and then every
  ``INGEST_CLAIM_IDLE_MS``, entries pending for longer than that on any
  consumer (a dead one) are claimed with XAUTOCLAIM, and the consumer re-reads
  its own pending entries (id 0) before new ones (``>``);
* nothing counted twice: ``mining.ingest_batch`` stores each (stream, entry
  id) once and applies rollups only for rows it actually inserted;
* nothing blocking: a malformed entry is logged, copied to the
  ``mining-dead-letter`` stream with the reason and acknowledged; an entry the
  database refuses is isolated (the batch is retried entry by entry) and
  dead-lettered the same way. Outages (database or Redis unreachable) are
  retried with back-off; the entries stay pending meanwhile;
* no litter: after each claim, other consumers idle for
  ``INGEST_DEAD_CONSUMER_IDLE_MS`` with nothing pending leave the group
  (``remove_dead_consumers``), and ``trim.trim_acknowledged`` (a periodic
  job) trims the streams up to what every consumer group has acknowledged.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib
from flask import current_app
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from ...extensions import db
from ...models import iso, utcnow
from .. import coop_hashrate, mining

log = logging.getLogger("webapp.ingest")

# Failures worth waiting out: the entries stay pending and are retried.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, DisconnectionError, redis_lib.exceptions.ConnectionError,
                    redis_lib.exceptions.TimeoutError, ConnectionError, TimeoutError)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def default_consumer_name() -> str:
    """``hostname-pid``: unique per process, so a restart is a new consumer
    and the old one's pending entries are claimed after the idle time."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class IngestStats:
    """Totals of one ``Consumer.run``."""

    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    notifications: int = 0
    activities: int = 0
    batches: int = 0
    claimed: int = 0
    consumers_removed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Entries read per second of ``run``."""
        return self.read / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (f"{self.read} entries read, {self.inserted} stored, {self.duplicates} already stored, "
                f"{self.dead_lettered} dead-lettered, {self.notifications} notifications, "
                f"{self.activities} activities, {self.claimed} claimed"
                f"{f', {self.consumers_removed} idle consumers removed' if self.consumers_removed else ''}, "
                f"in {self.batches} batches, "
                f"{self.seconds:.1f} s ({self.rate:,.0f} entries/s)")


Entry = tuple[str, str, Any]  # (stream, entry id, fields or None when deleted)

# Removes the group's consumers other than ARGV[2] that hold no pending entry
# and have been idle for at least ARGV[3] ms. Atomic: nothing can be read by
# (and so become pending on) a consumer between the check and the delete.
_REAP_SCRIPT = """
local removed = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  if info['name'] ~= ARGV[2] and tonumber(info['pending']) == 0
      and tonumber(info['idle']) >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed[#removed + 1] = info['name']
  end
end
return removed
"""


class Consumer:
    """One member of the ingest consumer group. Use inside an app context.

    ``redis`` is a client with ``bytes`` responses (the app's ``redis_raw``
    by default), so that an entry that is not UTF-8 is dead-lettered instead
    of breaking the read. Settings: ``INGEST_CONSUMER_GROUP``,
    ``INGEST_BATCH_SIZE`` (entries per stream per read),
    ``INGEST_CLAIM_IDLE_MS``, ``INGEST_DEAD_CONSUMER_IDLE_MS``.
    """

    def __init__(self, *, name: str | None = None, redis: redis_lib.Redis | None = None,
                 group: str | None = None, batch_size: int | None = None, claim_idle_ms: int | None = None,
                 dead_consumer_idle_ms: int | None = None, block_ms: int = 2000,
                 streams: tuple[str, ...] = mining.STREAMS) -> None:
        config = current_app.config
        self.redis = redis if redis is not None else current_app.extensions["redis_raw"]
        self.name = name or default_consumer_name()
        self.group = group or config["INGEST_CONSUMER_GROUP"]
        self.batch_size = batch_size or config["INGEST_BATCH_SIZE"]
        self.claim_idle_ms = claim_idle_ms if claim_idle_ms is not None else config["INGEST_CLAIM_IDLE_MS"]
        self.dead_consumer_idle_ms = (dead_consumer_idle_ms if dead_consumer_idle_ms is not None
                                      else config["INGEST_DEAD_CONSUMER_IDLE_MS"])
        self._reaper = self.redis.register_script(_REAP_SCRIPT)
        self._can_reap = True
        self.block_ms = block_ms
        self.streams = streams
        self.stats = IngestStats()
        self.stop_event = threading.Event()

    # ---- group plumbing ----

    def ensure_groups(self) -> None:
        """Create the group on every stream (and the stream) from id 0 if missing."""
        for stream in self.streams:
            try:
                self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis_lib.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def claim_stale(self) -> int:
        """XAUTOCLAIM entries idle for more than ``claim_idle_ms`` on any
        consumer of the group into this one; ``process_own_pending`` then
        handles them. Returns how many were claimed."""
        claimed = 0
        for stream in self.streams:
            start: Any = "0-0"
            while True:
                reply = self.redis.xautoclaim(stream, self.group, self.name, self.claim_idle_ms,
                                              start_id=start, count=self.batch_size)
                start, entries = reply[0], reply[1]
                claimed += len(entries)
                if _s(start) == "0-0":  # the cursor, not an empty page, ends the scan
                    break
        if claimed:
            log.info("claimed %d entries left pending by other consumers", claimed)
        self.stats.claimed += claimed
        return claimed

    def remove_dead_consumers(self) -> list[str]:
        """XGROUP DELCONSUMER every other consumer of the group that holds no
        pending entry and has been idle for at least ``dead_consumer_idle_ms``
        (a past process: its pending entries were claimed by ``claim_stale``).

        The check and the delete run in one Lua script per stream, so a
        consumer that reads between them cannot have its pending entries
        dropped; a live consumer deleted while idle is re-created by its next
        XREADGROUP. A consumer that still holds a pending entry is never
        deleted. Needs Redis scripting: on a server without it (the embedded
        stand-in, whose consumers live only in this process) nothing is
        removed. Returns the names removed (one per stream they were on).
        """
        if not self._can_reap:
            return []
        removed: list[str] = []
        for stream in self.streams:
            try:
                names = self._reaper(keys=[stream], args=[self.group, self.name, self.dead_consumer_idle_ms])
            except redis_lib.exceptions.ResponseError as exc:
                if "unknown command" in str(exc).lower():
                    log.info("ingest: this Redis has no scripting; dead consumers are not removed")
                    self._can_reap = False
                    return removed
                log.warning("ingest: could not remove dead consumers of %s: %s", stream, exc)
                continue
            removed += [_s(name) for name in names]
        if removed:
            log.info("removed %d idle consumer(s) with nothing pending from the group: %s", len(removed),
                     ", ".join(sorted(set(removed))))
        self.stats.consumers_removed += len(removed)
        return removed

    def _read(self, ids: dict[Any, Any], block: int | None = None) -> list[tuple[str, list]]:
        reply: Any = self.redis.xreadgroup(self.group, self.name, ids, count=self.batch_size, block=block)
        if not reply:
            return []
        # RESP2 reply (the clients' default): [[stream, [(id, fields), ...]], ...]
        return [(_s(stream), [(_s(entry_id), fields) for entry_id, fields in entries]) for stream, entries in reply]

    def process_own_pending(self) -> int:
        """Re-read and process this consumer's pending entries (id 0 onwards):
        those of a previous life of this name, a failed batch, or claimed."""
        cursors = {stream: "0" for stream in self.streams}
        done = 0
        while cursors and not self.stop_event.is_set():
            batch: list[Entry] = []
            for stream, entries in self._read(dict(cursors)):
                if not entries:
                    cursors.pop(stream, None)
                    continue
                cursors[stream] = entries[-1][0]
                batch += [(stream, entry_id, fields) for entry_id, fields in entries]
            if not batch:
                break
            self.process(batch)
            done += len(batch)
        return done

    def read_new(self, block: int | None = None) -> list[Entry]:
        """One XREADGROUP ``>`` over all streams (up to ``batch_size`` each)."""
        return [(stream, entry_id, fields)
                for stream, entries in self._read({s: ">" for s in self.streams}, block=block)
                for entry_id, fields in entries]

    # ---- one batch ----

    def prepare(self, entries: list[Entry]) -> Batch:
        """Validate a batch read from the streams (no database access, so it
        may run on the prefetch thread)."""
        batch = Batch(entries)
        now = time.time()
        for stream, entry_id, fields in entries:
            if not fields:
                log.warning("entry %s %s no longer exists in the stream; acknowledging it", stream, entry_id)
                continue
            try:
                batch.parsed.append(mining.parse_entry(stream, entry_id, fields, now=now))
            except mining.MalformedEvent as exc:
                batch.dead.append((stream, entry_id, fields, str(exc)))
        return batch

    def finish(self, batch: Batch) -> mining.BatchResult:
        """Store, dead-letter and acknowledge a prepared batch.

        Acknowledges every entry only after the database commit (and the
        dead-letter XADDs). Raises a ``TRANSIENT_ERRORS`` member when the
        database or Redis is unreachable: nothing is acknowledged then.
        """
        result = self._store(batch)
        if result.inserted:
            # Open coop pages of these miners show new numbers (throttled per coop).
            coop_hashrate.announce_mining(ev.user for ev in batch.parsed if ev.user)
        if batch.dead:
            self._dead_letter(batch.dead)
        self._ack(batch.entries)
        self.stats.read += len(batch.entries)
        self.stats.batches += 1
        self.stats.inserted += result.inserted
        self.stats.duplicates += result.duplicates
        self.stats.dead_lettered += len(batch.dead)
        self.stats.notifications += result.notifications
        self.stats.activities += result.activities
        return result

    def process(self, entries: list[Entry]) -> mining.BatchResult:
        """``prepare`` then ``finish`` one batch."""
        return self.finish(self.prepare(entries))

    def _store(self, batch: Batch) -> mining.BatchResult:
        try:
            return mining.ingest_batch(batch.parsed)
        except TRANSIENT_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - isolate the entry the database refuses
            log.exception("batch of %d refused by the database; isolating the entry by bisection",
                          len(batch.parsed))
        fields_of = {(stream, entry_id): fields for stream, entry_id, fields in batch.entries}
        total = mining.BatchResult()
        halves = [batch.parsed[: len(batch.parsed) // 2], batch.parsed[len(batch.parsed) // 2:]]
        while halves:
            part = halves.pop()
            if not part:
                continue
            try:
                one = mining.ingest_batch(part)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001
                if len(part) > 1:
                    halves += [part[: len(part) // 2], part[len(part) // 2:]]
                    continue
                ev = part[0]
                first_line = (str(exc).splitlines() or [""])[0][:300]
                batch.dead.append((ev.stream, ev.entry_id, fields_of[ev.key],
                                   f"refused by the database: {exc.__class__.__name__}: {first_line}"))
                continue
            for name in ("received", "inserted", "duplicates", "notifications", "activities"):
                setattr(total, name, getattr(total, name) + getattr(one, name))
        return total

    def _dead_letter(self, dead: list[tuple[str, str, Any, str]]) -> None:
        """Copy each entry, fields verbatim plus ``dead_letter_*`` fields
        (original stream and id, error, time, consumer), to the dead-letter
        stream. Re-driving one: XADD its stream with the original fields."""
        pipe = self.redis.pipeline(transaction=False)
        at = iso(utcnow())
        for stream, entry_id, fields, error in dead:
            log.warning("dead-lettered %s %s: %s", stream, entry_id, error)
            payload = {(_s(k) if isinstance(k, bytes) else k): v for k, v in fields.items()}
            payload.update({"dead_letter_stream": stream, "dead_letter_id": entry_id, "dead_letter_error": error,
                            "dead_letter_at": at, "dead_letter_consumer": self.name})
            pipe.xadd(mining.DEAD_LETTER_STREAM, payload)
        pipe.execute()

    def _ack(self, entries: list[Entry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id, _ in entries:
            by_stream.setdefault(stream, []).append(entry_id)
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        pipe.execute()

    # ---- the loop ----

    def run(self, *, drain: bool = False, max_retries: int | None = None) -> IngestStats:
        """Consume until ``stop_event`` is set, or with ``drain`` until no new
        entry is waiting. Transient failures are retried with back-off (at
        most ``max_retries`` times in a row when given, then re-raised).
        Returns the totals."""
        started = time.monotonic()
        failures = 0
        self.ensure_groups()
        try:
            while not self.stop_event.is_set():
                try:
                    self.claim_stale()
                    self.remove_dead_consumers()
                    self.process_own_pending()
                    until = time.monotonic() + max(self.claim_idle_ms / 1000.0, 1.0)
                    if self._consume_new(drain=drain, until=until):
                        return self.stats
                    failures = 0
                except TRANSIENT_ERRORS as exc:
                    db.session.rollback()
                    failures += 1
                    if max_retries is not None and failures > max_retries:
                        raise
                    delay = min(30.0, 0.5 * 2 ** failures)
                    log.warning("ingest: %s: %s; retrying in %.1f s", exc.__class__.__name__, exc, delay)
                    self.stop_event.wait(delay)
            return self.stats
        finally:
            self.stats.seconds = time.monotonic() - started

    def _consume_new(self, *, drain: bool, until: float) -> bool:
        """Read new entries (``>``) until ``until`` (then the caller claims
        again), the stop event, or, with ``drain``, an empty read (returns
        True). A prefetch thread reads and validates the next batch while
        this thread waits on the database for the current one; entries it
        read but that were never stored stay pending in the group and are
        re-read (``process_own_pending``) after a failure."""
        handoff: queue.Queue = queue.Queue(maxsize=2)
        halt = threading.Event()

        def put(item) -> None:
            while not halt.is_set():
                try:
                    handoff.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def prefetch() -> None:
            try:
                while not halt.is_set() and not self.stop_event.is_set():
                    if time.monotonic() >= until:
                        put(_PAUSE)
                        return
                    entries = self.read_new(block=None if drain else self.block_ms)
                    if entries:
                        put(self.prepare(entries))
                    elif drain:
                        put(_DRAINED)
                        return
                put(_PAUSE)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                put(exc)

        reader = threading.Thread(target=prefetch, name=f"ingest-prefetch-{self.name}", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = handoff.get(timeout=0.5)
                except queue.Empty:
                    if self.stop_event.is_set() and not reader.is_alive():
                        return False
                    continue
                if item is _DRAINED:
                    return True
                if item is _PAUSE:
                    return False
                if isinstance(item, BaseException):
                    raise item
                self.finish(item)
        finally:
            halt.set()
            reader.join()


_DRAINED, _PAUSE = object(), object()


@dataclass
class Batch:
    """Entries read together: the valid events and the malformed ones
    (stream, id, fields, reason)."""

    entries: list[Entry]
    parsed: list[mining.MiningEventIn] = field(default_factory=list)
    dead: list[tuple[str, str, Any, str]] = field(default_factory=list)
