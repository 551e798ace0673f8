"""The test kit: users, coops, logins, job runs and live servers, built the
way the product builds them (through ``webapp.services``, the login form,
a real RQ worker, a real HTTP server), as CTFd's ``gen_user`` and
``login_as_user``.

Each function needs an app context (the ``app`` fixture gives one), except
``LiveServer`` and ``free_port``. The fixtures in ``conftest.py`` hand these
out; modules that run outside a fixture (module-scoped setup, subprocesses)
import them from here.
"""
from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from rq import Queue
from werkzeug.serving import make_server

from webapp.extensions import db
from webapp.models import Cooperative, User
from webapp.services import accounts, coops

PASSWORD = "correct-horse-1"

_counter = {"n": 0}


# ---- users and credentials ----------------------------------------------------------------


def make_user(user_id: str | None = None, *, password: str = PASSWORD, **fields: Any) -> User:
    """Register a miner through ``accounts.register``.

    ``user_id`` defaults to a unique ``bc1qtestminer…`` address and
    ``display_name`` to ``Miner<n>``; other ``fields`` (``email``,
    ``country_code``, ``is_admin``, ...) go to the service as given.
    """
    _counter["n"] += 1
    user_id = user_id or f"bc1qtestminer{_counter['n']:04d}{secrets.token_hex(3)}"
    fields.setdefault("display_name", f"Miner{_counter['n']}")
    return accounts.register(user_id=user_id, password=password, **fields)


def bearer(user: User) -> dict[str, str]:
    """The ``Authorization`` header of a fresh API token for ``user``."""
    token, _ = accounts.issue_token(user)
    return {"Authorization": f"Bearer {token}"}


def token_of(user: User) -> str:
    """A fresh API token for ``user`` (for ``/ws?token=``)."""
    return bearer(user)["Authorization"].split(" ", 1)[1]


# ---- coops --------------------------------------------------------------------------------


def make_coop(admin: User | None = None, *, members: int | Sequence[User] = 0, name: str = "Shelf Miners",
              description: str = "Bitaxes on shelves") -> tuple[Cooperative, User, list[User]]:
    """A coop founded by ``admin`` (a new user if None) through
    ``coops.create``, then joined through ``coops.join`` by ``members``: that
    many new users, or the users given.

    Returns ``(coop, admin, members)``, the coop freshly loaded (its
    ``member_count`` counts the joins).
    """
    admin = admin or make_user()
    coop = coops.create(admin, name=name, description=description)
    joined = [make_user() for _ in range(members)] if isinstance(members, int) else list(members)
    for user in joined:
        coops.join(user, invite_code=coop.invite_code)
    return db.session.get(Cooperative, coop.id, populate_existing=True), admin, joined


# ---- page logins --------------------------------------------------------------------------


class AuthActions:
    """Drive a browser-like test client through the real login form."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        """The CSRF token of the page at ``path`` (its ``csrf-token`` meta tag)."""
        page = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, user_id: str, password: str = PASSWORD, *, remember: bool = False):
        """POST the login form; the response (302 on success)."""
        data = {"user_id": user_id, "password": password, "csrf_token": self.csrf_token("/login")}
        if remember:
            data["remember"] = "1"
        return self.client.post("/login", data=data)


def login_as(client: FlaskClient, user: User, *, password: str = PASSWORD, csrf_from: str = "/settings",
             remember: bool = False) -> dict[str, str]:
    """Log ``client`` in as ``user`` through the login form (failing the test
    if the form refuses) and return the headers of an htmx request from the
    page at ``csrf_from``: ``{"HX-Request": "true", "X-CSRFToken": ...}``."""
    auth = AuthActions(client)
    resp = auth.login(user.user_id, password, remember=remember)
    assert resp.status_code == 302, f"login of {user.user_id} refused: {resp.status_code}"
    return {"HX-Request": "true", "X-CSRFToken": auth.csrf_token(csrf_from)}


# ---- jobs ---------------------------------------------------------------------------------


def run_jobs(app: Flask, queue: str = "default", *, scheduler: bool = False) -> Queue:
    """Run the jobs of ``queue`` to empty with the production worker class
    (``jobs.worker.AppWorker``) in this process; with ``scheduler``, due
    scheduled jobs (e-mail retries) are moved in and run too. Returns the queue.

    The worker runs in an app context of its own, so its jobs use (and
    release) their own database session, as in ``flask worker``; the
    caller's objects stay attached to the caller's session, expired so that
    they read what the jobs committed."""
    from jobs.worker import AppWorker

    raw = app.extensions["redis_raw"]
    rq_queue = Queue(queue, connection=raw)
    with app.app_context():
        AppWorker([rq_queue], connection=raw).work(burst=True, with_scheduler=scheduler)
    if has_app_context():
        db.session.expire_all()
    return rq_queue


# ---- waiting ------------------------------------------------------------------------------


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "the condition",
             log: Path | None = None, interval: float = 0.02):
    """Poll ``condition`` until truthy and return its value; fail after
    ``timeout`` seconds, naming ``what`` and quoting the end of ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(interval)


# ---- servers ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``app`` served by werkzeug (threaded) on ``127.0.0.1:<port>``: its
    ``url``/``origin`` and ``ws_url()``; ``start()`` returns it, ``stop()``
    shuts it down."""

    def __init__(self, app: Flask, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = self.origin = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def ws_url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()


def serve_own_origin(make_app, **overrides: Any) -> LiveServer:
    """A second app on the same database and Redis whose origin (and
    ``PUBLIC_BASE_URL``) is its own ``http://127.0.0.1:<port>``, served and
    started, with errors rendered as in production; ``overrides`` go to its config."""
    port = free_port()
    app = make_app(**{"SERVER_NAME": None, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "TESTING": False,
                      "PROPAGATE_EXCEPTIONS": False, "EMBEDDED_SCHEDULER": False, **overrides})
    return LiveServer(app, port).start()


class LateCommit:
    """A writer that takes its ids now and commits later, as an ingest batch
    or a broadcast fan-out does: ``work()`` runs in a thread with its own app
    context and session; ``start()`` returns once it has run (its result in
    ``.result``), and the transaction stays open until ``commit()``."""

    def __init__(self, app: Flask, work: Callable[[], Any]) -> None:
        self.app, self.work, self.result = app, work, None
        self._ran, self._release, self._committed = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.app.app_context():
            self.result = self.work()
            self._ran.set()
            self._release.wait(10)
            db.session.commit()
            self._committed.set()

    def start(self) -> LateCommit:
        self._thread.start()
        assert self._ran.wait(10), "the late writer did not run"
        return self

    def commit(self) -> None:
        self._release.set()
        assert self._committed.wait(10), "the late writer did not commit"
        self._thread.join()


@contextmanager
def sql_statements() -> Iterator[list[str]]:
    """The SQL statements run on the app's engine inside the block, in
    order (SQLAlchemy's ``before_cursor_execute``, as benchmarks/pages.py
    and benchmarks/notify_cost.py count them)."""
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):
        seen.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


@contextmanager
def wire_trace(path: Path) -> Iterator[list[str]]:
    """What the app's connections send PostgreSQL inside the block, as
    libpq traces it (``PQtrace``: one line per protocol message); the list
    is filled when the block ends: each message's type, with its text for a
    simple query, e.g. ``"Query BEGIN"``, ``"Parse"``, ``"Sync"``. One round
    trip ends in each ``Sync`` or ``Query``. Every connection is traced
    from its checkout to its checkin; ``path`` receives the raw trace."""
    import os

    sent: list[str] = []
    out = open(path, "a")

    def checkout(dbapi_connection, record, proxy) -> None:
        dbapi_connection.pgconn.trace(os.dup(out.fileno()))  # psycopg closes its copy at untrace

    def checkin(dbapi_connection, record) -> None:
        dbapi_connection.pgconn.untrace()

    engine = db.engine
    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)
    try:
        yield sent
    finally:
        db.session.remove()  # the last checkin flushes the trace
        sa.event.remove(engine, "checkout", checkout)
        sa.event.remove(engine, "checkin", checkin)
        out.close()
        for line in path.read_text().splitlines():
            fields = line.split("\t")  # time, direction, length, message[, text]
            if len(fields) >= 4 and fields[1] == "F":  # F: from the frontend (us)
                query = fields[4].split('"')[1] if fields[3] == "Query" else ""  # Query\t "BEGIN"
                sent.append(f"{fields[3]} {query}".strip())


def wait_for_lock_waiters(count: int = 1, timeout: float = 30.0) -> None:
    """Block until ``count`` backends of this database wait on a lock. Each
    poll is its own transaction: PostgreSQL reads ``pg_stat_activity`` once
    per transaction, so a poll inside one would never see a change."""
    deadline = time.monotonic() + timeout
    with db.engine.connect() as poll:
        poll = poll.execution_options(isolation_level="AUTOCOMMIT")
        while poll.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'")) < count:
            assert time.monotonic() < deadline, f"fewer than {count} backends started waiting on a lock"
            time.sleep(0.02)


def run_concurrently(app: Flask, bodies: Sequence[Callable[[], object]], seconds: float) -> list[BaseException]:
    """Call each of ``bodies`` in a loop in its own thread (each call in the
    app context, its session removed after it) for ``seconds``, or until one
    raises; returns what they raised (empty when none did)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(body: Callable[[], object]) -> None:
        with app.app_context():
            try:
                while not stop.is_set():
                    body()
                    db.session.remove()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                errors.append(exc)
                stop.set()

    threads = [threading.Thread(target=loop, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return errors
