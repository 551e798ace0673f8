"""Push latency and memory per socket with the production server setup.

    .venv/bin/python benchmarks/push_latency.py [--sockets 1000] [--notifications 2000]
        [--rate 200] [--workers 2]

What it does, on loopback only, bounded in time (a few minutes at most):
1. creates a fresh PostgreSQL database (``bench_push_<random>`` on
   BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres,
   dropped at the end) and claims a free Redis logical database (as the tests
   do), runs the migrations and inserts one user per socket;
2. starts gunicorn with gunicorn.conf.py (gevent workers, ``--workers``);
3. opens ``--sockets`` sockets as browser-like clients: asyncio + wsproto,
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
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
HOST = "127.0.0.1"


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


# ---- setup ------------------------------------------------------------------------


def create_database(name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(_with_db(PG_URL, "postgres").replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return _with_db(PG_URL, name)


def drop_database(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(_with_db(PG_URL, "postgres").replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def claim_redis_db(run_id: str) -> int:
    import redis

    control = redis.Redis.from_url(REDIS_URL, db=0)
    for _ in range(120):
        for index in range(1, 16):
            if control.set(f"webapp-tests:db:{index}", run_id, nx=True, ex=3600):
                return index
        time.sleep(1)
    raise RuntimeError("no free Redis logical database")


def prepare(env: dict, sockets: int) -> list[tuple[str, str]]:
    """Migrate, insert one user per socket; returns (user_id, token) pairs."""
    os.environ.update(env)
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import User, UserSettings
    from webapp.services import accounts, preferences

    app = create_app()
    with app.app_context():
        upgrade()
        password_hash = accounts._hash_password("benchmark-password")
        users = [User(user_id=f"bc1qbench{i:05d}", display_name=f"Bench{i}", password_hash=password_hash)
                 for i in range(sockets)]
        db.session.add_all(users)
        db.session.add_all(UserSettings(user_id=u.user_id, privacy=dict(preferences.DEFAULT_PRIVACY),
                                        notifications=preferences.default_notifications()) for u in users)
        db.session.commit()
        pairs = [(u.user_id, accounts.issue_token(u)[0]) for u in users]
        db.engine.dispose()
    return pairs


def start_gunicorn(env: dict, port: int, workers: int) -> subprocess.Popen:
    import socket

    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
        env=dict(env, BIND=f"{HOST}:{port}", WEB_CONCURRENCY=str(workers), LOG_LEVEL="warning"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# ---- browser-like clients (asyncio + wsproto, offering permessage-deflate) -------------


class Socket:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.messages = 0
        self.latencies: list[float] = []
        self.extensions: list = []
        self.closed = asyncio.Event()

    async def open(self, port: int, token: str) -> None:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, Request
        from wsproto.extensions import PerMessageDeflate

        self.started = started = time.perf_counter()
        self.reader, self.writer = await asyncio.open_connection(HOST, port)
        self.connected_s = time.perf_counter() - started
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.writer.write(self.ws.send(Request(host=f"{HOST}:{port}", target=f"/ws?token={token}",
                                               extensions=[PerMessageDeflate()])))
        while True:
            self.ws.receive_data(await self.reader.read(65536))
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    self.open_s = time.perf_counter() - started
                    self.extensions = [e.name for e in event.extensions]
                    self.task = asyncio.create_task(self.read_loop())
                    return
                raise RuntimeError(f"handshake refused: {event}")

    async def read_loop(self) -> None:
        from wsproto.events import CloseConnection, Ping, TextMessage

        try:
            while True:
                # Events first: the handshake's read may already hold the first message.
                for event in self.ws.events():
                    if isinstance(event, TextMessage):
                        now = time.time()
                        if not self.messages:
                            self.first_message_s = time.perf_counter() - self.started
                        self.messages += 1
                        message = json.loads(event.data)
                        if message["type"] == "notification" and "t0" in (message["data"].get("data") or {}):
                            number = int(message["data"]["title"].rsplit("#", 1)[1])
                            self.latencies.append((number, now - message["data"]["data"]["t0"]))
                    elif isinstance(event, Ping):
                        self.writer.write(self.ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        return
                data = await self.reader.read(65536)
                if not data:
                    break
                self.ws.receive_data(data)
        finally:
            self.closed.set()


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
        sock.writer.close()
    await asyncio.sleep(2)
    baseline = rss_kib(pids)

    sockets: list[Socket] = []
    started = time.perf_counter()
    batch = 50  # opening all at once would queue on the DB pool
    for i in range(0, len(pairs), batch):
        chunk = [Socket(user_id) for user_id, _ in pairs[i:i + batch]]
        await asyncio.gather(*(s.open(port, token) for s, (_, token) in zip(chunk, pairs[i:i + batch])))
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
        sock.writer.close()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="notifications per second")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--deflate", action="store_true",
                        help="let the server accept permessage-deflate (WS_PERMESSAGE_DEFLATE=1), for comparison")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    run_id = secrets.token_hex(4)
    name = f"bench_push_{run_id}"
    database_url = create_database(name)
    redis_db = claim_redis_db(run_id)
    import redis

    redis_url = _with_db(REDIS_URL, str(redis_db))
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, REDIS_NAMESPACE=f"bench-{run_id}",
               SECRET_KEY=f"bench-{run_id}", EMBEDDED_SCHEDULER="0", RATELIMIT_ENABLED="0",
               PUBLIC_BASE_URL=f"http://{HOST}:{port}", WS_PERMESSAGE_DEFLATE="1" if args.deflate else "0")
    master = None
    try:
        pairs = prepare(env, args.sockets)
        master = start_gunicorn(env, port, args.workers)
        result = asyncio.run(run(args, env, pairs, master, port))
        print(json.dumps(result, indent=2))
    finally:
        if master is not None:
            os.killpg(master.pid, signal.SIGTERM)
            try:
                master.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(master.pid, signal.SIGKILL)
        drop_database(name)
        redis.Redis.from_url(redis_url).flushdb()
        redis.Redis.from_url(REDIS_URL, db=0).delete(f"webapp-tests:db:{redis_db}")


if __name__ == "__main__":
    main()
