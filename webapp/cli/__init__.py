"""CLI commands (``flask ...``): thin adapters over services. One module per
area, each exposing ``commands`` (a list of click commands or groups)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import coops, demo, jobs, mining, notify, users

    for module in (users, mining, demo, coops, notify, jobs):
        for command in module.commands:
            app.cli.add_command(command)
