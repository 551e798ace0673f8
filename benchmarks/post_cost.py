"""What one coop post (``messages.post``) costs in time and CPU, in-process,
without sockets: the part of a chat message that the web process spends
before the fan-out (benchmarks/chat.py measures the whole path).

    .venv/bin/python benchmarks/post_cost.py [--posts 2000] [--size 20] [--absent 0] [--tree DIR]

One coop of ``--size`` members (bulk rows, as chat.py forms them); every
member has a socket open in presence except ``--absent`` of them (then each
post also notifies: one "new messages" notice per absent member until they
read). Posts go in turn by the members, each with a client_id. Reported:
the median and p90 wall time of a post and the CPU time of this process per
post (``time.process_time``), the database's PostgreSQL backend's CPU per
post (``/proc/<pid>/stat``), and the round trips and SQL statements of one
post. ``--tree DIR`` imports the app from another checkout (a before/after
pair with ``git archive``). Loopback only: a fresh PostgreSQL database and a
free Redis logical database (benchmarks/support.py), dropped at the end.
Times move with the machine's load; give it with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from support import migrate_and_create_users, stores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--absent", type=int, default=0, help="members without a socket open")
    parser.add_argument("--tree", default=None, help="import the app from this checkout")
    args = parser.parse_args()
    if args.tree:
        sys.path.insert(0, os.path.abspath(args.tree))
    from chat import backend_pids, cpu_seconds, form_coops

    with stores("bench_post") as st:
        env = st.app_env(SECRET_KEY=f"bench-{st.token}", RATELIMIT_ENABLED="0")
        pairs = migrate_and_create_users(env, args.size)
        (conversation_id, *_) = form_coops(env, pairs, 1, args.size)
        from sqlalchemy import event

        import webapp
        from webapp import create_app
        from webapp.extensions import db
        from webapp.services import messages, presence

        app = create_app()
        members = [u for u, _ in pairs]
        with app.app_context():
            for user_id in members[args.absent:]:
                presence.socket_opened(user_id, f"bench-{user_id}")
            statements: list[str] = []
            event.listen(db.engine, "before_cursor_execute",
                         lambda conn, cursor, sql, params, context, many: statements.append(sql))
            for i in range(20):  # warm-up: statement caches, prepared statements
                messages.post(members[i % len(members)], conversation_id, f"warm-up {i}", client_id=f"w{i}")
                db.session.remove()
            backends = backend_pids(st.database_url)
            durations, counts = [], []
            cpu_before, backend_before = time.process_time(), cpu_seconds(backends)
            for i in range(args.posts):
                statements.clear()
                start = time.perf_counter()
                messages.post(members[i % len(members)], conversation_id, f"post {i}", client_id=f"p{i}")
                db.session.remove()  # as a socket message ends
                durations.append((time.perf_counter() - start) * 1000)
                counts.append(len(statements))
            cpu = (time.process_time() - cpu_before) * 1000 / args.posts
            backend = (cpu_seconds(backends) - backend_before) * 1000 / args.posts
            db.engine.dispose()
        print(json.dumps({"tree": os.path.dirname(os.path.dirname(webapp.__file__)), "posts": args.posts,
                          "members": args.size, "absent": args.absent,
                          "load_average_1m": round(os.getloadavg()[0], 2),
                          "statements_per_post": statistics.median(counts),
                          "post_ms": {"p50": round(statistics.median(durations), 3),
                                      "p90": round(sorted(durations)[int(len(durations) * 0.9)], 3)},
                          "cpu_ms_per_post": {"this_process": round(cpu, 3), "postgresql_backend": round(backend, 3)}}))


if __name__ == "__main__":
    main()
