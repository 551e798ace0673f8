"""Shared set-up for the benchmarks: a fresh PostgreSQL database, a claimed
Redis logical database (the test suite's lock convention, so a concurrent
test run is safe), users with tokens, and gunicorn with the production
configuration.

Settings: BENCH_PG_URL (server URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and BENCH_REDIS_URL (default redis://127.0.0.1:6379).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
HOST = "127.0.0.1"


def with_db(url: str, name: str) -> str:
    """``url`` with its database (path) replaced by ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _admin():
    import sqlalchemy as sa

    url = with_db(PG_URL, "postgres").replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


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
    import redis

    redis.Redis.from_url(with_db(REDIS_URL, str(index))).flushdb()
    redis.Redis.from_url(REDIS_URL, db=0).delete(f"webapp-tests:db:{index}")


def migrate_and_create_users(env: dict, count: int, prefix: str = "bc1qbench") -> list[tuple[str, str]]:
    """Migrate the database in ``env`` and insert ``count`` users with
    default settings; returns ``(user_id, bearer token)`` pairs."""
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


def start_gunicorn(env: dict, port: int, workers: int) -> subprocess.Popen:
    """gunicorn with gunicorn.conf.py on ``port``; returns once it accepts."""
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


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the given processes, KiB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by nearest rank."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
