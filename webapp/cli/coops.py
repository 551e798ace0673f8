"""CLI commands: coops."""
from __future__ import annotations

commands: list = []
