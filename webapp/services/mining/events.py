"""Mining stream entries: the seven event streams, the bounds of every stored
value, and ``parse_entry``, which turns one stream entry into a
``MiningEventIn`` or raises ``MalformedEvent`` (the consumer dead-letters it).
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import bounds, inputs

EVENTS = (
    "share_submitted",
    "block_found",
    "miner_connected",
    "miner_disconnected",
    "hashrate_update",
    "share_best_diff",
    "new_block_network",
)
STREAM_PREFIX = "mining:"
STREAMS = tuple(f"{STREAM_PREFIX}{event}" for event in EVENTS)
# Not "mining:..." so that nothing reading mining:* mistakes it for an event stream.
DEAD_LETTER_STREAM = "mining-dead-letter"

# Bounds that keep every stored value inside its column (a value the database
# would refuse must be dead-lettered here, never block a batch).
MAX_ENTRY_ID = 32  # mining_events.entry_id; Redis ids can reach 41 characters
MAX_USER = 128
MAX_WORKER = 255
MAX_SOURCE = 64
MAX_DATA_CHARS = 64 * 1024  # characters of the data JSON text
MAX_USERAGENT = 255
MIN_TS = bounds.MIN_TS  # 2009-01-01, before the first Bitcoin block
MAX_FUTURE_SECONDS = bounds.MAX_FUTURE_SECONDS  # a clock a day ahead is a bad entry, not a time


def stream_name(event: str) -> str:
    """The stream of one event type: ``mining:{event}``."""
    return f"{STREAM_PREFIX}{event}"


class MalformedEvent(ValueError):
    """A stream entry that can never be stored: the message says why."""


@dataclass(slots=True)
class MiningEventIn:
    """One validated stream entry. ``ts`` is aware UTC; ``data`` is the parsed
    JSON object; ``user``/``worker``/``accepted`` are lifted from it."""

    stream: str
    entry_id: str
    event: str
    ts: datetime
    source: str | None
    data: dict[str, Any]
    user: str | None = None
    worker: str | None = None
    accepted: bool | None = None
    raw_data: str | None = None  # the JSON text as read

    @property
    def key(self) -> tuple[str, str]:
        return self.stream, self.entry_id


# ---- parsing ------------------------------------------------------------------

_STR, _NUM, _INT, _BOOL = "string", "number", "integer", "boolean"
_H, _D = bounds.MAX_HASHRATE, bounds.MAX_DIFFICULTY
# Per event: data field -> (type, required, upper bound of a number, unit).
# Every number is also finite and >= 0; the bounds and their sources are in
# services/bounds.py. ``None``: no upper bound beyond a finite float (see
# block_found). Extra fields are kept as they are.
_SPECS: dict[str, dict[str, tuple[str, bool, float | None, str]]] = {
    "share_submitted": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "sdiff": (_NUM, True, _D, ""),
        "accepted": (_BOOL, True, None, ""), "diff": (_NUM, False, _D, ""), "reject_reason": (_STR, False, None, ""),
    },
    "share_best_diff": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "new_best": (_NUM, True, _D, ""),
        "prev_best": (_NUM, False, _D, ""), "timeframe": (_STR, False, None, ""),
    },
    "hashrate_update": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "hashrate_1h": (_NUM, True, _H, " H/s"),
        "hashrate_1m": (_NUM, False, _H, " H/s"), "hashrate_5m": (_NUM, False, _H, " H/s"),
        "hashrate_1d": (_NUM, False, _H, " H/s"),
    },
    "miner_connected": {
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "useragent": (_STR, False, None, ""),
        "ip": (_STR, False, None, ""), "initial_diff": (_NUM, False, _D, ""),
    },
    "miner_disconnected": {
        # The upper bound of session_duration depends on ts (parse_entry).
        "user": (_STR, True, None, ""), "worker": (_STR, True, None, ""), "ip": (_STR, False, None, ""),
        "session_duration": (_NUM, False, None, " s"),
    },
    # Not in the shared day; tolerant: only the finder is required. What the
    # pool said about a block is the record: a height, hash or difficulty no
    # chain could have is stored as sent and left out of the notification
    # (``block_display``), never a reason to lose the block.
    "block_found": {
        "user": (_STR, True, None, ""), "worker": (_STR, False, None, ""), "height": (_INT, False, None, ""),
        "hash": (_STR, False, None, ""), "diff": (_NUM, False, None, ""), "sdiff": (_NUM, False, None, ""),
    },
    "new_block_network": {
        "height": (_INT, False, bounds.MAX_HEIGHT, ""), "hash": (_STR, False, None, ""),
        "diff": (_NUM, False, _D, ""),
    },
}


def _reject_constant(name: str) -> None:
    raise MalformedEvent(f"data contains {name}, which is not a JSON number")


# One decoder, built once: passing options to json.loads builds one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _is_str(value: Any) -> bool:
    return type(value) is str and value != ""


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _number_upto(upper: float):
    """JSON numbers decode to exactly int or float; bool is neither. An int
    compares exactly with the float bound, however large it is."""
    def check(value: Any) -> bool:
        return (type(value) is float or type(value) is int) and 0 <= value <= upper
    return check


def _integer_upto(upper: float | None):
    if upper is None:
        return lambda value: type(value) is int and value >= 0
    return lambda value: type(value) is int and 0 <= value <= upper


_FLOAT_MAX = sys.float_info.max  # an integer beyond it cannot become a float column


def _check(kind: str, upper: float | None):
    if kind == _NUM:
        return _number_upto(_FLOAT_MAX if upper is None else upper)
    if kind == _INT:
        return _integer_upto(upper)
    return _is_str if kind == _STR else _is_bool


# (field, check, required, kind, upper, unit) per event, for the hot loop.
_RULES = {
    event: tuple((name, _check(kind, upper), required, kind, upper, unit)
                 for name, (kind, required, upper, unit) in spec.items())
    for event, spec in _SPECS.items()
}


def _bad_value(name: str, value: Any, kind: str, upper: float | None, unit: str) -> MalformedEvent:
    """The reason for a value that failed its check: its type, or its range."""
    article = "an" if kind == _INT else "a"
    typed = {_NUM: _number_upto(_FLOAT_MAX), _INT: _integer_upto(None)}.get(kind)
    if typed is not None and upper is not None and typed(value):
        shown = f"{upper:,.0f}" if upper < 1e12 else f"{upper:.4g}"
        return MalformedEvent(f"data.{name} must be {article} {kind} from 0 to {shown}{unit} "
                              f"(the physically possible range), got {value!r:.60}")
    return MalformedEvent(f"data.{name} must be {article} {'non-empty ' if kind == _STR else ''}"
                          f"{kind}{' >= 0' if kind in (_NUM, _INT) else ''}, got {value!r:.60}")


def _fields(fields: Mapping[Any, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(event, ts, source, data) decoded from a bytes- or str-keyed mapping."""
    get = fields.get
    if fields and isinstance(next(iter(fields)), bytes):
        raw = (get(b"event"), get(b"ts"), get(b"source"), get(b"data"))
    else:
        raw = (get("event"), get("ts"), get("source"), get("data"))
    try:
        return tuple(v.decode("utf-8") if type(v) is bytes else (None if v is None else str(v))  # type: ignore
                     for v in raw)
    except UnicodeDecodeError:
        raise MalformedEvent("a field is not valid UTF-8") from None


def parse_entry(stream: str, entry_id: str, fields: Mapping[Any, Any], *, now: float | None = None) -> MiningEventIn:
    """Validate one stream entry (``fields`` as read, ``bytes`` or ``str``).

    Rules: ``event`` is one of ``EVENTS`` and names this stream; ``ts`` is
    unix seconds between 2009 and a day from now; ``source`` (optional) at
    most 64 characters; ``data`` a JSON object of at most 64 Ki characters
    with the typed fields of ``_SPECS`` (numbers finite and >= 0, strings
    non-empty, ``user`` <= 128 and ``worker`` <= 255 characters, no NUL
    characters). Each number also lies in its physically possible range
    (``services/bounds.py``: hashrates <= 1e21 H/s, difficulties <= the
    difficulty-1 target ~2.7e67, network heights <= 10,000,000, a session no
    longer than since 2009), except the display-only numbers of
    ``block_found`` (stored whole, clamped when shown). A JSON ``true`` is
    not a number, nor is ``"5"``. Other fields of the entry and of ``data``
    are allowed. Raises MalformedEvent with the reason.
    """
    if len(entry_id) > MAX_ENTRY_ID:
        raise MalformedEvent(f"entry id longer than {MAX_ENTRY_ID} characters")
    event, raw_ts, source, data_text = _fields(fields)
    rules = _rules_of(stream, event)
    ts = _timestamp(raw_ts, time.time() if now is None else now)
    if source is not None and (len(source) > MAX_SOURCE or "\x00" in source):
        raise MalformedEvent("source is longer than 64 characters or contains NUL")
    data = _decode_data(data_text)
    _check_data(event, rules, data, ts)
    user, worker = data.get("user"), data.get("worker")
    _check_names((("user", user, MAX_USER), ("worker", worker, MAX_WORKER)))
    return MiningEventIn(stream, entry_id, event, datetime.fromtimestamp(ts, UTC), source, data, user,  # type: ignore[arg-type]
                         worker, data.get("accepted") if event == "share_submitted" else None, data_text)


def _rules_of(stream: str, event: str | None) -> tuple:
    """The field rules of a known event that belongs on ``stream``."""
    rules = _RULES.get(event)  # type: ignore[arg-type]
    if rules is None:
        raise MalformedEvent(f"unknown or missing event {event!r:.60}")
    if stream != STREAM_PREFIX + event:  # type: ignore[operator]
        raise MalformedEvent(f"event {event!r} does not belong on stream {stream!r}")
    return rules


def _timestamp(raw_ts: str | None, now: float) -> float:
    """``ts`` as unix seconds between 2009 and a day after ``now``."""
    try:
        ts = float(raw_ts) if raw_ts is not None else math.nan
    except ValueError:
        ts = math.nan
    if not (MIN_TS <= ts <= now + MAX_FUTURE_SECONDS):  # also false for NaN
        raise MalformedEvent(f"ts must be unix seconds between 2009 and now, got {raw_ts!r:.40}")
    return ts


def _decode_data(data_text: str | None) -> dict[str, Any]:
    """The ``data`` JSON object, refused when missing, too large, not an
    object, or hiding a character PostgreSQL refuses behind an escape."""
    if data_text is None:
        raise MalformedEvent("the data field is missing")
    if len(data_text) > MAX_DATA_CHARS:
        raise MalformedEvent("data is larger than 64 KiB")
    try:
        data = _DECODER.decode(data_text)
    except MalformedEvent:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent(f"data is not valid JSON: {exc}"[:200]) from None
    if type(data) is not dict:
        raise MalformedEvent("data must be a JSON object")
    if "\\u" in data_text:
        # Escapes may hide NUL or lone surrogates, which PostgreSQL refuses.
        if "\\u0000" in data_text:
            raise MalformedEvent("data contains a NUL character")
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedEvent("data contains an invalid Unicode escape") from None
    return data


def _check_data(event: str | None, rules: tuple, data: dict[str, Any], ts: float) -> None:
    """Each field of ``rules`` present with its type and range, or absent
    when optional (a JSON null is neither)."""
    for name, check, required, kind, upper, unit in rules:
        value = data.get(name)
        if value is None:
            if name in data:
                raise _bad_value(name, value, kind, upper, unit)
            if required:
                raise MalformedEvent(f"data.{name} is missing")
        elif not check(value):
            raise _bad_value(name, value, kind, upper, unit)
    if event == "miner_disconnected" and data.get("session_duration", 0) > ts - MIN_TS:
        # No session started before the network existed (services/bounds.py).
        raise _bad_value("session_duration", data["session_duration"], _NUM, ts - MIN_TS, " s")


def _check_names(names: tuple[tuple[str, Any, int], ...]) -> None:
    """``(field, value, max length)``: every length first, then the text
    rule (they end up in titles and page text)."""
    for name, value, limit in names:
        if value is not None and len(value) > limit:
            raise MalformedEvent(f"data.{name} is longer than {limit} characters")
    for name, value, _ in names:
        problem = value is not None and inputs.text_problem(value)
        if problem:
            raise MalformedEvent(f"data.{name} {problem}")
