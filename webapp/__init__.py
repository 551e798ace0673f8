"""The Flask application factory (flaskr / microblog shape)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from .config import INSTANCE_DIR, Config


class App(Flask):
    """Flask, with ``ensure_sync`` remembering its answer per function.

    Flask asks ``inspect.iscoroutinefunction`` about every hook and view on
    every request (13 calls on a JSON read, ~4 % of its CPU,
    docs/PERFORMANCE.md); the answer for a given function never changes.
    Functions registered at set-up (hooks, views, handlers) are remembered;
    past ``_SYNC_CACHE_SIZE`` entries (``after_this_request`` closures made
    per request) it asks each time, as Flask does.
    """

    _SYNC_CACHE_SIZE = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync[func]
        except KeyError:
            pass
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)
        synced = super().ensure_sync(func)
        if len(self._sync) < self._SYNC_CACHE_SIZE:
            self._sync[func] = synced
        return synced


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: environment config, then ``test_config`` overrides.

    With no ``DATABASE_URL``/``REDIS_URL`` the app runs on SQLite under
    ``instance/`` and an in-process Redis stand-in, with RQ jobs inline.
    """
    app = App(__name__, instance_path=str(INSTANCE_DIR), instance_relative_config=False)
    from .jsonprovider import OrjsonProvider

    app.json = OrjsonProvider(app)
    app.config.from_object(Config())
    if test_config:
        app.config.update(test_config)
    app.config["EMBEDDED"] = (test_config or {}).get("EMBEDDED", not app.config["REDIS_URL"])
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    from . import observability

    observability.configure_logging(app.config["LOG_FORMAT"])
    from .services import media

    # Before any extension is set up: a wrong upload store stops here, leaving nothing half-initialised.
    media.init_app(app)

    from . import auth, errors, extensions, input_gate, security
    from .extensions import csrf, db, limiter, login_manager, mail, migrate, sock

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        extensions.sqlite_for_threads(app)
    migrate.init_app(app, db, directory=str(INSTANCE_DIR.parent / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "pages_auth.login"
    login_manager.login_message = "Log in to see that page."
    mail.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    # init_app leaves the shared switch at the last app's setting: keep it on
    # once any app armed the limiter; each request asks its own app's config.
    limiter.enabled = limiter.initialized
    sock.init_app(app)
    extensions.init_redis(app)
    errors.init_app(app)
    security.init_app(app)
    observability.init_app(app)
    input_gate.init_app(app)  # before the blueprints: it installs the <int:> converter
    app.session_interface = auth.CookieSessionInterface()
    app.before_request(auth.resolve_caller)

    from . import api, cli, formatting, pages, ws

    api.register(app)
    pages.register(app)
    formatting.init_template_filters(app)
    ws.init_app(app)
    cli.init_app(app)

    if app.config["EMBEDDED_SCHEDULER"] and not app.testing:
        from .services import schedule

        # Started by the first request, so CLI commands never start it.
        app.before_request(lambda: schedule.start_embedded(app))
    return app
