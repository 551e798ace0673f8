"""Notifications follow commit order per user (DESIGN.md guarantees: "no
notification lost for an open or reconnecting tab").

Ids are taken at insert and transactions commit in another order, so a
client that reconnects with ``?since=<highest id seen>`` must still get the
rows with a lower id that committed later; a socket opened while writers
commit must report the exact unread count. Writers run in separate OS
processes (``tests/notification_writers.py``) against the production server
(gunicorn, gevent workers).
"""
from __future__ import annotations

import multiprocessing
import random
import threading
import time

import pytest
import sqlalchemy as sa
import websocket

from webapp.extensions import db
from webapp.models import Notification, NotificationSequence
from webapp.services import notifications

from . import builders
from . import notification_writers as writers
from .builders import LateCommit, bearer, token_of
from .conftest import base_config
from .wshelpers import Client, ConnectionClosedBy, Gunicorn

SERVICE_TOKEN = "test-service-token"


@pytest.fixture(scope="module")
def gunicorn(migrated):
    server = Gunicorn(migrated, SERVICE_TOKEN=SERVICE_TOKEN, WS_PING_INTERVAL="5").wait_ready()
    yield server
    server.stop()


class Writers:
    """Writer processes (spawn) with a shared stop event and pause switch."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.stop = self.ctx.Event()
        self.state = self.ctx.Value("q", 0)
        self.procs: list = []
        self.done: list = []
        self.acks: list = []

    def start(self, target, *args, **kwargs) -> None:
        done, ack = self.ctx.Value("q", 0), self.ctx.Value("q", 0)
        proc = self.ctx.Process(target=target, args=(*args, self.stop, done, self.state, ack), kwargs=kwargs,
                                daemon=True)
        proc.start()
        self.procs.append(proc)
        self.done.append(done)
        self.acks.append(ack)

    def wait_all_writing(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not all(d.value > 0 for d in self.done):
            for proc in self.procs:
                assert proc.exitcode is None, f"a writer died at start-up (exit {proc.exitcode})"
            assert time.monotonic() < deadline, "writers did not start in time"
            time.sleep(0.05)

    def pause(self, timeout: float = 30) -> None:
        """Pause every writer and wait until none has a write in flight."""
        with self.state.get_lock():
            self.state.value += 1
        target = self.state.value
        deadline = time.monotonic() + timeout
        while not all(a.value == target for a in self.acks):
            for proc in self.procs:
                assert proc.exitcode is None, f"a writer died (exit {proc.exitcode})"
            assert time.monotonic() < deadline, "writers did not pause"
            time.sleep(0.005)

    def resume(self) -> None:
        with self.state.get_lock():
            self.state.value += 1

    def finish(self, timeout: float = 60) -> list[int]:
        self.stop.set()
        for proc in self.procs:
            proc.join(timeout)
        codes = [proc.exitcode for proc in self.procs]
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        return codes


def rows_of(user_id: str) -> list[tuple[int, int | None, bool]]:
    db.session.remove()
    return [tuple(r) for r in db.session.execute(
        sa.select(Notification.id, Notification.seq, Notification.is_read)
        .where(Notification.user_id == user_id).order_by(Notification.id))]


def read_for(sock: Client, seconds: float, on_message) -> bool:
    """Read messages for ``seconds``; False when the server closed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            on_message(sock.recv_json(left))
        except websocket.WebSocketTimeoutException:
            return True
        except ConnectionClosedBy:
            return False
    return True


def read_until_settled(sock: Client, expected: int, timeout: float = 5) -> list[dict]:
    """Messages until the last count is ``expected`` and nothing more comes
    for a moment (the last pushes may still be crossing Redis), or until
    ``timeout``."""
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv_json(0.15))
        except websocket.WebSocketTimeoutException:
            counts = [m["count"] for m in messages if m["type"] == "unread_count"]
            if counts and counts[-1] == expected:
                break
    return messages


# ---- the required property: a reconnecting client loses nothing ----------------------


class ReconnectingClient:
    """Reconnects ``times`` times, each time with the cursor of everything it
    has seen so far (``since`` = the highest id, as API.md tells clients, or
    ``since_seq`` = the highest seq), reading a random short while."""

    def __init__(self, url: str, token: str, *, cursor: str, seed: int) -> None:
        self.url, self.token, self.cursor = url, token, cursor
        self.rnd = random.Random(seed)
        self.received: dict[int, int] = {}  # id -> times received
        self.seqs: dict[int, int] = {}  # id -> seq
        self.highest = 0
        self.sockets = 0

    def on_message(self, message: dict) -> None:
        if message["type"] != "notification":
            return
        data = message["data"]
        self.received[data["id"]] = self.received.get(data["id"], 0) + 1
        if self.cursor == "since":
            self.highest = max(self.highest, data["id"])
        else:
            self.seqs[data["id"]] = data["seq"]
            self.highest = max(self.highest, data["seq"])

    def session(self, seconds: float) -> None:
        sock = Client(self.url + f"?token={self.token}&{self.cursor}={self.highest}", timeout=10)
        self.sockets += 1
        try:
            read_for(sock, seconds, self.on_message)
        finally:
            sock.close()

    def run(self, times: int) -> None:
        for _ in range(times):
            self.session(self.rnd.uniform(0.03, 0.25))
            time.sleep(self.rnd.uniform(0, 0.1))  # offline a moment: rows commit meanwhile


@pytest.mark.slow
def test_reconnecting_client_gets_every_notification_from_three_writer_processes(
        app, gunicorn, migrated):
    """Three kinds of writer in separate processes (the internal API served by
    gunicorn, ``flask notify``, broadcast fan-outs whose transaction holds the
    target's row while it notifies 40 other users) while one client
    reconnects 50 times with ``since`` = the highest id it saw and another
    with ``since_seq``: each receives every row of the user, nothing else;
    the ``since_seq`` client never receives a row twice."""
    target = builders.make_user("bc1qaaaaordertarget")  # first in user_id order: first row of each fan-out batch
    admin = builders.make_user("bc1qzzzzorderadmin", is_admin=True)
    for i in range(40):
        builders.make_user(f"bc1qzzzzorderfill{i:03d}")
    token = token_of(target)
    config = base_config(migrated, SERVICE_TOKEN=SERVICE_TOKEN)
    procs = Writers()
    procs.start(writers.api_writer, gunicorn.port, SERVICE_TOKEN, target.user_id)
    procs.start(writers.cli_writer, config, target.user_id)
    procs.start(writers.broadcast_writer, config, admin.user_id)
    try:
        procs.wait_all_writing()
        by_id = ReconnectingClient(gunicorn.ws_url(), token, cursor="since", seed=1)
        by_seq = ReconnectingClient(gunicorn.ws_url(), token, cursor="since_seq", seed=2)
        errors: list[BaseException] = []

        def run_by_seq() -> None:
            try:
                by_seq.run(50)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=run_by_seq)
        thread.start()
        by_id.run(50)
        thread.join(60)
    finally:
        codes = procs.finish()
    assert codes == [0, 0, 0], f"writer exit codes {codes}"
    # One last reconnect each, after the writers stopped: everything is committed.
    by_id.session(1.5)
    by_seq.session(1.5)
    rows = rows_of(target.user_id)
    stored = {row[0] for row in rows}
    broadcasts = procs.done[2].value
    assert len(stored) >= 100 and broadcasts >= 5, (len(stored), broadcasts)  # the race had room to happen
    assert by_id.sockets == 51
    missing = stored - set(by_id.received)
    assert not missing, f"{len(missing)} of {len(stored)} notifications never arrived (since = highest id)"
    assert set(by_id.received) == stored  # and nothing that does not exist
    assert not errors, errors
    print(f"{len(stored)} rows, {procs.done[2].value} broadcasts; since: {by_id.sockets} sockets, "
          f"{sum(by_id.received.values()) - len(by_id.received)} copies dropped; since_seq: {by_seq.sockets} sockets")
    assert set(by_seq.received) == stored
    assert all(times == 1 for times in by_seq.received.values()), "since_seq delivered a row twice"
    assert by_seq.seqs == {row_id: seq for row_id, seq, _ in rows}
    assert sorted(seq for _, seq, _ in rows) == list(range(1, len(rows) + 1))  # no gaps, no repeats


# ---- the unread count a socket reports ----------------------------------------------


@pytest.mark.slow
def test_socket_unread_count_is_exact_while_writers_commit(app, gunicorn, migrated):
    """Sockets opened while two writer processes commit: once the writers
    pause, each socket's latest count is the database's, and it equals the
    count it reported on open plus the notifications it pushed after it."""
    user = builders.make_user("bc1qcountexact")
    token = token_of(user)
    config = base_config(migrated)
    procs = Writers()
    procs.start(writers.cli_writer, config, user.user_id)
    procs.start(writers.batch_writer, config, [user.user_id], seed=3, hold=0.002)
    rnd = random.Random(4)
    checked = 0
    try:
        procs.wait_all_writing()
        for _ in range(8):
            procs.resume() if procs.state.value % 2 else None
            opened = []
            for _ in range(4):
                time.sleep(rnd.uniform(0.02, 0.1))
                opened.append(Client(gunicorn.ws_url(f"token={token}"), timeout=10))
            time.sleep(rnd.uniform(0.02, 0.1))
            procs.pause()
            expected = sum(1 for _, _, is_read in rows_of(user.user_id) if not is_read)
            for sock in opened:
                messages = read_until_settled(sock, expected)
                sock.close()
                assert messages[0]["type"] == "unread_count"
                on_open = messages[0]["count"]
                pushed = sum(1 for m in messages if m["type"] == "notification")
                counts = [m["count"] for m in messages if m["type"] == "unread_count"]
                assert counts[-1] == expected, (counts[-1], expected, on_open, pushed)
                assert on_open + pushed == expected
                checked += 1
    finally:
        codes = procs.finish()
    assert codes == [0, 0]
    assert checked == 32


# ---- deadlocks: transactions that notify several users --------------------------------


@pytest.mark.slow
def test_multi_user_transactions_in_opposite_orders_never_deadlock(app, migrated):
    """Two processes notify the same 12 users in random orders per transaction
    (as ingest batches and fan-outs do) while a third sends single ones: no
    deadlock, no error, and every user's sequence is exactly 1..n."""
    users = [builders.make_user(f"bc1qdeadlock{i:02d}").user_id for i in range(12)]
    config = base_config(migrated)
    procs = Writers()
    procs.start(writers.batch_writer, config, users, seed=5, hold=0.005)
    procs.start(writers.batch_writer, config, users, seed=6, hold=0.005)
    procs.start(writers.cli_writer, config, users[5])
    try:
        procs.wait_all_writing()
        time.sleep(3)
    finally:
        codes = procs.finish()
    assert codes == [0, 0, 0]
    total = 0
    for user_id in users:
        seqs = sorted(seq for _, seq, _ in rows_of(user_id))
        assert seqs == list(range(1, len(seqs) + 1)), user_id
        assert db.session.get(NotificationSequence, user_id).last_seq == len(seqs)
        total += len(seqs)
    assert total > 100


# ---- deterministic: an id committed after a higher one -----------------------------------


def test_reconnect_with_highest_id_gets_a_lower_id_committed_later(app, live, make_user):
    """A transaction takes an id, another takes a higher one and commits
    first; the tab sees only the higher one, then reconnects with it as
    ``since``: it must still get the lower id once that commits."""
    user = make_user()
    token = token_of(user)
    tab = Client(live.ws_url(f"token={token}&since=0"))
    assert tab.recv_json()["type"] == "unread_count"
    early = LateCommit(app, lambda: notifications.notify(user.user_id, "mining", "personal_best", "Inserted first",
                                                         commit=False).id).start()
    late = notifications.notify(user.user_id, "system", "announcement", "Committed first")
    assert late.id > early.result
    pushed = tab.recv_until(lambda m: m["type"] == "notification")
    assert pushed["data"]["id"] == late.id
    tab.close()  # the tab goes away before the long transaction commits
    early.commit()
    again = Client(live.ws_url(f"token={token}&since={late.id}"))
    message = again.recv_json()
    assert message["type"] == "notification" and message["data"]["id"] == early.result
    assert again.recv_json() == {"type": "unread_count", "count": 2}
    again.close()


# ---- the since cursor: deleted, foreign, by seq ----------------------------------------


def test_since_a_deleted_id_skips_nothing(app, live, make_user):
    """The tab saw only row B (id b); B is deleted; a row with a lower id
    commits after B. ``since=b`` (no longer a row) still gets that row."""
    user = make_user()
    token = token_of(user)
    early = LateCommit(app, lambda: notifications.notify(user.user_id, "mining", "personal_best", "Slow",
                                                         commit=False).id).start()
    seen = notifications.notify(user.user_id, "system", "announcement", "Seen then deleted")
    seen_id = seen.id
    assert seen_id > early.result and seen.seq == 1
    notifications.delete_notification(user.user_id, seen_id)
    early.commit()
    sock = Client(live.ws_url(f"token={token}&since={seen_id}"))
    message = sock.recv_json()
    assert message["type"] == "notification" and message["data"]["id"] == early.result
    assert message["data"]["seq"] == 2
    assert sock.recv_json() == {"type": "unread_count", "count": 1}
    sock.close()


def test_since_someone_elses_id_sends_only_own_rows(live, make_user):
    user, other = make_user(), make_user()
    mine = [notifications.notify(user.user_id, "social", "badge_earned", f"Mine {i}").id for i in range(2)]
    theirs = notifications.notify(other.user_id, "social", "badge_earned", "Theirs").id
    # Like a missing id: everything above the floor of the newest own row with
    # a lower id (Mine 1 was inserted when Mine 0 had committed: floor 1).
    sock = Client(live.ws_url(f"token={token_of(user)}&since={theirs}"))
    message = sock.recv_json()
    assert message["type"] == "notification" and message["data"]["id"] == mine[1]
    assert sock.recv_json() == {"type": "unread_count", "count": 2}
    sock.close()
    # An id below all of the user's rows: everything.
    sock = Client(live.ws_url(f"token={token_of(user)}&since={min(mine) - 1}"))
    assert [sock.recv_json()["data"]["id"] for _ in range(2)] == mine
    sock.close()


def test_since_seq_cursor_and_resume(live, make_user):
    user = make_user()
    rows = [notifications.notify(user.user_id, "mining", "personal_best", f"Best {i}") for i in range(4)]
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    sock = Client(live.ws_url(f"token={token_of(user)}&since_seq=2"))
    assert [sock.recv_json()["data"]["seq"] for _ in range(2)] == [3, 4]
    assert sock.recv_json() == {"type": "unread_count", "count": 4}
    sock.send_json({"type": "resume", "since_seq": 0})
    assert [sock.recv_json()["data"]["id"] for _ in range(4)] == [r.id for r in rows]
    sock.send_json({"type": "resume", "since": rows[2].id, "since_seq": 0})  # both: the lower cursor
    assert [sock.recv_json()["data"]["seq"] for _ in range(4)] == [1, 2, 3, 4]
    sock.send_json({"type": "resume"})
    assert sock.recv_json()["code"] == "validation_error"
    sock.send_json({"type": "resume", "since_seq": -1})
    assert sock.recv_json()["code"] == "validation_error"
    sock.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        Client(live.ws_url(f"token={token_of(user)}&since_seq=x"))
    assert refused.value.status_code == 400


# ---- live delivery: gaps, stale counts ------------------------------------------------


def test_a_lost_push_is_filled_from_the_database_in_order(live, make_user):
    """A row committed without its push (Redis pub/sub is at-most-once), then
    another: the socket sends both, in seq order, with exact counts."""
    user = make_user()
    sock = Client(live.ws_url(f"token={token_of(user)}"))
    assert sock.recv_json() == {"type": "unread_count", "count": 0}
    lost = notifications.notify(user.user_id, "mining", "block_found", "Push lost", commit=False)
    db.session.info["transaction_callbacks"].clear()  # as if the PUBLISH never reached Redis
    db.session.commit()
    pushed = notifications.notify(user.user_id, "mining", "block_found", "Pushed")
    got = [sock.recv_json() for _ in range(4)]
    assert [m["type"] for m in got] == ["notification", "unread_count"] * 2
    assert [got[0]["data"]["id"], got[2]["data"]["id"]] == [lost.id, pushed.id]
    assert [got[1]["count"], got[3]["count"]] == [1, 2]
    sock.close()


def test_a_stale_published_count_is_replaced_by_the_database_count(live, make_user):
    """Counts published by different processes can arrive out of order: the
    socket re-reads the count instead of trusting the number."""
    from webapp import realtime

    user = make_user()
    notifications.notify(user.user_id, "mining", "block_found", "One")
    sock = Client(live.ws_url(f"token={token_of(user)}"))
    assert sock.recv_json() == {"type": "unread_count", "count": 1}
    realtime.unread_count_changed(user.user_id, 7)  # a stale or wrong number
    assert sock.recv_json() == {"type": "unread_count", "count": 1}
    sock.close()


# ---- the sequence itself ---------------------------------------------------------------


def test_rolled_back_rows_take_no_number(app, make_user):
    user = make_user()
    notifications.notify(user.user_id, "mining", "block_found", "1")
    with db.session.begin_nested():
        notifications.notify(user.user_id, "mining", "block_found", "kept in savepoint", commit=False)
    savepoint = db.session.begin_nested()
    notifications.notify(user.user_id, "mining", "block_found", "savepoint rolled back", commit=False)
    savepoint.rollback()
    db.session.commit()
    notifications.notify(user.user_id, "mining", "block_found", "rolled back", commit=False)
    db.session.rollback()
    last = notifications.notify(user.user_id, "mining", "block_found", "3")
    assert last.seq == 3 and notifications.latest_seq(user.user_id) == 3
    assert [seq for _, seq, _ in rows_of(user.user_id)] == [1, 2, 3]


def test_one_transaction_numbers_its_rows_in_insert_order_and_sets_the_floor(app, make_user):
    users = [make_user(), make_user()]
    first = notifications.notify(users[0].user_id, "mining", "block_found", "before")
    made = [notifications.notify(users[i % 2].user_id, "mining", "block_found", f"n{i}", commit=False)
            for i in range(5)]
    db.session.commit()
    assert first.seq == 1 and first.seq_floor == 0
    assert [r.seq for r in made] == [2, 1, 3, 2, 4]  # per user, in insert order
    assert [r.seq_floor for r in made] == [1, 0, 1, 0, 1]  # the last committed seq at insert


def test_take_on_an_existing_counter_row_is_a_conditional_update(app, make_user):
    """The chat's use: a counter without upsert (``conversations.last_seq``):
    keys without a row are absent, others advance in one transaction."""
    from webapp.services import sequences

    counter = sequences.Counter(NotificationSequence.user_id, NotificationSequence.last_seq)
    user = make_user()
    assert sequences.take(counter, {user.user_id: 1}) == {}  # no counter row yet
    notifications.notify(user.user_id, "mining", "block_found", "creates the row")
    assert sequences.take(counter, {user.user_id: 2, "bc1qnocounter": 1}) == {user.user_id: 3}
    db.session.rollback()  # gives the numbers back
    assert sequences.take(counter, {user.user_id: 1}) == {user.user_id: 2}
    db.session.commit()
    with pytest.raises(ValueError):
        sequences.take(counter, {user.user_id: 0})


def test_payloads_and_pages_carry_seq(app, client, auth, make_user, live):
    from .builders import PASSWORD

    user = make_user()
    row = notifications.notify(user.user_id, "social", "badge_earned", "Badge")
    listed = client.get("/api/notifications", headers=bearer(user)).get_json()["notifications"]
    assert listed[0]["id"] == row.id and listed[0]["seq"] == 1
    created = client.post("/api/internal/notifications", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
                          json={"user_id": user.user_id, "category": "system", "subtype": "x", "title": "t"})
    assert created.get_json()["notification"]["seq"] == 2
    auth.login(user.user_id, PASSWORD)
    page = client.get("/notifications").get_data(as_text=True)
    since = created.get_json()["notification"]["id"]
    assert f'id="notification-cursor" data-since="{since}" data-seq="2"' in page
    html = Client(live.ws_url(f"token={token_of(user)}&format=html"))
    html.recv_text()
    pushed = notifications.notify(user.user_id, "social", "badge_earned", "Live")
    assert f'id="notification-cursor" data-since="{pushed.id}" data-seq="3"' in html.recv_text()
    html.close()


def test_sequences_work_on_the_embedded_sqlite_default(tmp_path):
    from flask_migrate import upgrade

    from webapp import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}",
                      "REDIS_URL": "", "SECRET_KEY": "x", "EMBEDDED_SCHEDULER": False})
    with app.app_context():
        upgrade()
        user = builders.make_user("bc1qsqliteseq")
        made = [notifications.notify(user.user_id, "mining", "block_found", f"n{i}", commit=False)
                for i in range(2)]
        db.session.commit()
        made.append(notifications.notify(user.user_id, "mining", "block_found", "n2"))
        assert [r.seq for r in made] == [1, 2, 3]
        assert notifications.unread_snapshot(user.user_id) == (3, 3)
        assert [r.id for r in notifications.after_seq(user.user_id, 1)] == [r.id for r in made[1:]]
        db.session.remove()
        db.engine.dispose()


def test_migration_numbers_existing_rows_per_user_in_id_order(services):
    """0002 on a database with notifications: seq 1..n per user in id order,
    floors one below, counters at the last seq; a new row continues."""
    from flask_migrate import upgrade

    from webapp import create_app

    from .conftest import fresh_database

    with fresh_database(services, "webapp_seq") as url:
        app = create_app(base_config(services, SQLALCHEMY_DATABASE_URI=url))
        with app.app_context():
            upgrade(revision="0001")
            for user_id in ("bc1qmiga", "bc1qmigb"):
                db.session.execute(sa.text(
                    "INSERT INTO users (user_id, display_name, password_hash, is_admin, created_at) "
                    "VALUES (:u, :u, 'x', false, now())"), {"u": user_id})
            for user_id in ("bc1qmiga", "bc1qmigb", "bc1qmiga", "bc1qmiga", "bc1qmigb"):
                db.session.execute(sa.text(
                    "INSERT INTO notifications (user_id, category, subtype, title, body, is_read, created_at) "
                    "VALUES (:u, 'mining', 'x', 't', '', false, now())"), {"u": user_id})
            db.session.commit()
            upgrade(revision="0004_notification_seq")
            got = db.session.execute(sa.text(
                "SELECT user_id, id, seq, seq_floor FROM notifications ORDER BY id")).all()
            assert [(u, s, f) for u, _, s, f in got] == [
                ("bc1qmiga", 1, 0), ("bc1qmigb", 1, 0), ("bc1qmiga", 2, 1), ("bc1qmiga", 3, 2), ("bc1qmigb", 2, 1)]
            counters = dict(db.session.execute(sa.text("SELECT user_id, last_seq FROM notification_sequences")).all())
            assert counters == {"bc1qmiga": 3, "bc1qmigb": 2}
            db.session.commit()  # release the reads' locks: the later revisions ALTER notifications
            upgrade()  # today's notify() writes the later revisions' columns too
            assert notifications.notify("bc1qmigb", "mining", "block_found", "after").seq == 3
            db.session.remove()
            db.engine.dispose()
