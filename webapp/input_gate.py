"""Input rules enforced once for the whole request, so that every route
(and every route written later) follows them without repeating them:

* ``<int:...>`` path segments are ASCII digits up to ``inputs.MAX_ID``
  (Werkzeug's own converter matches ``\\d``, i.e. any Unicode decimal digit
  such as ``١``); anything else does not match the route (404).
* Every path segment, query-string key and value is ``LINE`` text and every
  form key ``LINE``, every form value ``MULTILINE`` (``services.inputs``);
  an offender is 400 ``validation_error`` before any view, login lookup or
  CSRF check runs. Services apply the stricter per-field kind on top (a
  coop name is ``LINE`` even when it arrives in a form).
* A chunked body (no ``Content-Length``) is read here up to
  ``MAX_CONTENT_LENGTH + 1`` bytes and handed on with its length, so the
  size check in ``security`` answers 413 for it like for any other body;
  Werkzeug would otherwise cut it silently at the limit and the view would
  see broken JSON or a truncated form (a 400, or a CSRF failure).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request
from werkzeug.routing import IntegerConverter, Map

from .services import inputs

FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class AsciiIntConverter(IntegerConverter):
    """``<int:name>``: ASCII digits only, 0..MAX_ID unless ``max`` is given."""

    regex = rf"[0-9]{{1,{inputs.MAX_DIGITS}}}"

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = None) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=inputs.MAX_ID if max is None else max)


class BoundedChunkedBody:
    """WSGI middleware: buffer a chunked request body up to the app's
    ``MAX_CONTENT_LENGTH`` + 1 bytes and pass it on with a Content-Length
    (see the module doc). Bodies with a Content-Length pass untouched."""

    def __init__(self, wsgi_app: Callable, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if chunked and limit:
            stream, body = environ["wsgi.input"], bytearray()
            while len(body) <= limit:
                piece = stream.read(min(64 * 1024, limit + 1 - len(body)))
                if not piece:
                    break
                body += piece
            # More than the limit is all the app needs to know: the rest is never read.
            environ["wsgi.input"] = io.BytesIO(bytes(body))
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]  # Werkzeug ignores Content-Length beside it
        return self.wsgi_app(environ, start_response)


def refuse_control_characters() -> None:
    """before_request: the text rule on path segments, query strings and
    forms (see the module doc). Raises ValidationError (400)."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            inputs.check_text(value, name=name)
    for key, value in request.args.items(multi=True):
        inputs.check_text(key, name="A query parameter name")
        inputs.check_text(value, name=key)
    if request.mimetype in FORM_MIMETYPES:
        for key, value in request.form.items(multi=True):
            inputs.check_text(key, name="A form field name")
            inputs.check_text(value, name=key, kind=inputs.MULTILINE)


def init_app(app: Flask) -> None:
    """Install the converter (before any route is added), the middleware
    and the hook."""
    app.url_map.converters["int"] = AsciiIntConverter
    app.wsgi_app = BoundedChunkedBody(app.wsgi_app, app)  # type: ignore[method-assign]
    app.before_request(refuse_control_characters)
