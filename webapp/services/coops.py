"""Cooperatives (seed 000 §7.3, API.md "Coop rules")."""
from __future__ import annotations


def form_demo_coops() -> None:
    """Demo world: form the demo coops among the demo miners (idempotent)."""
