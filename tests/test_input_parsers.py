"""Hypothesis properties of the two input rules (webapp/services/inputs.py):
the whole-number parser reads exactly ASCII digits within bounds, the text
rule refuses exactly control characters (tab, LF, CR allowed in multi-line
fields) and lone surrogates, every text it accepts round-trips through
PostgreSQL, and the JSON loader never raises past a validation error."""
from __future__ import annotations

import string
import unicodedata

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.extensions import db
from webapp.services import inputs
from webapp.services.errors import ValidationError

FAST = settings(max_examples=300, deadline=None, derandomize=True, database=None)


# ---- the integer parser -------------------------------------------------------------------


@FAST
@given(raw=st.text(max_size=25), maximum=st.integers(0, inputs.MAX_ID))
def test_parse_int_reads_ascii_digits_within_bounds_and_refuses_everything_else(raw, maximum):
    ascii_digits = 0 < len(raw) <= inputs.MAX_DIGITS and all(c in string.digits for c in raw)
    try:
        value = inputs.parse_int(raw, name="n", maximum=maximum)
    except ValidationError as exc:
        assert exc.message.startswith("n must be a whole number from 0 to ")
        assert not (ascii_digits and int(raw) <= maximum)
    else:
        assert ascii_digits and value == int(raw) and 0 <= value <= maximum


@FAST
@given(value=st.integers(0, inputs.MAX_ID), zeros=st.integers(0, 1))
def test_parse_int_round_trips_every_id(value, zeros):
    assert inputs.parse_int("0" * zeros + str(value), name="id") == value


@FAST
@given(raw=st.text(alphabet=st.characters(categories=("Nd", "No", "Nl")).filter(lambda c: not c.isascii()),
                   min_size=1, max_size=5),
       ascii_part=st.text(alphabet=string.digits, max_size=3))
def test_parse_int_refuses_every_non_ascii_digit(raw, ascii_part):
    # "²".isdigit() is True and int("١") is 1: neither may pass.
    with pytest.raises(ValidationError):
        inputs.parse_int(ascii_part + raw, name="n")


@FAST
@given(value=st.integers(-(2**70), 2**70), low=st.integers(0, 1000), span=st.integers(0, 1000))
def test_parse_int_holds_its_bounds_for_json_ints(value, low, span):
    try:
        assert low <= inputs.parse_int(value, name="n", minimum=low, maximum=low + span) == value <= low + span
    except ValidationError:
        assert not low <= value <= low + span


@pytest.mark.parametrize("raw", [True, False, 1.0, None, [1], "1.0", "+1", "-1", " 1", "1 ", "1_000", "0x1", "", "²",
                                 "١", "𝟗", "1" * 21])
def test_parse_int_refuses_what_is_not_a_plain_whole_number(raw):
    with pytest.raises(ValidationError):
        inputs.parse_int(raw, name="n")


# ---- the text rule ---------------------------------------------------------------------------


def _refused(char: str, kind: str) -> bool:
    if kind == inputs.MULTILINE and char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cs")


@FAST
@given(value=st.text(max_size=30), kind=st.sampled_from([inputs.LINE, inputs.MULTILINE]))
def test_text_rule_refuses_exactly_control_characters_and_lone_surrogates(value, kind):
    expected_ok = not any(_refused(c, kind) for c in value)
    try:
        assert inputs.check_text(value, name="field", kind=kind) == value
    except ValidationError as exc:
        assert not expected_ok and exc.message.startswith("field ")
    else:
        assert expected_ok


@pytest.mark.parametrize(("value", "kind", "ok"), [
    ("a\x00b", inputs.MULTILINE, False), ("a\nb", inputs.LINE, False), ("a\nb\tc\r\n", inputs.MULTILINE, True),
    ("\x1b[31m", inputs.MULTILINE, False), ("\x85", inputs.LINE, False), ("\x7f", inputs.LINE, False),
    ("\ud800", inputs.LINE, False), ("👩‍👩‍👧 Zoë ² ١", inputs.LINE, True), ("\u202e", inputs.LINE, True),
])
def test_text_rule_by_field_kind(value, kind, ok):
    assert (inputs.text_problem(value, kind) is None) is ok


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=40))
def test_every_text_the_rule_accepts_round_trips_through_postgresql(app, value):
    if inputs.text_problem(value, inputs.MULTILINE) is not None:
        return
    assert db.session.scalar(sa.text("SELECT CAST(:v AS text)"), {"v": value}) == value


@FAST
@given(depth=st.integers(0, 3000), kind=st.sampled_from("[{"))
def test_load_json_never_raises_past_a_validation_error(depth, kind):
    text = ('{"a":' * depth + "1" + "}" * depth) if kind == "{" else ("[" * depth + "1" + "]" * depth)
    try:
        inputs.load_json(text)
    except ValidationError as exc:
        assert depth > inputs.MAX_JSON_DEPTH and "nested too deeply" in exc.message


def test_load_json_refuses_a_lone_surrogate():
    with pytest.raises(ValidationError):
        inputs.load_json('{"type": "ping", "x": "\\udfff"}')
