"""``flask demo``: the demo world (60 miners and a real day of mining events).

``flask demo --serve`` (what ``make run`` runs) serves at once and lets the
day flow in behind the server, then keeps it alive with a looping real-time
replay (``services/demo_live.py``)."""
from __future__ import annotations

import signal
import sys

import click
from flask import current_app

from ..services import demo as demo_service
from . import WholeNumber


@click.command("demo")
@click.option("--reset", is_flag=True,
              help="Delete stored mining events, rollups and mining notifications first, then load the day again "
                   "(development only).")
@click.option("--limit", type=WholeNumber(1), default=None, help="Replay only the first N lines of the day.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--serve", is_flag=True,
              help="Embedded default: serve at once and load the day behind the server (a progress bar here, a "
                   "banner on the pages), then replay it in real time, looping, so the demo world stays alive.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve: the address to bind.")
@click.option("--port", type=WholeNumber(1, 65535), default=5000, show_default=True, help="With --serve: the port.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="With --serve: the live replay's pace (1 = real time).")
@click.option("--no-live", is_flag=True, help="With --serve: no live replay after the day is in.")
def demo(reset: bool, limit: int | None, quiet: bool, serve: bool, host: str, port: int, speed: float,
         no_live: bool) -> None:
    """Create the 60 demo miners and load the shared day shifted to now (idempotent)."""
    if not serve:
        demo_service.load_demo(reset=reset, limit=limit, progress=not quiet, echo=click.echo)
        return
    _serve(reset=reset, quiet=quiet, host=host, port=port, speed=speed, live=not no_live, limit=limit)


def _serve(*, reset: bool, quiet: bool, host: str, port: int, speed: float, live: bool, limit: int | None) -> None:
    from werkzeug.serving import run_simple

    from .. import embedded_redis
    from ..services import demo_live, schedule

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config["EMBEDDED"]:
        raise click.ClickException("--serve is for the embedded default (no REDIS_URL); with Redis run the "
                                   "Procfile's processes (make run-prod).")
    if app.config.get("EMBEDDED_REDIS_ATTACHED"):
        raise click.ClickException(f"another `make run` already serves this instance/ folder "
                                   f"({app.config['EMBEDDED_REDIS_ATTACHED']}); stop it first.")
    if not speed > 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    created = demo_service.create_miners()
    click.echo(f"demo: {created} miners created (password {demo_service.DEMO_PASSWORD!r}, demo only)"
               if created else "demo: the 60 miners already exist")
    if reset:
        demo_service.reset_mining_data()
        click.echo("demo: stored mining events, rollups and mining notifications deleted")
    demo_service.form_demo_coops()
    redis_port = embedded_redis.serve(app.extensions["fake_redis_server"])
    click.echo(f"demo: the Redis stand-in is shared on 127.0.0.1:{redis_port}, so `flask notify` and other "
               "commands reach this server's sockets")
    schedule.start_embedded(app)
    demo_live.start(app, speed=speed, live=live, bar=not quiet, echo=click.echo, limit=limit)
    click.echo(f"demo: serving http://{host}:{port} now. Log in as SatoshiHunter, also the demo's platform admin: "
               f"{demo_service.DEMO_PLATFORM_ADMIN} / {demo_service.DEMO_PASSWORD}")
    # SIGTERM ends the process through SystemExit, so the atexit hooks (the port file) run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


commands = [demo]
