"""The two rules every input goes through, whatever door it comes in by (a
JSON body, a query string, a form, a path segment, a socket message, the
CLI): one parser for whole numbers and one rule for text.

Whole numbers (``parse_int``): ASCII digits only, within bounds. ``"²"``,
``"١"`` or ``"𝟗"`` pass ``str.isdigit()`` and some even pass ``int()``, so
neither is used on input anywhere; signs, blanks, underscores and more than
``MAX_DIGITS`` digits are refused too.

Text (``text_problem`` / ``check_text``), by field kind (docs/API.md "Input
rules"):

* ``LINE`` — identifiers, names, titles, e-mail addresses, search terms,
  passwords, codes, cursors, every query-string value and path segment: no
  control characters at all (Unicode category Cc: C0 ``U+0000–U+001F``,
  DEL ``U+007F`` and C1 ``U+0080–U+009F``, NUL among them).
* ``MULTILINE`` — descriptions, bodies, reasons and other free text people
  type into a textarea: the same, except tab, line feed and carriage return.

Both refuse lone surrogates (category Cs, e.g. ``"\\ud800"`` from a JSON
escape), which cannot be encoded as UTF-8 for the database. PostgreSQL
refuses NUL in ``text`` and ``jsonb``; the rest is refused because no field
of ours means it and it only hides or forges what people see.

Everything here raises ``ValidationError`` (400 ``validation_error``) and
nothing else, so a bad input can never become a 500.
"""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .errors import ValidationError

MAX_ID = 2**63 - 1  # BIGINT, the widest id column
MAX_DIGITS = 20  # MAX_ID has 19 digits; longer strings are never parsed (int() of huge strings is slow)
_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)

LINE = "line"
MULTILINE = "multiline"
_MULTILINE_ALLOWED = frozenset("\t\n\r")
MAX_JSON_DEPTH = 64  # request bodies and socket messages; our deepest document is 8 levels of ``data``


# ---- whole numbers ---------------------------------------------------------------


def parse_int(raw: object, *, name: str, minimum: int = 0, maximum: int = MAX_ID) -> int:
    """``raw`` as an int in ``minimum..maximum`` (inclusive; ``minimum >= 0``).

    ``raw`` is a string of ASCII digits (a query value, a form field, a path
    segment, a decoded cursor) or an int from JSON (never a bool or float).
    Raises ValidationError with a message naming ``name`` and the bounds.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and len(raw) <= MAX_DIGITS and _ASCII_DIGITS.fullmatch(raw):
        value = int(raw)
    else:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be a whole number from {minimum} to {maximum} (digits 0-9 only).")
    return value


def optional_int(raw: object, *, name: str, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """``parse_int``, with None or ``""`` meaning "not given" (None)."""
    if raw is None or raw == "":
        return None
    return parse_int(raw, name=name, minimum=minimum, maximum=maximum)


def is_ascii_int(raw: object) -> bool:
    """Whether ``raw`` is a string that ``parse_int`` would read (any bounds)."""
    return isinstance(raw, str) and len(raw) <= MAX_DIGITS and _ASCII_DIGITS.fullmatch(raw) is not None


# ---- text ----------------------------------------------------------------------------


def text_problem(value: str, kind: str = LINE) -> str | None:
    """What is wrong with ``value`` under the rule for ``kind`` (``LINE`` or
    ``MULTILINE``), as a phrase ("contains a NUL character"), or None."""
    if value.isprintable():  # fast path: no Cc, Cs (nor Zl/Zp, other Cf), the common case
        return None
    allowed = _MULTILINE_ALLOWED if kind == MULTILINE else frozenset()
    for char in value:
        if char in allowed:
            continue
        category = unicodedata.category(char)
        if char == "\x00":
            return "contains a NUL character"
        if category == "Cc":
            return f"contains a control character (U+{ord(char):04X})"
        if category == "Cs":
            return "contains an invalid character (a lone UTF-16 surrogate)"
    return None


def check_text(value: object, *, name: str, kind: str = LINE) -> str:
    """``value`` unchanged if it follows the rule for ``kind``. Raises
    ValidationError ("<name> must not contain ...") otherwise, also when it
    is not a string."""
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text.")
    problem = text_problem(value, kind)
    if problem is not None:
        raise ValidationError(f"{name} {problem}; control characters are not allowed.")
    return value


def check_tree(value: Any, *, name: str, kind: str | None = MULTILINE, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Apply the text rule to every string of a decoded JSON value: keys
    follow ``LINE``, string values ``kind`` (None: only the depth is
    checked). Nesting deeper than ``max_depth`` is refused. Iterative, so no
    input can exhaust the stack. Raises ValidationError naming the path of
    the first offender."""
    stack: list[tuple[Any, str, int]] = [(value, name, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > max_depth:
            raise ValidationError(f"{name} is nested too deeply (at most {max_depth} levels).")
        if isinstance(item, str):
            if kind is not None:
                check_text(item, name=path, kind=kind)
        elif isinstance(item, dict):
            for key, child in item.items():
                if kind is not None and isinstance(key, str):
                    check_text(key, name=f"{path} key", kind=LINE)
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def load_json(text: str | bytes, *, what: str = "The body", path: str = "body",
              max_depth: int = MAX_JSON_DEPTH, text_rule: bool = True) -> Any:
    """Decode a JSON document from a client (HTTP body, socket message).

    Refuses what is not JSON, ``NaN``/``Infinity`` (not JSON numbers),
    nesting deeper than ``max_depth`` (Python's decoder would otherwise raise
    ``RecursionError`` near 1,000 levels) and, with ``text_rule``, strings
    that break the text rule (``check_tree``: keys ``LINE``, values
    ``MULTILINE``). Request bodies pass ``text_rule=False``: their schema
    (``TextRuleModel``) applies the rule per field, naming the fields.
    ``what`` and ``path`` name the document in messages. Raises
    ValidationError.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValidationError(f"{what} is nested too deeply (at most {max_depth} levels).") from None
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise ValidationError(f"{what} is not valid JSON: {exc}.") from None
    check_tree(value, name=path, max_depth=max_depth, kind=MULTILINE if text_rule else None)
    return value


# ---- the rule inside pydantic schemas ----------------------------------------------------


class _Kind:
    """Marks an annotated string type with its text kind (read by
    ``api.validation.Schema`` so plain ``str`` fields default to ``LINE``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"TextKind({self.kind})"


def pydantic_check(value: str, kind: str) -> str:
    """The text rule as a pydantic validator (a clean ``details`` message)."""
    problem = text_problem(value, kind)
    if problem is not None:
        raise PydanticCustomError("text_rule", "{problem}; control characters are not allowed", {"problem": problem})
    return value


LineText = Annotated[str, AfterValidator(lambda v: pydantic_check(v, LINE)), _Kind(LINE)]
MultilineText = Annotated[str, AfterValidator(lambda v: pydantic_check(v, MULTILINE)), _Kind(MULTILINE)]


def annotation_kind(annotation: Any) -> str | None:
    """The text kind an annotation carries (``MultilineText``, also inside
    ``Optional[...]``), or None."""
    metadata = getattr(annotation, "__metadata__", ())
    for item in metadata:
        if isinstance(item, _Kind):
            return item.kind
    for arg in getattr(annotation, "__args__", ()) or ():
        kind = annotation_kind(arg)
        if kind is not None:
            return kind
    return None


class TextRuleModel(BaseModel):
    """Base of every request model (``api.validation.Schema``, the settings
    patch): the text rule on every string field, default-deny — a plain
    ``str`` is ``LINE``; annotate ``MultilineText`` where newlines belong.
    Strings inside ``dict``/``list`` fields follow ``check_tree``."""

    @field_validator("*", mode="after")
    @classmethod
    def _text_rule(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, BaseModel):
            return value  # a nested model checks its own fields
        field = cls.model_fields.get(info.field_name or "")
        kind = annotation_kind(field.annotation) if field is not None else None
        if kind is None and field is not None:
            # A required ``MultilineText`` field: pydantic moved its metadata
            # off the annotation into the field.
            kind = next((m.kind for m in field.metadata if isinstance(m, _Kind)), None)
        if isinstance(value, str):
            return pydantic_check(value, kind or LINE)
        if isinstance(value, (dict, list)):
            try:
                check_tree(value, name=info.field_name or "value")
            except ValidationError as exc:
                raise PydanticCustomError("text_rule", "{message}", {"message": exc.message}) from None
        return value
