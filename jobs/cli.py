"""``flask worker`` and ``flask scheduler``: the background processes.

They live beside the jobs, not in ``webapp/cli`` (``webapp`` never imports
``jobs``), and join the ``flask`` command through ``init_app``, which
``wsgi.py`` calls (``FLASK_APP=wsgi``)."""
from __future__ import annotations

import click
from flask import Flask, current_app

from .schedule import run_scheduler
from .worker import QUEUES, run_worker


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help=f"Queues to work (default: {', '.join(QUEUES)}).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (with RQ's scheduler for retries)."""
    run_worker(current_app._get_current_object(), queues or QUEUES, burst=burst)


@click.command("scheduler")
def scheduler() -> None:
    """Run the single periodic-job scheduler (rq cron; standby while another runs)."""
    run_scheduler(current_app._get_current_object())


commands = [worker, scheduler]


def init_app(app: Flask) -> None:
    """Add ``flask worker`` and ``flask scheduler`` to ``app``'s CLI."""
    for command in commands:
        app.cli.add_command(command)
