"""The embedded default that ``make run`` depends on: no DATABASE_URL and no
REDIS_URL, so SQLite under ``instance/`` and the in-process Redis stand-in.

The source tree is copied to a temporary folder and driven as ``make run``
drives it (``embedded_support``): ``flask db upgrade``, ``flask demo``,
``flask run``. A page and JSON routes then answer with the demo world's data.
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .builders import free_port
from .embedded_support import FLASK, ROOT, clean_env, copy_source_tree, run_flask, stop_server
from .mining_support import SATOSHI

DEMO_LINES = 4000  # a slice of the day: the same code path as the full replay, in seconds


def _flask(tree: Path, *args: str) -> str:
    done = run_flask(tree, *args)
    assert done.returncode == 0, f"flask {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def _get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status, resp.read().decode()


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"flask run did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


@pytest.mark.slow
def test_make_run_serves_the_demo_world_on_sqlite_and_the_redis_stand_in(tmp_path):
    tree = copy_source_tree(tmp_path)
    _flask(tree, "db", "upgrade")
    assert (tree / "instance" / "webapp.db").exists()  # SQLite, beside the copied tree
    output = _flask(tree, "demo", "--limit", str(DEMO_LINES), "--quiet")
    assert "60 miners created" in output

    port = free_port()
    log = tmp_path / "flask-run.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([FLASK, "run", "--host", "127.0.0.1", "--port", str(port), "--with-threads"],
                                  cwd=tree, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        _wait_listening(server, port, log)
        base = f"http://127.0.0.1:{port}"
        status, html = _get(f"{base}/miners/{SATOSHI}")
        assert status == 200 and "SatoshiHunter" in html

        # The anonymous profile twice: read, then from the stand-in's cache, the same.
        answers = [_get(f"{base}/api/public/miners/{SATOSHI}") for _ in range(2)]
        assert answers[0] == answers[1] and answers[0][0] == 200
        assert json.loads(answers[0][1])["display_name"] == "SatoshiHunter"

        status, body = _get(f"{base}/api/public/miners/{SATOSHI}/stats")
        stats = json.loads(body)
        assert status == 200 and stats["total_shares"] > 0, stats

        token = _post_json(f"{base}/api/auth/token", {"user_id": SATOSHI, "password": "demo1234"})["token"]
        status, body = _get(f"{base}/api/notifications/unread-count", Authorization=f"Bearer {token}")
        assert status == 200 and json.loads(body)["count"] > 0  # the replay's personal bests
    finally:
        stop_server(server, timeout=10)


def test_the_factory_without_urls_picks_sqlite_and_the_redis_stand_in(monkeypatch):
    import fakeredis

    from webapp import create_app

    for name in ("DATABASE_URL", "REDIS_URL", "REDIS_NAMESPACE", "RATELIMIT_ENABLED", "EMBEDDED_SCHEDULER"):
        monkeypatch.delenv(name, raising=False)
    # A `make run` of this checkout shares its stand-in (instance/embedded-redis.json):
    # this test must neither find it nor write into it.
    monkeypatch.setattr("webapp.embedded_redis.attached_url", lambda *args, **kwargs: None)
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{ROOT / 'instance' / 'webapp.db'}"
    assert app.config["EMBEDDED"] is True and app.config["EMBEDDED_SCHEDULER"] is True
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert isinstance(app.extensions["redis"], fakeredis.FakeRedis)
    assert app.extensions["redis"].ping() and app.extensions["redis_raw"].set("k", b"v")
    assert app.extensions["redis"].get("k") == "v"  # one in-process server behind both clients
