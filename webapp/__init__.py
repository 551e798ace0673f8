"""The Flask application factory (flaskr / microblog shape)."""
from __future__ import annotations

from typing import Any

from flask import Flask

from .config import INSTANCE_DIR, Config


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: environment config, then ``test_config`` overrides.

    With no ``DATABASE_URL``/``REDIS_URL`` the app runs on SQLite under
    ``instance/`` and an in-process Redis stand-in, with RQ jobs inline.
    """
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), instance_relative_config=False)
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
