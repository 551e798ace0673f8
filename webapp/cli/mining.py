"""``flask ingest`` (the stream consumer process) and ``flask replay FILE``."""
from __future__ import annotations

import signal
import threading

import click
from flask import current_app

from ..services import ingest as ingest_service
from . import WholeNumber


@click.command("ingest")
@click.option("--consumer", "consumer_name", default=None,
              help="Consumer name in the group (default: hostname-pid).")
@click.option("--drain", is_flag=True, help="Exit when no new entry is waiting instead of blocking.")
@click.option("--batch-size", type=WholeNumber(1, 100_000), default=None,
              help="Entries per stream per read (default: INGEST_BATCH_SIZE).")
def ingest(consumer_name: str | None, drain: bool, batch_size: int | None) -> None:
    """Read the mining:* streams with the consumer group and store the events."""
    if current_app.config["EMBEDDED"] and not current_app.config.get("EMBEDDED_REDIS_ATTACHED"):
        click.echo("ingest: embedded default (no REDIS_URL) and no `make run` serving: this process's Redis "
                   "stand-in has no publisher; use `flask replay FILE --ingest` or `flask demo`, or set REDIS_URL.",
                   err=True)
    consumer = ingest_service.Consumer(name=consumer_name, batch_size=batch_size)

    def stop(signum, frame):  # finish the current batch, then exit
        consumer.stop_event.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    click.echo(f"ingest: consumer {consumer.name} in group {consumer.group}"
               f"{' (drain)' if drain else ''}", err=True)
    try:
        stats = consumer.run(drain=drain)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"ingest: {stats.summary()}")


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--shift-to-now", is_flag=True, help="Shift every ts so that the last event is now.")
@click.option("--limit", type=WholeNumber(1), default=None, help="Only the first N lines.")
@click.option("--ingest", "then_ingest", is_flag=True,
              help="Then ingest in this process until the streams are drained (needed in the embedded "
                   "default without a `make run` serving: this process's Redis stand-in lives only as long as "
                   "it does; beside `make run` its consumer ingests them).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Publish at N times the log's own pace (by ts) instead of as fast as possible; with "
                   "--shift-to-now each event is stamped with the moment it is published. Ctrl-C or "
                   "SIGTERM stops it cleanly.")
def replay(file: str, shift_to_now: bool, limit: int | None, then_ingest: bool, quiet: bool,
           speed: float | None) -> None:
    """Publish a .jsonl / .jsonl.gz envelope log into the mining:* streams."""
    if current_app.config["EMBEDDED"] and not then_ingest and not current_app.config.get("EMBEDDED_REDIS_ATTACHED"):
        click.echo("replay: embedded default (no REDIS_URL) and no `make run` serving: the streams vanish when "
                   "this command exits; add --ingest to store the events now.", err=True)
    stop = threading.Event()
    previous = {}
    if speed is not None:  # a paced replay runs for a long time: stop between two events
        previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = ingest_service.publish_file(file, shift_to_now=shift_to_now, limit=limit, progress=not quiet,
                                            speed=speed, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"replay: published {stats.published} events"
               + (f", skipped {stats.skipped} lines" if stats.skipped else "")
               + (f" at {speed:g}x" if speed is not None else "")
               + (", stamped as published" if shift_to_now and speed is not None
                  else f", shifted by {stats.shift:,.0f} s" if shift_to_now else "")
               + (", stopped early" if stop.is_set() else "")
               + f" in {stats.seconds:.1f} s")
    if then_ingest:
        result = ingest_service.Consumer().run(drain=True, max_retries=3)
        click.echo(f"ingest: {result.summary()}")


commands = [ingest, replay]
