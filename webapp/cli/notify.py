"""CLI commands: notify."""
from __future__ import annotations

commands: list = []
