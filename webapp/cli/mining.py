"""CLI commands: mining."""
from __future__ import annotations

commands: list = []
