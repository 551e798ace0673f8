"""JSON API throughput: unread-count and list-20 at concurrency 10, with wrk.

    .venv/bin/python benchmarks/api.py [--users 100] [--per-user 500] [--duration 15]
    .venv/bin/python benchmarks/api.py --profile 2000    # cProfile in-process instead

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
import shutil
import subprocess
import tempfile
from pathlib import Path

from support import HOST, free_port, migrate_and_create_users, start_gunicorn, stop_process, stores

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


def profile(tokens: list[str], requests: int, top: int) -> None:
    """cProfile ``requests`` requests per route through the WSGI app in this
    process (Flask's test client: the whole app, no server); prints the time
    per request and the ``top`` functions by cumulative and by own time."""
    import cProfile
    import io
    import pstats
    import time

    from webapp import create_app

    app = create_app()
    client = app.test_client()
    for label, path in ROUTES:
        headers = [{"Authorization": f"Bearer {t}"} for t in tokens]
        for h in headers[:50]:  # warm: imports, pools, caches
            client.get(path, headers=h)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for i in range(requests):
            response = client.get(path, headers=headers[i % len(headers)])
            assert response.status_code == 200, response.get_data()
        profiler.disable()
        per_request = (time.perf_counter() - started) / requests * 1000
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        print(f"\n== profile {label}: {requests} requests in-process, {per_request:.2f} ms each under cProfile")
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=500)
    parser.add_argument("--duration", type=int, default=15, help="seconds per route")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of wrk: cProfile N requests per route in this process")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile listing")
    args = parser.parse_args()
    if not args.profile and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    with stores("webapp_bench_api") as st:
        env = st.app_env(SECRET_KEY="benchmark", RATELIMIT_ENABLED="false", ACCESS_LOG="false", LOG_FORMAT="json")
        gunicorn = None
        try:
            pairs = migrate_and_create_users(env, args.users)
            fill_notifications(env, [u for u, _ in pairs], args.per_user)
            if args.profile:
                profile([t for _, t in pairs], args.profile, args.top)
                return
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
            stop_process(gunicorn)

if __name__ == "__main__":
    main()
