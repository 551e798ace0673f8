"""Soak: 1,000 open sockets, the shared day replayed at 20x through the
streams, 100 users reading and marking notifications, for 5 minutes, on the
production server setup.

    .venv/bin/python benchmarks/soak.py [--duration 300] [--sockets 1000] [--speed 20]
        [--http-users 100] [--http-pause 2] [--other-rate 5] [--workers 2]

Everything on loopback, bounded in time (``--duration`` + set-up + drain; a
watchdog ends the run after ``--duration`` + 900 s), and cleaned up even on
failure (own database and Redis logical database, every process it started):

1. a fresh PostgreSQL database (real migrations) with the 60 demo miners
   (webapp/demo/miners.json) and ``--sockets - 60 x --miner-sockets`` other
   users, bearer tokens for all;
2. gunicorn with gunicorn.conf.py (gevent, ``--workers``), one ``flask
   worker`` and one ``flask ingest`` (the real consumer group);
3. ``--sockets`` browser-like sockets (asyncio (``support.WsClient``), offering
   permessage-deflate as browsers do; benchmarks/support.py ``WsClient``):
   ``--miner-sockets`` (default 5, the per-user limit) for each demo miner,
   one for each other user;
4. for ``--duration`` seconds: ``flask replay <day> --shift-to-now --speed
   20`` publishes the day paced by its ``ts`` (the miners' personal bests,
   blocks and disconnects become notifications in the ingest process);
   another process creates notifications for random other users at
   ``--other-rate``/s with ``services.notifications.notify``; ``--http-users``
   users (the 60 miners first, then other users) loop over list (limit 20),
   unread-count, mark one unread read, and every fifth round read-all, with
   ``--http-pause`` s between rounds, over HTTP with keep-alive;
5. the RSS of the gunicorn workers (and of the ingest and RQ worker
   processes) every ``--sample`` s;
6. after the load: waits until the consumer group has nothing pending or
   unread, then up to ``--drain`` s until every socket has every stored
   notification of its user, and compares against the database.

Reports (JSON, then a summary): errors (HTTP non-2xx or failed requests,
sockets closed by the server, processes that died, dead-lettered entries,
ERROR lines in the server logs), lost notifications (stored for a socket's
user after the sockets opened but not received on that socket), duplicates,
and the RSS samples with the least-squares slope after ``--warmup`` s. Exits
1 when anything failed. Results: docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import (
    DAY_FILE,
    HOST,
    WsClient,
    free_port,
    migrate_and_create_users,
    raise_open_files_limit,
    rss_kib,
    start_gunicorn,
    start_process,
    stop_process,
    stores,
    worker_pids,
)


class Socket(WsClient):
    """A browser-like socket that keeps the ids of the notifications it got."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.ids: list[int] = []
        self.counts = 0

    def on_message(self, message: dict, received_at: float) -> None:
        if message.get("type") == "notification":
            self.ids.append(message["data"]["id"])
        elif message.get("type") == "unread_count":
            self.counts += 1


# Other users' notifications: a separate process, as another service would.
NOTIFIER = r"""
import json, random, sys, time
from webapp import create_app
from webapp.services.notifications import notify
user_ids, rate, seconds, seed = json.loads(sys.stdin.read())
random.seed(seed)
app = create_app()
sent = failed = 0
with app.app_context():
    start = time.monotonic()
    i = 0
    while True:
        due = start + i / rate
        if due - start >= seconds:
            break
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        try:
            notify(random.choice(user_ids), "social", "coop_member_joined", f"Soak notification #{i}",
                   "A miner joined your cooperative.")
            sent += 1
        except Exception as exc:
            failed += 1
            print(f"notify failed: {exc!r}", file=sys.stderr)
        i += 1
print(json.dumps({"sent": sent, "failed": failed}))
"""

# The HTTP users: one thread and one keep-alive connection each.
HTTP_USERS = r"""
import http.client, json, random, sys, threading, time
host, port, tokens, seconds, pause, seed = json.loads(sys.stdin.read())
end = time.monotonic() + seconds
lock = threading.Lock()
stats = {"requests": 0, "by_route": {}, "statuses": {}, "failures": [], "reconnects": 0, "rounds": 0}
latencies = {}

def record(route, status, ms):
    with lock:
        stats["requests"] += 1
        stats["by_route"][route] = stats["by_route"].get(route, 0) + 1
        stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
        latencies.setdefault(route, []).append(ms)

def user(token, rng):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    def call(route, method, path, body=None):
        nonlocal conn
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                if body is None:
                    conn.request(method, path, headers=headers)
                else:
                    conn.request(method, path, body=body, headers={**headers, "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A keep-alive connection the server closed while idle: reconnect once.
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                if attempt == 1:
                    with lock:
                        stats["reconnects"] += 1
                    continue
                with lock:
                    stats["failures"].append(f"{route}: {exc!r}")
                return None
            except Exception as exc:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                with lock:
                    stats["failures"].append(f"{route}: {exc!r}")
                return None
            record(route, resp.status, (time.perf_counter() - started) * 1000)
            if not 200 <= resp.status < 300:
                with lock:
                    stats["failures"].append(f"{route}: HTTP {resp.status} {data[:200]!r}")
                return None
            return json.loads(data)
    time.sleep(rng.uniform(0, pause))  # spread the rounds
    round_no = 0
    while time.monotonic() < end:
        page = call("list-20", "GET", "/api/notifications?limit=20")
        call("unread-count", "GET", "/api/notifications/unread-count")
        unread = [n["id"] for n in (page or {}).get("notifications", []) if not n["is_read"]]
        if unread:
            call("mark-read", "POST", f"/api/notifications/{rng.choice(unread)}/read", b"")
        round_no += 1
        if round_no % 5 == 0:
            call("read-all", "POST", "/api/notifications/read-all", b"{}")
        with lock:
            stats["rounds"] += 1
        time.sleep(pause)
    conn.close()

threads = [threading.Thread(target=user, args=(t, random.Random(seed + i))) for i, t in enumerate(tokens)]
started = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - started
def pct(values, p):
    values = sorted(values)
    return round(values[max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))], 1) if values else None
stats["seconds"] = round(elapsed, 1)
stats["requests_per_s"] = round(stats["requests"] / elapsed, 1)
stats["latency_ms"] = {r: {"p50": pct(v, 50), "p99": pct(v, 99), "max": round(max(v), 1)} for r, v in latencies.items()}
stats["failure_count"] = len(stats["failures"])
stats["failures"] = stats["failures"][:20]
print(json.dumps(stats))
"""


def prepare(env: dict, extra_users: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Migrate, register the 60 demo miners and ``extra_users`` others;
    returns ((miner id, token)…, (other id, token)…)."""
    others = migrate_and_create_users(env, extra_users, prefix="bc1qsoak")
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import User
    from webapp.services import accounts, demo

    app = create_app()
    with app.app_context():
        demo.create_miners()
        miner_ids = [m["user_id"] for m in json.loads(demo.MINERS_FILE.read_text())]
        miners = [(u, accounts.issue_token(db.session.get(User, u))[0]) for u in miner_ids]
        db.session.remove()
        db.engine.dispose()
    return miners, others


def slope_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) samples, KiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60 if var else 0.0


def consumer_backlog(redis, group: str) -> int:
    """Entries of the mining streams not yet read or not yet acknowledged by ``group``."""
    from webapp.services import mining

    backlog = 0
    for stream in mining.STREAMS:
        if not redis.exists(stream):
            continue
        for info in redis.xinfo_groups(stream):
            if info["name"] == group:
                backlog += int(info["pending"]) + int(info.get("lag") or 0)
    return backlog


def log_errors(log_dir: Path) -> list[str]:
    """ERROR/CRITICAL JSON lines and tracebacks in the processes' logs."""
    found = []
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or line.startswith("Traceback") \
                    or "[ERROR]" in line or "[CRITICAL]" in line:
                found.append(f"{path.stem}: {line[:300]}")
    return found


async def soak(args, env: dict, port: int, miners, others, procs: dict, log_dir: Path, redis) -> dict:
    master = procs["web"]
    deadline = time.monotonic() + 30
    while len(pids := worker_pids(master.pid)) < args.workers and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    result: dict = {"errors": {}}

    # 3. the sockets: each miner several, each other user one.
    plan = [(u, t) for u, t in miners for _ in range(args.miner_sockets)] + others
    plan = plan[:args.sockets]
    sockets: list[Socket] = []
    started = time.perf_counter()
    for i in range(0, len(plan), 50):  # opening all at once would queue on the DB pool
        chunk = [Socket(u) for u, _ in plan[i:i + 50]]
        await asyncio.gather(*(s.open(port, t) for s, (_, t) in zip(chunk, plan[i:i + 50], strict=True)))
        sockets.extend(chunk)
    wait_until = time.monotonic() + 30
    while sum(1 for s in sockets if s.messages) < len(sockets) and time.monotonic() < wait_until:
        await asyncio.sleep(0.05)  # the initial unread_count
    result["sockets"] = {"opened": len(sockets), "open_in_s": round(time.perf_counter() - started, 2),
                         "users": len({s.user_id for s in sockets}),
                         "miners": len({s.user_id for s in sockets if s.user_id in dict(miners)}),
                         "negotiated_extensions": sorted({e for s in sockets for e in s.extensions})}
    import sqlalchemy as sa

    engine = sa.create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        baseline = conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM notifications"))

    # 4. the load.
    load_started = time.monotonic()
    rss: list[dict] = []

    def sample() -> None:
        rss.append({"t": round(time.monotonic() - load_started, 1), "web_kib": rss_kib(worker_pids(master.pid)),
                    "ingest_kib": rss_kib([procs["ingest"].pid]), "worker_kib": rss_kib([procs["worker"].pid]),
                    "load_1m": round(os.getloadavg()[0], 2)})

    sample()
    procs["replay"] = start_process(
        [sys.executable, "-m", "flask", "replay", str(DAY_FILE), "--shift-to-now", "--speed", str(args.speed),
         "--quiet"], env, stdout=subprocess.PIPE, stderr=open(log_dir / "replay.log", "w"), text=True)
    # Parameters (tokens among them) go through stdin, not the command line.
    other_ids = [u for u, _ in others]
    procs["notifier"] = start_process(
        [sys.executable, "-c", NOTIFIER], env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(log_dir / "notifier.log", "w"), text=True)
    procs["notifier"].stdin.write(json.dumps([other_ids, args.other_rate, args.duration, 11]))
    procs["notifier"].stdin.close()
    procs["notifier"].stdin = None  # so that communicate() does not flush it
    http_tokens = [t for _, t in (miners + others)[:args.http_users]]
    procs["http"] = start_process(
        [sys.executable, "-c", HTTP_USERS], env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(log_dir / "http.log", "w"), text=True)
    procs["http"].stdin.write(json.dumps([HOST, port, http_tokens, args.duration, args.http_pause, 3]))
    procs["http"].stdin.close()
    procs["http"].stdin = None  # so that communicate() does not flush it

    next_sample = load_started + args.sample
    while time.monotonic() < load_started + args.duration:
        await asyncio.sleep(max(0.0, min(next_sample, load_started + args.duration) - time.monotonic()))
        if time.monotonic() >= next_sample:
            sample()
            next_sample += args.sample
            last = rss[-1]
            print(f"  t={last['t']:>5.0f}s web workers {last['web_kib'] / 1024:7.1f} MiB, "
                  f"notifications so far {sum(len(s.ids) for s in sockets)}, load {last['load_1m']}",
                  flush=True)
        for name in ("web", "ingest", "worker"):
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {procs[name].returncode} during the soak (logs: {log_dir})")

    # End of the load: stop the replay, collect the clients' figures.
    stop_process(procs["replay"], timeout=15)
    replay_out = procs["replay"].stdout.read().strip()
    notifier_out, _ = await asyncio.to_thread(procs["notifier"].communicate, timeout=120)
    http_out, _ = await asyncio.to_thread(procs["http"].communicate, timeout=120)
    result["replay"] = replay_out.splitlines()[-1] if replay_out else "(no output)"
    result["other_notifications"] = json.loads(notifier_out.strip().splitlines()[-1])
    result["http"] = json.loads(http_out.strip().splitlines()[-1])

    # 6. drain: the consumer group empty, then every socket has its notifications.
    drain_until = time.monotonic() + args.drain
    while consumer_backlog(redis, "webapp-ingest") and time.monotonic() < drain_until:
        await asyncio.sleep(0.2)
    result["ingest_backlog_at_end"] = consumer_backlog(redis, "webapp-ingest")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT id, user_id FROM notifications WHERE id > :b ORDER BY id"),
                              {"b": baseline}).all()
        by_category = dict(conn.execute(sa.text(
            "SELECT category || '/' || subtype, count(*) FROM notifications WHERE id > :b GROUP BY 1"),
            {"b": baseline}).all())
        events = conn.scalar(sa.text("SELECT count(*) FROM mining_events"))
    expected: dict[str, set[int]] = {}
    for nid, user_id in stored:
        expected.setdefault(user_id, set()).add(nid)

    def missing() -> int:
        return sum(len(expected.get(s.user_id, set()) - set(s.ids)) for s in sockets)

    while missing() and time.monotonic() < drain_until:
        await asyncio.sleep(0.2)
    sample()  # after the drain
    lost = missing()
    duplicates = sum(len(s.ids) - len(set(s.ids)) for s in sockets)
    unexpected = sum(len(set(s.ids) - expected.get(s.user_id, set())) for s in sockets)
    closed = [(s.user_id, s.close_code, s.close_reason) for s in sockets if s.closed.is_set()]
    pids_after = worker_pids(master.pid)

    result["load_seconds"] = round(args.duration, 1)
    result["mining_events_stored"] = events
    result["notifications_stored"] = {"total": len(stored), "by_category_subtype": by_category,
                                      "for_socket_users": sum(len(expected.get(u, ())) for u in
                                                              {s.user_id for s in sockets})}
    result["deliveries"] = {"expected": sum(len(expected.get(s.user_id, ())) for s in sockets),
                            "received": sum(len(s.ids) for s in sockets), "lost": lost,
                            "duplicates": duplicates, "not_in_db": unexpected,
                            "unread_count_messages": sum(s.counts for s in sockets)}
    warm = [(r["t"], r["web_kib"]) for r in rss if r["t"] >= args.warmup]
    result["rss"] = {
        "samples": rss,
        "warmup_s": args.warmup,
        "web_slope_kib_per_min_after_warmup": round(slope_per_minute(warm), 1),
        "web_first_after_warmup_kib": warm[0][1] if warm else None,
        "web_last_kib": rss[-1]["web_kib"],
        "web_max_kib": max(r["web_kib"] for r in rss),
    }
    dead_letters = redis.xlen("mining-dead-letter") if redis.exists("mining-dead-letter") else 0
    result["errors"] = {
        "http_failures": result["http"]["failure_count"],
        "http_non_2xx": sum(n for code, n in result["http"]["statuses"].items() if not code.startswith("2")),
        "sockets_closed": len(closed),
        "socket_close_examples": closed[:5],
        "gunicorn_workers_replaced": sorted(set(pids) ^ set(pids_after)),
        "notify_failures": result["other_notifications"]["failed"],
        "dead_lettered": dead_letters,
        "server_log_errors": log_errors(log_dir)[:20],
    }
    for sock in sockets:
        sock.close()
    engine.dispose()
    return result


def verdict(result: dict, tolerance: float) -> list[str]:
    """What failed (empty: the soak passed)."""
    errors = result["errors"]
    problems = [f"{k}: {v}" for k, v in errors.items()
                if k != "socket_close_examples" and v not in (0, [], None)]
    if result["deliveries"]["lost"]:
        problems.append(f"lost notifications: {result['deliveries']['lost']}")
    if result["deliveries"]["duplicates"]:
        problems.append(f"duplicate notifications: {result['deliveries']['duplicates']}")
    rss = result["rss"]
    if rss["web_first_after_warmup_kib"]:
        growth = rss["web_slope_kib_per_min_after_warmup"] * result["load_seconds"] / 60
        if growth > tolerance * rss["web_first_after_warmup_kib"]:
            problems.append(f"web RSS grows {rss['web_slope_kib_per_min_after_warmup']} KiB/min "
                            f"(> {tolerance:.0%} over the run)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (default 300)")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--miner-sockets", type=int, default=5, help="sockets per demo miner (limit: 5)")
    parser.add_argument("--speed", type=float, default=20, help="replay pace, times the day's own")
    parser.add_argument("--http-users", type=int, default=100)
    parser.add_argument("--http-pause", type=float, default=2.0, help="seconds between an HTTP user's rounds")
    parser.add_argument("--other-rate", type=float, default=5.0, help="notifications/s for the other users")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--sample", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of load before RSS must be flat")
    parser.add_argument("--drain", type=float, default=30, help="seconds allowed after the load to deliver")
    parser.add_argument("--rss-tolerance", type=float, default=0.02,
                        help="growth over the run, as a fraction of the RSS after warm-up, still called flat")
    args = parser.parse_args()
    if args.sockets < 60 * args.miner_sockets:
        parser.error("--sockets must cover 60 miners x --miner-sockets")
    if args.miner_sockets > 5:
        parser.error("--miner-sockets above the per-user limit of 5 would evict sockets")
    raise_open_files_limit()

    def stop(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(args.duration) + 900)  # watchdog: the whole run, set-up and drain included

    log_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    procs: dict[str, subprocess.Popen | None] = {}
    failed = True
    with stores("webapp_bench_soak") as st:
        port = free_port()
        env = st.app_env(SECRET_KEY=f"soak-{st.token}", PUBLIC_BASE_URL=f"http://{HOST}:{port}",
                         LOG_FORMAT="json", ACCESS_LOG="false", MAIL_OUTBOX_DIR=str(log_dir / "outbox"))
        try:
            import redis as redis_lib

            extra = args.sockets - 60 * args.miner_sockets
            miners, others = prepare(env, max(extra, args.http_users - 60))
            print(f"{len(miners)} demo miners, {len(others)} other users; gunicorn {args.workers} gevent workers, "
                  f"flask worker, flask ingest; {args.sockets} sockets; replay x{args.speed:g}; "
                  f"{args.http_users} HTTP users; {args.duration:g} s", flush=True)
            procs["web"] = start_gunicorn({**env, "GUNICORN_ACCESS_LOG": ""}, port, args.workers,
                                          stdout=open(log_dir / "web.log", "w"), stderr=subprocess.STDOUT)
            procs["worker"] = start_process([sys.executable, "-m", "flask", "worker"], env,
                                            stdout=open(log_dir / "worker.log", "w"), stderr=subprocess.STDOUT)
            procs["ingest"] = start_process([sys.executable, "-m", "flask", "ingest", "--consumer", "soak"], env,
                                            stdout=open(log_dir / "ingest.log", "w"), stderr=subprocess.STDOUT)
            redis = redis_lib.Redis.from_url(st.redis_url, decode_responses=True)
            result = asyncio.run(soak(args, env, port, miners, others, procs, log_dir, redis))
            result["command"] = " ".join(["benchmarks/soak.py"] + sys.argv[1:])
            problems = verdict(result, args.rss_tolerance)
            result["verdict"] = problems or "pass"
            print(json.dumps(result, indent=2))
            summarise(result)
            failed = bool(problems)
        finally:
            for name in ("http", "notifier", "replay", "ingest", "worker", "web"):
                stop_process(procs.get(name))
            signal.alarm(0)
            if failed:
                print(f"logs kept in {log_dir}")
            else:
                shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed else 0


def summarise(result: dict) -> None:
    """The figures for docs/PERFORMANCE.md."""
    http = result["http"]
    d = result["deliveries"]
    rss = result["rss"]
    print("\nsummary")
    print(f"  sockets: {result['sockets']['opened']} over {result['sockets']['users']} users "
          f"({result['sockets']['miners']} demo miners), extensions {result['sockets']['negotiated_extensions']}")
    print(f"  {result['replay']}; mining events stored {result['mining_events_stored']}")
    print(f"  notifications stored: {result['notifications_stored']['total']} "
          f"{result['notifications_stored']['by_category_subtype']}")
    print(f"  deliveries: expected {d['expected']}, received {d['received']}, lost {d['lost']}, "
          f"duplicates {d['duplicates']}")
    print(f"  HTTP: {http['requests']} requests, {http['requests_per_s']}/s, statuses {http['statuses']}, "
          f"failures {http['failure_count']}, latency {http['latency_ms']}")
    print("  web RSS (MiB): " + ", ".join(f"{r['t']:.0f}s {r['web_kib'] / 1024:.1f}" for r in rss["samples"]))
    print(f"  slope after {rss['warmup_s']:.0f} s warm-up: {rss['web_slope_kib_per_min_after_warmup']} KiB/min")
    print(f"  errors: {result['errors']}")
    print(f"  verdict: {result['verdict']}")


if __name__ == "__main__":
    sys.exit(main())
