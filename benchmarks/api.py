"""JSON API throughput: unread-count and list-20 at concurrency 10, with wrk.

    .venv/bin/python benchmarks/api.py [--users 100] [--per-user 500] [--duration 15]

Needs ``wrk`` (Debian package ``wrk``). Builds a fresh PostgreSQL database
(dropped at the end) with ``--users`` miners holding ``--per-user``
notifications each (a third unread), serves it with gunicorn and
gunicorn.conf.py (the production setup), then runs ``wrk -t2 -c10
--latency`` against ``GET /api/notifications/unread-count`` and
``GET /api/notifications?limit=20``, each request with the bearer token of a
random miner. Prints requests/s and p50/p99 per route. Results:
docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from support import (
    HOST,
    REDIS_URL,
    claim_redis_db,
    create_database,
    drop_database,
    free_port,
    migrate_and_create_users,
    release_redis_db,
    start_gunicorn,
    with_db,
)

ROUTES = [
    ("unread-count", "/api/notifications/unread-count"),
    ("list-20", "/api/notifications?limit=20"),
]


def fill_notifications(env: dict, user_ids: list[str], per_user: int) -> None:
    """Bulk-insert notifications (one statement per user), a third unread."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for user_id in user_ids:
            conn.execute(
                sa.text(
                    "INSERT INTO notifications (user_id, category, subtype, title, body, is_read, created_at) "
                    "SELECT :u, 'mining', 'personal_best', 'New personal best: ' || g || 'M', "
                    "'Your worker found a share of difficulty ' || g || 'M.', g % 3 <> 0, "
                    "now() - (g || ' minutes')::interval FROM generate_series(1, :n) g"
                ),
                {"u": user_id, "n": per_user},
            )
        conn.execute(sa.text("ANALYZE notifications"))
    engine.dispose()


def wrk(url: str, tokens: list[str], duration: int) -> tuple[float, str, str]:
    """Run wrk; returns (requests/s, p50, p99) as wrk prints them."""
    lua = "tokens = {" + ",".join(f'"{t}"' for t in tokens) + "}\n" + (
        "request = function()\n"
        "  return wrk.format(nil, nil, {['Authorization'] = 'Bearer ' .. tokens[math.random(#tokens)]})\n"
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    out = subprocess.run(
        ["wrk", "-t2", "-c10", f"-d{duration}s", "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    Path(script.name).unlink()
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return rps, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=500)
    parser.add_argument("--duration", type=int, default=15, help="seconds per route")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    run_id = secrets.token_hex(4)
    name = f"webapp_bench_api_{run_id}"
    redis_db = claim_redis_db(run_id)
    database_url = create_database(name)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": with_db(REDIS_URL, str(redis_db)),
        "REDIS_NAMESPACE": f"bench-{run_id}",
        "SECRET_KEY": "benchmark",
        "RATELIMIT_ENABLED": "false",
        "ACCESS_LOG": "false",
        "LOG_FORMAT": "json",
        "PATH": str(Path(shutil.which("python3")).parent) + ":/usr/bin:/bin",
    }
    gunicorn = None
    try:
        pairs = migrate_and_create_users(env, args.users)
        fill_notifications(env, [u for u, _ in pairs], args.per_user)
        port = free_port()
        gunicorn = start_gunicorn(env, port, args.workers)
        tokens = [t for _, t in pairs]
        print(f"{args.users} users x {args.per_user} notifications, gunicorn {args.workers} gevent workers, "
              f"wrk -t2 -c10 -d{args.duration}s")
        print("| route | requests/s | p50 | p99 |\n|---|---|---|---|")
        for label, path in ROUTES:
            wrk(f"http://{HOST}:{port}{path}", tokens, 3)  # warm-up
            rps, p50, p99 = wrk(f"http://{HOST}:{port}{path}", tokens, args.duration)
            print(f"| {label} `{path}` | {rps:,.0f} | {p50} | {p99} |")
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            gunicorn.wait(timeout=30)
        drop_database(name)
        release_redis_db(redis_db)


if __name__ == "__main__":
    main()
