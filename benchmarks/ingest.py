"""Ingest throughput: mining events per second from the Redis Streams into
PostgreSQL, for the shared day (webapp/demo/mining-events-24h.jsonl.gz).

    .venv/bin/python benchmarks/ingest.py [--consumers N] [--limit N] [--batch-size N]

1. creates a fresh PostgreSQL database (dropped at the end unless --keep) and
   migrates it, registers the 60 demo miners (so personal bests raise real
   notifications and activities), and claims a free Redis logical database
   (the test suite's lock convention, so a concurrent test run is safe);
2. replays the day into the streams (``publish_file``, timed separately);
3. times ``flask ingest --drain`` (the real consumer; one per process with
   ``--consumers``) until every entry is stored, then checks the counts.

Settings: BENCH_PG_URL (server URL, default postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (default redis://127.0.0.1:6379), BENCH_VERBOSE=1 to print the
consumers' logs. Results: docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import sqlalchemy as sa
from support import DAY_FILE, ROOT, psycopg_url, stores

DATA = DAY_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(DATA))
    parser.add_argument("--limit", type=int, default=None, help="only the first N lines")
    parser.add_argument("--consumers", type=int, default=1, help="ingest processes in the group")
    parser.add_argument("--batch-size", type=int, default=None, help="INGEST_BATCH_SIZE")
    parser.add_argument("--no-users", action="store_true", help="do not register the 60 miners")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    with stores("webapp_bench", keep=args.keep) as st:
        env = st.app_env(DATABASE_URL=psycopg_url(st.database_url))
        if args.batch_size:
            env["INGEST_BATCH_SIZE"] = str(args.batch_size)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "EMBEDDED_SCHEDULER", "REDIS_NAMESPACE")})
        run(args, env)


def run(args, env: dict) -> None:
    """Replay, then time the consumers (see the module docstring)."""
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import MinerStats, MiningEvent
    from webapp.services import demo, ingest

    app = create_app({"PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    with app.app_context():
        upgrade()
        app.extensions["redis_raw"].flushdb()
        if not args.no_users:
            demo.create_miners()
        replay = ingest.publish_file(args.file, limit=args.limit, progress=False)
        print(f"replay: {replay.published} events published in {replay.seconds:.1f} s "
              f"({replay.published / replay.seconds:,.0f}/s)")
        db.session.remove()

        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "flask", "ingest", "--drain", "--consumer", f"bench-{i}"],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for i in range(args.consumers)]
        outputs = [p.communicate()[0] for p in procs]
        elapsed = time.perf_counter() - started
        for p, out in zip(procs, outputs, strict=True):
            if p.returncode:
                print(out)
                raise SystemExit(f"ingest exited with {p.returncode}")
            print(out.strip().splitlines()[-1])
            if os.environ.get("BENCH_VERBOSE"):
                print(out)

        stored = db.session.scalar(sa.select(sa.func.count()).select_from(MiningEvent))
        shares = db.session.scalar(sa.select(sa.func.sum(MinerStats.total_shares)))
        pending = sum(app.extensions["redis_raw"].xpending(s, app.config["INGEST_CONSUMER_GROUP"])["pending"]
                      for s in ingest.mining.STREAMS)
        print(f"stored {stored} events ({shares} accepted shares in miner_stats), {pending} pending")
        assert stored == replay.published and pending == 0, "not everything was stored"
        rate = stored / elapsed
        print(json.dumps({"events": stored, "consumers": args.consumers, "seconds": round(elapsed, 2),
                          "events_per_second": round(rate)}))
        print(f"\n=> {rate:,.0f} events/s ({stored} events in {elapsed:.1f} s wall, "
              f"{args.consumers} consumer process(es), process start-up included)")
        db.engine.dispose()


if __name__ == "__main__":
    main()
