"""Hypothesis strategies for hostile input, shared by the page fuzz
(tests/test_page_fuzz.py), the socket fuzz and the schemathesis run
(tests/schemathesis_hooks.py registers them as OpenAPI string formats).

They lean on the two classes of input that used to become 500s: control
characters (NUL first) and digits that are not ASCII but pass
``str.isdigit()`` (``²``) or even ``int()`` (``١``)."""
from __future__ import annotations

from hypothesis import strategies as st

CONTROL = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\t", "\n", "\r"]
UNICODE_DIGITS = ["²", "³", "¹", "١", "٣", "۵", "߂", "४", "𝟗", "０", "½", "Ⅻ", "〇"]
OTHER = ["\u2028", "\u202e", "\ufeff", "é", "😀", "%", "/", "..", "'", '"', "<", "&", " ", "+", "-", "."]
ASCII = ["a", "Z", "0", "1", "9", "_"]

# Anything but lone surrogates (a URL or a form cannot carry them; JSON can).
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
pieces = st.lists(st.sampled_from(CONTROL + UNICODE_DIGITS + OTHER + ASCII), min_size=1, max_size=6).map("".join)
digits = st.one_of(
    st.integers(min_value=0, max_value=2**70).map(str),
    st.lists(st.sampled_from(UNICODE_DIGITS + ["1", "0", "9"] + CONTROL[:2]), min_size=1, max_size=4).map("".join),
)
# A value shaped like what the field expects, with the poison inside.
shaped = st.one_of(
    st.builds(lambda a, b: f"{a}@{b}.org", pieces, pieces),  # e-mail addresses
    st.builds(lambda a: f"bc1q{a}miner", pieces),  # user ids
    st.builds(lambda a: f"Coop {a}", pieces),  # names
)

hostile = st.one_of(pieces, digits, shaped, any_text)
hostile_segment = hostile.filter(lambda s: s not in ("", ".", ".."))  # a path segment must be one

