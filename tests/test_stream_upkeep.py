"""Upkeep of the mining streams on real Redis: consumers of past processes
leave the group once their entries are claimed, and the streams are trimmed
up to what every consumer group has acknowledged, never further."""
from __future__ import annotations

import time

import sqlalchemy as sa
from rq import Queue

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent
from webapp.services import ingest, mining

from .builders import run_jobs
from .mining_support import sample, share, xadd

GROUP = "webapp-ingest"
SHARES, SAMPLES = "mining:share_submitted", "mining:hashrate_update"


def _consumers(raw, stream: str) -> dict[str, int]:
    """{consumer name: pending entries} of the ingest group on ``stream``."""
    return {c["name"].decode(): int(c["pending"]) for c in raw.xinfo_consumers(stream, GROUP)}


def test_a_dead_consumer_is_removed_once_a_new_one_has_claimed_and_stored_its_entries(app, make_app):
    fast = make_app(INGEST_CLAIM_IDLE_MS=50, INGEST_DEAD_CONSUMER_IDLE_MS=50)  # same database and Redis
    with fast.app_context():
        raw = fast.extensions["redis_raw"]
        now = time.time()
        for i in range(30):
            xadd(raw, "share_submitted", share("bc1qdeadc001", "rig", 10.0 + i), ts=now - 60 + i)
        for i in range(5):
            xadd(raw, "hashrate_update", sample("bc1qdeadc001", "rig", 4e11 + i), ts=now - 30 + i)
        dead = ingest.Consumer(name="host-a-111", batch_size=100)
        dead.ensure_groups()
        assert len(dead.read_new()) == 35  # read, then the process died before storing
        assert _consumers(raw, SHARES) == {"host-a-111": 30}
        time.sleep(0.1)  # idle longer than both thresholds

        stats = ingest.Consumer(name="host-b-222").run(drain=True, max_retries=0)
        assert stats.claimed == 35 and stats.inserted == 35
        assert db.session.get(MinerStats, "bc1qdeadc001").total_shares == 30
        for stream in mining.STREAMS:
            assert "host-a-111" not in _consumers(raw, stream), stream
        assert _consumers(raw, SHARES) == {"host-b-222": 0}
        assert _consumers(raw, SAMPLES) == {"host-b-222": 0}
        assert stats.consumers_removed == 2  # from the two streams it had read entries of
        db.session.remove()


def test_a_consumer_that_still_holds_pending_entries_is_never_removed(app, make_app):
    fast = make_app(INGEST_DEAD_CONSUMER_IDLE_MS=50)
    with fast.app_context():
        raw = fast.extensions["redis_raw"]
        for i in range(4):
            xadd(raw, "share_submitted", share("bc1qholder01", "rig", 10.0 + i))
        holder = ingest.Consumer(name="holder", batch_size=3, streams=(SHARES,))
        holder.ensure_groups()
        assert len(holder.read_new()) == 3
        done = ingest.Consumer(name="idle-empty", streams=(SHARES,))
        done.process(done.read_new())  # one entry, stored and acknowledged
        assert _consumers(raw, SHARES) == {"holder": 3, "idle-empty": 0}
        time.sleep(0.1)
        # Pending entries idle for long, but not claimed: the holder stays.
        sweeper = ingest.Consumer(name="sweeper", claim_idle_ms=3_600_000, streams=(SHARES,))
        assert sweeper.remove_dead_consumers() == ["idle-empty"]
        assert _consumers(raw, SHARES) == {"holder": 3}


def test_trimming_removes_what_every_group_acknowledged_and_keeps_pending_and_unread_entries(app, redis):
    raw = app.extensions["redis_raw"]
    now = time.time()
    ids = [xadd(redis, "share_submitted", share("bc1qtrim0001", "rig", 1.0 + i), ts=now - 60 + i) for i in range(10)]
    other_ids = [xadd(redis, "hashrate_update", sample("bc1qtrim0001", "rig", 5e11), ts=now - 5)]
    consumer = ingest.Consumer(name="trim-test", batch_size=100, streams=(SHARES, SAMPLES))
    consumer.ensure_groups()
    entries = [e for e in consumer.read_new() if e[0] == SHARES]
    assert [e[1] for e in entries] == ids
    consumer.process(entries[:6])  # stored and acknowledged; ids[6:] stay pending
    # A second group on the same stream (another reader), which has read and acknowledged 3.
    raw.xgroup_create(SHARES, "analytics", id="0")
    for entry_id, _ in raw.xreadgroup("analytics", "a1", {SHARES: ">"}, count=3)[0][1]:
        raw.xack(SHARES, "analytics", entry_id)
    # A stream no group reads is not touched.
    lonely = raw.xadd("mining:new_block_network", {"event": "new_block_network", "ts": str(now), "data": "{}"})
    raw.xadd(mining.DEAD_LETTER_STREAM, {"dead_letter_error": "kept"})

    def left(stream: str = SHARES) -> list[str]:
        return [entry_id.decode() for entry_id, _ in raw.xrange(stream)]

    removed = ingest.trim_acknowledged()
    assert removed[SHARES] == 3 and left() == ids[3:]  # the analytics group holds the rest
    assert left("mining:new_block_network") == [lonely.decode()]
    assert raw.xlen(mining.DEAD_LETTER_STREAM) == 1
    assert left(SAMPLES) == other_ids  # read by the ingest group, not yet acknowledged

    for entry_id, _ in raw.xreadgroup("analytics", "a1", {SHARES: ">"})[0][1]:
        raw.xack(SHARES, "analytics", entry_id)
    ingest.trim_acknowledged()
    assert left() == ids[6:]  # the ingest group's pending entries are kept

    # The consumer finishes its pending entries; new entries arrive, unread.
    consumer.process_own_pending()
    later = xadd(redis, "share_submitted", share("bc1qtrim0001", "rig", 99.0), ts=now)
    queue = Queue("default", connection=raw)
    job = queue.enqueue("jobs.mining.trim_mining_streams")
    run_jobs(app)
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value() == 4 + 1  # the shares ids[6:] and the sample
    assert left() == [later] and raw.xlen(SAMPLES) == 0
    assert raw.xpending(SHARES, GROUP)["pending"] == 0

    # Nothing was lost: the consumer goes on reading after the trim.
    again = ingest.Consumer(name="trim-test", streams=(SHARES, SAMPLES))
    assert again.run(drain=True, max_retries=0).inserted == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MiningEvent)) == 12
