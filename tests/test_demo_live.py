"""A demo that lives: the real-time replay loops over the day with shifted
timestamps, so workers stay online (a short day at high speed here), and
the embedded default's Redis stand-in is shared with CLI processes, so
``flask notify`` beside ``make run`` reaches its open sockets."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from webapp.extensions import db
from webapp.models import utcnow
from webapp.services import demo_live, mining

from .builders import free_port
from .embedded_support import FLASK, clean_env, copy_source_tree, run_flask, stop_server
from .mining_support import SATOSHI, drain, sample, share
from .wshelpers import Client


def _write_day(path: Path, user: str, base: float = 1763078400.0) -> None:
    """A 10-second "day": samples of one worker at 0, 5 and 10 s, a share at 2 s."""
    lines = [{"event": "hashrate_update", "ts": base + offset, "source": "hosted",
              "data": sample(user, "rig", 1e12 + offset)} for offset in (0.0, 5.0, 10.0)]
    lines.insert(1, {"event": "share_submitted", "ts": base + 2, "source": "hosted", "data": share(user, "rig", 99.0)})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _stamps(redis) -> list[float]:
    return [float(fields[b"ts"]) for _, fields in redis.xrange(mining.stream_name("hashrate_update"))]


def test_the_live_replay_loops_with_shifted_stamps_and_keeps_workers_online(app, make_user, tmp_path, monkeypatch):
    user = make_user()
    day = tmp_path / "day.jsonl"
    _write_day(day, user.user_id)
    # Seconds: without new samples the worker would drop at once. Restored after
    # the test: the app is the session's, and later tests read this setting.
    monkeypatch.setitem(app.config, "WORKER_OFFLINE_AFTER", 2)
    stop, loops = threading.Event(), []
    started = time.time()
    done = demo_live.live_replay(day, speed=20, stop=stop, loops=3, on_loop=lambda k, s: loops.append(s.published))
    assert done == 3 and loops == [4, 4, 4]
    stamps = _stamps(app.extensions["redis_raw"])
    assert len(stamps) == 9
    # Each loop is the day again, stamped when due: 0, 0.25, 0.5 s into it, the
    # next loop starting where the previous ended (10 s of day at 20x = 0.5 s).
    for k in range(3):
        loop = stamps[3 * k:3 * k + 3]
        assert [round(s - loop[0], 2) for s in loop] == [0.0, 0.25, 0.5]
    assert stamps[3] >= stamps[2] and stamps[6] >= stamps[5]
    assert 0.45 <= stamps[3] - stamps[0] < 10 and stamps[0] >= started - 0.1  # loose: a busy machine
    assert stamps[-1] <= time.time()  # never ahead of the clock

    drain()
    assert mining.sweep_offline_workers() == []  # the last loop's sample is fresh
    [worker] = mining.workers_of(user.user_id)
    assert worker.is_online and (utcnow() - worker.last_seen_at).total_seconds() < 2
    db.session.commit()


def test_the_live_replay_stops_on_its_event(app, make_user, tmp_path):
    day = tmp_path / "day.jsonl"
    _write_day(day, make_user().user_id)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    assert demo_live.live_replay(day, speed=1, stop=stop) == 0  # one loop would take 10 s
    assert time.monotonic() - began < 3


# ---- the served demo, and CLI senders beside it -------------------------------------


@pytest.mark.slow
def test_flask_notify_reaches_an_open_socket_of_make_run(tmp_path):
    import socket as socket_lib
    import urllib.request

    tree = copy_source_tree(tmp_path)
    assert run_flask(tree, "db", "upgrade").returncode == 0

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([FLASK, "demo", "--serve", "--port", str(port), "--limit", "300", "--quiet",
                                   "--no-live"], cwd=tree, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket_lib.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        assert (tree / "instance" / "embedded-redis.json").exists()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/token", method="POST",
            data=json.dumps({"user_id": SATOSHI, "password": "demo1234"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            token = json.loads(response.read())["token"]
        sock = Client(f"ws://127.0.0.1:{port}/ws?token={token}", timeout=30)
        assert sock.recv_json(30)["type"] == "unread_count"

        sent = run_flask(tree, "notify", SATOSHI, "--category", "system", "--subtype", "announcement",
                      "--title", "Hello from the CLI")
        assert sent.returncode == 0, sent.stderr[-3000:]
        message = sock.recv_until(lambda m: m["type"] == "notification", 30)
        assert message["data"]["title"] == "Hello from the CLI"
        sock.close()
    finally:
        stop_server(server, timeout=20)
    # The port file goes with the server; a later CLI command uses its own stand-in again.
    assert not (tree / "instance" / "embedded-redis.json").exists()


def test_the_banner_shows_the_progress_until_the_day_is_in(client, monkeypatch):
    progress = demo_live.Progress(phase="publishing", total=254_730)
    monkeypatch.setattr(demo_live, "PROGRESS", progress)
    page = client.get("/login").get_data(as_text=True)
    assert 'id="demo-progress"' in page and "preparing its 254,730 events" in page
    progress.phase, progress.ingested = "loading", 127_365
    banner = client.get("/demo/progress").get_data(as_text=True)
    assert "50% (127,365 of 254,730 events stored)" in banner and 'hx-trigger="every 3s"' in banner
    progress.phase = "live"
    done = client.get("/demo/progress").get_data(as_text=True)
    assert '<div id="demo-progress" hidden></div>' in done and "hx-trigger" not in done
    assert 'id="demo-progress" class="flash"' not in client.get("/login").get_data(as_text=True)


def test_the_day_flows_in_through_the_consumer_shifted_to_now(app, redis, make_user, tmp_path, monkeypatch):
    from sqlalchemy import func, select

    from webapp.models import MiningEvent
    from webapp.services import ingest

    user = make_user()
    day = tmp_path / "day.jsonl"
    _write_day(day, user.user_id)
    with open(day, "a") as fh:
        fh.write("not an envelope\n")
    monkeypatch.setattr(demo_live, "PROGRESS", demo_live.Progress())
    consumer = ingest.Consumer(name="loader-test")
    started = []
    before = time.time()
    demo_live._load_day(day, consumer, start_consumer=lambda: started.append(True), bar=False, echo=lambda _: None,
                        limit=None)
    assert started == [True] and demo_live.PROGRESS.phase == "finishing"
    assert demo_live.PROGRESS.total == 5 and demo_live.PROGRESS.ingested == 4
    rows = db.session.execute(select(MiningEvent.stream, MiningEvent.entry_id, MiningEvent.ts)
                              .order_by(MiningEvent.ts)).all()
    assert len(rows) == 4 and db.session.scalar(select(func.count()).select_from(MiningEvent)) == 4
    # Shifted so the last event is now; ids as Redis gives them, from the event's own time.
    assert before - 1 <= rows[-1].ts.timestamp() <= time.time()
    assert round(rows[-1].ts.timestamp() - rows[0].ts.timestamp(), 3) == 10.0
    for _, entry_id, ts in rows:
        assert entry_id == f"{int(ts.timestamp() * 1000)}-0"
    # Two events of one stream in the same millisecond get rising ids, as Redis gives them.
    twin = tmp_path / "twin.jsonl"
    twin.write_text("".join(json.dumps({"event": "hashrate_update", "ts": 1763078400.0, "source": "hosted",
                                        "data": sample(user.user_id, rig, 1e12)}) + "\n" for rig in ("a", "b")))
    [entries] = list(ingest.entries_of_file(twin))
    assert [entry_id for _, entry_id, _ in entries] == ["1763078400000-0", "1763078400000-1"]
    db.session.commit()
