"""Shared set-up for the benchmarks: a fresh PostgreSQL database, a claimed
Redis logical database (the test suite's lock convention, so a concurrent
test run is safe), users with tokens, gunicorn with the production
configuration or the app in this process (``in_process_app``), the command
line of a benchmark that measures on such stores (``run_on_stores``),
process clean-up, RSS, and the browser-like socket client.

Everything runs on loopback; ``stores()`` and ``stop_process()`` clean up
even when a benchmark fails.

Settings: BENCH_PG_URL (server URL, default postgresql://postgres@127.0.0.1:5432/postgres;
BENCH_DATABASE_URL is read too, the older name) and BENCH_REDIS_URL (default
redis://127.0.0.1:6379).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = (os.environ.get("BENCH_PG_URL") or os.environ.get("BENCH_DATABASE_URL")
          or "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
HOST = "127.0.0.1"
DAY_FILE = ROOT / "webapp" / "demo" / "mining-events-24h.jsonl.gz"


def with_db(url: str, name: str) -> str:
    """``url`` with its database (path) replaced by ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def psycopg_url(url: str) -> str:
    """A ``postgresql://`` URL with SQLAlchemy's psycopg 3 driver."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _admin():
    import sqlalchemy as sa

    return sa.create_engine(psycopg_url(with_db(PG_URL, "postgres")), isolation_level="AUTOCOMMIT")


def create_database(name: str) -> str:
    """Create database ``name``; returns its URL."""
    import sqlalchemy as sa

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return with_db(PG_URL, name)


def drop_database(name: str) -> None:
    import sqlalchemy as sa

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def claim_redis_db(token: str) -> int:
    """A free Redis logical database 1..15, locked for this run."""
    import redis

    control = redis.Redis.from_url(REDIS_URL, db=0)
    for _ in range(120):
        for index in range(15, 0, -1):
            if control.set(f"webapp-tests:db:{index}", token, nx=True, ex=3600):
                return index
        time.sleep(1)
    raise RuntimeError("no free Redis logical database")


def release_redis_db(index: int) -> None:
    """Empty the claimed logical database and release the claim."""
    import redis

    redis.Redis.from_url(with_db(REDIS_URL, str(index))).flushdb()
    redis.Redis.from_url(REDIS_URL, db=0).delete(f"webapp-tests:db:{index}")


@dataclass
class Stores:
    """A fresh database and a claimed, empty Redis logical database."""

    token: str  # random, names the run
    database: str  # PostgreSQL database name
    database_url: str  # postgresql://…
    redis_db: int
    redis_url: str
    namespace: str  # REDIS_NAMESPACE for the app

    def app_env(self, **extra: str) -> dict[str, str]:
        """The settings for the app's processes, over this process's environment."""
        return {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
                "REDIS_NAMESPACE": self.namespace, "EMBEDDED_SCHEDULER": "0", "FLASK_APP": "wsgi", **extra}


@contextlib.contextmanager
def stores(prefix: str, *, keep: bool = False) -> Iterator[Stores]:
    """Create database ``<prefix>_<random>`` and claim a Redis logical
    database (flushed first); on exit drop the database (unless ``keep``, then
    print its name) and flush and release the Redis one, even on failure."""
    import redis

    token = secrets.token_hex(4)
    name = f"{prefix}_{token}"
    database_url = create_database(name)
    try:
        redis_db = claim_redis_db(f"bench-{token}")
    except BaseException:
        drop_database(name)
        raise
    redis_url = with_db(REDIS_URL, str(redis_db))
    redis.Redis.from_url(redis_url).flushdb()
    try:
        yield Stores(token, name, database_url, redis_db, redis_url, f"bench-{token}")
    finally:
        release_redis_db(redis_db)
        if keep:
            print(f"kept database {name}")
        else:
            drop_database(name)


def run_on_stores(parser: argparse.ArgumentParser, prefix: str,
                  measure: Callable[[argparse.Namespace, Stores], None]) -> None:
    """A benchmark's ``main``: parse the command line (``parser`` with
    ``--keep`` added), then ``measure(args, stores)`` on fresh stores
    (``stores(prefix)``; the database is dropped afterwards unless ``--keep``)."""
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    with stores(prefix, keep=args.keep) as st:
        measure(args, st)


def in_process_app(st: Stores, **config: Any):
    """The app in this process on ``st``'s database and Redis, migrated, for
    a benchmark that times the services or whole requests through the WSGI
    app (``app.test_client()``) without gunicorn: not TESTING, no rate limits,
    no embedded scheduler; ``config`` adds or overrides settings (e.g.
    ``SERVER_NAME``)."""
    from flask_migrate import upgrade

    from webapp import create_app

    app = create_app({
        "TESTING": False, "SECRET_KEY": "bench", "EMBEDDED_SCHEDULER": False, "RATELIMIT_ENABLED": False,
        "SQLALCHEMY_DATABASE_URI": psycopg_url(st.database_url),
        "REDIS_URL": st.redis_url, "REDIS_NAMESPACE": st.namespace, "RATELIMIT_STORAGE_URI": st.redis_url,
        **config,
    })
    with app.app_context():
        upgrade()
    return app


def migrate_and_create_users(env: dict, count: int, prefix: str = "bc1qbench") -> list[tuple[str, str]]:
    """Migrate the database in ``env`` and insert ``count`` users with
    default settings; returns ``(user_id, bearer token)`` pairs. Sets
    ``env`` in this process's environment (the app reads it)."""
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
        users = [User(user_id=f"{prefix}{i:05d}", display_name=f"Bench{i}", password_hash=password_hash)
                 for i in range(count)]
        db.session.add_all(users)
        db.session.add_all(UserSettings(user_id=u.user_id, privacy=dict(preferences.DEFAULT_PRIVACY),
                                        notifications=preferences.default_notifications()) for u in users)
        db.session.commit()
        pairs = [(u.user_id, accounts.issue_token(u)[0]) for u in users]
        db.engine.dispose()
    return pairs


def start_gunicorn(env: dict, port: int, workers: int, *, app: str = "wsgi:app",
                   extra_args: tuple[str, ...] = (), cwd: Path = ROOT, start_timeout: float = 30,
                   **popen) -> subprocess.Popen:
    """gunicorn with gunicorn.conf.py serving ``app`` on ``port`` in its own
    process group; returns once it accepts. ``extra_args``: more gunicorn
    options (``--pythonpath benchmarks``); ``cwd``: the source tree to serve
    (another version's, for a before/after run); ``popen``: e.g.
    ``stdout``/``stderr`` files. Stop it with ``stop_process``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *extra_args, app], cwd=cwd,
        env=dict(env, BIND=f"{HOST}:{port}", WEB_CONCURRENCY=str(workers), LOG_LEVEL="warning"),
        start_new_session=True, **popen,
    )
    deadline = time.monotonic() + start_timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.1)


def start_process(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    """A helper process (``flask worker``, ``flask ingest`` …) in its own
    process group, so that ``stop_process`` ends it with its children."""
    return subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True, **kwargs)


def stop_process(proc: subprocess.Popen | None, timeout: float = 30) -> int | None:
    """SIGTERM the process group of ``proc``, SIGKILL after ``timeout`` s;
    returns the exit code (None when there was no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def worker_pids(master: int) -> list[int]:
    """The child processes (gunicorn workers) of ``master``."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def rss_kib(pids: list[int]) -> int:
    """Resident memory (VmRSS) of the given processes, KiB; a process that
    is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (a thousand sockets and more)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause this process's cyclic garbage collector for a measured span.

    A client that records tens of thousands of receipt times holds enough
    objects for a full collection to take ~100 ms; the frames that arrive
    meanwhile are read late and counted as the server's latency (seen in
    benchmarks/chat.py: most runs had one such 100-170 ms stall). Everything
    alive is frozen first, so the span only adds its own objects; reference
    counting still frees them."""
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by nearest rank."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# ---- the browser-like socket client (asyncio, RFC 6455 frames) ----------------------

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (RFC 6455 §5.2-5.3: a client masks every frame)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    key = (mask * (size // 4 + 1))[:size]
    return header + mask + (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


class WsClient:
    """One ``/ws?token=`` socket opened as a browser does: it offers
    ``permessage-deflate; client_max_window_bits`` and answers pings.

    ``open(port, token)`` returns after the handshake (``open_s``,
    ``connected_s`` are its durations, ``extensions`` what the server
    accepted); a task then reads messages, counts them (``messages``,
    ``first_message_s``) and passes each parsed JSON message to
    ``on_message(message, received_at)`` (``time.time()``), which subclasses
    override. ``close_code`` is set when the server closes (None while open);
    ``closed`` is set when the reader ends for any reason.

    The frames are read here (RFC 6455 §5: unmasked server frames,
    fragments, compressed messages of permessage-deflate, RFC 7692), not by
    wsproto: at 1,000 messages/s to 20 members wsproto's events cost this
    client 0.38 ms of CPU per message on the same two cores as the server
    (docs/PERFORMANCE.md), CPU the server then lacked.
    """

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.messages = 0
        self.extensions: list = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.task: asyncio.Task | None = None

    async def open(self, port: int, token: str) -> None:
        import base64
        import hashlib

        self.started = started = time.perf_counter()
        self.reader, self.writer = await asyncio.open_connection(HOST, port)
        self.connected_s = time.perf_counter() - started
        key = base64.b64encode(os.urandom(16))
        self.writer.write(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")  # what follows stays in the reader
        except asyncio.IncompleteReadError:
            raise RuntimeError("connection closed during the handshake") from None
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines if line)}
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        if status.split(" ")[1:2] != ["101"] or headers.get("sec-websocket-accept") != accept:
            raise RuntimeError(f"handshake refused: {status}")
        self.open_s = time.perf_counter() - started
        offered = headers.get("sec-websocket-extensions", "")
        self.extensions = [e.split(";")[0].strip() for e in offered.split(",") if e.strip()]
        # Context takeover unless the server said otherwise: one inflater for the socket's life.
        self._inflater = zlib.decompressobj(-15) if "permessage-deflate" in self.extensions else None
        self.task = asyncio.create_task(self.read_loop())

    def on_message(self, message: dict[str, Any], received_at: float) -> None:
        """Called for each message; the base class only counts them."""

    def on_text(self, text: str, received_at: float) -> None:
        """Called for each text frame: parses it for ``on_message``. A
        subclass that only records may keep the text and parse it after the
        run, so that the client's CPU per receipt stays small."""
        self.on_message(json.loads(text), received_at)

    def send_text(self, text: str) -> None:
        """One text message to the server."""
        self.writer.write(masked_frame(0x1, text.encode()))

    def _message(self, opcode: int, payload: bytes, received_at: float) -> None:
        if opcode == 0x1:
            if not self.messages:
                self.first_message_s = time.perf_counter() - self.started
            self.messages += 1
            self.on_text(payload.decode(), received_at)

    async def read_loop(self) -> None:
        buffer = bytearray()
        parts: list[bytes] = []  # a fragmented message's payloads
        first: tuple[int, bool] = (0, False)  # its opcode, compressed
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    if self.close_code is None:
                        self.close_code = 1006  # abnormal closure: no close frame
                    break
                buffer += data
                now = time.time()
                at = 0
                while len(buffer) - at >= 2:
                    b0, b1 = buffer[at], buffer[at + 1]
                    size, start = b1 & 0x7F, at + 2
                    if size == 126:
                        if len(buffer) - at < 4:
                            break
                        size, start = int.from_bytes(buffer[at + 2:at + 4], "big"), at + 4
                    elif size == 127:
                        if len(buffer) - at < 10:
                            break
                        size, start = int.from_bytes(buffer[at + 2:at + 10], "big"), at + 10
                    if b1 & 0x80:
                        raise RuntimeError("the server masked a frame (RFC 6455 §5.1)")
                    if len(buffer) < start + size:
                        break
                    payload, at = bytes(buffer[start:start + size]), start + size
                    opcode = b0 & 0x0F
                    if opcode == 0x9:  # ping
                        self.writer.write(masked_frame(0xA, payload))
                    elif opcode == 0x8:  # close
                        self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                        self.close_reason = payload[2:].decode(errors="replace")
                        return
                    elif opcode in (0x0, 0x1, 0x2):
                        if opcode:
                            first, parts = (opcode, bool(b0 & 0x40)), []
                        parts.append(payload)
                        if b0 & 0x80:  # FIN
                            whole = b"".join(parts)
                            if first[1]:
                                whole = self._inflater.decompress(whole + b"\x00\x00\xff\xff")
                            self._message(first[0], whole, now)
                del buffer[:at]
        except (ConnectionError, OSError) as exc:
            self.close_code, self.close_reason = 1006, repr(exc)
        finally:
            self.closed.set()

    def close(self) -> None:
        """Drop the connection (the benchmark is over)."""
        if self.task is not None:
            self.task.cancel()
        self.writer.close()
