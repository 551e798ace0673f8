"""Coop chat over /ws with the production server setup.

    .venv/bin/python benchmarks/chat.py [--coops 50] [--size 20] [--rate 200]
        [--seconds 10] [--workers 2] [--typing 1000]

On loopback only, bounded in time:
1. a fresh PostgreSQL database and a claimed Redis logical database
   (benchmarks/support.py), migrated; ``--coops`` coops of ``--size``
   members with their conversations, inserted in bulk (the same rows
   ``coops.create``/``join`` write);
2. gunicorn with gunicorn.conf.py (gevent, ``--workers``);
3. one browser-like socket per member (asyncio on uvloop, ``support.WsClient``, ``?token=``;
   each chat message kept as text with its receipt time, parsed after the run);
4. one unmeasured message per coop (each worker's first post and fan-out
   of a conversation), then ``--rate`` messages per second in all for ``--seconds``, each sent over a
   socket (``{"type": "send"}``) by a member of a coop chosen in turn, the
   send time in the body; every member's socket records when it received
   each message: per receipt, and per message the time until ALL members of
   its coop had it (this client's garbage collector paused meanwhile:
   ``support.collector_paused``);
5. the messages stored (``conversations.last_seq`` sums) against those sent;
6. ``--typing`` typing events sent over the sockets, with the row-change
   counters of the app's tables (``pg_stat_user_tables``) and the commits
   (``pg_stat_database``) read before and after: typing must write nothing.
   PostgreSQL's backends report their counters up to ~10 s after they go
   idle, so both reads wait until the counters have stood still for
   ``SETTLE_S`` seconds: the posts' late counters are not taken for typing.

CPU per message: the user + system time of the gunicorn workers and of the
database's PostgreSQL backends (``/proc/<pid>/stat``) from the first send to
the last receipt (or the 60 s wait's end), divided by the messages stored by
then (it includes the sockets' upkeep over that span, e.g. presence); and this client's own CPU
over the same span (is the client the bottleneck?). Far less dependent on
the machine's load than the latencies.

The machine's own stalls: beside the send loop, ``cpu_speed.py`` traces
how fast each CPU runs (a pinned, real-time process per CPU, ~3 % of it).
On a virtual machine whose host takes the CPUs back now and then (seen:
~100 ms at a tenth of the speed every ~1.5 s, with no steal time reported)
every message in flight then waits, whatever the server does; the report
lists the stalls and gives the latency of the messages clear of them
(``STALL_BEFORE_S``, ``STALL_AFTER_S``) beside that of all messages: a
diagnosis of where the tail comes from, not a replacement for the target's
figure, which is over all messages.
``--no-cpu-probe`` leaves it out.

``--server-tree DIR`` serves another checkout (e.g. ``git archive`` of an
older commit) with this client, for a before/after comparison.
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
from collections import Counter, defaultdict
from pathlib import Path

import cpu_speed
import uvloop
from support import (
    HOST,
    ROOT,
    WsClient,
    collector_paused,
    free_port,
    migrate_and_create_users,
    percentile,
    raise_open_files_limit,
    start_gunicorn,
    stop_process,
    stores,
    worker_pids,
)


class Member(WsClient):
    """A member's socket: keeps each chat message's text and receipt time as
    it arrives and parses them after the run (``parse``), so that the
    client's CPU per receipt is the socket's read, not JSON."""

    def __init__(self, user_id: str, conversation_id: int) -> None:
        super().__init__(user_id)
        self.conversation_id = conversation_id
        self.frames: list[tuple[str, float]] = []
        self.received: list[tuple[int, float]] = []
        self.errors: Counter[str] = Counter()  # by the error's code
        self.unsent = 0

    def on_text(self, text: str, received_at: float) -> None:
        # The server writes "type" first (realtime.Push); ``parse`` checks each.
        if text.startswith('{"type":"message",'):
            self.frames.append((text, received_at))
        elif text.startswith('{"type":"error"'):
            error = json.loads(text)  # a socket error, or a send's error (API.md "Socket additions")
            self.errors[str(error.get("code") or error.get("error", {}).get("code"))] += 1

    def parse(self) -> None:
        """(message number, receipt time) of each bench message received."""
        for text, received_at in self.frames:
            message = json.loads(text)
            if message["type"] == "message" and message["data"]["body"].startswith("bench "):
                _, number, _ = message["data"]["body"].split(" ", 2)
                self.received.append((int(number), received_at))

    def send_json(self, message: dict) -> None:
        """Send, unless the server closed this socket (counted in ``unsent``)."""
        if self.close_code is not None or self.writer.is_closing():
            self.unsent += 1
            return
        self.send_text(json.dumps(message))


def form_coops(env: dict, pairs: list[tuple[str, str]], coops: int, size: int) -> list[int]:
    """Insert the coops, memberships and conversations; returns each
    member's conversation id (in ``pairs`` order)."""
    os.environ.update(env)
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import Conversation, ConversationMember, Cooperative, CooperativeMember

    app = create_app()
    conversation_of: list[int] = []
    with app.app_context():
        for c in range(coops):
            members = pairs[c * size:(c + 1) * size]
            coop = Cooperative(name=f"Bench coop {c}", invite_code=f"BENCH{c:03d}", admin_user_id=members[0][0],
                               member_count=len(members))
            db.session.add(coop)
            db.session.flush()
            db.session.add_all(CooperativeMember(cooperative_id=coop.id, user_id=u, role="admin" if i == 0 else "member")
                               for i, (u, _) in enumerate(members))
            conversation = Conversation(kind="coop", cooperative_id=coop.id)
            db.session.add(conversation)
            db.session.flush()
            db.session.add_all(ConversationMember(conversation_id=conversation.id, user_id=u) for u, _ in members)
            conversation_of += [conversation.id] * len(members)
        db.session.commit()
        db.engine.dispose()
    return conversation_of


def db_counters(database_url: str) -> tuple[int, int]:
    """(rows inserted + updated + deleted, transactions committed) of the database so far."""
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute("SELECT tup_inserted + tup_updated + tup_deleted, xact_commit FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


SETTLE_S = 12  # PostgreSQL flushes an idle backend's counters within ~10 s
# A message is clear of the machine's stalls when none began less than
# STALL_BEFORE_S after it was sent (a message takes ~5-15 ms when nothing
# waits) and none ended less than one of STALL_AFTER_S before it (the queue
# a stall leaves drains meanwhile; the longer the stall and the higher the
# load, the longer that takes: docs/PERFORMANCE.md "The machine's stalls").
STALL_BEFORE_S = 0.05
STALL_AFTER_S = (0.3, 0.6, 1.0)


def table_counters(database_url: str) -> dict[str, int]:
    """Rows inserted + updated + deleted per table of the app (``pg_stat_user_tables``)."""
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        rows = conn.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall()
    return {name: int(n) for name, n in rows}


async def settle(database_url: str, limit: float = 60) -> dict[str, int]:
    """Wait until the app's row counters stood still for ``SETTLE_S`` s (at
    most ``limit`` s); returns them."""
    deadline = time.monotonic() + limit
    last, since = table_counters(database_url), time.monotonic()
    while time.monotonic() - since < SETTLE_S and time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = table_counters(database_url)
        if now != last:
            last, since = now, time.monotonic()
    return last


def cpu_seconds(pids: list[int], *, system_only: bool = False) -> float:
    """User + system CPU time of ``pids`` so far (a process gone counts 0);
    the system (kernel) part alone with ``system_only``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[12]) if system_only else int(fields[11]) + int(fields[12])  # utime, stime (14, 15)
    return total / tick


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends connected to this database (the app's pools)."""
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()").fetchall()
    return [int(r[0]) for r in rows]


def stored_messages(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert row is not None
    return int(row[0])


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": round(statistics.median(values), 2), "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2)}


async def run(args, st, pairs, conversation_of, master, port) -> dict:
    deadline = time.monotonic() + 30
    while len(worker_pids(master.pid)) < args.workers and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    members = [Member(u, c) for (u, _), c in zip(pairs, conversation_of, strict=True)]
    started = time.perf_counter()
    for i in range(0, len(members), 50):  # in batches: all at once would queue on the DB pool
        chunk = members[i:i + 50]
        await asyncio.gather(*(m.open(port, t) for m, (_, t) in zip(chunk, pairs[i:i + 50], strict=True)))
    while sum(1 for m in members if m.messages) < len(members):  # the initial unread_count: subscribed
        await asyncio.sleep(0.05)
    opened_in = time.perf_counter() - started
    await asyncio.sleep(2)

    by_coop: dict[int, list[Member]] = defaultdict(list)
    for m in members:
        by_coop[m.conversation_id].append(m)
    coops = list(by_coop)
    # One unmeasured message per coop first: each worker's first post and
    # fan-out of a conversation (statement caches, templates) is not steady state.
    for cid in coops:
        by_coop[cid][0].send_json({"type": "send", "conversation_id": cid, "body": "warm-up", "client_id": "warm"})
    await asyncio.sleep(2)
    warm_ups = len(coops)
    warm_up_receipts = len(members)
    total = int(args.rate * args.seconds)
    sent_at: dict[int, tuple[float, int]] = {}
    load_before = os.getloadavg()[0]
    workers = worker_pids(master.pid)
    backends = backend_pids(st.database_url)
    cpu_before = cpu_seconds(workers), cpu_seconds(backends), time.process_time()
    system_before = cpu_seconds(workers, system_only=True)
    profilers = [subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--format", "raw", "--rate", "200",
         "--duration", str(int(args.seconds) + 3), "--pid", str(pid), "--output", f"{args.profile}-{pid}.txt"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in workers] if args.profile else []
    probes = cpu_speed.start(args.seconds + max(STALL_AFTER_S) + 1) if args.cpu_probe else []
    with collector_paused():  # see its docstring: the client's own pauses are not the server's latency
        start = time.perf_counter()
        for n in range(total):
            due = start + n / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            cid = coops[n % len(coops)]
            sender = by_coop[cid][(n // len(coops)) % len(by_coop[cid])]
            t0 = time.time()
            sent_at[n] = (t0, cid)
            sender.send_json({"type": "send", "conversation_id": cid, "body": f"bench {n} {t0}", "client_id": f"b{n}"})
        send_seconds = time.perf_counter() - start
        expected = sum(len(by_coop[cid]) for _, cid in sent_at.values())
        deadline = time.monotonic() + 60
        # Counts the warm-up messages too (parsed away below).
        # A send refused (an ``error``, e.g. ``unavailable`` under overload) brings no receipts.
        while (sum(len(m.frames) for m in members) < expected + warm_up_receipts - args.size * sum(
                m.errors.total() for m in members) and time.monotonic() < deadline):
            await asyncio.sleep(0.1)
        drained_s = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    backends = sorted(set(backends) | set(backend_pids(st.database_url)))  # pools may have grown
    cpu_after = cpu_seconds(workers), cpu_seconds(backends), time.process_time()
    system_after = cpu_seconds(workers, system_only=True)
    stored_at_drain = stored_messages(st.database_url) - warm_ups
    cpu_ms = [(a - b) * 1000 / max(1, stored_at_drain) for a, b in zip(cpu_after, cpu_before, strict=True)]
    for profiler in profilers:
        profiler.wait()
    speed = cpu_speed.finish(probes)

    for m in members:
        m.parse()
    per_receipt: list[float] = []
    last_receipt: dict[int, float] = {}
    count_of: dict[int, int] = defaultdict(int)
    for m in members:
        for n, at in m.received:
            per_receipt.append((at - sent_at[n][0]) * 1000)
            last_receipt[n] = max(last_receipt.get(n, 0.0), at)
            count_of[n] += 1
    complete = [(last_receipt[n] - sent_at[n][0]) * 1000 for n in sent_at
                if count_of[n] == len(by_coop[sent_at[n][1]])]
    # The worst message of each second of sending: a stall shows as one bad second.
    worst_by_second: dict[int, float] = defaultdict(float)
    for n in sent_at:
        if count_of[n] == len(by_coop[sent_at[n][1]]):
            second = int(n / args.rate)
            worst_by_second[second] = max(worst_by_second[second], (last_receipt[n] - sent_at[n][0]) * 1000)

    # Messages clear of the machine's stalls (cpu_speed.py): none began
    # before the message would be done, none ended while the queue it left
    # could still hold the message (how long that is depends on the stall
    # and the load: hence several margins).
    send_start = min(t for t, _ in sent_at.values())
    found = cpu_speed.stalls(speed, cpu_speed.DEFAULT_INTERVAL) if speed else []
    clear = {after: [(last_receipt[n] - t0) * 1000 for n, (t0, cid) in sent_at.items()
                     if count_of[n] == len(by_coop[cid])
                     and not any(s.start - STALL_BEFORE_S < t0 < s.end + after for s in found)]
             for after in STALL_AFTER_S}

    # Typing: no database write. The posts' counters first settle (see the docstring).
    tables_before = await settle(st.database_url)
    rows_before, commits_before = db_counters(st.database_url)
    for i in range(args.typing):
        m = members[i % len(members)]
        m.send_json({"type": "typing", "conversation_id": m.conversation_id})
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(3)
    tables_after = await settle(st.database_url)
    rows_after, commits_after = db_counters(st.database_url)
    typing_tables = {t: n - tables_before.get(t, 0) for t, n in tables_after.items() if n != tables_before.get(t, 0)}

    for m in members:
        m.close()
    return {
        "sockets": len(members), "coops": len(coops), "members_per_coop": args.size, "workers": args.workers,
        "opened_in_s": round(opened_in, 2),
        "rate_per_s": args.rate, "messages_sent": total, "send_loop_s": round(send_seconds, 2),
        "all_delivered_after_s": round(drained_s, 2),
        "messages_stored": stored_messages(st.database_url) - warm_ups,
        "stored_per_s": round((stored_messages(st.database_url) - warm_ups) / drained_s, 1),
        "last_receipt_after_s": round(max((at for m in members for _, at in m.received), default=0)
                                      - min(t for t, _ in sent_at.values()), 2),
        "receipts_expected": expected, "receipts": len(per_receipt),
        "socket_errors": sum(m.errors.total() for m in members),
        "socket_errors_by_code": dict(sum((m.errors for m in members), Counter())),
        "sockets_closed_by_server": sum(1 for m in members if m.close_code is not None),
        "sends_skipped_on_closed_sockets": sum(m.unsent for m in members),
        "latency_per_receipt_ms": stats(per_receipt),
        "latency_until_all_members_ms": stats(complete),
        "messages_complete": len(complete),
        "until_all_members_worst_per_second_ms": [round(worst_by_second[k], 1) for k in sorted(worst_by_second)],
        "machine_stalls_while_sending": cpu_speed.summary(speed, cpu_speed.DEFAULT_INTERVAL, send_start)
        if speed else None,
        "latency_until_all_members_clear_of_stalls_ms": {
            f"{after}s_after": {**stats(values), "messages": len(values)} for after, values in clear.items()}
        if speed else None,
        "load_average_1m": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "messages_stored_when_drained": stored_at_drain,
        "cpu_ms_per_stored_message": {"web_workers": round(cpu_ms[0], 2), "postgresql_backends": round(cpu_ms[1], 2),
                                      "bench_client": round(cpu_ms[2], 2),
                                      "web_workers_in_the_kernel": round(
                                          (system_after - system_before) * 1000 / max(1, stored_at_drain), 2)},
        "typing_events": args.typing,
        "typing_app_rows_changed": sum(typing_tables.values()),
        "typing_app_rows_changed_by_table": typing_tables,
        "typing_db_rows_changed_incl_catalogs": rows_after - rows_before,
        "typing_db_commits": commits_after - commits_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coops", type=int, default=50)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second, all coops together")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--typing", type=int, default=1000)
    parser.add_argument("--server-tree", default=None, help="serve this checkout instead of this one")
    parser.add_argument("--no-cpu-probe", dest="cpu_probe", action="store_false",
                        help="do not trace the machine's stalls (cpu_speed.py) beside the send loop")
    parser.add_argument("--profile", default=None,
                        help="py-spy record every worker during the send loop into FILE-<pid>.txt (raw stacks)")
    args = parser.parse_args()
    raise_open_files_limit()
    with stores("bench_chat") as st:
        port = free_port()
        env = st.app_env(SECRET_KEY=f"bench-{st.token}", RATELIMIT_ENABLED="0", PUBLIC_BASE_URL=f"http://{HOST}:{port}",
                         WS_PERMESSAGE_DEFLATE="0")
        master: subprocess.Popen | None = None
        try:
            pairs = migrate_and_create_users(env, args.coops * args.size)
            conversation_of = form_coops(env, pairs, args.coops, args.size)
            cwd = Path(args.server_tree).resolve() if args.server_tree else ROOT
            master = start_gunicorn(env, port, args.workers, cwd=cwd)
            print(json.dumps(uvloop.run(run(args, st, pairs, conversation_of, master, port)), indent=2))
        finally:
            stop_process(master)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
