"""``flask worker`` and ``flask scheduler``: the background processes.

They live beside the jobs, not in ``webapp/cli`` (``webapp`` never imports
``jobs``), and join the ``flask`` command through ``init_app``, which
``wsgi.py`` calls (``FLASK_APP=wsgi``)."""
from __future__ import annotations

import click
from flask import Flask, current_app

from .schedule import run_scheduler
from .worker import QUEUES, run_worker


def _app() -> Flask:
    """The app itself, not the proxy (the worker and scheduler outlive this
    context); Flask types ``current_app`` as a Flask, hiding the proxy's method."""
    return current_app._get_current_object()  # type: ignore[attr-defined]


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help=f"Queues to work (default: {', '.join(QUEUES)}).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (with RQ's scheduler for retries)."""
    run_worker(_app(), queues or QUEUES, burst=burst)


@click.command("scheduler")
def scheduler() -> None:
    """Run the single periodic-job scheduler (rq cron; standby while another runs)."""
    run_scheduler(_app())


commands = [worker, scheduler]


def init_app(app: Flask) -> None:
    """Add ``flask worker`` and ``flask scheduler`` to ``app``'s CLI."""
    for command in commands:
        app.cli.add_command(command)
