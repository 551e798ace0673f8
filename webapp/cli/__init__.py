"""CLI commands (``flask ...``): thin adapters over services. One module per
area, each exposing ``commands`` (a list of click commands or groups)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import users

    for module in (users,):
        for command in module.commands:
            app.cli.add_command(command)
