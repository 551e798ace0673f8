"""JSON routes against the floor of the stack, side by side, with wrk.

    .venv/bin/python benchmarks/api.py [--rounds 3] [--duration 20] [--users 100] [--per-user 500]
    .venv/bin/python benchmarks/api.py --profile 2000    # cProfile in-process, split by layer

Needs ``wrk`` (Debian package ``wrk``). Builds a fresh PostgreSQL database
(dropped at the end) with realistic rows — ``--users`` miners with settings,
a country, an avatar, profile fields, friends and friend requests, and
mining stats (so the leaderboard rank counts something), each holding
``--per-user`` notifications with ``data``, a link and a long body (a third
unread); miner 0 holds ``--heavy`` notifications (``fill_data``).

Two servers run at once on the same database, both with ``gunicorn.conf.py``
(``--workers`` gevent workers each):

- **ours**: ``wsgi:app`` with the production settings of docs/DEPLOYMENT.md
  — Redis, ``LOG_FORMAT=json``, ``ACCESS_LOG=true`` (written to a file),
  rate limiter on (``PUBLIC_RATE_LIMIT`` raised so that wrk's one address
  is counted but never refused);
- **floor**: ``benchmarks/floor_app.py``, the least a Flask app must do for
  each route (one indexed token lookup plus the route's own query).

``--before GIT_REF`` adds a third server, **before**: that version of the
app (``git archive``, the repository untouched) with the same settings, to
measure a change against the floor and the old code in the same rounds.

Each round runs every route on every server, rotating which goes first, so
they see the same machine load: ``wrk -t2 -c10 -d<duration>s --latency
--timeout 10s`` with a random miner's bearer token per request (and that
miner's public profile: anonymous on ``profile``, seen by the next miner,
a friend or not, on ``profile-viewer``). Before the rounds the floor's
answers are compared with ours (the first ten miners, every route) and
differences printed. Per run it reports requests/s, p50/p99, the server
CPU per request (user + system ticks of the worker processes from
``/proc/<pid>/stat`` over the run, divided by the requests) and the
1-minute load average before and after, then each server's ratio to the
floor per round, and the answers by status from the access logs. Results
and their reading: docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support import HOST, free_port, migrate_and_create_users, start_gunicorn, stop_process, stores, worker_pids

ROUTES = {
    "unread-count": "/api/notifications/unread-count",
    "list-20": "/api/notifications?limit=20",
    "profile": "/api/public/miners/{user_id}",
    "profile-viewer": "/api/public/miners/{user_id}",
}
# Whose token goes with a request for miner i: "own" (miner i's), "none",
# or "next" (miner i+1's: a logged-in viewer of someone else's profile;
# friends for every other pair, a pending request for some, see fill_data).
TOKENS = {"unread-count": "own", "list-20": "own", "profile": "none", "profile-viewer": "next"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def fill_data(env: dict, user_ids: list[str], per_user: int, heavy: int) -> None:
    """Profiles (bio, pronouns, location; the bio shown to its owner only,
    so that no route renders Markdown; a third show pronouns and location
    to everyone, the others to friends), friendships (miners 0-1, 2-3, ...)
    and pending requests (miner i+1 asked miner i for i = 1, 5, 9, ...),
    settings, stats and notifications as production holds them."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for i, user_id in enumerate(user_ids):
            conn.execute(sa.text(
                "UPDATE users SET country_code = :c, avatar_url = :a, created_at = now() - interval '400 days' "
                "WHERE user_id = :u"), {"u": user_id, "c": ["DE", "FR", "US", "JP", "BR"][i % 5],
                                       "a": f"https://avatars.example.org/{user_id}.png"})
            conn.execute(sa.text(
                "UPDATE user_settings SET privacy = jsonb_build_object('publicProfile', true, "
                "'showCountryFlag', :flag, 'showOnLeaderboard', :board) WHERE user_id = :u"),
                {"u": user_id, "flag": i % 4 != 0, "board": i % 10 != 0})
            conn.execute(sa.text(
                "INSERT INTO user_profiles (user_id, name_key, bio, pronouns, location, visibility, updated_at) "
                "VALUES (:u, :k, :bio, 'they/them', 'Porto', CAST(:vis AS jsonb), now())"),
                {"u": user_id, "k": f"bench{i}", "bio": "Solo miner since the halving. **Two** rigs, one _cooler_.",
                 "vis": '{"bio": "private", "pronouns": "public", "location": "public"}' if i % 3 == 0
                 else '{"bio": "private"}'})
            if i % 2 == 0 and i + 1 < len(user_ids):  # friends: miners 0-1, 2-3, ...
                conn.execute(sa.text(
                    "INSERT INTO friendships (user_id, friend_id, created_at) VALUES (:a, :b, now()), (:b, :a, now())"),
                    {"a": user_id, "b": user_ids[i + 1]})
            elif i % 4 == 1 and i + 1 < len(user_ids):  # miner i+1 asked miner i
                conn.execute(sa.text(
                    "INSERT INTO friend_requests (requester_id, recipient_id, user_low, user_high, status, created_at) "
                    "VALUES (:r, :t, :low, :high, 'pending', now())"),
                    {"r": user_ids[i + 1], "t": user_id, "low": min(user_id, user_ids[i + 1]),
                     "high": max(user_id, user_ids[i + 1])})
            conn.execute(sa.text(
                "INSERT INTO miner_stats (user_id, total_shares, rejected_shares, best_difficulty, "
                "best_difficulty_at, blocks_found, last_share_at, first_seen_at, updated_at) "
                "VALUES (:u, :shares, 3, :best, now() - interval '3 days', 0, now(), now() - interval '300 days', now())"),
                {"u": user_id, "shares": 10_000 + i * 37, "best": 1e9 * ((i * 7919) % 1000 + 1)})
            conn.execute(
                sa.text(
                    "INSERT INTO notifications (user_id, category, subtype, title, body, link, data, is_read, "
                    "created_at, seq) "
                    "SELECT CAST(:u AS varchar), 'mining', 'personal_best', 'New personal best: ' || g || 'M', "
                    "'Your worker rig-' || (g % 7) || ' found a share of difficulty ' || g || "
                    "'M, above your previous best. ' || repeat('Keep the hashrate steady and the pool ' "
                    "|| 'will follow. ', 6), "
                    "'/miners/' || CAST(:u AS text) || '#best-' || g, "
                    "jsonb_build_object('difficulty', g * 1000000.5, 'worker', 'rig-' || (g % 7), "
                    "'previous', g * 900000, 'share_id', md5(g::text)), "
                    "g % 3 <> 0, now() - (g || ' minutes')::interval, :n - g + 1 "
                    "FROM generate_series(1, :n) g"
                ),
                {"u": user_id, "n": heavy if i == 0 else per_user},
            )
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


@dataclass
class Run:
    """One wrk run against one server."""

    server: str
    route: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per request (all workers), ms
    load_before: float
    load_after: float
    requests: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise RuntimeError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total


def wrk_script(paths: list[str], tokens: list[str] | None) -> str:
    """A wrk Lua script: each request picks a random miner (path and token;
    ``tokens[i]`` goes with ``paths[i]``)."""
    lua = "paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
    if tokens:
        lua += "tokens = {" + ",".join(f'"{t}"' for t in tokens) + "}\n"
        lua += ("request = function()\n  local i = math.random(#paths)\n"
                "  return wrk.format(nil, paths[i], {['Authorization'] = 'Bearer ' .. tokens[i]})\nend\n")
    else:
        lua += "request = function()\n  return wrk.format(nil, paths[math.random(#paths)])\nend\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    return script.name


def wrk(base: str, script: str, duration: int, pids: list[int]) -> tuple[float, float, float, float, int, float, float]:
    """Run wrk; returns (requests/s, p50 ms, p99 ms, CPU ms per request,
    requests, load before, load after)."""
    load_before, ticks_before = _load(), _cpu_ticks(pids)
    out = subprocess.run(
        ["wrk", "-t2", "-c10", f"-d{duration}s", "--timeout", "10s", "--latency", "-s", script, base],
        capture_output=True, text=True, check=True,
    ).stdout
    ticks, load_after = _cpu_ticks(pids) - ticks_before, _load()
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))
    cpu_ms = ticks / CLK_TCK * 1000 / max(requests, 1)
    for problem in re.findall(r"(?:Socket errors|Non-2xx or 3xx responses):.*", out):
        # Reported, not fatal (a timeout on an overloaded machine); the
        # servers' statuses are counted from their access logs at the end.
        print("  wrk: " + problem, flush=True)
    return rps, p50, p99, cpu_ms, requests, load_before, load_after


def export(ref: str, target: Path) -> None:
    """The source tree of git ``ref`` in ``target`` (``git archive``; the
    repository is not touched), to serve it beside the working tree."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)


def wait_ready(url: str, timeout: float = 120) -> None:
    """Return once ``url`` answered 200 twenty times in a row (both workers up)."""
    import time
    import urllib.request

    deadline, streak = time.monotonic() + timeout, 0
    while streak < 20:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                streak = streak + 1 if response.status == 200 else 0
        except OSError:
            streak = 0
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.2)


def tokens_for(route: str, tokens: list[str]) -> list[str | None]:
    """The token sent with the request for each miner (``TOKENS``)."""
    mode = TOKENS[route]
    if mode == "none":
        return [None] * len(tokens)
    return list(tokens) if mode == "own" else tokens[1:] + tokens[:1]


def profile(tokens: list[str], user_ids: list[str], requests: int, top: int, timer: str = "cpu",
            routes: list[str] | None = None, dump: Path | None = None) -> None:
    """cProfile ``requests`` requests per route through the WSGI app in this
    process (Flask's test client: the whole app, no server); prints the time
    per request, the cost split by layer (CPU time of this process with
    ``timer="cpu"``, else wall time) (``layers``) and the ``top``
    functions by cumulative and by own time; only ``routes`` when given;
    with ``dump``, each route's stats also go to ``<dump>/<route>.pstats``
    (for ``pstats``/snakeviz)."""
    import cProfile
    import io
    import pstats
    import time

    from profile_layers import layer_report

    from webapp import create_app

    app = create_app()
    client = app.test_client()
    for label, template in ROUTES.items():
        if routes and label not in routes:
            continue
        calls = [(template.format(user_id=u), {"Authorization": f"Bearer {t}"} if t else {})
                 for u, t in zip(user_ids, tokens_for(label, tokens), strict=True)]
        for path, headers in calls[:50]:  # warm: imports, pools, caches
            client.get(path, headers=headers)
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(requests):
            path, headers = calls[i % len(calls)]
            client.get(path, headers=headers)
        plain_ms = (time.perf_counter() - started) / requests * 1000
        plain_cpu_ms = (time.process_time() - cpu_started) / requests * 1000
        # CPU time of this process by default: on a shared machine wall time
        # mostly measures waiting for a core.
        profiler = cProfile.Profile(time.process_time) if timer == "cpu" else cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for i in range(requests):
            path, headers = calls[i % len(calls)]
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.get_data()
        profiler.disable()
        profiled_ms = (time.perf_counter() - started) / requests * 1000
        print(f"\n== profile {label}: {requests} requests in-process, {plain_ms:.2f} ms each "
              f"({plain_cpu_ms:.2f} ms of CPU) without the profiler, {profiled_ms:.2f} ms under it (wall); "
              f"layers by {timer} time; load {Path('/proc/loadavg').read_text().split()[0]}")
        print(layer_report(pstats.Stats(profiler), requests))
        if dump:
            dump.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(dump / f"{label}.pstats")
        if top:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(top)
            stats.sort_stats("tottime").print_stats(top)
            print(out.getvalue())


def same_answers(ports: dict[str, int], routes: list[str], user_ids: list[str], tokens: list[str]) -> None:
    """Check that the floor answers what ours answers (same JSON) for the
    first ten miners on every route; prints the differences (the floor
    must do what the route does, no less)."""
    import urllib.request

    for route in routes:
        sent = tokens_for(route, tokens)
        for user_id, token in list(zip(user_ids, sent, strict=True))[:10]:
            bodies = {}
            for server in ("floor", "ours"):
                url = f"http://{HOST}:{ports[server]}" + ROUTES[route].format(user_id=user_id)
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as answer:
                    bodies[server] = json.loads(answer.read())
            if bodies["floor"] != bodies["ours"]:
                print(f"  floor and ours differ on {route} for {user_id}: {bodies}", flush=True)


def report(runs: list[Run]) -> None:
    """The runs as a Markdown table, then ours/floor ratios per route."""
    print("\n| round | route | server | requests/s | p50 ms | p99 ms | CPU ms/request | load 1-min before → after |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.round} | {r.route} | {r.server} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
              f"{r.cpu_ms:.2f} | {r.load_before:.2f} → {r.load_after:.2f} |")
    print("\n| route | server | requests/s ÷ floor's, per round | median | CPU per request ÷ floor's (median) | p99 ms |")
    print("|---|---|---|---|---|---|")
    for route, server in ((ro, se) for ro in dict.fromkeys(r.route for r in runs) for se in ("ours", "before")):
        ratios, cpu = [], []
        for rnd in sorted({r.round for r in runs}):
            pair = {r.server: r for r in runs if r.route == route and r.round == rnd}
            if server in pair and "floor" in pair:
                ratios.append(pair[server].rps / pair["floor"].rps)
                cpu.append(pair[server].cpu_ms / pair["floor"].cpu_ms)
        p99 = [r.p99_ms for r in runs if r.route == route and r.server == server]
        if ratios:
            print(f"| {route} | {server} | {', '.join(f'{x:.2f}' for x in ratios)} | "
                  f"**{statistics.median(ratios):.2f}** | {statistics.median(cpu):.2f}× | {min(p99):.1f}–{max(p99):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=500)
    parser.add_argument("--heavy", type=int, default=1003, help="notifications of miner 0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each server's first run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes per server")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated: " + ", ".join(ROUTES))
    parser.add_argument("--servers", default="floor,ours", help="comma-separated: floor, ours")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="also serve this version of the app (a third server, 'before') in the same rounds")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (access lines)")
    parser.add_argument("--json", metavar="FILE", help="also write the runs as JSON")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of wrk: cProfile N requests per route in this process")
    parser.add_argument("--timer", choices=["cpu", "wall"], default="cpu", help="profile clock")
    parser.add_argument("--top", type=int, default=0, help="functions shown per profile listing")
    parser.add_argument("--dump-stats", type=Path, metavar="DIR",
                        help="with --profile: also write each route's stats to DIR/<route>.pstats")
    args = parser.parse_args()
    if not args.profile and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    routes = [r for r in args.routes.split(",") if r]
    servers = [s for s in args.servers.split(",") if s]

    with stores("webapp_bench_api") as st:
        # Production settings (docs/DEPLOYMENT.md): JSON logs with the access
        # line, rate limits on. wrk comes from one address: the public
        # profiles' per-IP budget is raised so the limiter counts but never refuses.
        env = st.app_env(SECRET_KEY="benchmark", RATELIMIT_ENABLED="true", ACCESS_LOG="true", LOG_FORMAT="json",
                         PUBLIC_RATE_LIMIT="100000000 per minute")
        procs: dict[str, subprocess.Popen] = {}
        logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
        try:
            pairs = migrate_and_create_users(env, args.users)
            user_ids, tokens = [u for u, _ in pairs], [t for _, t in pairs]
            fill_data(env, user_ids, args.per_user, args.heavy)
            if args.profile:
                profile(tokens, user_ids, args.profile, args.top, args.timer, routes, args.dump_stats)
                return
            ports = {}
            if args.before:
                servers.append("before")
                export(args.before, logs / "before-tree")
            for server in servers:
                ports[server] = free_port()
                log = open(logs / f"{server}.log", "w")  # noqa: SIM115 - closed with the directory
                options: dict = {}
                if server == "floor":
                    options = {"app": "floor_app:app", "extra_args": ("--pythonpath", "benchmarks")}
                elif server == "before":
                    options = {"cwd": logs / "before-tree"}
                try:
                    procs[server] = start_gunicorn(env, ports[server], args.workers, stderr=log, stdout=log,
                                                   start_timeout=180, **options)
                except RuntimeError:
                    raise RuntimeError(f"{server} did not start:\n" + (logs / f"{server}.log").read_text()[-3000:]) from None
            for server in servers:  # the workers import the app after the master listens
                wait_ready(f"http://{HOST}:{ports[server]}" + ROUTES["profile"].format(user_id=user_ids[0]))
            pids = {s: worker_pids(p.pid) for s, p in procs.items()}
            if "floor" in ports and "ours" in ports:
                same_answers(ports, routes, user_ids, tokens)
            scripts = {}
            for route in routes:
                template = ROUTES[route]
                paths = [template.format(user_id=u) for u in user_ids]
                sent = tokens_for(route, tokens)
                scripts[route] = wrk_script(paths, None if TOKENS[route] == "none" else [t or "" for t in sent])
            print(f"{args.users} users x {args.per_user} notifications (miner 0: {args.heavy}), "
                  f"{args.workers} gevent workers per server, wrk -t2 -c10 -d{args.duration}s, "
                  f"{args.rounds} rounds; {os.cpu_count()} CPUs; uptime: {subprocess.getoutput('uptime').strip()}")
            for route in routes:
                for server in servers:
                    wrk(f"http://{HOST}:{ports[server]}", scripts[route], args.warmup, pids[server])
            runs: list[Run] = []
            for rnd in range(1, args.rounds + 1):
                for route in routes:
                    order = servers[(rnd - 1) % len(servers):] + servers[:(rnd - 1) % len(servers)]
                    for server in order:
                        rps, p50, p99, cpu, n, before, after = wrk(
                            f"http://{HOST}:{ports[server]}", scripts[route], args.duration, pids[server])
                        runs.append(Run(server, route, rnd, rps, p50, p99, cpu, before, after, n))
                        print(f"round {rnd} {route:13} {server:6} {rps:8,.0f} req/s  p50 {p50:6.2f} ms  "
                              f"p99 {p99:6.2f} ms  CPU {cpu:5.2f} ms/req  load {before:.2f} → {after:.2f}", flush=True)
            report(runs)
            for server in servers:
                if server != "floor":  # the floor writes no access log
                    statuses = re.findall(r'"status": ?(\d+)', (logs / f"{server}.log").read_text())
                    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
                    print(f"{server}: answers by status (access log, warm-up included): {counts}")
            if args.json:
                Path(args.json).write_text(json.dumps([r.__dict__ for r in runs], indent=1))
            for script in scripts.values():
                Path(script).unlink()
        finally:
            for proc in procs.values():
                stop_process(proc)
            if args.keep_logs:
                print(f"server logs kept in {logs}")
            else:
                shutil.rmtree(logs)


if __name__ == "__main__":
    main()
