"""Strict request parsing for the JSON routes (pydantic v2), and the query
and form helpers that pages share with them.

Schemas forbid unknown keys, refuse type coercion (a number where a string is
expected, booleans as numbers) and NaN/Infinity, and hold every string to the
text rule of ``services.inputs``: ``LINE`` unless the field is annotated
``MultilineText``. Whole numbers in query strings and forms go through
``inputs.parse_int`` (ASCII digits, bounds). Errors become 400
``validation_error`` with the offending fields in ``details``.
"""
from __future__ import annotations

import base64
import binascii
from typing import TypeVar

import pydantic
from flask import request
from pydantic import BaseModel, ConfigDict

from ..services import inputs
from ..services.errors import ValidationError

S = TypeVar("S", bound=BaseModel)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_ID = inputs.MAX_ID  # BIGINT: a larger cursor id would overflow the query parameter


class Schema(inputs.TextRuleModel):
    """Base for request bodies: strict types, no unknown keys, finite floats,
    and the text rule on every string (default-deny: a plain ``str`` field is
    ``LINE``; annotate ``MultilineText`` where newlines belong; strings
    inside ``dict``/``list`` fields are checked too)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _details(exc: pydantic.ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def validate(schema: type[S], data: object) -> S:
    """Validate ``data`` against ``schema``. Raises ValidationError (400)."""
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.")
    try:
        return schema.model_validate(data)
    except pydantic.ValidationError as exc:
        details = _details(exc)
        first = details[0]
        raise ValidationError(f"{first['field']}: {first['message']}", details=details) from None


def parse_body(schema: type[S]) -> S:
    """Parse the request's JSON body into ``schema`` (an empty body is
    ``{}``). Raises ValidationError: not JSON, not an object, ``NaN`` or
    ``Infinity`` anywhere (JSON has no such numbers), nested too deeply,
    a string that breaks the text rule, or a schema error."""
    if not request.data:
        return validate(schema, {})
    return validate(schema, inputs.load_json(request.data, text_rule=False))


def int_arg(name: str, *, minimum: int = 0, maximum: int = MAX_ID, default: int | None = None,
            source: str = "args") -> int | None:
    """A whole number from the query string (``source="args"``) or the form
    (``"form"``): ``inputs.parse_int`` rules; absent or empty is ``default``.
    Raises ValidationError."""
    raw = getattr(request, source).get(name)
    value = inputs.optional_int(raw, name=name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def parse_limit() -> int:
    """``?limit=`` as an int in 1..100 (default 20). Raises ValidationError."""
    if request.args.get("limit") is None:
        return DEFAULT_LIMIT
    return inputs.parse_int(request.args["limit"], name="limit", minimum=1, maximum=MAX_LIMIT)


def parse_bool_arg(name: str) -> bool:
    """A boolean query flag: true/1/yes or false/0/no. Raises ValidationError."""
    raw = (request.args.get(name) or "false").lower()
    if raw in {"true", "1", "yes"}:
        return True
    if raw in {"false", "0", "no"}:
        return False
    raise ValidationError(f"{name} must be true or false.")


def encode_cursor(last_id: int) -> str:
    """An opaque keyset cursor for the item with id ``last_id``."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def parse_cursor() -> int | None:
    """``?cursor=`` decoded to the last seen id, or None. Raises ValidationError."""
    raw = request.args.get("cursor")
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "id" or not inputs.is_ascii_int(value):
            raise ValueError
        return inputs.parse_int(value, name="cursor")
    except (ValueError, ValidationError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not valid; use next_cursor from the previous page.") from None
