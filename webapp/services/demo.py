"""The demo world (``flask demo``, run by ``make run``).

Creates the 60 miners of ``webapp/demo/miners.json`` (display names and
countries; password ``demo1234`` — demo only; SatoshiHunter is the demo
world's platform admin), replays the shared day
``webapp/demo/mining-events-24h.jsonl.gz`` shifted so its last event is now
into the ``mining:*`` streams and ingests it through the real consumer, then
forms the demo cooperatives, sweeps offline workers and aggregates coop
hashrate.

Idempotent: miners are created only when missing, and the day is loaded only
when no mining event is stored yet. ``reset=True`` first deletes the stored
events, rollups, worker states and mining notifications and activities, so
the day is loaded again relative to the current time.
"""
from __future__ import annotations

import json
import logging
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, insert, select, update

from ..extensions import db
from ..models import (
    Cooperative,
    CooperativeMember,
    CoopHashrateSample,
    MinerStats,
    MiningEvent,
    Notification,
    User,
    UserActivity,
    UserSettings,
    WorkerStatus,
    utcnow,
)
from ..vocabulary import NotificationCategory
from . import (
    accounts,
    conversations,
    coop_hashrate,
    coops,
    errors,
    messages,
    mining,
    notification_cache,
    passwords,
    preferences,
    profile_cache,
    profile_fields,
)
from . import ingest as ingest_service
from .membership import is_active_coop, is_active_member

log = logging.getLogger("webapp.demo")

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
MINERS_FILE = DEMO_DIR / "miners.json"
EVENTS_FILE = DEMO_DIR / "mining-events-24h.jsonl.gz"
DEMO_PASSWORD = "demo1234"  # demo only: documented in the README and docs/INGEST.md


@dataclass
class DemoResult:
    """What ``load_demo`` did."""

    miners_created: int = 0
    replayed: bool = False
    published: int = 0
    ingest: ingest_service.IngestStats | None = None
    offline_marked: int = 0


def create_miners(path: Path = MINERS_FILE) -> int:
    """Create the miners of ``path`` that do not exist yet, with default
    settings and the demo password (hashed once and shared: scrypt per miner
    would take seconds). Commits; returns how many were created."""
    miners = json.loads(Path(path).read_text())
    # The demo world's platform admin (/admin), so a newcomer can see it; demo only.
    db.session.execute(update(User).where(User.user_id == DEMO_PLATFORM_ADMIN, User.is_admin.is_(False))
                       .values(is_admin=True))
    existing = set(db.session.scalars(select(User.user_id).where(User.user_id.in_([m["user_id"] for m in miners]))))
    missing = [m for m in miners if m["user_id"] not in existing]
    if not missing:
        db.session.commit()
        return 0
    password_hash = passwords.hash_password(DEMO_PASSWORD)
    for miner in missing:
        accounts.validate_new_user(miner["user_id"], DEMO_PASSWORD, miner.get("display_name"),
                                   miner.get("country_code"))
        db.session.add(User(user_id=miner["user_id"], display_name=miner.get("display_name") or accounts.default_display_name(miner["user_id"]),
                            country_code=miner.get("country_code"), password_hash=password_hash,
                            is_admin=miner["user_id"] == DEMO_PLATFORM_ADMIN))
        db.session.add(UserSettings(user_id=miner["user_id"], privacy=dict(preferences.DEFAULT_PRIVACY),
                                    notifications=preferences.default_notifications()))
        profile_fields.ensure_row(miner["user_id"],
                                  miner.get("display_name") or accounts.default_display_name(miner["user_id"]))
    db.session.commit()
    return len(missing)


# ---- demo coops -----------------------------------------------------------------------

DEMO_MINERS = MINERS_FILE
SATOSHI_HUNTER = "bc1p4czy33sddxh00ttyyqn38egknrrxad770sgh276u5ph73xx2vqyqc0mtt3"
DEMO_PLATFORM_ADMIN = SATOSHI_HUNTER  # demo world only: he also reaches /admin
# (name, description, indexes into miners.json; the first present miner is the
# admin). Only miners 0-19 have display names; they are spread over the three.
DEMO_COOPS = (
    ("Satoshi's Hunters", "SatoshiHunter's crew: home miners chasing one lucky block together.",
     (0, 3, 7, 13, 17, 20, 21)),
    ("Bitaxe Brigade", "Twenty Bitaxes on shelves across the world. We're full, but say hi!",
     (2, 4, 5, 6, 8, 10, 11, 14, 16, 18, 19, 22, 23, 24, 25, 26, 27, 28, 29, 30)),
    ("Lisbon Lightning", "A small crew from Lisbon and friends.", (9, 1, 12, 15)),
)


def form_demo_coops() -> list[Cooperative]:
    """Demo world: form three coops among the demo miners of
    ``webapp/demo/miners.json`` — SatoshiHunter's (he is admin), one full at
    20 and one with a few members — through the same rules as everyone else.

    Idempotent: a coop whose name already exists (active) is left alone,
    miners already in a coop stay where they are, and miners who are not
    registered users are skipped. The chart history of the coops formed now is
    drawn from the stored mining events (``backfill_history``);
    the demo command runs the aggregation afterwards. Returns the coops formed.
    """
    miners = json.loads(DEMO_MINERS.read_text())
    formed = []
    for name, description, indexes in DEMO_COOPS:
        exists = db.session.scalar(
            select(Cooperative.id).where(Cooperative.name == name, is_active_coop())
        )
        if exists is not None:
            continue
        found = [db.session.get(User, miners[i]["user_id"]) for i in indexes if i < len(miners)]
        users = [u for u in found if u is not None and coops.active_membership(u) is None]
        if not users:
            continue
        coop = coops.create(users[0], name=name, description=description)
        joined = [users[0]]
        for member in users[1:]:
            try:
                coops.join(member, invite_code=coop.invite_code)
            except (errors.AlreadyInCoop, errors.CoopFull):
                continue
            joined.append(member)
        _demo_chat(coop.id, [u.user_id for u in joined])
        formed.append(coop)
    if formed:
        backfill_history([c.id for c in formed])
    current_app.logger.info("demo: formed %d cooperative(s)", len(formed))
    return formed


# The demo coops' first words (the chat page is not empty on a fresh demo).
DEMO_CHAT = (
    "gm miners! Welcome to the coop :)",
    "My Bitaxe just hit a new **best difficulty**, fingers crossed",
    "Anyone else running the fans at 60% overnight? The office is *loud*.",
    "One block and we all buy the pizza. Or 200 pizzas.",
)


def _demo_chat(coop_id: int, member_ids: list[str]) -> None:
    """A few messages from the members, in turn, in the coop's conversation."""
    conversation_id = conversations.coop_conversation_id(coop_id)
    if conversation_id is None or not member_ids:
        return
    for i, body in enumerate(DEMO_CHAT):
        messages.post(member_ids[i % len(member_ids)], conversation_id, body, client_id=f"demo-{coop_id}-{i}")


def load_demo(*, limit: int | None = None, reset: bool = False, progress: bool = True,
              echo: Callable[[str], None] = print, events_file: Path = EVENTS_FILE) -> DemoResult:
    """Build (or complete) the demo world; see the module docstring.

    ``limit`` replays only the first N lines of the day (tests). Returns what
    was done. The replay goes through the app's Redis (the in-process
    stand-in in the embedded default) and the same ``Consumer`` as
    ``flask ingest``.
    """
    result = DemoResult()
    result.miners_created = create_miners()
    echo(f"demo: {result.miners_created} miners created (password {DEMO_PASSWORD!r}, demo only)"
         if result.miners_created else "demo: the 60 miners already exist")
    if reset:
        reset_mining_data()
        echo("demo: stored mining events, rollups and mining notifications deleted")
    if mining.has_events():
        echo("demo: mining events already stored; not replaying the day (use --reset to load it again)")
    else:
        echo("demo: replaying the day into the streams, shifted so that its last event is now")
        stats = ingest_service.publish_file(events_file, shift_to_now=True, limit=limit, progress=progress)
        result.replayed, result.published = True, stats.published
        echo(f"demo: {stats.published} events published in {stats.seconds:.1f} s; ingesting")
        consumer = ingest_service.Consumer(name="demo")
        result.ingest = consumer.run(drain=True, max_retries=3)
        echo(f"demo: {result.ingest.summary()}")

    form_demo_coops()
    result.offline_marked = len(mining.sweep_offline_workers())
    coop_hashrate.aggregate_all()
    echo(f"demo: cooperatives formed; {result.offline_marked} worker(s) marked offline; coop hashrate aggregated")
    if current_app.config["EMBEDDED"]:
        echo("demo: ready. Log in at /login (http://127.0.0.1:5000 unless PORT says otherwise), e.g. as "
             "SatoshiHunter, also the demo's platform admin: "
             "bc1p4czy33sddxh00ttyyqn38egknrrxad770sgh276u5ph73xx2vqyqc0mtt3 / demo1234")
    return result


def reset_mining_data() -> None:
    """Delete every stored mining event, rollup and worker state, and the
    mining notifications and mining activities they raised (``flask demo
    --reset``; development only). Commits."""
    db.session.execute(delete(MiningEvent))
    db.session.execute(delete(MinerStats))
    profile_cache.CACHE.changed(shared=True)  # every rank is back to its start
    db.session.execute(delete(WorkerStatus))
    owners = db.session.execute(
        delete(Notification).where(Notification.category == NotificationCategory.MINING)
        .returning(Notification.user_id).execution_options(synchronize_session=False)
    ).scalars().all()
    db.session.execute(
        delete(UserActivity).where(UserActivity.activity_type.in_(("share_submitted", "block_found")))
    )
    db.session.commit()
    notification_cache.forget(owners)  # a Core DELETE: no ORM event does it


def demo_coop_ids() -> list[int]:
    """The ids of the active demo cooperatives (``DEMO_COOPS`` by name)."""
    return list(db.session.scalars(
        select(Cooperative.id).where(Cooperative.name.in_([name for name, _, _ in DEMO_COOPS]), is_active_coop())
    ))


def backfill_history(coop_ids: list[int], *, now: datetime | None = None, hours: int = 24,
                     replace: bool = False) -> int:
    """Demo world only: draw the last ``hours`` of history for coops formed
    just now from the stored ``hashrate_update`` mining events of their current
    members, one point per ``COOP_HASHRATE_INTERVAL``, so the chart has a
    curve on first start. At each point a worker counts with its latest sample
    of the ``WORKER_OFFLINE_AFTER`` seconds before it (connects and
    disconnects are ignored: an approximation of ``services.hashrate``).
    Coops that already have samples in the window are skipped, unless
    ``replace`` (the day flowed in behind a running server, whose 5-minute
    job already added a few points): their samples in the window are
    deleted first. Commits; returns the points inserted."""
    now = now or utcnow()
    start = now - timedelta(hours=hours)
    if replace and coop_ids:
        db.session.execute(delete(CoopHashrateSample).where(CoopHashrateSample.cooperative_id.in_(coop_ids),
                                                            CoopHashrateSample.computed_at >= start))
    step = timedelta(seconds=current_app.config["COOP_HASHRATE_INTERVAL"])
    fresh = timedelta(seconds=current_app.config["WORKER_OFFLINE_AFTER"])
    have = set(db.session.scalars(
        select(CoopHashrateSample.cooperative_id).distinct()
        .where(CoopHashrateSample.cooperative_id.in_(coop_ids), CoopHashrateSample.computed_at >= start)
    ))
    members = db.session.execute(
        select(CooperativeMember.cooperative_id, CooperativeMember.user_id).where(
            CooperativeMember.cooperative_id.in_([c for c in coop_ids if c not in have]),
            is_active_member(),
        )
    ).all()
    coop_of = {user_id: coop_id for coop_id, user_id in members}
    if not coop_of:
        return 0
    samples: dict[str, list[tuple[datetime, str, float]]] = {}  # worker -> [(ts, user, H/s)] by time
    for user_id, worker, ts, data in db.session.execute(
        select(MiningEvent.user_id, MiningEvent.worker, MiningEvent.ts, MiningEvent.data)
        .where(MiningEvent.event == "hashrate_update", MiningEvent.user_id.in_(list(coop_of)),
               MiningEvent.ts >= start - fresh, MiningEvent.ts <= now)
        .order_by(MiningEvent.ts)
    ):
        rate = (data or {}).get("hashrate_1h")
        if worker and isinstance(rate, (int, float)):
            samples.setdefault(worker, []).append((ts, user_id, float(rate)))
    if not samples:
        return 0  # nothing was mined: leave the chart empty rather than flat
    rows = []
    at = start + step
    while at <= now:
        totals: dict[int, float] = {c: 0.0 for c in set(coop_of.values())}
        online: dict[int, set[str]] = {c: set() for c in totals}
        for series in samples.values():
            latest = bisect_right(series, at, key=lambda s: s[0])
            if latest and at - series[latest - 1][0] <= fresh:
                _, user_id, rate = series[latest - 1]
                totals[coop_of[user_id]] += rate
                online[coop_of[user_id]].add(user_id)
        rows += [{"cooperative_id": c, "total_hashrate": t, "online_count": len(online[c]), "computed_at": at}
                 for c, t in totals.items()]
        at += step
    if rows:
        db.session.execute(insert(CoopHashrateSample), rows)
    db.session.commit()
    return len(rows)
