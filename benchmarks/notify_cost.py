"""What one ``notify()`` costs in SQL statements and time, in-process, for a
user with default settings and (``--engine-settings``) one with quiet hours,
an hourly cap and mining e-mail (the per-user checks of the notification
engine; the e-mail job is enqueued to a queue nobody serves).

    .venv/bin/python benchmarks/notify_cost.py [--calls 500] [--engine-settings] [--in-transaction]

``--in-transaction`` begins a transaction (one read) before each call, as
ingest, a route or a job does before it notifies: ``notify()`` then takes
its ORM path, committed by ``notify`` itself. Without it each call is its
whole transaction: two statements in autocommit on PostgreSQL.

Counts are exact whatever the machine's load (SQLAlchemy's
``before_cursor_execute``); times are medians over ``--calls`` calls and
move with the load. Loopback only: a fresh PostgreSQL database and a free
Redis logical database (benchmarks/support.py), dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from support import migrate_and_create_users, stores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--engine-settings", action="store_true")
    parser.add_argument("--in-transaction", action="store_true")
    args = parser.parse_args()
    with stores("bench_notify") as st:
        env = st.app_env(SECRET_KEY=f"bench-{st.token}", RATELIMIT_ENABLED="0")
        pairs = migrate_and_create_users(env, 100)
        user_ids = [u for u, _ in pairs]
        if args.engine_settings:
            from push_latency import apply_engine_settings

            apply_engine_settings(user_ids)
        from sqlalchemy import event, literal, select

        from webapp import create_app
        from webapp.extensions import db
        from webapp.services.notifications import notify

        app = create_app()
        with app.app_context():
            statements = []
            event.listen(db.engine, "before_cursor_execute",
                         lambda conn, cursor, sql, params, context, many: statements.append(sql))
            notify(user_ids[0], "mining", "personal_best", "warm-up")
            durations, counts = [], []
            for i in range(args.calls):
                if args.in_transaction:
                    db.session.scalar(select(literal(1)))
                statements.clear()
                start = time.perf_counter()
                notify(user_ids[i % len(user_ids)], "mining", "personal_best", f"New best #{i}")
                durations.append((time.perf_counter() - start) * 1000)
                counts.append(len(statements))
            db.engine.dispose()
        print(json.dumps({"engine_settings": args.engine_settings, "in_transaction": args.in_transaction,
                          "calls": args.calls,
                          "statements_per_notify": statistics.median(counts),
                          "notify_ms": {"p50": round(statistics.median(durations), 2),
                                        "p90": round(sorted(durations)[int(len(durations) * 0.9)], 2)}}))


if __name__ == "__main__":
    main()
