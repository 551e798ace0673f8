"""The OpenAPI 3.1 document at ``/api/openapi.json``, generated from the routes.

Each JSON route declares its request and response schemas (pydantic models)
with ``@documented(...)``; the document is built from the URL map and those
declarations, so it cannot drift from the code: a route without a
declaration fails ``test_every_api_route_is_documented``.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel

from ..extensions import limiter
from ..services.inputs import MAX_ID

bp = Blueprint("api_openapi", __name__)

_CONVERTER_RE = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[a-zA-Z_]+)>")
_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}`` (API.md)."""

    error: ErrorDetail


def documented(
    *,
    summary: str,
    body: type[BaseModel] | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    headers: dict[str, dict[str, Any]] | None = None,
    responses: dict[int, type[BaseModel] | None] | None = None,
    auth: str = "user",
    tags: list[str] | None = None,
) -> Callable:
    """Attach OpenAPI metadata to a view.

    ``query`` and ``headers`` map optional parameter names to JSON Schemas; ``responses`` maps status
    codes to response models (None: no body, or ``ErrorBody`` for a status
    of 400 and up). ``auth``: "user" (bearer or session), "service" (service
    token) or "none".
    """

    def decorate(view: Callable) -> Callable:
        view.openapi = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": body,
            "query": query or {},
            "headers": headers or {},
            "responses": responses or {200: None},
            "auth": auth,
            "tags": tags or [],
        }
        return view

    return decorate


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []

    def repl(match: re.Match) -> str:
        conv, name = match.group("conv") or "string", match.group("name")
        # <int:> is ASCII digits up to MAX_ID (webapp/input_gate.py); larger is 404.
        schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID} if conv == "int" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER_RE.sub(repl, rule), params


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=_REF, mode=mode)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault(model.__name__, schema)
    return {"$ref": _REF.format(model=model.__name__)}


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document for every rule under ``/api``."""
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/") or rule.endpoint == "api_openapi.spec":
            continue
        meta = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if meta is None:
            continue
        path, params = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "summary": meta["summary"],
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "parameters": params
                + [{"name": n, "in": "query", "required": False, "schema": s} for n, s in meta["query"].items()]
                + [{"name": n, "in": "header", "required": False, "schema": s} for n, s in meta["headers"].items()],
                "responses": {},
            }
            if meta["tags"]:
                op["tags"] = meta["tags"]
            if meta["auth"] == "user":
                op["security"] = [{"bearer": []}]
            elif meta["auth"] == "service":
                op["security"] = [{"serviceToken": []}]
            if meta["body"] is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(meta["body"], components, "validation")}},
                }
            statuses = dict(meta["responses"])
            if meta["body"] is not None or meta["query"] or params:
                statuses.setdefault(400, ErrorBody)
            if meta["auth"] != "none":
                statuses.setdefault(401, ErrorBody)
            statuses.setdefault(413, ErrorBody)
            statuses.setdefault(429, ErrorBody)
            for status, model in sorted(statuses.items()):
                model = model or (ErrorBody if status >= 400 else None)
                entry: dict[str, Any] = {"description": "OK" if status < 400 else "Error"}
                if model is not None:
                    entry["content"] = {"application/json": {"schema": _schema(model, components, "serialization")}}
                op["responses"][str(status)] = entry
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Solo Mining social layer", "version": "1.0.0",
                 "description": "JSON routes of the social layer; the contract is API.md."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "serviceToken": {"type": "http", "scheme": "bearer", "description": "SERVICE_TOKEN"},
            },
        },
    }


@bp.get("/openapi.json")
@limiter.exempt
def spec():
    return build_spec(current_app)
