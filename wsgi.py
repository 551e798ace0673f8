"""WSGI entry point: ``gunicorn wsgi:app``; also ``FLASK_APP=wsgi`` for the
``flask`` command, which gets the background-process commands of ``jobs``
(``flask worker``, ``flask scheduler``) here: ``webapp`` never imports ``jobs``."""
from jobs import cli as jobs_cli
from webapp import create_app

app = create_app()
jobs_cli.init_app(app)
