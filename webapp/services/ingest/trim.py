"""Stream upkeep: trimming the mining streams up to what every consumer
group has acknowledged (a periodic job).
"""
from __future__ import annotations

import redis as redis_lib
from flask import current_app

from .. import mining
from .consumer import _s, log


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = _s(entry_id).partition("-")
    return int(ms), int(seq or 0)


def trim_bound(redis: redis_lib.Redis, stream: str) -> str | None:
    """The lowest entry id some consumer group of ``stream`` may still need,
    or None when the stream has no group (then nobody has acknowledged
    anything and nothing may go).

    Per group: its lowest pending id (delivered, not yet acknowledged), or,
    when nothing is pending, the id just after its last-delivered id. Every
    entry below the minimum over the groups has been delivered to and
    acknowledged by every group. The bound only moves forward while the
    groups read (a pending entry never gets a lower id), so reading it with
    several commands is safe; an operator moving a group back (XGROUP
    SETID) or creating one from an old id must stop trimming first.
    """
    bound: tuple[int, int] | None = None
    groups = redis.xinfo_groups(stream)
    if not groups:
        return None
    for group in groups:
        low = None
        if int(group["pending"]):
            low = redis.xpending(stream, group["name"])["min"]
        if low is not None:
            key = _id_key(low)
        else:  # everything delivered was acknowledged
            ms, seq = _id_key(group["last-delivered-id"])
            key = (ms, seq + 1)
        bound = key if bound is None or key < bound else bound
    return f"{bound[0]}-{bound[1]}"  # type: ignore[index]


def trim_acknowledged(redis: redis_lib.Redis | None = None,
                      streams: tuple[str, ...] = mining.STREAMS) -> dict[str, int]:
    """XTRIM each mining stream by MINID up to ``trim_bound``: removes the
    entries every consumer group has acknowledged, never one that is
    pending or not yet delivered to some group, and nothing on a stream
    without a group. The dead-letter stream is not touched. Run by the
    scheduler every ``MINING_STREAM_TRIM_INTERVAL`` seconds
    (``jobs.mining.trim_mining_streams``). Returns ``{stream: entries
    removed}`` for the streams that exist."""
    client = redis if redis is not None else current_app.extensions["redis_raw"]
    removed: dict[str, int] = {}
    for stream in streams:
        if not client.exists(stream):
            continue
        bound = trim_bound(client, stream)
        removed[stream] = int(client.xtrim(stream, minid=bound, approximate=False)) if bound else 0
    total = sum(removed.values())
    if total:
        log.info("trimmed %d acknowledged entries from the mining streams", total)
    return removed
