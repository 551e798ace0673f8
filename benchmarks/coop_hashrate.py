"""Benchmark: the coop hashrate aggregation job over 10,000 coops × 20 members.

Creates a fresh PostgreSQL database, runs the real migrations, loads
``--coops`` active coops of ``--members`` members each (every member a user
with one worker; 90 % of workers online with a fresh ``hashrate_1h`` sample,
the rest offline or stale), ANALYZEs, then times ``--runs`` runs of
``jobs.coops.aggregate_coop_hashrate`` (one grouped query, bulk update of
``cooperatives``, one history sample per coop, Redis cache of every total)
and checks one coop's total against a direct sum. Between runs (untimed) it
VACUUMs the two tables the job writes, as autovacuum does in the 5 minutes
between production runs (``--no-vacuum`` to skip). The database and the Redis
keys are dropped at the end.

    .venv/bin/python benchmarks/coop_hashrate.py [--coops 10000] [--members 20] [--runs 5]

Settings: BENCH_PG_URL (a PostgreSQL server; default
postgresql://postgres@127.0.0.1:5432/postgres) and BENCH_REDIS_URL (default
redis://127.0.0.1:6379; a claimed logical database, benchmarks/support.py).
"""
from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from support import in_process_app, run_on_stores


def _copy(conn, table: str, columns: tuple[str, ...], rows) -> None:
    """Bulk-load rows with COPY (tab-separated text)."""
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(buf.getvalue())


def load(engine: sa.Engine, coops: int, members: int, now: datetime) -> None:
    """Users, coops, memberships and worker rows for the benchmark."""
    rng = random.Random(42)
    created = (now - timedelta(days=30)).isoformat()
    with engine.begin() as conn:
        users = [f"bc1qbench{i:09d}" for i in range(coops * members)]
        _copy(conn, "users", ("user_id", "display_name", "password_hash", "is_admin", "created_at"),
              ((u, f"Miner {i}", "x", "false", created) for i, u in enumerate(users)))
        _copy(conn, "cooperatives",
              ("id", "name", "description", "invite_code", "admin_user_id", "member_count", "total_hashrate",
               "status", "created_at"),
              ((c + 1, f"Coop {c}", "", f"{c:08d}", users[c * members], members, 0, "active", created)
               for c in range(coops)))
        _copy(conn, "cooperative_members", ("cooperative_id", "user_id", "role", "status", "joined_at"),
              ((c + 1, users[c * members + m], "admin" if m == 0 else "member", "active", created)
               for c in range(coops) for m in range(members)))

        def workers():
            for u in users:
                fate = rng.random()
                online = fate >= 0.05  # 5 % disconnected
                age = timedelta(minutes=20) if fate < 0.10 and online else timedelta(seconds=rng.randint(0, 600))
                sample = (now - age).isoformat()
                yield (f"{u}.bitaxe", u, "true" if online else "false", sample, sample, rng.uniform(4e11, 1.5e12))

        _copy(conn, "worker_status", ("worker", "user_id", "is_online", "last_seen_at", "last_sample_at", "hashrate_1h"),
              workers())
        conn.execute(sa.text("SELECT setval('cooperatives_id_seq', :n)"), {"n": coops})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coops", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-vacuum", action="store_true",
                        help="no VACUUM between runs (back-to-back runs without autovacuum: worst case)")
    run_on_stores(parser, "coopbench", measure)
    return 0


def measure(args, st) -> None:
    """Load, then time the job (see the module docstring)."""
    from webapp.extensions import db

    app = in_process_app(st)
    with app.app_context():
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        load(db.engine, args.coops, args.members, now)
        print(f"loaded {args.coops} coops × {args.members} members in {time.perf_counter() - t0:.1f} s")

        from jobs.coops import aggregate_coop_hashrate
        from webapp.models import Cooperative, WorkerStatus
        from webapp.services import coop_hashrate
        from webapp.services.hashrate import online_condition

        timings = []
        for run in range(args.runs):
            t0 = time.perf_counter()
            updated = aggregate_coop_hashrate()
            timings.append(time.perf_counter() - t0)
            db.session.remove()
            print(f"run {run + 1}: {timings[-1] * 1000:.0f} ms ({updated} coops)")
            if not args.no_vacuum:
                # Production runs are 5 minutes apart and autovacuum (1 min
                # naptime, 10,000 dead rows per run > its threshold) cleans
                # the updated cooperatives in between; back-to-back runs
                # would otherwise measure a table no deployment sees.
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(sa.text("VACUUM ANALYZE cooperatives, coop_hashrate_samples"))

        check = args.coops // 2
        expected = db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(WorkerStatus.hashrate_1h), 0.0))
            .where(WorkerStatus.user_id.in_([f"bc1qbench{check * args.members + m:09d}" for m in range(args.members)]),
                   online_condition())
        )
        stored = db.session.get(Cooperative, check + 1).total_hashrate
        cached = coop_hashrate.cached_total(check + 1).total_hashrate
        assert abs(stored - expected) <= 1e-6 * max(expected, 1.0), (stored, expected)
        assert abs(cached - expected) <= 1e-6 * max(expected, 1.0), (cached, expected)
        samples = db.session.scalar(sa.text("SELECT count(*) FROM coop_hashrate_samples"))
        assert samples == args.coops * args.runs, samples
        print(f"check: coop {check + 1} total {stored:.4g} H/s = direct sum; {samples} samples")
        print(f"job time: min {min(timings) * 1000:.0f} ms, median {statistics.median(timings) * 1000:.0f} ms, "
              f"max {max(timings) * 1000:.0f} ms over {args.runs} runs "
              f"(first run {timings[0] * 1000:.0f} ms)")
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
