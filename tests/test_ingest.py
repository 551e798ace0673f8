"""Mining events in through the real Redis Streams and PostgreSQL: replay,
the consumer group, at-least-once delivery without double counting, the
dead-letter stream, and rollups equal to a recomputation from the data file."""
from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent, WorkerStatus
from webapp.services import ingest, mining

from .mining_support import REJECTED_ABOVE_BEST, SATOSHI, day_lines, drain, recompute, sample, share, write_slice, xadd

GROUP = "webapp-ingest"


def _stats() -> dict[str, tuple]:
    return {row.user_id: (row.total_shares, row.rejected_shares, row.best_difficulty, row.blocks_found,
                          row.last_share_at, row.first_seen_at)
            for row in db.session.scalars(sa.select(MinerStats))}


def _event_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(MiningEvent))


def _pending(redis) -> int:
    return sum(redis.xpending(stream, GROUP)["pending"] for stream in mining.STREAMS if redis.exists(stream))


def _assert_matches_recomputation(lines: list[str]) -> None:
    expected = recompute(lines)
    db.session.expire_all()
    stats = {row.user_id: row for row in db.session.scalars(sa.select(MinerStats))}
    assert set(stats) == set(expected)
    for user_id, want in expected.items():
        got = stats[user_id]
        assert got.total_shares == want["total_shares"], user_id
        assert got.rejected_shares == want["rejected_shares"], user_id
        assert got.best_difficulty == want["best_difficulty"], user_id
        assert got.last_share_at == datetime.fromtimestamp(want["last_share_ts"], UTC), user_id
        workers = {w.worker: w.hashrate_1h for w in db.session.scalars(
            sa.select(WorkerStatus).where(WorkerStatus.user_id == user_id))}
        assert workers == want["workers"], user_id


# ---- replay ----------------------------------------------------------------------


def test_replay_publishes_envelopes_exactly_as_the_collector(app, runner, redis, tmp_path):
    lines = [
        {"event": "share_submitted", "ts": 1763078420.166747, "source": "hosted", "region": "eu",
         "data": share("bc1qreplay01", "rig", 16089.3)},
        {"event": "hashrate_update", "ts": 1763078700.5, "source": "hosted", "region": "eu",
         "data": sample("bc1qreplay01", "rig", 5.0e11)},
        {"event": "new_block_network", "ts": 1763078800, "source": "hosted", "region": "eu",
         "data": {"height": 924501, "hash": "00ab", "diff": 1.49e14}},
    ]
    plain = tmp_path / "day.jsonl"
    plain.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")
    result = runner.invoke(args=["replay", str(plain), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "published 3 events, skipped 1 lines" in result.output
    entries = redis.xrange("mining:share_submitted")
    assert len(entries) == 1
    fields = entries[0][1]
    assert set(fields) == {"event", "ts", "source", "data"}
    assert fields["event"] == "share_submitted" and fields["source"] == "hosted"
    assert float(fields["ts"]) == pytest.approx(1763078420.166747, abs=1e-6)
    assert json.loads(fields["data"]) == lines[0]["data"]
    assert redis.xlen("mining:hashrate_update") == 1 and redis.xlen("mining:new_block_network") == 1

    gz = tmp_path / "day.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    before = time.time()
    result = runner.invoke(args=["replay", str(gz), "--shift-to-now", "--limit", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "published 2 events" in result.output
    newest = redis.xrange("mining:hashrate_update")[-1][1]
    oldest_share = redis.xrange("mining:share_submitted")[-1][1]
    # The last published event is now; the gap between events is kept.
    assert before - 1 <= float(newest["ts"]) <= time.time() + 1
    assert float(newest["ts"]) - float(oldest_share["ts"]) == pytest.approx(1763078700.5 - 1763078420.166747,
                                                                            abs=1e-3)
    assert redis.xlen("mining:new_block_network") == 1  # --limit 2 stopped before it


# ---- delivery guarantees ----------------------------------------------------------


def test_entries_delivered_twice_are_stored_once_and_rollups_unchanged(app, redis):
    user = "bc1qtwice0001"
    t0 = time.time() - 600
    for i in range(5):
        xadd(redis, "share_submitted", share(user, "rig", 1000.0 + i), ts=t0 + i)
    xadd(redis, "share_submitted", share(user, "rig", 9999.0, accepted=False), ts=t0 + 6)
    xadd(redis, "hashrate_update", sample(user, "rig", 4.2e11), ts=t0 + 7)
    first = drain()
    assert first.inserted == 7 and first.duplicates == 0
    stored, stats = _event_count(), _stats()
    assert stats[user][:3] == (5, 1, 1004.0)

    # The same entries again (a redelivery after a lost XACK, or a claim).
    consumer = ingest.Consumer(name="again")
    entries = [(stream, entry_id, fields) for stream in mining.STREAMS
               for entry_id, fields in app.extensions["redis_raw"].xrange(stream)]
    entries = [(ingest._s(s), ingest._s(i), f) for s, i, f in entries]
    result = consumer.process(entries)
    assert result.inserted == 0 and result.duplicates == 7
    db.session.expire_all()
    assert _event_count() == stored
    assert _stats() == stats


@pytest.mark.slow
def test_consumer_killed_before_ack_is_taken_over_without_loss_or_double_count(make_app, tmp_path):
    app = make_app(INGEST_CLAIM_IDLE_MS=50)
    with app.app_context():
        raw = app.extensions["redis_raw"]
        raw.flushdb()
        db.session.execute(sa.text("TRUNCATE mining_events, miner_stats, worker_status RESTART IDENTITY"))
        db.session.commit()
        lines = day_lines((SATOSHI,))[:3000]
        path = tmp_path / "slice.jsonl"
        path.write_text("".join(lines))
        ingest.publish_file(path, progress=False)
        dead = ingest.Consumer(name="dead-consumer", batch_size=5000)
        dead.ensure_groups()
        # The dead consumer read everything; it stored the first batch (commit)
        # but died before XACK, and never processed the rest.
        entries = dead.read_new()
        assert len(entries) == 3000 and len({s for s, _, _ in entries}) > 1
        first = dead.prepare(entries[:500])
        mining.ingest_batch(first.parsed)
        assert _pending(raw) == 3000

        time.sleep(0.1)  # older than INGEST_CLAIM_IDLE_MS
        stats = ingest.Consumer(name="restarted").run(drain=True, max_retries=0)
        assert stats.claimed == 3000
        assert stats.inserted == 2500 and stats.duplicates == 500
        assert _pending(raw) == 0
        assert _event_count() == 3000
        _assert_matches_recomputation(lines)
        db.session.remove()


def test_a_restarted_consumer_rereads_its_own_pending_entries_first(app, redis):
    """Same consumer name (``--consumer``), restarted: its pending entries are
    processed at once, without waiting for the claim idle time."""
    now = time.time()
    for i in range(4):
        xadd(redis, "share_submitted", share("bc1qsame0001", "rig", 10.0 + i), ts=now - 10 + i)
    crashed = ingest.Consumer(name="fixed-name", claim_idle_ms=3_600_000)
    crashed.ensure_groups()
    assert len(crashed.read_new()) == 4  # read, then "crashed" before storing
    xadd(redis, "share_submitted", share("bc1qsame0001", "rig", 99.0), ts=now)
    stats = ingest.Consumer(name="fixed-name", claim_idle_ms=3_600_000).run(drain=True, max_retries=0)
    assert stats.claimed == 0 and stats.inserted == 5
    assert db.session.get(MinerStats, "bc1qsame0001").total_shares == 5
    assert _pending(redis) == 0


@pytest.mark.slow
def test_rollups_equal_a_recomputation_from_the_data_file(app, runner, tmp_path):
    path = write_slice(tmp_path / "sample-miners.jsonl.gz")
    lines = day_lines()
    result = runner.invoke(args=["replay", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["ingest", "--drain", "--consumer", "cli"])
    assert result.exit_code == 0, result.output
    assert f"{len(lines)} entries read, {len(lines)} stored" in result.output
    _assert_matches_recomputation(lines)
    satoshi = db.session.get(MinerStats, SATOSHI)
    assert (satoshi.total_shares, satoshi.best_difficulty) == (8409, 46608917.88671861)
    # Its rejected shares reach 136.7M; only the accepted best counts.
    assert db.session.get(MinerStats, REJECTED_ABOVE_BEST).best_difficulty == 79106306.90457945


@pytest.mark.slow
def test_two_consumers_at_once_agree_with_the_recomputation(app, redis, tmp_path):
    path = write_slice(tmp_path / "sample-miners.jsonl.gz")
    lines = day_lines()
    ingest.publish_file(path, progress=False)
    results = {}

    def consume(name: str) -> None:
        with app.app_context():
            results[name] = ingest.Consumer(name=name, batch_size=300).run(drain=True, max_retries=3)

    threads = [threading.Thread(target=consume, args=(f"c{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(results[name].inserted > 0 for name in ("c0", "c1")), "both consumers took part"
    assert sum(r.inserted for r in results.values()) == len(lines)
    assert _event_count() == len(lines) and _pending(redis) == 0
    _assert_matches_recomputation(lines)


# ---- poison entries -----------------------------------------------------------------


def test_malformed_entries_go_to_the_dead_letter_stream_and_the_rest_is_stored(app, redis):
    user, now = "bc1qpoison001", time.time()
    good = [xadd(redis, "share_submitted", share(user, "rig", 100.0 + i), ts=now - 60 + i) for i in range(3)]
    raw = app.extensions["redis_raw"]
    def put(stream: str, fields: dict) -> tuple[bytes, bytes]:
        return stream.encode(), raw.xadd(stream, fields)

    bad = {
        put("mining:share_submitted", {"event": "share_submitted", "ts": str(now), "data": "{not json"}):
            "not valid JSON",
        put("mining:share_submitted", {"event": "share_submitted", "ts": str(now),
                                            "data": json.dumps({"user": user, "worker": f"{user}.r"})}):
            "data.sdiff is missing",
        put("mining:share_submitted", {"event": "share_submitted", "ts": str(now),
                                            "data": json.dumps(share(user, "r", "big"))}): "data.sdiff must be",
        put("mining:share_submitted", {"event": "share_submitted", "ts": str(now),
                                            "data": '{"user":"u","worker":"u.r","sdiff":NaN,"accepted":true}'}):
            "NaN",
        put("mining:share_submitted", {"event": "hashrate_update", "ts": str(now),
                                            "data": json.dumps(sample(user, "r", 1.0))}): "does not belong",
        put("mining:share_submitted", {"event": "share_submitted", "ts": "yesterday",
                                            "data": json.dumps(share(user, "r", 1.0))}): "ts must be",
        put("mining:share_submitted", {"event": b"share_submitted", "ts": str(now).encode(),
                                            "data": b'{"user":"\xff\xfe"}'}): "not valid UTF-8",
        put("mining:share_submitted", {"event": "share_submitted", "ts": str(now),
                                            "data": json.dumps(share("bad\u0000user", "r", 1.0))}): "NUL",
        put("mining:share_submitted", {"event": "share_submitted", "ts": str(now),
                                            "data": json.dumps(share("x" * 129, "r", 1.0))}): "longer than 128",
        put("mining:block_found", {"event": "block_found", "ts": str(now), "data": "[1, 2]"}):
            "must be a JSON object",
    }
    stats = drain()
    assert stats.inserted == 3 and stats.dead_lettered == len(bad)
    assert _pending(redis) == 0  # everything acknowledged, nothing blocks
    assert db.session.get(MinerStats, user).total_shares == 3
    assert {e.entry_id for e in db.session.scalars(sa.select(MiningEvent))} == set(good)

    letters = raw.xrange(mining.DEAD_LETTER_STREAM)
    assert len(letters) == len(bad)
    by_id = {(fields[b"dead_letter_stream"], fields[b"dead_letter_id"]): fields for _, fields in letters}
    for (stream, entry_id), reason in bad.items():
        fields = by_id[(stream, entry_id)]
        assert reason in fields[b"dead_letter_error"].decode(), (reason, fields[b"dead_letter_error"])
        original = raw.xrange(stream, entry_id, entry_id)[0][1]
        assert {k: v for k, v in fields.items() if not k.startswith(b"dead_letter_")} == original


def test_an_entry_the_database_refuses_is_isolated_and_dead_lettered(app, redis):
    """A row PostgreSQL rejects (here through a trigger) must not block the
    batch: the batch is retried in halves and only that entry is
    dead-lettered."""
    db.session.execute(sa.text("""
        CREATE OR REPLACE FUNCTION test_refuse_poison() RETURNS trigger AS $$
        BEGIN IF NEW.user_id = 'bc1qrefused' THEN RAISE EXCEPTION 'refused for the test'; END IF;
        RETURN NEW; END $$ LANGUAGE plpgsql"""))
    db.session.execute(sa.text("CREATE TRIGGER test_refuse BEFORE INSERT ON mining_events "
                               "FOR EACH ROW EXECUTE FUNCTION test_refuse_poison()"))
    db.session.commit()
    try:
        now = time.time()
        for i in range(20):
            xadd(redis, "share_submitted", share("bc1qfine0001", "rig", 10.0 + i), ts=now - 30 + i)
            if i == 12:
                poison = xadd(redis, "share_submitted", share("bc1qrefused", "rig", 5.0), ts=now)
        xadd(redis, "hashrate_update", sample("bc1qfine0001", "rig", 3e11), ts=now)
        stats = drain()
    finally:
        db.session.rollback()
        db.session.execute(sa.text("DROP TRIGGER IF EXISTS test_refuse ON mining_events"))
        db.session.execute(sa.text("DROP FUNCTION IF EXISTS test_refuse_poison()"))
        db.session.commit()
    assert stats.inserted == 21 and stats.dead_lettered == 1
    assert db.session.get(MinerStats, "bc1qfine0001").total_shares == 20
    assert db.session.get(MinerStats, "bc1qfine0001").best_difficulty == 29.0
    assert db.session.get(MinerStats, "bc1qrefused") is None
    letter = redis.xrange(mining.DEAD_LETTER_STREAM)[0][1]
    assert letter["dead_letter_id"] == poison and "refused for the test" in letter["dead_letter_error"]
    assert _pending(redis) == 0
