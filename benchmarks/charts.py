"""How long do the chart routes take over a month of samples?

    .venv/bin/python benchmarks/charts.py [--noise N] [--runs N] [--keep]

1. creates a fresh PostgreSQL database (dropped at the end unless --keep),
   migrates it, and fills ``mining_events`` with 30 days of
   ``hashrate_update`` samples: one heavy miner with 3 workers sampled every
   minute (129,600 rows), a coop of 20 members with one worker each sampled
   every 5 minutes (172,800 rows) with the coop's 5-minute aggregation
   samples thinned as the job keeps them, and ``--noise`` other miners' rows
   (default 2,000,000) of other events and miners; ``VACUUM ANALYZE``;
2. times whole HTTP requests through the WSGI app for each range:
   ``GET /api/public/miners/{heavy}/hashrate``,
   ``GET /api/public/miners/{heavy}/best-difficulty`` and
   ``GET /api/coops/{id}/hashrate/history`` (as a member);
3. prints p50/p95 in milliseconds per route and range, cold (the per-miner
   history cache emptied before each request) and warm (served from it).

Settings: BENCH_PG_URL and BENCH_REDIS_URL (see support.py).
"""
from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa
from support import in_process_app, run_on_stores

HEAVY = "bc1qbenchheavy"
MEMBERS = [f"bc1qbenchmember{i:02d}" for i in range(20)]


def _fill(engine: sa.Engine, noise: int) -> None:
    with engine.begin() as conn:
        # The heavy miner: 3 workers, one sample a minute for 30 days.
        conn.execute(sa.text(
            "INSERT INTO mining_events (stream, entry_id, event, ts, user_id, worker, data, received_at) "
            "SELECT 'mining:hashrate_update', g || '-' || w, 'hashrate_update', now() - g * interval '1 minute', "
            "CAST(:u AS text), CAST(:u AS text) || '.rig' || w, jsonb_build_object('hashrate_1h', 1e12 * w + random() * 1e11), now() "
            "FROM generate_series(0, 43199) g, generate_series(1, 3) w"), {"u": HEAVY})
        conn.execute(sa.text(
            "INSERT INTO mining_events (stream, entry_id, event, ts, user_id, worker, data, received_at) "
            "SELECT 'mining:share_best_diff', 'b' || g, 'share_best_diff', now() - g * interval '7 hours', CAST(:u AS text), "
            "CAST(:u AS text) || '.rig1', jsonb_build_object('new_best', 1e9 / (g + 1), 'prev_best', 0, 'timeframe', 'alltime'), "
            "now() FROM generate_series(0, 100) g"), {"u": HEAVY})
        # 20 members, one worker each, one sample every 5 minutes for 30 days.
        conn.execute(sa.text(
            "INSERT INTO mining_events (stream, entry_id, event, ts, user_id, worker, data, received_at) "
            "SELECT 'mining:hashrate_update', 'm' || g || '-' || m, 'hashrate_update', "
            "now() - g * interval '5 minutes', 'bc1qbenchmember' || lpad(m::text, 2, '0'), "
            "'bc1qbenchmember' || lpad(m::text, 2, '0') || '.bitaxe', "
            "jsonb_build_object('hashrate_1h', 5e11 + random() * 1e11), now() "
            "FROM generate_series(0, 8639) g, generate_series(0, 19) m"))
        # Other miners' events (the index has to skip them).
        conn.execute(sa.text(
            "INSERT INTO mining_events (stream, entry_id, event, ts, user_id, worker, data, received_at) "
            "SELECT 'mining:share_submitted', 'n' || g, 'share_submitted', now() - (g % 43200) * interval '1 minute', "
            "'bc1qbenchnoise' || (g % 5000), 'bc1qbenchnoise' || (g % 5000) || '.x', '{}'::jsonb, now() "
            "FROM generate_series(1, :n) g"), {"n": noise})


def _stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"p50 {statistics.median(ms):7.1f} ms · p95 {ms[max(0, int(len(ms) * 0.95) - 1)]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=15)
    run_on_stores(parser, "webapp_bench_charts", measure)


def measure(args, st) -> None:
    from webapp.extensions import db
    from webapp.services import accounts, coop_hashrate, coops

    app = in_process_app(st)
    with app.app_context():
        users = [accounts.register(user_id=u, password="bench-password-1") for u in [HEAVY, *MEMBERS]]
        coop = coops.create(users[1], name="Bench Coop", description="")
        for member in users[2:]:
            coops.join(member, invite_code=coop.invite_code)
        started = time.perf_counter()
        _fill(db.engine, args.noise)
        # The coop's samples as the job keeps them: every 5 min for 48 h, hourly to 30 days.
        db.session.execute(sa.text(
            "INSERT INTO coop_hashrate_samples (cooperative_id, total_hashrate, online_count, computed_at) "
            "SELECT :c, 1.1e13, 20, now() - g * interval '5 minutes' FROM generate_series(0, 8639) g "
            "WHERE g < 576 OR g % 12 = 0"), {"c": coop.id})
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE mining_events"))
            conn.execute(sa.text("VACUUM ANALYZE coop_hashrate_samples"))
        total = db.session.scalar(sa.text("SELECT count(*) FROM mining_events"))
        print(f"filled mining_events: {total:,} rows in {time.perf_counter() - started:.1f} s "
              f"(coop samples kept: {db.session.scalar(sa.text('SELECT count(*) FROM coop_hashrate_samples'))})")
        token, _ = accounts.issue_token(users[1])
        coop_id = coop.id
        assert coop_hashrate  # the job's module: samples above follow its HISTORY_KEEP rules
    client = app.test_client()
    from webapp.extensions import get_redis

    def flush() -> None:
        with app.app_context():
            redis = get_redis()
            keys = redis.keys(f"{st.namespace}:chart:*")
            if keys:
                redis.delete(*keys)

    headers = {"Authorization": f"Bearer {token}"}
    routes = [
        ("miner hashrate (3 workers, 1/min)", f"/api/public/miners/{HEAVY}/hashrate", {}),
        ("miner best difficulty", f"/api/public/miners/{HEAVY}/best-difficulty", {}),
        ("coop history (20 members, 1/5 min)", f"/api/coops/{coop_id}/hashrate/history", headers),
    ]
    for label, path, extra in routes:
        for rng in ("1h", "24h", "7d", "30d"):
            for mode in ("cold", "warm"):
                samples = []
                for run in range(args.runs + 2):
                    if mode == "cold":
                        flush()
                    began = time.perf_counter()
                    resp = client.get(path, query_string={"range": rng}, headers=extra)
                    elapsed = time.perf_counter() - began
                    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
                    if run >= 2:  # warm-up
                        samples.append(elapsed)
                points = len(resp.get_json()["timestamps"])
                print(f"{label:38s} {rng:>4s} {mode}: {_stats(samples)} ({points} points, "
                      f"{len(resp.get_json()['series'])} series)")


if __name__ == "__main__":
    main()
