"""Run RQ jobs inside an app context.

In a worker process each job pushes a fresh app context of the one app the
process built (so the DB session is released after every job). Where a
context already exists (inline jobs of the embedded default, tests running a
``SimpleWorker`` in-process) the job uses it.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Flask, current_app, has_app_context

F = TypeVar("F", bound=Callable)
_app: Flask | None = None


def set_app(app: Flask) -> None:
    """Make ``app`` the one jobs of this process run in."""
    global _app
    _app = app


def get_app() -> Flask:
    """This process's app: the current one, the one set, or a new one from the environment."""
    global _app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]  # Flask types the proxy as Flask
    if _app is None:
        from webapp import create_app

        _app = create_app()
    return _app


def app_job(func: F) -> F:
    """Decorator for job functions: guarantees an app context."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with get_app().app_context():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
