"""Business rules. Routes, htmx handlers, socket messages, CLI commands and
RQ jobs are thin adapters over these functions."""
