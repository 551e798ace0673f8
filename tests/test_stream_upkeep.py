"""Upkeep of the mining streams on real Redis: consumers of past processes
leave the group once their entries are claimed."""
from __future__ import annotations

import time

from webapp.extensions import db
from webapp.models import MinerStats
from webapp.services import ingest, mining

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
