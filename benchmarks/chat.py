"""Coop chat over /ws with the production server setup.

    .venv/bin/python benchmarks/chat.py [--coops 50] [--size 20] [--rate 200]
        [--seconds 10] [--workers 2] [--typing 1000]

On loopback only, bounded in time:
1. a fresh PostgreSQL database and a claimed Redis logical database
   (benchmarks/support.py), migrated; ``--coops`` coops of ``--size``
   members with their conversations, inserted in bulk (the same rows
   ``coops.create``/``join`` write);
2. gunicorn with gunicorn.conf.py (gevent, ``--workers``);
3. one browser-like socket per member (asyncio + wsproto, ``?token=``);
4. ``--rate`` messages per second in all for ``--seconds``, each sent over a
   socket (``{"type": "send"}``) by a member of a coop chosen in turn, the
   send time in the body; every member's socket records when it received
   each message: per receipt, and per message the time until ALL members of
   its coop had it;
5. the messages stored (``conversations.last_seq`` sums) against those sent;
6. ``--typing`` typing events sent over the sockets, with the database's
   row-change counters (``pg_stat_database``) read before and after: typing
   must write nothing.
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
from collections import defaultdict

from support import (
    HOST,
    WsClient,
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
    """A member's socket: records (message number, receipt time)."""

    def __init__(self, user_id: str, conversation_id: int) -> None:
        super().__init__(user_id)
        self.conversation_id = conversation_id
        self.received: list[tuple[int, float]] = []
        self.errors = 0

    def on_message(self, message: dict, received_at: float) -> None:
        if message["type"] == "message" and message["data"]["body"].startswith("bench "):
            _, number, _ = message["data"]["body"].split(" ", 2)
            self.received.append((int(number), received_at))
        elif message["type"] == "error":
            self.errors += 1

    def send_json(self, message: dict) -> None:
        from wsproto.events import TextMessage

        self.writer.write(self.ws.send(TextMessage(data=json.dumps(message))))


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
    total = int(args.rate * args.seconds)
    sent_at: dict[int, tuple[float, int]] = {}
    load_before = os.getloadavg()[0]
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
    while sum(len(m.received) for m in members) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    drained_s = time.perf_counter() - start
    load_after = os.getloadavg()[0]

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

    # Typing: no database write.
    await asyncio.sleep(2)
    rows_before, commits_before = db_counters(st.database_url)
    for i in range(args.typing):
        m = members[i % len(members)]
        m.send_json({"type": "typing", "conversation_id": m.conversation_id})
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(3)
    rows_after, commits_after = db_counters(st.database_url)

    for m in members:
        m.close()
    return {
        "sockets": len(members), "coops": len(coops), "members_per_coop": args.size, "workers": args.workers,
        "opened_in_s": round(opened_in, 2),
        "rate_per_s": args.rate, "messages_sent": total, "send_loop_s": round(send_seconds, 2),
        "all_delivered_after_s": round(drained_s, 2),
        "messages_stored": stored_messages(st.database_url),
        "stored_per_s": round(stored_messages(st.database_url) / drained_s, 1),
        "receipts_expected": expected, "receipts": len(per_receipt),
        "socket_errors": sum(m.errors for m in members),
        "latency_per_receipt_ms": stats(per_receipt),
        "latency_until_all_members_ms": stats(complete),
        "messages_complete": len(complete),
        "load_average_1m": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "typing_events": args.typing,
        "typing_db_rows_changed": rows_after - rows_before,
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
            master = start_gunicorn(env, port, args.workers)
            print(json.dumps(asyncio.run(run(args, st, pairs, conversation_of, master, port)), indent=2))
        finally:
            stop_process(master)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
