"""Loaded by schemathesis in tests/test_api_fuzz.py
(``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``).

``flatmap_case`` takes each generated case (schema-valid in the positive
phases, so the other fields pass and the poison reaches the code behind
them) and, three times in four, poisons exactly one value: a path parameter,
a query parameter (also one the case left out), or a string or integer
anywhere in the JSON body (also a documented field the case left out,
built from the field's own pattern so that only the poison is wrong).
Poison (tests/fuzz_strategies.py): a NUL or other control character
slipped into the value, a digit such as ``²`` or ``١`` in place of a
number, or a hostile string instead. (Lone surrogates are left out:
schemathesis itself cannot re-validate a case holding one; the request
schemas refuse them, tests/test_input_rules.py.)"""
from __future__ import annotations

import string
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.fuzz_strategies import CONTROL, UNICODE_DIGITS, hostile

# NUL weighs most: PostgreSQL refuses it in text, the classic 500.
INSERTED = ["\x00", "\x00", "\x00", "\x01", "\x1b", "\x7f", "\x85", "\u202e", *UNICODE_DIGITS[:5]]
HUGE = [2**63, 2**64, 10**30, -1]
MISSING = object()


# ---- values already in the case ---------------------------------------------------------


def _leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, i))]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [path]
    return []


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        if not isinstance(value, (dict, list)):
            return MISSING
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):  # e.g. a str key into a list
            return MISSING
    return value


def _set(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    if not isinstance(value, dict) and not isinstance(path[0], int):
        value = {}
    value[path[0]] = _set(value.get(path[0]) if isinstance(value, dict) else value[path[0]], path[1:], new)
    return value


# ---- fields the document describes ----------------------------------------------------------


def _resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _string_fields(node: Any, root: dict, path: tuple = (), depth: int = 0) -> list[tuple[tuple, dict]]:
    """(path, string schema) of every string property under an object schema."""
    node = _resolve(node, root)
    if not isinstance(node, dict) or depth > 6:
        return []
    found: list[tuple[tuple, dict]] = []
    for option in node.get("anyOf", []):
        found += _string_fields(option, root, path, depth + 1)
    if node.get("type") == "string" and "enum" not in node and path:
        found.append((path, node))
    for name, sub in (node.get("properties") or {}).items():
        found += _string_fields(sub, root, (*path, name), depth + 1)
    return found


def _valid_text(schema: dict) -> st.SearchStrategy[str]:
    """A value the field's own rules accept (pattern and lengths)."""
    low = schema.get("minLength", 1)
    high = max(low, min(schema.get("maxLength", 12), 12))
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) >= low)
    return st.text(alphabet=string.ascii_letters + string.digits, min_size=low, max_size=high)


def _documented(ctx) -> tuple[list[tuple[str, tuple, dict]], dict]:
    """Documented query parameters and body fields: (container, path, schema)."""
    root = ctx.operation.schema.raw_schema
    raw = ctx.operation.definition.raw
    found = []
    for param in raw.get("parameters", []):
        schema = _resolve(param.get("schema", {}), root)
        if param.get("in") == "query":
            found.append(("query", (param["name"],), schema))
    body = ((raw.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema")
    if body:
        found += [("body", path, schema) for path, schema in _string_fields(body, root)]
    return found, root


# ---- the poison ----------------------------------------------------------------------------------


def _poison_text(base: st.SearchStrategy[str], in_json: bool) -> st.SearchStrategy[str]:
    chars = INSERTED
    inserted = base.flatmap(lambda old: st.tuples(st.integers(0, len(old)), st.sampled_from(chars)).map(
        lambda p: old[:p[0]] + p[1] + old[p[0]:]))
    return st.one_of(inserted, inserted, hostile.filter(bool))


def _poison_int(old: int | None, in_json: bool) -> st.SearchStrategy:
    if in_json:
        return st.sampled_from(HUGE)
    prefix = "" if old is None else str(old)
    return st.one_of(st.sampled_from(UNICODE_DIGITS).map(lambda d: d + prefix),
                     st.lists(st.sampled_from(UNICODE_DIGITS + CONTROL[:1]), min_size=1, max_size=3).map("".join))


def _mutation(case, target: tuple) -> st.SearchStrategy:
    container, path, schema = target
    in_json = container == "body"
    old = _get(getattr(case, container), path)
    if isinstance(old, int) and not isinstance(old, bool):
        return _poison_int(old, in_json)
    if isinstance(old, str):
        return _poison_text(st.just(old), in_json)
    if schema.get("type") == "integer":
        return _poison_int(None, in_json)
    return _poison_text(_valid_text(schema), in_json)


@schemathesis.hook
def flatmap_case(ctx, case):
    targets = []
    for container in ("path_parameters", "query", "body"):
        value = getattr(case, container, None)
        if isinstance(value, (dict, list)):
            targets.extend((container, path, {}) for path in _leaves(value))
    documented, _ = _documented(ctx)
    targets.extend(t for t in documented if t[0] == "query" or isinstance(case.body, dict))
    if not targets:
        return st.just(case)

    def poison(choice):
        (container, path, _), new = choice
        current = getattr(case, container)
        setattr(case, container, _set(current if current is not None else {}, path, new))
        return case

    poisoned = st.sampled_from(targets).flatmap(lambda t: st.tuples(st.just(t), _mutation(case, t))).map(poison)
    return st.one_of(poisoned, poisoned, poisoned, st.just(case))
