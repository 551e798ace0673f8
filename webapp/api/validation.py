"""Strict request parsing for the JSON routes (pydantic v2).

Schemas forbid unknown keys, refuse type coercion (a number where a string is
expected, booleans as numbers) and NaN/Infinity. Errors become 400
``validation_error`` with the offending fields in ``details``.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import TypeVar

import pydantic
from flask import request
from pydantic import BaseModel, ConfigDict

from ..services.errors import ValidationError

S = TypeVar("S", bound=BaseModel)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_ID = 2**63 - 1  # BIGINT: a larger cursor id would overflow the query parameter


class Schema(BaseModel):
    """Base for request bodies: strict types, no unknown keys, finite floats."""

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


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def parse_body(schema: type[S]) -> S:
    """Parse the request's JSON body into ``schema`` (an empty body is
    ``{}``). Raises ValidationError: not JSON, not an object, ``NaN`` or
    ``Infinity`` anywhere (JSON has no such numbers), or a schema error."""
    if not request.data:
        return validate(schema, {})
    try:
        data = json.loads(request.data, parse_constant=_refuse_constant)
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise ValidationError(f"The body is not valid JSON: {exc}.") from None
    return validate(schema, data)


def parse_limit() -> int:
    """``?limit=`` as an int in 1..100 (default 20). Raises ValidationError."""
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


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
        if prefix != "id" or not value.isdigit() or int(value) > MAX_ID:
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not valid; use next_cursor from the previous page.") from None
