"""Push latency and memory per socket with the production server setup.

    .venv/bin/python benchmarks/push_latency.py [--sockets 1000] [--notifications 2000]
        [--rate 200] [--workers 2]

What it does, on loopback only, bounded in time (a few minutes at most):
1. creates a fresh PostgreSQL database (``bench_push_<random>`` on
   BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/postgres,
   dropped at the end) and claims a free Redis logical database (as the tests
   do; benchmarks/support.py), runs the migrations and inserts one user per
   socket;
2. starts gunicorn with gunicorn.conf.py (gevent workers, ``--workers``);
3. opens ``--sockets`` sockets as browser-like clients: asyncio (``support.WsClient``),
   each offering ``permessage-deflate; client_max_window_bits`` as browsers
   do, one user per socket, authenticated with ``?token=``;
4. measures the RSS of the gunicorn worker processes before the sockets,
   with them open and idle, and again after each socket received a message;
5. starts ANOTHER process that creates ``--notifications`` notifications
   for random users at ``--rate`` per second by calling
   ``services.notifications.notify`` directly, stamping ``data.t0`` with
   ``time.time()`` just before each call (so before the DB insert);
6. the clients record ``time.time() - t0`` on receipt: p50 / p99 / max, and
   how long after ``notify()`` returned (its duration is reported too).

``--deflate`` lets the server accept permessage-deflate (WS_PERMESSAGE_DEFLATE),
to compare the memory per socket.

``--engine-settings`` gives every user the notification engine's per-user
checks in the path of ``notify()`` (issue 11): quiet hours (a window that
does not cover the run, so pushes go out), ``max_per_hour`` (counted by
the e-mail and push jobs when they claim, not by ``notify()``) and e-mail on
for mining with an address (so a delivery row is written and its job
enqueued; no worker runs, the jobs stay queued).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from support import (
    HOST,
    ROOT,
    WsClient,
    free_port,
    migrate_and_create_users,
    raise_open_files_limit,
    rss_kib,
    start_gunicorn,
    stop_process,
    stores,
    worker_pids,
)


class Socket(WsClient):
    """A browser-like socket that records the latency of each benchmark
    notification: (its number, seconds since ``data.t0``)."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.latencies: list[tuple[int, float]] = []

    def on_message(self, message: dict, received_at: float) -> None:
        if message["type"] == "notification" and "t0" in (message["data"].get("data") or {}):
            number = int(message["data"]["title"].rsplit("#", 1)[1])
            self.latencies.append((number, received_at - message["data"]["data"]["t0"]))


NOTIFIER = r"""
import json, random, sys, time
from webapp import create_app
from webapp.services.notifications import notify
user_ids, count, rate, seed = json.loads(sys.argv[1])
random.seed(seed)
app = create_app()
with app.app_context():
    notify(user_ids[0], "mining", "personal_best", "warm-up")
    durations = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        user_id = random.choice(user_ids)
        t0 = time.time()
        notify(user_id, "mining", "personal_best", f"New best #{i}", data={"t0": t0})
        durations.append((time.time() - t0) * 1000)
    print(json.dumps({"seconds": time.perf_counter() - start, "durations_ms": durations}))
"""


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p99 / max of sorted values."""
    return {"p50": round(statistics.median(values), 2), "p99": round(values[int(len(values) * 0.99) - 1], 2),
            "max": round(values[-1], 2)}


async def run(args, env: dict, pairs: list[tuple[str, str]], master: subprocess.Popen, port: int) -> dict:
    deadline = time.monotonic() + 30
    while len(pids := worker_pids(master.pid)) < args.workers and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # Warm up every worker (imports, listener, templates) before the baseline.
    warm = []
    for user_id, token in pairs[:40]:
        sock = Socket(user_id)
        await sock.open(port, token)
        warm.append(sock)
    await asyncio.sleep(1)
    for sock in warm:
        sock.close()
    await asyncio.sleep(2)
    baseline = rss_kib(pids)

    sockets: list[Socket] = []
    started = time.perf_counter()
    batch = 50  # opening all at once would queue on the DB pool
    for i in range(0, len(pairs), batch):
        chunk = [Socket(user_id) for user_id, _ in pairs[i:i + batch]]
        await asyncio.gather(*(s.open(port, token) for s, (_, token) in zip(chunk, pairs[i:i + batch], strict=True)))
        sockets.extend(chunk)
    while sum(1 for s in sockets if s.messages) < len(sockets):  # the initial unread_count
        await asyncio.sleep(0.05)
    opened_in = time.perf_counter() - started
    await asyncio.sleep(2)
    idle_open = rss_kib(pids)

    notifier_env = dict(env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NOTIFIER,
        json.dumps([[u for u, _ in pairs], args.notifications, args.rate, 7]),
        cwd=str(ROOT), env=notifier_env, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=args.notifications / args.rate + 60)
    deadline = time.monotonic() + 10
    while sum(len(s.latencies) for s in sockets) < args.notifications and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(2)
    after_messages = rss_kib(pids)
    notifier = json.loads(out.decode().strip().splitlines()[-1])
    durations = notifier["durations_ms"]
    received = [(number, seconds * 1000) for s in sockets for number, seconds in s.latencies]
    latencies = sorted(ms for _, ms in received)
    # How long after notify() had returned (stored, committed, published) the client had it.
    after_return = sorted(ms - durations[number] for number, ms in received)
    for sock in sockets:
        sock.close()
    return {
        "sockets": len(sockets),
        "workers": len(pids),
        "negotiated_extensions": sorted({e for s in sockets for e in s.extensions}),
        "opened_in_s": round(opened_in, 2),
        "handshake_ms": percentiles(sorted(s.open_s * 1000 for s in sockets)),
        "tcp_connect_ms": percentiles(sorted(s.connected_s * 1000 for s in sockets)),
        "first_message_ms": percentiles(sorted(s.first_message_s * 1000 for s in sockets)),
        "rate_per_s": args.rate,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "notifications_sent": args.notifications,
        "notifications_received": len(latencies),
        "notifier_seconds": round(notifier["seconds"], 2),
        "notify_call_ms": percentiles(sorted(durations)),
        "latency_ms": percentiles(latencies),
        "after_notify_returned_ms": percentiles(after_return),
        "rss_kib": {"before": baseline, "open_idle": idle_open, "after_one_message_each": after_messages},
        "rss_per_idle_socket_kib": round((idle_open - baseline) / len(sockets), 1),
        "rss_per_socket_after_messages_kib": round((after_messages - baseline) / len(sockets), 1),
    }


def apply_engine_settings(user_ids: list[str], checks: bool = True) -> None:
    """Quiet hours away from now, an hourly cap and mining e-mail for every
    user; with ``checks=False`` only the e-mail (address and mining switch)."""
    from datetime import UTC, datetime, timedelta

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import User, UserSettings
    from webapp.services import preferences

    later = datetime.now(UTC) + timedelta(hours=6)
    quiet = {"start": later.strftime("%H:%M"), "end": (later + timedelta(hours=1)).strftime("%H:%M")}
    app = create_app()
    with app.app_context():
        prefs = preferences.default_notifications()
        if checks:
            prefs.update(quiet_hours=quiet, max_per_hour=100, timezone="Europe/Berlin")
        prefs["categories"]["mining"]["email"] = True
        db.session.execute(UserSettings.__table__.update().where(UserSettings.user_id.in_(user_ids))
                           .values(notifications=prefs))
        db.session.execute(User.__table__.update().where(User.user_id.in_(user_ids))
                           .values(email=User.user_id + "@bench.example"))
        db.session.commit()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="notifications per second")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--deflate", action="store_true",
                        help="let the server accept permessage-deflate (WS_PERMESSAGE_DEFLATE=1), for comparison")
    parser.add_argument("--engine-settings", action="store_true",
                        help="quiet hours, an hourly cap and mining e-mail for every user (the per-user checks)")
    parser.add_argument("--email-only", action="store_true",
                        help="mining e-mail with an address and nothing else (the pre-engine e-mail path, for comparison)")
    args = parser.parse_args()
    raise_open_files_limit()

    with stores("bench_push") as st:
        port = free_port()
        env = st.app_env(SECRET_KEY=f"bench-{st.token}", RATELIMIT_ENABLED="0",
                         PUBLIC_BASE_URL=f"http://{HOST}:{port}",
                         WS_PERMESSAGE_DEFLATE="1" if args.deflate else "0")
        master = None
        try:
            pairs = migrate_and_create_users(env, args.sockets)
            if args.engine_settings or args.email_only:
                apply_engine_settings([user_id for user_id, _ in pairs], checks=not args.email_only)
            master = start_gunicorn(env, port, args.workers)
            result = asyncio.run(run(args, env, pairs, master, port))
            print(json.dumps(result, indent=2))
        finally:
            stop_process(master)


if __name__ == "__main__":
    main()
