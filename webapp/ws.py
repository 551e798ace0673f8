"""The ``/ws`` socket (API.md WebSocket section)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the socket route and start this process's Redis listener."""
