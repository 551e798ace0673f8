"""``flask replay``: publish a ``.jsonl``/``.jsonl.gz`` envelope log exactly
as the upstream collector does (``XADD mining:{event}`` with the fields
event, ts, source, data), as fast as possible or paced by ``ts``.
"""
from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as redis_lib
from flask import current_app

from .. import mining

log = logging.getLogger("webapp.ingest")

_TS_RE = re.compile(r'"ts"\s*:\s*(-?[0-9.eE+]+)')


def _open(path: Path):
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")


def _lines(path: Path, limit: int | None) -> Iterator[str]:
    with _open(path) as fh:
        for number, line in enumerate(fh):
            if limit is not None and number >= limit:
                return
            if line.strip():
                yield line


def _last_ts(path: Path, limit: int | None) -> tuple[float | None, int]:
    """The latest ``ts`` of the log and its number of lines (a quick pass)."""
    latest, count = None, 0
    for line in _lines(path, limit):
        count += 1
        match = _TS_RE.search(line)
        try:
            ts = float(match.group(1)) if match else float(json.loads(line)["ts"])
        except (ValueError, KeyError, TypeError):
            continue
        latest = ts if latest is None or ts > latest else latest
    return latest, count


def count_lines(path: str | Path, limit: int | None = None) -> int:
    """How many non-empty lines (events) the log at ``path`` has (a quick pass)."""
    return _last_ts(Path(path), limit)[1]


@dataclass
class ReplayStats:
    """What ``publish_file`` did: entries published, lines skipped, the shift (s)."""

    published: int = 0
    skipped: int = 0
    shift: float = 0.0
    seconds: float = 0.0


def publish_file(path: str | Path, *, shift_to_now: bool = False, limit: int | None = None,
                 redis: redis_lib.Redis | None = None, pipeline_size: int = 200,
                 progress: bool = True, now: float | None = None, speed: float | None = None,
                 stop: threading.Event | None = None) -> ReplayStats:
    """Publish an envelope log into the streams as the upstream collector does.

    Each line ``{"event", "ts", "source", "region", "data"}`` becomes
    ``XADD mining:{event} * event <event> ts <unix seconds> source <source>
    data <JSON text>`` (``region`` is not part of the stream contract).
    ``shift_to_now`` adds one offset to every ``ts`` so that the latest event
    is now. ``limit`` publishes only the first N lines. Lines that are not an
    envelope with a known event are skipped and counted. XADDs are
    pipelined ``pipeline_size`` at a time, with a tqdm progress bar.

    ``speed`` (> 0) paces the replay by ``ts`` instead of publishing as fast
    as possible: an event ``d`` seconds after the log's first one is
    published ``d / speed`` seconds after the start (the file must be in
    ``ts`` order, as the shared day is). With ``shift_to_now`` each paced
    event is stamped with the moment it is due, ``start + d / speed``, so
    the events stay "now" for the pages instead of running ahead of the
    clock (a constant shift would put them 100 minutes ahead after 5 minutes
    at 20x): the log's gaps shrink ``speed`` times. Without it the original
    ``ts`` are kept. ``stop`` (an Event) ends a paced replay early.
    Raises ValueError for a ``speed`` that is not positive.
    """
    if speed is not None and not speed > 0:
        raise ValueError("speed must be a positive number")
    path = Path(path)
    # Read together: a paced event due at ``started + d`` is stamped ``wall_start + d``,
    # so a clock read later (after building the publisher) would stamp it ahead of now.
    started, wall_start = time.monotonic(), time.time() if now is None else now
    client = redis if redis is not None else current_app.extensions["redis_raw"]
    stats = ReplayStats()
    total = None
    if shift_to_now and speed is None:
        latest, total = _last_ts(path, limit)
        if latest is not None:
            stats.shift = (time.time() if now is None else now) - latest
    with _Publisher(client, stats, pipeline_size, total=total if speed is None else limit, progress=progress,
                    desc="replay" if speed is None else f"replay {speed:g}x") as out:
        envelopes = _envelopes(path, limit, out)
        if speed is None:
            for event, ts, source, data in envelopes:
                out.add(event, ts + stats.shift, source, data)
        else:
            _pace(envelopes, out, speed=speed, shift_to_now=shift_to_now, started=started,
                  wall_start=wall_start, stop=stop)
    stats.seconds = time.monotonic() - started
    if stats.skipped:
        log.warning("replay: skipped %d line(s) that are not mining event envelopes", stats.skipped)
    return stats


def entries_of_file(path: str | Path, *, shift_to_now: bool = False, limit: int | None = None,
                    batch_size: int = 5000, now: float | None = None,
                    stats: ReplayStats | None = None) -> Iterator[list[tuple[str, str, dict[str, str]]]]:
    """The envelope log as the stream entries ``publish_file`` would create
    — ``(stream, entry id, fields)`` with the same fields and an id as Redis
    gives one (``<ms>-<n>``, from the event's own shifted ``ts``, rising per
    stream) — in lists of ``batch_size``, for ``Consumer.process`` to store
    without a round trip through the stream (the demo day behind a running
    server: ``services/demo_live.py``). ``shift_to_now`` as in
    ``publish_file``. Lines that are not an envelope of a known event are
    skipped and counted in ``stats.skipped``."""
    path = Path(path)
    stats = stats if stats is not None else ReplayStats()
    if shift_to_now:
        latest, _ = _last_ts(path, limit)
        if latest is not None:
            stats.shift = (time.time() if now is None else now) - latest
    last: dict[str, tuple[int, int]] = {}  # stream -> (ms, seq) of its last id
    batch: list[tuple[str, str, dict[str, str]]] = []
    for event, ts, source, data in _envelopes(path, limit, _Counter(stats)):
        ts += stats.shift
        stream = mining.stream_name(event)
        ms, seq = int(ts * 1000), 0
        previous = last.get(stream)
        if previous is not None and ms <= previous[0]:
            ms, seq = previous[0], previous[1] + 1
        last[stream] = (ms, seq)
        fields = {"event": event, "ts": f"{ts:.6f}"}
        if source is not None:
            fields["source"] = source
        fields["data"] = data
        batch.append((stream, f"{ms}-{seq}", fields))
        stats.published += 1
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Counter:
    """What ``_envelopes`` needs of a publisher when nothing is published: count skips."""

    def __init__(self, stats: ReplayStats) -> None:
        self.stats = stats

    def skip(self) -> None:
        self.stats.skipped += 1


class _Publisher:
    """XADDs in a pipeline sent every ``size`` entries (and on ``flush``),
    counted in ``stats`` and on a tqdm progress bar."""

    def __init__(self, client: redis_lib.Redis, stats: ReplayStats, size: int, *, total: int | None,
                 progress: bool, desc: str) -> None:
        from tqdm import tqdm

        self.pipe = client.pipeline(transaction=False)
        self.stats, self.size, self.queued = stats, size, 0
        self.bar = tqdm(total=total, unit=" events", desc=desc, disable=not progress, mininterval=0.5)

    def __enter__(self) -> _Publisher:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self.bar.close()

    def skip(self) -> None:
        self.stats.skipped += 1
        self.bar.update(1)

    def add(self, event: str, ts: float, source: str | None, data: str) -> None:
        fields: dict[Any, Any] = {"event": event, "ts": f"{ts:.6f}"}
        if source is not None:
            fields["source"] = source
        fields["data"] = data
        self.pipe.xadd(mining.stream_name(event), fields)
        self.queued += 1
        if self.queued >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.queued:
            self.pipe.execute()
            self.stats.published += self.queued
            self.bar.update(self.queued)
            self.queued = 0


def _envelopes(path: Path, limit: int | None, out: _Publisher | _Counter) -> Iterator[tuple[str, float, str | None, str]]:
    """``(event, ts, source, data JSON text)`` of each envelope line; lines
    that are not an envelope of a known event are skipped and counted."""
    for line in _lines(path, limit):
        try:
            envelope = json.loads(line)
            event, data = envelope["event"], envelope["data"]
            ts = float(envelope["ts"])
            if event not in mining.EVENTS or not isinstance(data, dict):
                raise ValueError(event)
        except (ValueError, KeyError, TypeError):
            out.skip()
            continue
        source = envelope.get("source")
        yield event, ts, None if source is None else str(source), json.dumps(data, separators=(",", ":"))


def _pace(envelopes: Iterator[tuple[str, float, str | None, str]], out: _Publisher, *, speed: float,
          shift_to_now: bool, started: float, wall_start: float, stop: threading.Event | None) -> None:
    """Publish each envelope when it is due (``publish_file``'s ``speed``),
    sending the pipeline whenever the next event is not due yet."""
    first_ts: float | None = None
    for event, ts, source, data in envelopes:
        if first_ts is None:
            first_ts = ts
            if shift_to_now:
                out.stats.shift = wall_start - ts  # of the first event; later ones are compressed
        offset = max(0.0, ts - first_ts) / speed
        wait = started + offset - time.monotonic()
        if wait > 0:
            out.flush()
            if stop is not None:
                if stop.wait(wait):
                    return
            else:
                time.sleep(wait)
        elif stop is not None and stop.is_set():
            return
        out.add(event, wall_start + offset if shift_to_now else ts, source, data)
