"""Bad input on every JSON route: type confusion, unknown keys, NaN and
oversized bodies answer 400/413 with the JSON error body, never a 500.

The routes come from the generated OpenAPI document, so a new route with a
body is covered without touching this file.
"""
from __future__ import annotations

import json
import re

import pytest

from webapp.api.openapi import build_spec
from webapp.extensions import db
from webapp.models import Notification
from webapp.services import coops

from . import builders
from .builders import bearer

WRONG_BY_TYPE = {
    "string": [123, ["a"], {"a": 1}, True],
    "integer": ["1", True, 1.5, [1]],
    "boolean": [1, 0, "true", None],
    "number": ["1.0", True, [1.0]],
}


def _operations(app):
    spec = build_spec(app)
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            yield path, method, op, spec["components"]["schemas"]


def _body_schema(op, components):
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return components[ref.rsplit("/", 1)[1]]


def _prop_type(prop: dict, components: dict) -> str | None:
    if "$ref" in prop:
        return "object"
    if "anyOf" in prop:
        types = [p.get("type") for p in prop["anyOf"] if p.get("type") != "null"]
        return types[0] if len(types) == 1 else None
    return prop.get("type")


@pytest.fixture
def world(app):
    """An admin of a coop with a notification, and the headers for each kind of route."""
    admin = builders.make_user("bc1qhardenadmin", display_name="Admin", is_admin=True)
    coop = coops.create(admin, name="Hardened", description="")
    row = Notification(user_id=admin.user_id, category="system", subtype="x", title="t")
    db.session.add(row)
    db.session.commit()
    return {
        "coop_id": coop.id,
        "user_id": admin.user_id,
        "notification_id": row.id,
        "user": bearer(admin),
        "service": {"Authorization": "Bearer test-service-token"},
    }


def _url(path: str, world: dict) -> str:
    path = (path.replace("{coop_id}", str(world["coop_id"]))
            .replace("{id}", str(world["coop_id"]))
            .replace("{user_id}", world["user_id"])
            .replace("{notification_id}", str(world["notification_id"])))
    # Any other id (a report, message, conversation, request…): a well-formed
    # one, so the body is checked before anything is looked up.
    return re.sub(r"\{[a-z_]+\}", "1", path)


def _headers(op: dict, world: dict) -> dict:
    security = op.get("security") or [{}]
    return world["service"] if "serviceToken" in security[0] else world["user"]


def _assert_json_error(resp, status: int, label: str) -> None:
    assert resp.status_code == status, f"{label}: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
    body = resp.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), label
    assert body["error"]["code"] and body["error"]["message"], label


def test_every_body_route_refuses_type_confusion_unknown_keys_and_nan(app, client, world):
    checked = 0
    for path, method, op, components in _operations(app):
        if "requestBody" not in op:
            continue
        url, headers = _url(path, world), _headers(op, world)
        schema = _body_schema(op, components)
        cases = [[1, 2], "text", 42, "null", {"zz_unknown_key": 1}]
        for name, prop in schema.get("properties", {}).items():
            for wrong in WRONG_BY_TYPE.get(_prop_type(prop, components), []):
                cases.append({name: wrong})
        for body in cases:
            resp = client.open(url, method=method.upper(), headers=headers, content_type="application/json",
                               data=body if body == "null" else json.dumps(body))
            _assert_json_error(resp, 400, f"{method.upper()} {path} {json.dumps(body)}")
            checked += 1
        first = next(iter(schema.get("properties", {})), "x")
        raw = client.open(url, method=method.upper(), headers=headers,
                          data=f'{{"{first}": NaN}}', content_type="application/json")
        _assert_json_error(raw, 400, f"{method.upper()} {path} NaN")
        broken = client.open(url, method=method.upper(), headers=headers, data="{not json",
                             content_type="application/json")
        _assert_json_error(broken, 400, f"{method.upper()} {path} broken JSON")
    assert checked > 100  # every body route was exercised


def test_every_write_route_refuses_an_oversized_body_with_413(app, client, world):
    big = json.dumps({"title": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)})
    checked = 0
    for path, method, op, _ in _operations(app):
        if method == "get":
            continue
        resp = client.open(_url(path, world), method=method.upper(), headers=_headers(op, world),
                           data=big, content_type="application/json")
        _assert_json_error(resp, 413, f"{method.upper()} {path}")
        assert resp.get_json()["error"]["code"] == "payload_too_large"
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("query", [
    "limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5", "cursor=%%%", "cursor=aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
    "unread_only=maybe", "category=nonsense",
])
def test_list_parameters_are_validated(client, world, query):
    resp = client.get(f"/api/notifications?{query}", headers=world["user"])
    _assert_json_error(resp, 400, query)


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "cursor=bad!", "type=nonsense", "before=yesterday"])
def test_activity_parameters_are_validated(client, world, query):
    resp = client.get(f"/api/activity?{query}", headers=world["user"])
    _assert_json_error(resp, 400, query)
