"""Server time of the pages a miner opens most, in-process: the coop
dashboard, the notification page and a public profile page, each as a
logged-in member of a demo coop whose member also holds 1,003
notifications (issue point "cheap pages too").

    .venv/bin/python benchmarks/pages.py [--requests 200] [--events 20000] [--profile PAGE]

The demo world (``services/demo.py``: the 60 miners, three coops with chat
and 24 h of coop history) is built on a fresh PostgreSQL database and Redis
slot, with the first ``--events`` lines of the shared mining day replayed,
so the pages show real workers, bests and rankings. Each page is then
requested ``--requests`` times through the WSGI app (``test_client``: no
gunicorn, no network), after 20 warm-up requests. Reported per page:
CPU ms per request (``time.process_time``, this process: the server's work,
Python and the psycopg client; PostgreSQL's own CPU is not in it), wall ms
p50/p90, SQL statements per request (``before_cursor_execute``) and the
HTML size. ``--profile dashboard|notifications|profile`` prints the
cProfile of that page instead (cumulative, top 45); ``--statements PAGE``
the SQL of one request of it.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time

from support import in_process_app, run_on_stores

PAGES = {"dashboard": "/coop", "notifications": "/notifications", "profile": "/miners/{other}"}


def heavy_notifications(user_id: str, count: int) -> None:
    """``count`` more notifications for ``user_id``, a day older than the
    demo's, as production holds them (data, links; a third unread),
    numbered after the user's last seq."""
    import sqlalchemy as sa

    from webapp.extensions import db

    last = db.session.scalar(sa.text("SELECT last_seq FROM notification_sequences WHERE user_id = :u"),
                             {"u": user_id}) or 0
    db.session.execute(sa.text(
        "INSERT INTO notifications (user_id, category, subtype, title, body, link, data, is_read, created_at, seq) "
        "SELECT CAST(:u AS varchar), 'mining', 'personal_best', 'New personal best: ' || g || 'M', "
        "'Your worker rig-' || (g % 7) || ' found a share of difficulty ' || g || 'M, above your previous best.', "
        "'/miners/' || CAST(:u AS text) || '#best-' || g, "
        "jsonb_build_object('difficulty', g * 1000000.5, 'worker', 'rig-' || (g % 7)), "
        "g % 3 <> 0, now() - interval '1 day' - (g || ' minutes')::interval, :last + g "
        "FROM generate_series(1, :n) g"), {"u": user_id, "n": count, "last": last})
    db.session.execute(sa.text(
        "INSERT INTO notification_sequences (user_id, last_seq) VALUES (:u, :n) "
        "ON CONFLICT (user_id) DO UPDATE SET last_seq = excluded.last_seq"), {"u": user_id, "n": last + count})
    db.session.commit()


def measure(args: argparse.Namespace, st) -> None:
    app = in_process_app(st)
    from sqlalchemy import event, select

    from webapp.extensions import db
    from webapp.models import CooperativeMember
    from webapp.services import demo

    with app.app_context():
        demo.load_demo(limit=args.events, progress=False)
        coop_id = demo.demo_coop_ids()[0]
        members = db.session.scalars(select(CooperativeMember.user_id).where(
            CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active")
            .order_by(CooperativeMember.id)).all()
        viewer, other = members[0], members[1]
        heavy_notifications(viewer, 1003)
        db.session.execute(select(1))
        db.session.commit()
        statements: list[str] = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    client = app.test_client()
    csrf = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    resp = client.post("/login", data={"user_id": viewer, "password": demo.DEMO_PASSWORD, "csrf_token": csrf})
    assert resp.status_code == 302, resp.status_code
    pages = {name: path.format(other=other) for name, path in PAGES.items()}
    if args.statements:
        client.get(pages[args.statements])
        statements.clear()
        client.get(pages[args.statements])
        for sql in statements:
            print(" ".join(sql.split())[:300])
        return
    if args.profile:
        path = pages[args.profile]
        for _ in range(20):
            client.get(path)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.requests):
            client.get(path)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(int(os.environ.get("PAGES_PROFILE_TOP", "45")))
        return
    results = {}
    for name, path in pages.items():
        for _ in range(20):
            assert client.get(path).status_code == 200, (name, path)
        cpu, wall, counts, size = [], [], [], 0
        for _ in range(args.requests):
            statements.clear()
            c0, w0 = time.process_time(), time.perf_counter()
            resp = client.get(path)
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
            counts.append(len(statements))
            size = len(resp.get_data())
        results[name] = {"path": path, "cpu_ms_p50": round(statistics.median(cpu), 2),
                         "wall_ms_p50": round(statistics.median(wall), 2),
                         "wall_ms_p90": round(sorted(wall)[int(len(wall) * 0.9)], 2),
                         "statements": statistics.median(counts), "html_bytes": size}
    print(json.dumps({"requests": args.requests, "load_average_1m": round(os.getloadavg()[0], 2),
                      "pages": results}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=20000, help="lines of the mining day to replay first")
    parser.add_argument("--profile", choices=sorted(PAGES), help="print the cProfile of one page instead")
    parser.add_argument("--statements", choices=sorted(PAGES), help="print the SQL of one request of a page instead")
    run_on_stores(parser, "bench_pages", measure)


if __name__ == "__main__":
    main()
