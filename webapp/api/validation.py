"""Request models of the JSON routes (pydantic v2; SpecTree validates them,
see ``api/openapi.py``), and the query and form helpers that pages share
with them.

Body schemas forbid unknown keys, refuse type coercion (a number where a string is
expected, booleans as numbers) and NaN/Infinity, and hold every string to the
text rule of ``services.inputs``: ``LINE`` unless the field is annotated
``MultilineText``. Whole numbers in query strings and forms go through
``inputs.parse_int`` (ASCII digits, bounds). Errors become 400
``validation_error`` with the offending fields in ``details``.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import pydantic
from flask import request
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from ..services import hashrate, inputs
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


class _TrimmedMaxLength:
    """``maxLength`` counted after ``str.strip()``, as the services count it
    (the value itself is passed on untrimmed; the service trims it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        def check(value: str) -> str:
            if len(value.strip()) > self.limit:
                raise PydanticCustomError("string_too_long", "String should have at most {max_length} characters",
                                          {"max_length": self.limit})
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        return {**handler(schema), "maxLength": self.limit}


def trimmed_max_length(limit: int) -> _TrimmedMaxLength:
    """Annotated metadata: at most ``limit`` characters once trimmed."""
    return _TrimmedMaxLength(limit)


def error_details(exc: pydantic.ValidationError) -> list[dict[str, str]]:
    """``[{"field", "message"}]`` for each error of ``exc`` (the ``details``
    of a 400 ``validation_error``)."""
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
        details = error_details(exc)
        first = details[0]
        raise ValidationError(f"{first['field']}: {first['message']}", details=details) from None


def int_arg(name: str, *, minimum: int = 0, maximum: int = MAX_ID, default: int | None = None,
            source: str = "args") -> int | None:
    """A whole number from the query string (``source="args"``) or the form
    (``"form"``): ``inputs.parse_int`` rules; absent or empty is ``default``.
    Raises ValidationError."""
    raw = getattr(request, source).get(name)
    value = inputs.optional_int(raw, name=name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def encode_cursor(last_id: int) -> str:
    """An opaque keyset cursor for the item with id ``last_id``."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """A cursor from ``encode_cursor`` back to the last seen id; None or
    ``""`` is None. Raises ValidationError."""
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


def parse_cursor() -> int | None:
    """``?cursor=`` decoded to the last seen id, or None. Raises ValidationError."""
    return decode_cursor(request.args.get("cursor"))


# ---- query strings and headers of the JSON routes --------------------------------------------------
# Query and header models are validated by SpecTree (api/openapi.py). Each field runs one
# of the parsers above in a BeforeValidator: their ValidationError is not a
# ValueError, so pydantic lets it through unchanged and the answer keeps its
# message and details. A repeated parameter counts once (its first value),
# as Flask's ``request.args.get`` reads it, unless the field is a list.


def _first(raw: Any) -> Any:
    return raw[0] if isinstance(raw, list) else raw


def parsed_by(parse: Callable[[Any], Any]) -> BeforeValidator:
    """A query or header field read by ``parse(raw)`` (its raw text; the first of repeated values)."""
    return BeforeValidator(lambda raw: parse(_first(raw)))


def parsed_by_name(parse: Callable[[Any, str], Any]) -> BeforeValidator:
    """Likewise, by ``parse(raw, name)``: the field's name for its messages."""

    def run(raw: Any, info: ValidationInfo) -> Any:
        return parse(_first(raw), info.field_name or "value")

    return BeforeValidator(run)


def _limit(raw: str) -> int:
    return inputs.parse_int(raw, name="limit", minimum=1, maximum=MAX_LIMIT)


def parse_flag(raw: str | None, name: str) -> bool:
    """A boolean query flag: true/1/yes or false/0/no, any case; absent or
    empty is false. Raises ValidationError."""
    value = (raw or "false").lower()
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    raise ValidationError(f"{name} must be true or false.")


# ``?limit=``: 1..100, default 20; ``?cursor=``: opaque text from next_cursor, read as the last seen id.
Limit = Annotated[int, parsed_by(_limit), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})]
Cursor = Annotated[int | None, parsed_by(decode_cursor), WithJsonSchema({"type": "string"})]
Flag = Annotated[bool, parsed_by_name(parse_flag), WithJsonSchema({"type": "boolean"})]


class Query(BaseModel):
    """Base for query-string models: unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    """Keyset pagination (API.md): ``?limit&cursor``."""

    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor = None


class ChartQuery(Query):
    """``?range=1h|24h|7d|30d`` of the chart routes (default 24h); anything
    else is 400 ``validation_error`` naming ``range``."""

    range: Annotated[
        str,
        parsed_by(lambda raw: hashrate.chart_range(raw).name),
        WithJsonSchema({"type": "string", "enum": list(hashrate.RANGES), "default": hashrate.DEFAULT_RANGE}),
    ] = hashrate.DEFAULT_RANGE
