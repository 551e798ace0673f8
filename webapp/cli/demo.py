"""``flask demo``: the demo world (60 miners and a real day of mining events)."""
from __future__ import annotations

import click

from ..services import demo as demo_service
from . import WholeNumber


@click.command("demo")
@click.option("--reset", is_flag=True,
              help="Delete stored mining events, rollups and mining notifications first, then load the day again "
                   "(development only).")
@click.option("--limit", type=WholeNumber(1), default=None, help="Replay only the first N lines of the day.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(reset: bool, limit: int | None, quiet: bool) -> None:
    """Create the 60 demo miners and load the shared day shifted to now (idempotent)."""
    demo_service.load_demo(reset=reset, limit=limit, progress=not quiet, echo=click.echo)


commands = [demo]
