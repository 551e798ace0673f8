"""Shared fixtures: a real PostgreSQL database and a real Redis for each run.

Every run creates its own database (``webapp_test_<random>``) and claims its
own Redis logical database plus a pub/sub namespace, so parallel runs never
collide. Tables are truncated and the Redis database flushed before each
test. Nothing of our own is mocked.

Settings: ``TEST_DATABASE_URL`` (a PostgreSQL server URL; the run creates and
drops its database there) and ``TEST_REDIS_URL``. When they cannot be reached
the run fails at once (it does not fall back), under CI and locally.
"""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as redis_lib
import sqlalchemy as sa
from flask import has_app_context
from flask.testing import FlaskClient

from webapp import create_app
from webapp.extensions import db

from . import builders
from .builders import PASSWORD, AuthActions, LiveServer, bearer, free_port  # noqa: F401 (shared names)

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
RUN_ID = secrets.token_hex(4)


def _url_with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_engine() -> sa.Engine:
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(_url_with_db(url, "postgres"), isolation_level="AUTOCOMMIT")


@contextmanager
def fresh_database(services, prefix: str = "webapp_fresh") -> Iterator[str]:
    """An empty PostgreSQL database beside this run's, dropped afterwards
    even if the test fails; yields its SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with _admin_engine().connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield services["database_url"].rsplit("/", 1)[0] + f"/{name}"
    finally:
        with _admin_engine().connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _require_services() -> None:
    problems = []
    try:
        with _admin_engine().connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001
        problems.append(f"PostgreSQL at {PG_URL}: {exc.__class__.__name__}: {exc}")
    try:
        redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Redis at {REDIS_URL}: {exc}")
    if problems:
        pytest.exit(
            "The suite runs against real PostgreSQL and Redis and could not reach them:\n  "
            + "\n  ".join(problems)
            + "\nStart them (see README, 'Running the tests') or set TEST_DATABASE_URL / TEST_REDIS_URL.",
            returncode=3,
        )


def _claim_redis_db() -> int:
    """Claim a free logical database 1..15 for this run (a lock in db 0)."""
    control = redis_lib.Redis.from_url(REDIS_URL, db=0)
    for _ in range(300):
        for index in range(1, 16):
            if control.set(f"webapp-tests:db:{index}", RUN_ID, nx=True, ex=3600):
                return index
        time.sleep(1)
    raise RuntimeError("no free Redis logical database for the test run")


@pytest.fixture(scope="session")
def services():
    """Create this run's database and Redis slot; drop them at the end."""
    _require_services()
    name = f"webapp_test_{RUN_ID}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    redis_db = _claim_redis_db()
    redis_url = _url_with_db(REDIS_URL, str(redis_db))
    redis_lib.Redis.from_url(redis_url).flushdb()
    info = {
        "database_url": _url_with_db(PG_URL, name).replace("postgresql://", "postgresql+psycopg://", 1),
        "database_name": name,
        "redis_url": redis_url,
        "namespace": f"test-{RUN_ID}",
    }
    yield info
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    redis_lib.Redis.from_url(redis_url).flushdb()
    redis_lib.Redis.from_url(REDIS_URL, db=0).delete(f"webapp-tests:db:{redis_db}")


# The files that take half of the suite's time (the page and API fuzzers, the
# every-page browser check, the writer processes). When pytest-xdist shares
# the files among workers (``make test``: ``-n 2 --dist loadfile
# --no-loadscope-reorder``), it hands them out in collection order: these go
# first, and the other files fill the workers in around them instead of one
# worker ending alone on a fuzzer.
LONGEST_FIRST = ("tests/test_page_fuzz.py", "tests/test_api_fuzz.py", "tests/browser/test_mobile_a11y.py",
                 "tests/test_notification_order.py")
# Files whose tests may go to different workers (each of the page fuzz's three
# personas takes minutes, and they share no module-scoped fixture).
SPLIT_ACROSS_WORKERS = ("tests/test_page_fuzz.py",)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: pytest alone does not know it
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, except that each test of SPLIT_ACROSS_WORKERS is
    a unit of its own."""
    if config.getoption("dist", "no") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.split("::", 1)[0] in SPLIT_ACROSS_WORKERS:
                return nodeid
            return super()._split_scope(nodeid)

    return Scheduling(config, log)


def pytest_collection_modifyitems(config, items) -> None:
    """Every Hypothesis test is a ``fuzz`` test (``make test-fast`` leaves
    them out). Under pytest-xdist, LONGEST_FIRST's files move to the front
    (each file's tests keep their order)."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.fuzz)
    # Only xdist's workers collect, and there ``dist`` reads "no" (xdist
    # resets it): a worker is known by its ``workerinput``. The scheduler
    # hands out files in the order the workers collected them.
    if hasattr(config, "workerinput"):
        def rank(item) -> float:
            path = item.nodeid.split("::", 1)[0]
            if path not in LONGEST_FIRST:
                return len(LONGEST_FIRST)
            # xdist hands each worker two units up front: the page fuzz's last
            # persona waits behind the API fuzz and the every-page check, so
            # it goes to whichever worker frees up first instead of queueing
            # behind another persona (which ran alone at the end otherwise).
            if path == "tests/test_page_fuzz.py" and item.nodeid.endswith("[loner]"):
                return 2.5
            return LONGEST_FIRST.index(path)

        items.sort(key=rank)  # stable: file order otherwise


def base_config(services: dict, **overrides) -> dict:
    """The test configuration: real PostgreSQL and Redis, fast password hashing."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": services["database_url"],
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 10, "max_overflow": 50, "pool_pre_ping": True},
        "REDIS_URL": services["redis_url"],
        "REDIS_NAMESPACE": services["namespace"],
        "RATELIMIT_STORAGE_URI": services["redis_url"],
        "RATELIMIT_ENABLED": False,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "EMBEDDED_SCHEDULER": False,
        "SERVER_NAME": "localhost",
        "PUBLIC_BASE_URL": "http://localhost",
        "SERVICE_TOKEN": "test-service-token",
        "MAIL_SERVER": "",
        "MAIL_SUPPRESS_SEND": False,
    }
    config.update(overrides)
    return config


@pytest.fixture(autouse=True)
def _few_connection_hungry_tests_at_once(request):
    """A test marked ``many_connections`` (tens of threads, each holding a
    PostgreSQL connection) runs only while no other such test does, in this
    run's other xdist worker or in another run on the same server (a lock in
    Redis db 0): two at once, beside the pools of the other tests, would
    pass the server's max_connections (100 by default)."""
    if request.node.get_closest_marker("many_connections") is None:
        yield
        return
    lock = redis_lib.Redis.from_url(REDIS_URL, db=0).lock("webapp-tests:many-connections", timeout=600,
                                                          blocking_timeout=600)
    assert lock.acquire(), "another run held the many-connections lock for 10 minutes"
    try:
        yield
    finally:
        lock.release()


@pytest.fixture(scope="session")
def migrated(services):
    """Run the real migrations once on this run's database."""
    from flask_migrate import upgrade

    app = create_app(base_config(services))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return services


def _truncate(app) -> None:
    """Empty every table. A reader left over from the previous test (a
    socket server thread finishing a request) can meet TRUNCATE's table
    locks in the other order; PostgreSQL then aborts one side with a
    deadlock, and we try again."""
    with app.app_context():
        tables = [t.name for t in db.metadata.sorted_tables]
        for attempt in range(5):
            try:
                with db.engine.begin() as conn:
                    conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                break
            except sa.exc.OperationalError as exc:
                if "deadlock" not in str(exc).lower() or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
    app.extensions["redis_raw"].flushdb()


class IsolatedClient(FlaskClient):
    """Each request runs in its own app context, as in a real server, so
    ``g`` (and Flask-Login's cached user) never leaks from the test's
    context or between requests."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        if has_app_context():
            db.session.expire_all()  # the test then reads what the request committed
        return response


@pytest.fixture(scope="session")
def session_app(migrated):
    app = create_app(base_config(migrated))
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture
def make_app(migrated):
    """Build another app on the same database/Redis with config overrides."""
    apps = []

    def factory(**overrides):
        app = create_app(base_config(migrated, **overrides))
        app.test_client_class = IsolatedClient
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(session_app):
    """The app with clean tables and an empty Redis database, in an app context."""
    _truncate(session_app)
    with session_app.app_context():
        yield session_app
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def redis(app):
    """The app's Redis client (``str`` responses)."""
    return app.extensions["redis"]


# ---- the test kit (tests/builders.py) as fixtures ------------------------------------


@pytest.fixture
def make_user(app):
    """``make_user(user_id=None, password=..., display_name=..., email=..., country_code=..., is_admin=...)``."""
    return builders.make_user


@pytest.fixture
def make_coop(app):
    """``make_coop(admin=None, members=0 | [users], name=..., description=...)`` → (coop, admin, [members])."""
    return builders.make_coop


@pytest.fixture
def auth_headers(app):
    """``auth_headers(user)`` → the bearer ``Authorization`` header."""
    return bearer


@pytest.fixture
def auth(client):
    """The login form and CSRF tokens for ``client``."""
    return AuthActions(client)


@pytest.fixture
def login_as(client):
    """``login_as(user, csrf_from="/settings")`` logs ``client`` in; → htmx headers with the page's CSRF token."""

    def do(user, **options):
        return builders.login_as(client, user, **options)

    return do


@pytest.fixture(scope="module")
def live(session_app):
    """The session app served by a real threaded server (for sockets)."""
    server = LiveServer(session_app).start()
    yield server
    server.stop()
