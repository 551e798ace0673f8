"""CLI commands (``flask ...``): thin adapters over services. One module per
area, each exposing ``commands`` (a list of click commands or groups)."""
from __future__ import annotations

import click
from flask import Flask

from ..services import inputs
from ..services.errors import ValidationError


class WholeNumber(click.ParamType):
    """A whole number read with ``inputs.parse_int`` (ASCII digits,
    ``minimum..maximum``), like every other door of the app; click's own
    ``int`` takes ``"١"`` for 1."""

    name = "integer"

    def __init__(self, minimum: int = 0, maximum: int = inputs.MAX_ID) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value, param, ctx) -> int:
        raw: int | str
        if isinstance(value, int) and not isinstance(value, bool):
            raw = value
        else:
            raw = str(value)
        try:
            return inputs.parse_int(raw, name=param.human_readable_name if param else "value",
                                    minimum=self.minimum, maximum=self.maximum)
        except ValidationError as exc:
            self.fail(exc.message, param, ctx)


def init_app(app: Flask) -> None:
    from . import coops, demo, mining, notify, users

    # ``flask worker``/``flask scheduler`` live in jobs/cli.py (registered by wsgi.py).
    for module in (users, mining, demo, coops, notify):
        for command in module.commands:
            app.cli.add_command(command)
