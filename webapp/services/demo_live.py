"""The demo world behind a running server (``flask demo --serve``, what
``make run`` starts): the page answers at once, the shared day flows in
behind it through the real consumer with its progress shown, then a replay
keeps feeding the day in real time, looping, so the world never dies.

Daemon threads of the serving process, each in its own app context:

* the **loader**: when no mining event is stored yet, stores the whole
  day shifted so its last event is now through the consumer's own
  ``process`` (``ingest.entries_of_file``: the entries the replay would
  publish, read straight from the file) (``PROGRESS``: a bar in the terminal, a
  banner on the pages), then draws the demo coops' chart history and runs
  the offline sweep and the coop aggregation once;
* the **live replay** (the loader, once done): ``live_replay`` publishes the
  day again paced by its ``ts`` at ``speed`` (1 = real time), each event
  stamped with the moment it is due, and starts over when the day ends, so
  each loop is the day shifted to now again: workers keep sending samples,
  hashrates move, shares and personal bests keep arriving;
* the **consumer** (``ingest.Consumer``, group ``INGEST_CONSUMER_GROUP``),
  started by the loader: the same loop as ``flask ingest``, reading the
  streams of this process's Redis stand-in (also fed by CLI commands
  through ``embedded_redis``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from . import coop_hashrate, demo, mining, schedule
from . import ingest as ingest_service

log = logging.getLogger("webapp.demo")


@dataclass
class Progress:
    """How far the demo day has flowed in (this process). ``phase``:
    ``idle`` (nothing to load), ``publishing`` (the day into the stream),
    ``loading`` (the consumer storing it), ``finishing`` (chart history, sweep, aggregation), ``live``
    (done; the replay loop runs)."""

    phase: str = "idle"
    total: int = 0  # events of the day
    ingested: int = 0  # entries the consumer has stored (or dead-lettered)
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None  # how long the load took, once done

    @property
    def loading(self) -> bool:
        return self.phase in ("publishing", "loading", "finishing")

    @property
    def percent(self) -> int:
        if self.phase == "finishing":
            return 99
        return min(99, int(100 * self.ingested / self.total)) if self.total else 0


PROGRESS = Progress()
SWEEP_JOB = "jobs.mining.sweep_offline_workers"


def live_replay(path: str | Path, *, speed: float = 1.0, stop: threading.Event, loops: int | None = None,
                on_loop: Callable[[int, ingest_service.ReplayStats], None] | None = None) -> int:
    """Publish the day at ``path`` paced by its ``ts`` at ``speed``, each
    event stamped when it is due (``publish_file(shift_to_now=True,
    speed=...)``), over and over until ``stop`` is set (or ``loops`` loops
    ran): loop *k* starts when loop *k-1* ends, so its stamps follow on from
    the previous loop's, shifted by the day's length / ``speed``. Calls
    ``on_loop(k, stats)`` after each loop. Returns the loops completed."""
    done = 0
    while not stop.is_set() and (loops is None or done < loops):
        stats = ingest_service.publish_file(path, shift_to_now=True, speed=speed, stop=stop, progress=False)
        if stop.is_set():
            break
        done += 1
        log.info("demo: live replay loop %d done (%d events)", done, stats.published)
        if on_loop is not None:
            on_loop(done, stats)
    return done


def start(app: Flask, *, events_file: Path = demo.EVENTS_FILE, speed: float = 1.0, live: bool = True,
          bar: bool = True, echo: Callable[[str], None] = print, limit: int | None = None) -> threading.Event:
    """Start the loader thread of the module docstring in this process (it
    starts the consumer, then runs the live replay); the miners and coops
    must exist (``demo.create_miners``, ``demo.form_demo_coops``). ``limit``
    loads only the first N lines of the day (tests). Returns the event that
    stops all of it."""
    stop = threading.Event()

    def consume(consumer: ingest_service.Consumer) -> None:
        with app.app_context():
            consumer.run()

    def load() -> None:
        with app.app_context():
            consumer = ingest_service.Consumer(name="embedded", block_ms=500)
            consumer.stop_event = stop
            try:
                if not mining.has_events():
                    _load_day(events_file, consumer, start_consumer=lambda: _thread(consume, consumer),
                              bar=bar, echo=echo, limit=limit)
                else:
                    _thread(consume, consumer)
            except Exception:  # noqa: BLE001 - the server keeps serving; the log says why
                log.exception("demo: loading the day failed")
                schedule.hold(SWEEP_JOB, False)
            PROGRESS.phase = "live"
            if live:
                echo(f"demo: live replay of the day at {speed:g}x, looping")
                live_replay(events_file, speed=speed, stop=stop)

    _thread(load)
    return stop


def _thread(target: Callable[..., None], *args: object) -> None:
    threading.Thread(target=target, args=args, name=f"demo-{target.__name__}", daemon=True).start()


def _load_day(events_file: Path, consumer: ingest_service.Consumer, *, start_consumer: Callable[[], None],
              bar: bool, echo: Callable[[str], None], limit: int | None) -> None:
    """Store the day, shifted so its last event is now, through the
    consumer's own ``process`` (validation, storage, rollups, alerts, the
    acknowledgement) in batches read straight from the file
    (``ingest.entries_of_file``: the entries the replay would publish), then
    start the consumer on the streams for the live replay. Straight, not
    through the stream: publishing 254,730 entries into the stand-in first
    cost as long as storing them, and a consumer keeping pace with a
    publisher reads tiny batches (docs/PERFORMANCE.md, "The first make run")."""
    from tqdm import tqdm

    PROGRESS.started, PROGRESS.phase = time.monotonic(), "publishing"
    PROGRESS.total = ingest_service.count_lines(events_file, limit)
    # Until the day is in, every worker's newest stored sample is hours old: no offline sweep (and notices).
    schedule.hold(SWEEP_JOB)
    echo(f"demo: the day ({PROGRESS.total:,} events) flows in behind the server; pages fill in as it does")
    consumer.ensure_groups()
    PROGRESS.phase = "loading"
    with tqdm(total=PROGRESS.total, unit=" events", desc="demo day", disable=not bar, mininterval=1.0) as meter:
        for entries in ingest_service.entries_of_file(events_file, shift_to_now=True, limit=limit):
            consumer.process(entries)
            PROGRESS.ingested += len(entries)
            meter.update(len(entries))
    start_consumer()
    PROGRESS.phase = "finishing"
    coop_ids = demo.demo_coop_ids()
    demo.backfill_history(coop_ids, replace=True)
    mining.sweep_offline_workers()
    schedule.hold(SWEEP_JOB, False)
    coop_hashrate.aggregate_all()
    PROGRESS.seconds = time.monotonic() - PROGRESS.started
    echo(f"demo: the day is in ({PROGRESS.seconds:.0f} s); cooperatives' charts drawn, hashrate aggregated")
