"""Number, hashrate, name and time formatting (``webapp/formatting.py``) and
the one place every Jinja filter is registered (``init_template_filters``)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from jinja2 import Environment, nodes

import webapp
from webapp import formatting
from webapp.services import mining, profiles

TEMPLATES = Path(webapp.__file__).parent / "templates"


def _templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def test_every_filter_a_template_uses_is_registered_by_init_template_filters():
    app = Flask(__name__)
    builtin = set(app.jinja_env.filters)
    formatting.init_template_filters(app)
    parser = Environment()
    used = {node.name for path in _templates() for node in parser.parse(path.read_text()).find_all(nodes.Filter)}
    ours = used - builtin
    assert ours >= {"hashrate", "difficulty", "flag", "localtime", "happened_at", "thousands"}
    assert ours <= set(app.jinja_env.filters), ours - set(app.jinja_env.filters)


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_format_times_and_numbers_through_the_filters(path):
    text = path.read_text()
    assert ".strftime(" not in text and '"{:' not in text


@pytest.mark.parametrize(("style", "shown"), [
    ("date", "2025-11-03"), ("datetime", "2025-11-03 14:05"), ("datetime_seconds", "2025-11-03 14:05:09"),
    ("clock", "14:05"), ("clock_seconds", "14:05:09"), ("month", "November 2025"),
])
def test_time_styles(style, shown):
    moment = datetime(2025, 11, 3, 14, 5, 9, tzinfo=UTC)
    assert formatting.format_time(moment, style) == shown
    app = Flask(__name__)
    formatting.init_template_filters(app)
    assert app.jinja_env.from_string(f"{{{{ at | {style} }}}}").render(at=moment) == shown


def test_a_date_takes_the_date_styles():
    assert formatting.format_time(date(2024, 1, 2), "date") == "2024-01-02"


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (999, "999"), (12345, "12,345"), (1234567, "1,234,567")])
def test_thousands(value, shown):
    assert formatting.format_count(value) == shown


@pytest.mark.parametrize(("seconds", "shown"), [(45, "45 s"), (89.4, "89 s"), (300, "5 min"), (5399, "90 min"),
                                                (9000, "2.5 h")])
def test_session_durations(seconds, shown):
    assert formatting.format_duration(seconds) == shown


def test_the_old_homes_still_answer():
    """Callers of ``mining.format_*`` and ``profiles.flag_emoji`` keep working."""
    assert mining.format_hashrate is formatting.format_hashrate
    assert mining.format_difficulty is formatting.format_difficulty
    assert mining.worker_label is formatting.worker_label
    assert mining.display_hash is formatting.display_hash
    assert profiles.flag_emoji is formatting.flag_emoji
    assert formatting.flag_emoji("pt") == "\U0001f1f5\U0001f1f9" and formatting.flag_emoji("P1") == ""
