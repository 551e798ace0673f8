"""Periodic work and how it is scheduled."""
from __future__ import annotations

from flask import Flask


def start_embedded(app: Flask) -> None:
    """Embedded default only: run the periodic jobs on a thread of this process."""
