"""The app's JSON provider: orjson instead of the standard library.

Flask routes that return a dict or list, ``jsonify``, the error bodies and
``app.json.dumps`` go through ``app.json`` (Flask's JSON provider
interface); the SpecTree routes serialise through their pydantic response
models instead (``api/openapi.py``). orjson encodes the same values several
times faster, with Flask's rules where a client could tell: keys sorted (as
``DefaultJSONProvider.sort_keys``), compact separators, dates as HTTP dates
and decimals, UUIDs, dataclasses and ``__html__`` objects through Flask's
``default`` (``OPT_PASSTHROUGH_DATETIME`` hands dates to it). One
difference in bytes, none in values: non-ASCII text is written as UTF-8
rather than ``\\u`` escapes. What orjson refuses (an integer beyond 64 bits,
keys of mixed types) is encoded by Flask's provider.
"""
from __future__ import annotations

import json
import re
from typing import Any, cast

import orjson
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class OrjsonProvider(DefaultJSONProvider):
    """``DefaultJSONProvider`` with orjson doing the encoding and decoding."""

    def _encode(self, obj: Any, option: int) -> bytes | None:
        try:
            return orjson.dumps(obj, default=self.default, option=option)
        except orjson.JSONEncodeError:
            return None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs:  # options orjson has no equivalent for (indent, cls ...): Flask's own
            body = self._encode(obj, _OPTIONS)
            if body is not None:
                return body.decode()
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """A JSON response (``jsonify``, a returned dict): the encoded bytes
        straight into the body, with the trailing newline Flask writes."""
        obj = self._prepare_response_obj(args, kwargs)
        if self._app.debug:  # indented for people, as Flask does
            return super().response(obj)
        body = self._encode(obj, _OPTIONS | orjson.OPT_APPEND_NEWLINE)
        if body is None:
            return super().response(obj)
        return cast(Response, cast(Any, self._app).response_class(body, mimetype=self.mimetype))


# 19 digits in a row may be an integer beyond 64 bits, which orjson reads
# as a float (json keeps it exact): such text goes to json.
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")
_LONG_DIGITS_STR = re.compile(r"[0-9]{19}")


def load_stored_json(data: bytes | str) -> Any:
    """Decode a JSON column as ``json.loads`` does, by orjson when that gives
    the same value (several times faster: the ``data`` of a notification
    page was ~9 % of its CPU). Text holding 19 digits in a row (an integer
    orjson would round), or that orjson refuses (a lone surrogate, a number
    beyond a float's range, which json reads as ``inf``), is read by
    ``json``. The engine's ``json_deserializer`` (config.py)."""
    pattern = _LONG_DIGITS_BYTES if isinstance(data, bytes) else _LONG_DIGITS_STR
    if pattern.search(data) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
