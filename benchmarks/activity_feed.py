"""Does a Redis cache in front of the activity feed (endpoint 14) pay?

    .venv/bin/python benchmarks/activity_feed.py [--users N] [--per-user N] [--requests N] [--keep]

1. creates a fresh PostgreSQL database (dropped at the end unless --keep),
   migrates it, and fills ``user_activity`` with ``users × per-user`` rows
   (default 20,000 × 100 = 2,000,000) of the 14 types spread over 90 days,
   plus one heavy miner with 20,000 rows; claims a free Redis logical
   database (the test suite's lock convention);
2. times, for random miners, the first page (limit 20) as the service
   computes it (query + serialisation) and as a Redis hit returns it (GET of
   the serialised page), then whole HTTP requests through the WSGI app:
   ``GET /api/activity`` (no cache), the same with ``?type=a,b``, the heavy
   miner's page 10 (cursor), and a prototype route that serves the page from
   Redis and fills it on a miss (all hits once warm) — the best case a cache
   could reach; also the live poll (``newer_than`` with nothing new) and
   the query plans;
3. prints p50/p95/p99 in milliseconds.

Settings: BENCH_PG_URL (server URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and BENCH_REDIS_URL (default redis://127.0.0.1:6379).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import sqlalchemy as sa
from support import in_process_app, run_on_stores


def _stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100)
    return f"p50 {statistics.median(ms):.3f} ms · p95 {q[94]:.3f} ms · p99 {q[98]:.3f} ms (n={len(ms)})"


def _fill(engine: sa.Engine, users: int, per_user: int, heavy: int) -> None:
    types = "ARRAY['share_submitted','block_found','badge_earned','level_up','streak_milestone','game_played'," \
            "'lottery_rank','coop_joined','coop_left','competition_registered','match_completed','lesson_completed'," \
            "'track_completed','settings_updated']"
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (user_id, display_name, password_hash, is_admin, created_at) "
            "SELECT 'bc1qbench' || lpad(g::text, 6, '0'), 'Bench ' || g, 'x', false, now() "
            "FROM generate_series(0, :n) g"), {"n": users})
        # Rows in time order so ids grow with created_at, as in production.
        conn.execute(sa.text(
            f"INSERT INTO user_activity (user_id, activity_type, title, description, data, link, created_at) "
            f"SELECT 'bc1qbench' || lpad((g % :users)::text, 6, '0'), ({types})[1 + (g::bigint * 7919) % 14], "
            f"'Activity ' || g, 'A description of about this length for the feed', "
            f"jsonb_build_object('n', g, 'personal_best', g % 5 = 0), '/activity', "
            f"now() - interval '90 days' + (g::float / :total) * interval '90 days' "
            f"FROM generate_series(0, :total - 1) g"), {"users": users, "total": users * per_user})
        conn.execute(sa.text(
            f"INSERT INTO user_activity (user_id, activity_type, title, description, data, link, created_at) "
            f"SELECT 'bc1qbench' || lpad(CAST(:heavy_id AS text), 6, '0'), ({types})[1 + g % 14], 'Heavy ' || g, '', "
            f"'{{}}'::jsonb, NULL, now() - interval '1 day' + (g::float / :n) * interval '1 day' "
            f"FROM generate_series(0, :n - 1) g"), {"heavy_id": users, "n": heavy})
        conn.execute(sa.text("ANALYZE user_activity"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=100)
    parser.add_argument("--heavy", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    run_on_stores(parser, "webapp_bench_activity", measure)


def measure(args, st) -> None:
    """Fill, then time (see the module docstring)."""
    from webapp.extensions import db, get_redis, redis_key
    from webapp.models import User
    from webapp.services import accounts, activity

    app = in_process_app(st, SERVER_NAME="localhost")
    with app.app_context():
        started = time.perf_counter()
        _fill(db.engine, args.users, args.per_user, args.heavy)
        total = db.session.scalar(sa.text("SELECT count(*) FROM user_activity"))
        size = db.session.scalar(sa.text("SELECT pg_size_pretty(pg_total_relation_size('user_activity'))"))
        print(f"filled user_activity: {total:,} rows, {size} with indexes, in {time.perf_counter() - started:.1f} s")

        rng = random.Random(5)
        sample = [f"bc1qbench{rng.randrange(args.users):06d}" for _ in range(args.requests)]
        redis = get_redis()

        def page_json(user_id: str, **kw) -> str:
            rows, _ = activity.list_activities(user_id, limit=20, **kw)
            return json.dumps({"activities": [r.to_dict() for r in rows]})

        for user_id in sample[:200]:  # warm PostgreSQL's and the OS's caches
            page_json(user_id)
        db.session.remove()

        timings = []
        for user_id in sample:
            t = time.perf_counter()
            page_json(user_id)
            timings.append(time.perf_counter() - t)
            db.session.remove()
        print(f"service, first page (query + serialise):   {_stats(timings)}")

        timings = []
        top = dict(db.session.execute(sa.text(
            "SELECT user_id, max(id) FROM user_activity WHERE user_id = ANY(:u) GROUP BY user_id"),
            {"u": list(set(sample))}).all())
        for user_id in sample:
            t = time.perf_counter()
            activity.newer_than(user_id, top[user_id])
            timings.append(time.perf_counter() - t)
            db.session.remove()
        print(f"service, live poll with nothing new:        {_stats(timings)}")

        for label, sql in (
            ("first page", "SELECT * FROM user_activity WHERE user_id = :u ORDER BY id DESC LIMIT 21"),
            ("two types", "SELECT * FROM user_activity WHERE user_id = :u AND activity_type IN "
                          "('block_found', 'share_submitted') ORDER BY id DESC LIMIT 21"),
        ):
            plan = db.session.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), {"u": sample[0]}).scalars()
            print(f"plan, {label}:\n    " + "\n    ".join(plan))
        db.session.remove()

        for user_id in sample:
            redis.set(redis_key("bench", "feed", user_id), page_json(user_id), ex=300)
            db.session.remove()
        timings = []
        for user_id in sample:
            t = time.perf_counter()
            redis.get(redis_key("bench", "feed", user_id))
            timings.append(time.perf_counter() - t)
        print(f"Redis GET of the cached page (a hit):       {_stats(timings)}")

        timings = []
        for user_id in sample[:500]:
            t = time.perf_counter()
            redis.delete(redis_key("bench", "feed", user_id))
            timings.append(time.perf_counter() - t)
        print(f"invalidation on write (DEL):                {_stats(timings)}")

        # Whole requests through the WSGI app, bearer-authenticated.
        @app.get("/bench/activity-cached")
        def cached_feed():
            from webapp.auth import api_caller

            user_id = api_caller().user_id
            key = redis_key("bench", "feed", user_id)
            hit = redis.get(key)
            if hit is None:
                hit = page_json(user_id)
                redis.set(key, hit, ex=300)
            return app.response_class(hit, mimetype="application/json")

        users = {u: db.session.get(User, u) for u in set(sample)}
        headers = {u: {"Authorization": f"Bearer {accounts.issue_token(users[u])[0]}"} for u in users}
        heavy = f"bc1qbench{args.users:06d}"
        heavy_headers = {"Authorization": f"Bearer {accounts.issue_token(db.session.get(User, heavy))[0]}"}
        db.session.remove()
        client = app.test_client()

    def run(label: str, path: str, per_user_headers=True) -> None:
        for user_id in sample[:200]:
            client.get(path, headers=headers[user_id] if per_user_headers else heavy_headers)
        timings = []
        for user_id in sample:
            t = time.perf_counter()
            resp = client.get(path, headers=headers[user_id] if per_user_headers else heavy_headers)
            timings.append(time.perf_counter() - t)
            assert resp.status_code == 200, resp.get_data()
        print(f"{label:<43} {_stats(timings)}")

    run("HTTP GET /api/activity (no cache):", "/api/activity")
    run("HTTP GET /api/activity?type=a,b:", "/api/activity?type=block_found,share_submitted")
    with app.app_context():
        cursor_url = "/api/activity?limit=20"
        for _ in range(9):
            cursor = client.get(cursor_url, headers=heavy_headers).get_json()["next_cursor"]
            cursor_url = f"/api/activity?limit=20&cursor={cursor}"
    run(f"HTTP heavy miner ({args.heavy:,} rows), page 10:", cursor_url, per_user_headers=False)
    run("HTTP prototype cached route (all hits):", "/bench/activity-cached")


if __name__ == "__main__":
    main()
